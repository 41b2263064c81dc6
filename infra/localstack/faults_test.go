package localstack

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

func TestParseFaults(t *testing.T) {
	all := AllFaults(0)
	tests := []struct {
		spec    string
		want    Faults
		wantErr bool
	}{
		{"", Faults{}, false},
		{"duplicate, reorder", Faults{Duplicate: 1, Reorder: true}, false},
		{"duplicate=0.3", Faults{Duplicate: 0.3}, false},
		{"crash=0.25,crash-visibility=2s,seed=9", Faults{Crash: 0.25, CrashVisibility: 2 * time.Second, Seed: 9}, false},
		{"throttle=0.5,throttle-every=10s,throttle-for=2s,throttle-services=DynamoDB+SQS",
			Faults{Throttle: Throttle{Rate: 0.5, Every: 10 * time.Second, For: 2 * time.Second, Services: []string{"DynamoDB", "SQS"}}}, false},
		{"all", all, false},
		{"seed=7,all,crash=0", func() Faults { f := AllFaults(7); f.Crash = 0; return f }(), false},
		{"crash=2", Faults{}, true},
		{"crash", Faults{}, true},
		{"throttle-every=soon", Faults{}, true},
		{"explode", Faults{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseFaults(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if (Faults{}).On() || !all.On() || NewInjector(Faults{Seed: 3}) != nil {
		t.Error("On: the zero value (with or without a seed) is off, AllFaults on")
	}
}

func TestArrange(t *testing.T) {
	fresh := msgs("a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
	held := msgs("x", "y")

	deliver, hold := arrange(rand.New(rand.NewPCG(1, 1)), false, fresh, held)
	if !reflect.DeepEqual(ids(deliver), []string{"x", "y", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}) || hold != nil {
		t.Errorf("without reorder: deliver %v hold %v, want held first then fresh in order", ids(deliver), ids(hold))
	}

	heldSome, reordered := 0, 0
	for seed := range uint64(200) {
		deliver, hold := arrange(rand.New(rand.NewPCG(seed, 0)), true, fresh, held)
		all := append(ids(deliver), ids(hold)...)
		sort.Strings(all)
		if !reflect.DeepEqual(all, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "x", "y"}) {
			t.Fatalf("seed %d: delivered %v + held %v lose or double messages", seed, ids(deliver), ids(hold))
		}
		for _, h := range hold {
			if id := aws.ToString(h.MessageId); id == "x" || id == "y" {
				t.Fatalf("seed %d: message %s held twice", seed, id)
			}
		}
		if len(hold) > len(fresh)/2 {
			t.Fatalf("seed %d: held %d of %d", seed, len(hold), len(fresh))
		}
		if len(hold) > 0 {
			heldSome++
		}
		if !slices.Equal(ids(deliver), ids(append(slices.Clone(held), fresh[:len(deliver)-2]...))) {
			reordered++
		}
	}
	if heldSome < 100 || reordered < 190 {
		t.Errorf("over 200 seeds: %d held something, %d reordered; want most", heldSome, reordered)
	}

	// A lone fresh message is never held (the batch would be empty); held
	// messages alone are delivered.
	if d, h := arrange(rand.New(rand.NewPCG(5, 5)), true, msgs("a"), nil); len(d) != 1 || h != nil {
		t.Errorf("one message: deliver %v hold %v", ids(d), ids(h))
	}
	if d, h := arrange(rand.New(rand.NewPCG(5, 5)), true, nil, held); len(d) != 2 || h != nil {
		t.Errorf("only held: deliver %v hold %v", ids(d), ids(h))
	}

	// The same seed makes the same decisions.
	d1, h1 := arrange(rand.New(rand.NewPCG(42, 7)), true, fresh, held)
	d2, h2 := arrange(rand.New(rand.NewPCG(42, 7)), true, fresh, held)
	if !reflect.DeepEqual(ids(d1), ids(d2)) || !reflect.DeepEqual(ids(h1), ids(h2)) {
		t.Errorf("same seed, different decisions: %v/%v vs %v/%v", ids(d1), ids(h1), ids(d2), ids(h2))
	}
}

func TestPlanInvocation(t *testing.T) {
	batch := msgs("a", "b", "c", "d")
	rnd := rand.New(rand.NewPCG(3, 4))
	crashes, concurrent := 0, 0
	const n = 10000
	for range n {
		p := planInvocation(rnd, Faults{Duplicate: 1, Crash: 0.1}, batch)
		again := ids(p.Again)
		sort.Strings(again)
		if !reflect.DeepEqual(again, []string{"a", "b", "c", "d"}) {
			t.Fatalf("second delivery %v is not the batch", ids(p.Again))
		}
		if p.Crash {
			crashes++
		}
		if p.Concurrent {
			concurrent++
		}
	}
	// Seeded: these counts are the same in every run.
	if crashes < n*8/100 || crashes > n*12/100 {
		t.Errorf("%d crashes in %d invocations at rate 0.1", crashes, n)
	}
	if concurrent < n*45/100 || concurrent > n*55/100 {
		t.Errorf("%d concurrent duplicates in %d", concurrent, n)
	}
	twice := 0
	for range n {
		if planInvocation(rnd, Faults{Duplicate: 0.3}, batch).Again != nil {
			twice++
		}
	}
	if twice < n*27/100 || twice > n*33/100 {
		t.Errorf("%d of %d batches delivered twice at 0.3", twice, n)
	}
	if p := planInvocation(rnd, Faults{Reorder: true}, batch); p.Again != nil || p.Crash {
		t.Errorf("reorder alone planned %+v", p)
	}
}

func TestWindowOpen(t *testing.T) {
	w := Throttle{Rate: 1, Every: 10 * time.Second, For: 3 * time.Second}
	tests := []struct {
		t       Throttle
		elapsed time.Duration
		want    bool
	}{
		{w, 0, true},
		{w, 2999 * time.Millisecond, true},
		{w, 3 * time.Second, false},
		{w, 9 * time.Second, false},
		{w, 10 * time.Second, true},
		{w, 21 * time.Second, true},
		{w, 24 * time.Second, false},
		{Throttle{Rate: 1}, time.Hour, true},
		{Throttle{Rate: 1, Every: time.Second}, time.Hour, true},
	}
	for _, tt := range tests {
		if got := windowOpen(tt.t, tt.elapsed); got != tt.want {
			t.Errorf("windowOpen(%+v, %s) = %v, want %v", tt.t, tt.elapsed, got, tt.want)
		}
	}
}

func TestThrottleDecisions(t *testing.T) {
	in := NewInjector(Faults{Seed: 1, Throttle: Throttle{Rate: 0.5, Every: 10 * time.Second, For: 3 * time.Second, Services: []string{"DynamoDB", "SESv2"}}})
	th := &throttler{in: in, rnd: in.source("x"), services: map[string]bool{"DynamoDB": true, "SESv2": true}}
	codes := map[string]int{}
	for range 1000 {
		codes[th.decide("DynamoDB", in.start.Add(time.Second))]++
	}
	if codes[""] < 400 || codes[""] > 600 || codes["ThrottlingException"] < 200 || codes["ProvisionedThroughputExceededException"] < 200 {
		t.Errorf("DynamoDB decisions in an open window at 0.5: %v", codes)
	}
	for range 100 {
		if c := th.decide("DynamoDB", in.start.Add(5*time.Second)); c != "" {
			t.Fatalf("throttled with the window closed: %s", c)
		}
		if c := th.decide("SQS", in.start.Add(time.Second)); c != "" {
			t.Fatalf("throttled a service not listed: %s", c)
		}
		if c := th.decide("SESv2", in.start.Add(time.Second)); c != "" && c != "TooManyRequestsException" {
			t.Fatalf("SES v2 throttles with %s", c)
		}
	}
	for _, code := range []string{throttleCode("DynamoDB", 0), throttleCode("DynamoDB", 1), throttleCode("SQS", 0), throttleCode("SESv2", 0)} {
		if _, ok := retry.DefaultThrottleErrorCodes[code]; !ok {
			t.Errorf("%s is not a throttle the SDK's retryer knows", code)
		}
	}
}

// TestThrottleMiddlewareBeforeSending points a real SQS client at a loopback
// server: every call is throttled before it is sent, the SDK retries it
// (three attempts), and the error carries the throttling code.
func TestThrottleMiddlewareBeforeSending(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		fmt.Fprint(w, `{}`)
	}))
	defer srv.Close()
	in := NewInjector(Faults{Throttle: Throttle{Rate: 1}})
	counter := NewCallCounter()
	cfg := aws.Config{
		Region: Region, Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			})
		},
		APIOptions: []func(*middleware.Stack) error{counter.APIOption("fn"), in.APIOption("fn")},
	}
	client := sqs.NewFromConfig(cfg, WithSQSEndpoint(srv.URL))
	_, err := client.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{
		QueueUrl: aws.String(srv.URL + "/q"), Entries: []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: aws.String("r")}},
	})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" {
		t.Fatalf("err = %v, want a ThrottlingException", err)
	}
	if served.Load() != 0 {
		t.Errorf("the server received %d requests; throttled calls must not be sent", served.Load())
	}
	got := counter.Snapshot()[CallKey{"fn", "SQS", "DeleteMessageBatch"}]
	if got.Calls != 1 || got.Attempts != 3 || got.Errors != 1 || got.Entries != 1 {
		t.Errorf("counted %+v, want 1 call, 3 attempts (the SDK retried the throttle), 1 error, 1 entry", got)
	}
	if in.Stats().Throttled != 3 {
		t.Errorf("stats %+v, want 3 throttled", in.Stats())
	}

	// Outside any throttle the same client reaches the server.
	off := sqs.NewFromConfig(aws.Config{Region: Region, Credentials: cfg.Credentials,
		APIOptions: []func(*middleware.Stack) error{(*Injector)(nil).APIOption("fn")}}, WithSQSEndpoint(srv.URL))
	if _, err := off.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(srv.URL + "/q"),
		Entries: []sqstypes.DeleteMessageBatchRequestEntry{{Id: aws.String("0"), ReceiptHandle: aws.String("r")}}}); err != nil {
		t.Fatal(err)
	}
	if served.Load() != 1 {
		t.Errorf("served %d, want 1", served.Load())
	}
	_ = dynamodb.NewFromConfig // the DynamoDB side is covered in calls_test.go
}

