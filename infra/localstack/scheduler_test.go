package localstack

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		expr string
		want time.Duration
		ok   bool
	}{
		{"rate(1 minute)", time.Minute, true},
		{"rate(5 minutes)", 5 * time.Minute, true},
		{"rate(2 hours)", 2 * time.Hour, true},
		{"rate(1 day)", 24 * time.Hour, true},
		{"rate(10 seconds)", 10 * time.Second, true},
		{"rate( 3 minutes )", 3 * time.Minute, true},
		{"rate(0 minutes)", 0, false},
		{"rate(1 fortnight)", 0, false},
		{"cron(0 12 * * ? *)", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.expr)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v ok=%v", tt.expr, got, err, tt.want, tt.ok)
		}
	}
}

func TestSchedulerInvokesWithScheduledEvent(t *testing.T) {
	type call struct {
		ev        events.EventBridgeEvent
		requestID string
		deadline  bool
	}
	calls := make(chan call, 10)
	s := &Scheduler{
		Expression: "cron(0 * * * ? *)", // not parsable: the Interval override must win
		Interval:   10 * time.Millisecond,
		RuleName:   "SchedulerFunctionTick",
		Timeout:    time.Second,
		Handler: func(ctx context.Context, ev events.EventBridgeEvent) error {
			lc, _ := lambdacontext.FromContext(ctx)
			_, hasDeadline := ctx.Deadline()
			c := call{ev: ev, deadline: hasDeadline}
			if lc != nil {
				c.requestID = lc.AwsRequestID
			}
			calls <- c
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	first, second := <-calls, <-calls
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ev := first.ev
	if ev.DetailType != "Scheduled Event" || ev.Source != "aws.events" || ev.Region != "us-east-1" || ev.Version != "0" ||
		len(ev.Resources) != 1 || ev.Resources[0] != "arn:aws:events:us-east-1:000000000000:rule/SchedulerFunctionTick" ||
		string(ev.Detail) != "{}" || ev.Time.IsZero() || ev.Time.Location() != time.UTC {
		t.Errorf("event %+v", ev)
	}
	if first.requestID == "" || !first.deadline || first.ev.ID == second.ev.ID {
		t.Errorf("calls %+v %+v: want request ids, deadlines and distinct event ids", first, second)
	}
	b, _ := json.Marshal(ev)
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	if raw["detail-type"] != "Scheduled Event" || raw["account"] != AccountID {
		t.Errorf("JSON %s", b)
	}
}

func TestSchedulerRejectsCronWithoutInterval(t *testing.T) {
	s := &Scheduler{Expression: "cron(0 * * * ? *)", Handler: func(context.Context, events.EventBridgeEvent) error { return nil }}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("want an error for cron() without Interval")
	}
}
