package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func msgs(ids ...string) []sqstypes.Message {
	var out []sqstypes.Message
	for _, id := range ids {
		out = append(out, sqstypes.Message{MessageId: aws.String(id), ReceiptHandle: aws.String("rh-" + id), Body: aws.String("body-" + id)})
	}
	return out
}

func ids(ms []sqstypes.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, aws.ToString(m.MessageId))
	}
	return out
}

func failures(ids ...string) events.SQSEventResponse {
	var r events.SQSEventResponse
	for _, id := range ids {
		r.BatchItemFailures = append(r.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: id})
	}
	return r
}

func TestSettle(t *testing.T) {
	batch := msgs("a", "b", "c")
	tests := []struct {
		name     string
		resp     events.SQSEventResponse
		err      error
		timedOut bool
		report   bool
		wantDel  []string
		wantWhy  string
	}{
		{"success deletes all", events.SQSEventResponse{}, nil, false, true, []string{"a", "b", "c"}, ""},
		{"error deletes none", events.SQSEventResponse{}, errors.New("boom"), false, true, nil, "function error: boom"},
		{"timeout deletes none", events.SQSEventResponse{}, nil, true, true, nil, "function timed out"},
		{"reported failure kept", failures("b"), nil, false, true, []string{"a", "c"}, "1 of 3 reported failed"},
		{"all reported", failures("a", "b", "c"), nil, false, true, nil, "3 of 3 reported failed"},
		{"duplicate report counted once", failures("b", "b"), nil, false, true, []string{"a", "c"}, "1 of 3 reported failed"},
		{"empty id fails batch", failures("b", ""), nil, false, true, nil, `names "", not a message of the batch`},
		{"unknown id fails batch", failures("zz"), nil, false, true, nil, `names "zz", not a message of the batch`},
		{"reports ignored without ReportBatchItemFailures", failures("b"), nil, false, false, []string{"a", "b", "c"}, ""},
		{"error wins over reports", failures("b"), errors.New("x"), false, true, nil, "function error: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, why := settle(batch, tt.resp, tt.err, tt.timedOut, tt.report)
			if !reflect.DeepEqual(ids(del), tt.wantDel) {
				t.Errorf("deleted %v, want %v", ids(del), tt.wantDel)
			}
			if (tt.wantWhy == "") != (why == "") || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("why = %q, want %q", why, tt.wantWhy)
			}
		})
	}
}