// faultySQS is fakeSQS that can also change visibility in batches.
type faultySQS struct {
	*fakeSQS
	vmu        sync.Mutex
	visibility map[string]int32
}

func (f *faultySQS) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	f.vmu.Lock()
	defer f.vmu.Unlock()
	for _, e := range in.Entries {
		f.visibility[aws.ToString(e.ReceiptHandle)] = e.VisibilityTimeout
	}
	return &sqs.ChangeMessageVisibilityBatchOutput{}, nil
}

func TestPollerDuplicatesAndCrashes(t *testing.T) {
	fake := &faultySQS{fakeSQS: &fakeSQS{batches: [][]sqstypes.Message{msgs("a", "b", "c")}, received: make(chan struct{}, 1)}, visibility: map[string]int32{}}
	var mu sync.Mutex
	seen := map[string]int{}
	in := NewInjector(Faults{Duplicate: 1, Crash: 1, CrashVisibility: time.Second})
	p := &Poller{Client: fake, QueueURL: "http://q/1", BatchSize: 10, ReportBatchItemFailures: true, Faults: in,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range ev.Records {
				seen[r.MessageId]++
			}
			return events.SQSEventResponse{}, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-fake.received
	cancel()
	<-done
	if !reflect.DeepEqual(seen, map[string]int{"a": 2, "b": 2, "c": 2}) {
		t.Errorf("deliveries %v, want each message twice", seen)
	}
	if len(fake.deleted) != 0 {
		t.Errorf("a crashed invocation deleted %v", fake.deleted)
	}
	if !reflect.DeepEqual(fake.visibility, map[string]int32{"rh-a": 1, "rh-b": 1, "rh-c": 1}) {
		t.Errorf("visibility after the crash %v, want every message back in 1 s", fake.visibility)
	}
	if s := in.Stats(); s.Batches != 1 || s.Duplicated != 1 || s.Crashed != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestPollerDuplicateDeletesWhatEitherDeliveryDid(t *testing.T) {
	fake := &fakeSQS{batches: [][]sqstypes.Message{msgs("a", "b", "c")}, received: make(chan struct{}, 1)}
	var calls atomic.Int64
	p := &Poller{Client: fake, QueueURL: "http://q/1", BatchSize: 10, ReportBatchItemFailures: true,
		Faults: NewInjector(Faults{Duplicate: 1, Seed: 11}),
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			// The first delivery fails b (busy, say); the second fails c.
			if calls.Add(1) == 1 {
				return failures("b"), nil
			}
			return failures("c"), nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-fake.received
	cancel()
	<-done
	sort.Strings(fake.deleted)
	if calls.Load() != 2 || !reflect.DeepEqual(fake.deleted, []string{"rh-a", "rh-b", "rh-c"}) {
		t.Errorf("%d calls deleted %v, want 2 calls deleting all three", calls.Load(), fake.deleted)
	}
}

func TestPollerReorderHoldsForTheNextBatch(t *testing.T) {
	// Five batches of four: with seed 2 some messages are held back and
	// arrive in a later batch; none is lost or doubled.
	var batches [][]sqstypes.Message
	for b := range 5 {
		var ids []string
		for i := range 4 {
			ids = append(ids, fmt.Sprintf("m%d", b*4+i))
		}
		batches = append(batches, msgs(ids...))
	}
	fake := &fakeSQS{batches: batches, received: make(chan struct{}, 1)}
	var mu sync.Mutex
	var order []string
	in := NewInjector(Faults{Reorder: true, Seed: 2})
	p := &Poller{Client: fake, QueueURL: "http://q/1", BatchSize: 10, Faults: in,
		Handler: func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range ev.Records {
				order = append(order, r.MessageId)
			}
			return events.SQSEventResponse{}, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-fake.received
	time.Sleep(50 * time.Millisecond) // the empty receive releases what was held
	cancel()
	<-done
	sent := ids(slices.Concat(batches...))
	sorted, want := slices.Clone(order), slices.Clone(sent)
	sort.Strings(sorted)
	sort.Strings(want)
	if !reflect.DeepEqual(sorted, want) {
		t.Fatalf("delivered %v, want each of %v once", order, want)
	}
	if in.Stats().Held == 0 || slices.Equal(order, sent) {
		t.Errorf("order %v with %d held: want messages held back and overtaken", order, in.Stats().Held)
	}
	if len(fake.deleted) != len(want) {
		t.Errorf("deleted %d of %d", len(fake.deleted), len(want))
	}
}
