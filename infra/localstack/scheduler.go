package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// ScheduleHandler is a scheduled function's handler as aws-lambda-go calls it.
type ScheduleHandler func(context.Context, events.EventBridgeEvent) error

// Scheduler invokes a handler on a schedule expression the way an EventBridge
// rule does: an event with detail-type "Scheduled Event" and source
// "aws.events", the first one an interval after start. Calls do not overlap;
// a tick that comes while a call runs is dropped.
type Scheduler struct {
	// Expression is the template's, e.g. "rate(1 minute)". Locally
	// "rate(N second[s])" is accepted too. cron() is not; set Interval.
	Expression string
	// Interval overrides the expression (tests, a faster dev loop).
	Interval time.Duration
	Handler  ScheduleHandler
	// Timeout is the function timeout (default 3 s).
	Timeout time.Duration
	// RuleName names the rule in the event's resources.
	RuleName string
	Logger   *slog.Logger
}

var rateExpr = regexp.MustCompile(`^rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)$`)

// ParseRate returns the interval of a rate() expression.
func ParseRate(expr string) (time.Duration, error) {
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return 0, fmt.Errorf("schedule %q: only rate(N unit) is supported locally", expr)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("schedule %q: bad count", expr)
	}
	unit := map[string]time.Duration{
		"second": time.Second, "seconds": time.Second,
		"minute": time.Minute, "minutes": time.Minute,
		"hour": time.Hour, "hours": time.Hour,
		"day": 24 * time.Hour, "days": 24 * time.Hour,
	}[m[2]]
	return time.Duration(n) * unit, nil
}

func (s *Scheduler) interval() (time.Duration, error) {
	if s.Interval > 0 {
		return s.Interval, nil
	}
	return ParseRate(s.Expression)
}

// Run ticks until ctx is cancelled; a call in progress is finished.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.Handler == nil {
		return errors.New("localstack: Scheduler needs a Handler")
	}
	every, err := s.interval()
	if err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if err := s.invoke(ctx, now); err != nil {
				s.logger().Warn("scheduled call failed", "rule", s.RuleName, "err", err)
			}
		}
	}
}

// Invoke makes one scheduled call now, as a tick would.
func (s *Scheduler) Invoke(ctx context.Context) error {
	if s.Handler == nil {
		return errors.New("localstack: Scheduler needs a Handler")
	}
	return s.invoke(ctx, time.Now())
}

func (s *Scheduler) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Scheduler) invoke(ctx context.Context, at time.Time) (err error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	reqID := newRequestID()
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	hctx = lambdacontext.NewContext(hctx, &lambdacontext.LambdaContext{AwsRequestID: reqID})
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return s.Handler(hctx, ScheduledEvent(s.RuleName, at))
}

// ScheduledEvent is the event an EventBridge schedule rule sends.
func ScheduledEvent(rule string, at time.Time) events.EventBridgeEvent {
	if rule == "" {
		rule = "tunnels-schedule"
	}
	return events.EventBridgeEvent{
		Version:    "0",
		ID:         newRequestID(),
		DetailType: "Scheduled Event",
		Source:     "aws.events",
		AccountID:  AccountID,
		// EventBridge stamps UTC time with second precision.
		Time:      at.UTC().Truncate(time.Second),
		Region:    Region,
		Resources: []string{"arn:aws:events:" + Region + ":" + AccountID + ":rule/" + rule},
		Detail:    json.RawMessage("{}"),
	}
}