// TestSQSEventForShape compares the JSON of a built event with the shape of
// Lambda's documented SQS event.
func TestSQSEventForShape(t *testing.T) {
	m := sqstypes.Message{
		MessageId: aws.String("059f36b4-87a3-44ab-83d2-661975830a7d"), ReceiptHandle: aws.String("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a"),
		Body: aws.String("test"), MD5OfBody: aws.String("098f6bcd4621d373cade4e832627b4f6"),
		Attributes: map[string]string{
			"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
			"SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185",
		},
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"kind": {DataType: aws.String("String"), StringValue: aws.String("step")},
		},
		MD5OfMessageAttributes: aws.String("abc"),
	}
	ev := SQSEventFor([]sqstypes.Message{m}, "arn:aws:sqs:us-east-1:000000000000:q")
	got, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Records":[{"messageId":"059f36b4-87a3-44ab-83d2-661975830a7d","receiptHandle":"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a","body":"test",` +
		`"md5OfBody":"098f6bcd4621d373cade4e832627b4f6","md5OfMessageAttributes":"abc",` +
		`"attributes":{"ApproximateFirstReceiveTimestamp":"1545082649185","ApproximateReceiveCount":"1","SenderId":"AIDAIENQZJOLO23YVJ4VO","SentTimestamp":"1545082649183"},` +
		`"messageAttributes":{"kind":{"stringValue":"step","stringListValues":[],"binaryListValues":[],"dataType":"String"}},` +
		`"eventSourceARN":"arn:aws:sqs:us-east-1:000000000000:q","eventSource":"aws:sqs","awsRegion":"us-east-1"}]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// fakeSQS serves queued batches and records deletes.
type fakeSQS struct {
	mu       sync.Mutex
	batches  [][]sqstypes.Message
	inputs   []*sqs.ReceiveMessageInput
	deleted  []string
	received chan struct{}
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	f.inputs = append(f.inputs, in)
	if len(f.batches) > 0 {
		b := f.batches[0]
		f.batches = f.batches[1:]
		f.mu.Unlock()
		return &sqs.ReceiveMessageOutput{Messages: b}, nil
	}
	f.mu.Unlock()
	select {
	case f.received <- struct{}{}:
	default:
	}
	time.Sleep(5 * time.Millisecond)
	return &sqs.ReceiveMessageOutput{}, nil
}

func (f *fakeSQS) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range in.Entries {
		f.deleted = append(f.deleted, aws.ToString(e.ReceiptHandle))
	}
	return &sqs.DeleteMessageBatchOutput{}, nil
}

func TestPollerInvokesAndDeletes(t *testing.T) {
	fake := &fakeSQS{batches: [][]sqstypes.Message{msgs("a", "b", "c")}, received: make(chan struct{}, 1)}
	var got events.SQSEvent
	var lc *lambdacontext.LambdaContext
	var deadline time.Duration
	p := &Poller{
		Client: fake, QueueURL: "http://q/1", QueueARN: "arn:q", BatchSize: 3, VisibilityTimeout: 7,
		ReportBatchItemFailures: true, Timeout: 5 * time.Second, FunctionName: "FlowFunction",
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			got = ev
			lc, _ = lambdacontext.FromContext(ctx)
			if d, ok := ctx.Deadline(); ok {
				deadline = time.Until(d)
			}
			return failures("b"), nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-fake.received // the batch was handled and the poller is polling again
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 3 || got.Records[0].EventSourceARN != "arn:q" || got.Records[1].Body != "body-b" {
		t.Errorf("event %+v", got)
	}
	if lc == nil || len(lc.AwsRequestID) != 36 || lc.InvokedFunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:FlowFunction" {
		t.Errorf("lambda context %+v", lc)
	}
	if deadline <= 0 || deadline > 5*time.Second {
		t.Errorf("handler deadline in %v, want within the 5 s timeout", deadline)
	}
	sort.Strings(fake.deleted)
	if !reflect.DeepEqual(fake.deleted, []string{"rh-a", "rh-c"}) {
		t.Errorf("deleted %v", fake.deleted)
	}
	in := fake.inputs[0]
	if in.MaxNumberOfMessages != 3 || in.VisibilityTimeout != 7 || in.WaitTimeSeconds != pollWait ||
		len(in.MessageSystemAttributeNames) != 1 || in.MessageSystemAttributeNames[0] != sqstypes.MessageSystemAttributeNameAll ||
		!reflect.DeepEqual(in.MessageAttributeNames, []string{"All"}) {
		t.Errorf("receive input %+v", in)
	}
}

func TestPollerWindowGathersBatch(t *testing.T) {
	fake := &fakeSQS{batches: [][]sqstypes.Message{msgs("a"), msgs("b", "c"), msgs("d")}, received: make(chan struct{}, 1)}
	var sizes []int
	p := &Poller{
		Client: fake, QueueURL: "http://q/1", BatchSize: 3, Window: time.Minute,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			sizes = append(sizes, len(ev.Records))
			return events.SQSEventResponse{}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-fake.received
	cancel()
	<-done
	// a + b,c fill the batch of 3 before the window ends; d comes alone and
	// is invoked when the poller stops (the window is a minute).
	if !reflect.DeepEqual(sizes, []int{3}) && !reflect.DeepEqual(sizes, []int{3, 1}) {
		t.Errorf("batch sizes %v, want [3] then possibly [1]", sizes)
	}
	if fake.inputs[1].MaxNumberOfMessages != 2 {
		t.Errorf("second receive asked for %d, want the 2 missing", fake.inputs[1].MaxNumberOfMessages)
	}
}

func TestPollerHandlerPanicDeletesNothing(t *testing.T) {
	fake := &fakeSQS{batches: [][]sqstypes.Message{msgs("a")}, received: make(chan struct{}, 1)}
	p := &Poller{Client: fake, QueueURL: "http://q/1",
		Handler: func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) { panic("bad") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-fake.received
	cancel()
	<-done
	if len(fake.deleted) != 0 {
		t.Errorf("deleted %v after a panic", fake.deleted)
	}
}

func TestPollerNeedsConfig(t *testing.T) {
	if err := (&Poller{}).Run(context.Background()); err == nil {
		t.Fatal("want an error for an empty Poller")
	}
}
