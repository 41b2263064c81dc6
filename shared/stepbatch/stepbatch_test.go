package stepbatch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tunnels/tunnels/shared/engine"
)

type visibility struct {
	mu    sync.Mutex
	calls map[string]int32
}

func (v *visibility) ChangeMessageVisibility(_ context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.calls == nil {
		v.calls = map[string]int32{}
	}
	v.calls[aws.ToString(in.ReceiptHandle)] = in.VisibilityTimeout
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func record(id, body string, receives string) events.SQSMessage {
	return events.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body,
		Attributes: map[string]string{"ApproximateReceiveCount": receives}}
}

func stepBody(id string) string {
	return string(engine.Step{V: 1, ID: id, WS: "w", Sub: "s", Tunnel: "t", Channel: "chat", Gen: 1, Block: "b"}.Encode())
}

func TestHandleReportsFailuresPerRecord(t *testing.T) {
	vis := &visibility{}
	var mu sync.Mutex
	var ran []string
	h := &Handler{
		QueueURL: "http://queue", Visibility: vis,
		Process: func(_ context.Context, s engine.Step, attempt int) error {
			mu.Lock()
			ran = append(ran, s.ID)
			mu.Unlock()
			switch s.ID {
			case "busy":
				return engine.ErrBusy
			case "flaky":
				return errors.New("throttled")
			case "boom":
				panic("kaboom")
			}
			return nil
		},
	}
	ev := events.SQSEvent{Records: []events.SQSMessage{
		record("1", stepBody("ok"), "1"),
		record("2", stepBody("busy"), "1"),
		record("3", stepBody("flaky"), "3"),
		record("4", `{"v": 9}`, "1"), // poison: retried until the DLQ takes it
		record("5", stepBody("boom"), "1"),
	}}
	res, err := h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle error %v; a partly failed batch is not an invocation error", err)
	}
	var failed []string
	for _, f := range res.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	slices.Sort(failed)
	if !slices.Equal(failed, []string{"2", "3", "4", "5"}) {
		t.Fatalf("failures = %v, want [2 3 4 5]", failed)
	}
	slices.Sort(ran)
	if !slices.Equal(ran, []string{"boom", "busy", "flaky", "ok"}) {
		t.Fatalf("ran %v", ran)
	}
	// Busy: looked at again in 2 s; attempt 3 of a transient error: 8 s ± jitter.
	if vis.calls["rh-2"] != 2 {
		t.Errorf("busy step visibility = %d, want 2", vis.calls["rh-2"])
	}
	if v := vis.calls["rh-3"]; v < 4 || v > 8 {
		t.Errorf("third attempt visibility = %d, want 4..8", v)
	}
	if _, ok := vis.calls["rh-1"]; ok {
		t.Error("a successful record's visibility was changed")
	}
}

func TestHandleAllFailedAndEmptyIDs(t *testing.T) {
	h := &Handler{Process: func(context.Context, engine.Step, int) error { return errors.New("down") }}
	res, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record("1", stepBody("a"), "1"), record("2", stepBody("b"), "1")}})
	if !errors.Is(err, ErrAllFailed) || len(res.BatchItemFailures) != 2 {
		t.Fatalf("all failed: %v %v", res, err)
	}
	// A failed record without a message id is never reported with an empty
	// id; the batch fails whole, so the record is not taken for a success.
	res, err = h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{record("", stepBody("a"), "1"), record("2", stepBody("b"), "1")}})
	if !errors.Is(err, ErrUnnamedFailure) || len(res.BatchItemFailures) != 0 {
		t.Fatalf("unnamed failure: %v %v", res, err)
	}
	res, err = h.Handle(context.Background(), events.SQSEvent{})
	if err != nil || len(res.BatchItemFailures) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

type retryLater struct{ d time.Duration }

func (r retryLater) Error() string             { return "429" }
func (r retryLater) RetryAfter() time.Duration { return r.d }

func TestBackoff(t *testing.T) {
	if d := Backoff(engine.ErrBusy, 4); d != 2*time.Second {
		t.Errorf("busy = %s", d)
	}
	if d := Backoff(retryLater{90 * time.Second}, 1); d != 90*time.Second {
		t.Errorf("Retry-After = %s", d)
	}
	for attempt := 1; attempt <= 12; attempt++ {
		base := min(2*time.Second<<min(attempt-1, 8), 5*time.Minute)
		d := Backoff(errors.New("x"), attempt)
		if d < base/2 || d > base {
			t.Errorf("attempt %d: %s not within [%s, %s]", attempt, d, base/2, base)
		}
	}
}

// BeforeBatch sees every step that decodes before any runs, and each record
// runs with the context it answers.
func TestBeforeBatch(t *testing.T) {
	type key struct{}
	var before []string
	var mu sync.Mutex
	got := map[string]any{}
	h := &Handler{
		BeforeBatch: func(ctx context.Context, steps []engine.Step) context.Context {
			for _, s := range steps {
				before = append(before, s.ID)
			}
			return context.WithValue(ctx, key{}, len(steps))
		},
		Process: func(ctx context.Context, s engine.Step, _ int) error {
			mu.Lock()
			defer mu.Unlock()
			if len(before) == 0 {
				t.Error("a step ran before BeforeBatch")
			}
			got[s.ID] = ctx.Value(key{})
			return nil
		},
	}
	_, err := h.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{
		record("1", stepBody("a"), "1"), record("2", "not a step", "1"), record("3", stepBody("b"), "1"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(before)
	if !slices.Equal(before, []string{"a", "b"}) || got["a"] != 2 || got["b"] != 2 {
		t.Errorf("before %v, contexts %v; want a and b, each with 2", before, got)
	}
}
