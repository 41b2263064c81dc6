package localstack

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Faults are what the local stack can do wrong on purpose, for chaos tests:
// the failures SQS, Lambda and the AWS APIs are allowed to have, made
// frequent. The zero value injects nothing.
//
// Every decision is drawn from a random source seeded with Seed and the name
// of the component deciding (a poller loop, a function's SDK clients), so
// one component makes the same sequence of decisions in every run; which
// message meets which decision still depends on timing across goroutines.
type Faults struct {
	Seed int64
	// Duplicate is the fraction of batches delivered twice (1: every
	// message): the poller calls the handler a second time with the same
	// records (reshuffled), before deleting anything — sometimes after the
	// first call, sometimes beside it, as two Lambda invocations holding
	// copies of one message would.
	Duplicate float64
	// Reorder shuffles every batch and holds a random part of it (up to
	// half) back for the poller's next batch, so messages overtake each
	// other within and between batches.
	Reorder bool
	// Crash is the fraction of invocations that "crash" after the handler
	// returned — its side effects happened — and before the poller
	// acknowledged anything: nothing is deleted and the batch's messages are
	// made visible again after CrashVisibility instead of the queue's
	// visibility timeout, so the redelivery comes soon.
	Crash float64
	// CrashVisibility is how soon a crashed batch comes back (default 1 s).
	CrashVisibility time.Duration
	// Throttle fails the functions' AWS calls for a while.
	Throttle Throttle
}

// Throttle fails a fraction of SDK calls with a throttling error before they
// are sent, while a window is open: the SDK's retryer retries them, and what
// it gives up on fails the step, which the queue retries.
type Throttle struct {
	// Rate is the fraction of calls failed while a window is open.
	Rate float64
	// A window opens every Every for For, the first at the start. Zero
	// Every or For: always open.
	Every, For time.Duration
	// Services are SDK service ids (DynamoDB, SQS, SESv2); empty: all.
	Services []string
}

// On says whether any fault is switched on.
func (f Faults) On() bool {
	return f.Duplicate > 0 || f.Reorder || f.Crash > 0 || f.Throttle.Rate > 0
}

// AllFaults is every fault at the strength the chaos tests use.
func AllFaults(seed int64) Faults {
	return Faults{
		Seed: seed, Duplicate: 1, Reorder: true, Crash: 0.1, CrashVisibility: time.Second,
		Throttle: Throttle{Rate: 0.2, Every: 8 * time.Second, For: 3 * time.Second},
	}
}

// ParseFaults reads a fault specification, the value of TUNNELS_FAULTS:
// comma-separated items among all, duplicate[=<fraction>], reorder, crash=<fraction>,
// crash-visibility=<duration>, throttle=<fraction>, throttle-every=<duration>,
// throttle-for=<duration>, throttle-services=<id>+<id>, seed=<int>. Empty
// means no faults. "all" is AllFaults; later items override it.
func ParseFaults(spec string) (Faults, error) {
	var f Faults
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, val, hasVal := strings.Cut(item, "=")
		bad := func(err error) (Faults, error) {
			return Faults{}, fmt.Errorf("faults: %q: %v", item, err)
		}
		frac := func() (float64, error) {
			v, err := strconv.ParseFloat(val, 64)
			if err == nil && (v < 0 || v > 1) {
				err = fmt.Errorf("want a fraction between 0 and 1")
			}
			return v, err
		}
		var err error
		switch name {
		case "all":
			seed := f.Seed
			f = AllFaults(seed)
		case "duplicate":
			f.Duplicate = 1
			if hasVal {
				f.Duplicate, err = frac()
			}
		case "reorder":
			f.Reorder = true
		case "crash":
			f.Crash, err = frac()
		case "crash-visibility":
			f.CrashVisibility, err = time.ParseDuration(val)
		case "throttle":
			f.Throttle.Rate, err = frac()
		case "throttle-every":
			f.Throttle.Every, err = time.ParseDuration(val)
		case "throttle-for":
			f.Throttle.For, err = time.ParseDuration(val)
		case "throttle-services":
			f.Throttle.Services = strings.Split(val, "+")
		case "seed":
			f.Seed, err = strconv.ParseInt(val, 10, 64)
		default:
			return bad(fmt.Errorf("unknown fault (want all, duplicate[=], reorder, crash=, crash-visibility=, throttle=, throttle-every=, throttle-for=, throttle-services=, seed=)"))
		}
		if err == nil && !hasVal && name != "all" && name != "duplicate" && name != "reorder" {
			err = fmt.Errorf("needs a value")
		}
		if err != nil {
			return bad(err)
		}
	}
	return f, nil
}

// FaultStats count the faults injected so far.
type FaultStats struct {
	Batches    int64 // handler invocations planned by pollers with faults
	Duplicated int64 // invocations whose records were delivered a second time
	Concurrent int64 // of those, the second delivery ran beside the first
	Held       int64 // messages held back for a later batch
	Crashed    int64 // invocations whose acknowledgement was dropped
	Throttled  int64 // SDK calls failed with a throttling error
}

// Injector applies Faults to the pollers and SDK clients of one local system.
// A nil *Injector injects nothing.
type Injector struct {
	cfg   Faults
	start time.Time

	batches, duplicated, concurrent atomic.Int64
	held, crashed, throttled        atomic.Int64
}

// NewInjector starts the clock of the throttle windows now. It answers nil
// when f switches nothing on.
func NewInjector(f Faults) *Injector {
	if !f.On() {
		return nil
	}
	if f.CrashVisibility <= 0 {
		f.CrashVisibility = time.Second
	}
	return &Injector{cfg: f, start: time.Now()}
}

// Config is the configuration the injector applies.
func (in *Injector) Config() Faults {
	if in == nil {
		return Faults{}
	}
	return in.cfg
}

// Stats answers what was injected so far.
func (in *Injector) Stats() FaultStats {
	if in == nil {
		return FaultStats{}
	}
	return FaultStats{
		Batches: in.batches.Load(), Duplicated: in.duplicated.Load(), Concurrent: in.concurrent.Load(),
		Held: in.held.Load(), Crashed: in.crashed.Load(), Throttled: in.throttled.Load(),
	}
}

// source is the random source of one component: the seed and its name.
func (in *Injector) source(label string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(label))
	return rand.New(rand.NewPCG(uint64(in.cfg.Seed), h.Sum64()))
}

// deliveryFaults decide the faults of one poller loop (one goroutine: no lock).
type deliveryFaults struct {
	in   *Injector
	rnd  *rand.Rand
	held []sqstypes.Message
}

func (in *Injector) forPoller(label string) *deliveryFaults {
	if in == nil || !(in.cfg.Duplicate > 0 || in.cfg.Reorder || in.cfg.Crash > 0) {
		return nil
	}
	return &deliveryFaults{in: in, rnd: in.source("poller/" + label)}
}

// next turns what a receive brought into the batch to deliver now, keeping
// the messages held back for the next one.
func (d *deliveryFaults) next(fresh []sqstypes.Message) []sqstypes.Message {
	if d == nil {
		return fresh
	}
	deliver, hold := arrange(d.rnd, d.in.cfg.Reorder, fresh, d.held)
	d.held = hold
	d.in.held.Add(int64(len(hold)))
	return deliver
}

// arrange decides a batch under Reorder: the fresh messages shuffled, up to
// half of them held back, the rest delivered with the earlier held ones, in a
// shuffled order. A held message is delivered with the next batch, never
// held twice, and a batch with fresh messages is never empty.
func arrange(rnd *rand.Rand, reorder bool, fresh, held []sqstypes.Message) (deliver, hold []sqstypes.Message) {
	if !reorder {
		return append(slices.Clone(held), fresh...), nil
	}
	fresh = slices.Clone(fresh)
	rnd.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	k := 0
	if len(fresh) > 1 {
		k = rnd.IntN(len(fresh)/2 + 1)
	}
	hold = slices.Clone(fresh[len(fresh)-k:])
	deliver = append(slices.Clone(held), fresh[:len(fresh)-k]...)
	rnd.Shuffle(len(deliver), func(i, j int) { deliver[i], deliver[j] = deliver[j], deliver[i] })
	if len(hold) == 0 {
		hold = nil
	}
	return deliver, hold
}

// invocationPlan is what goes wrong with one handler invocation.
type invocationPlan struct {
	// Again, when not nil, is the same batch delivered a second time.
	Again []sqstypes.Message
	// Concurrent runs the second delivery beside the first.
	Concurrent bool
	// Crash drops the acknowledgement.
	Crash bool
}

func planInvocation(rnd *rand.Rand, f Faults, batch []sqstypes.Message) invocationPlan {
	var p invocationPlan
	if f.Duplicate > 0 && len(batch) > 0 && (f.Duplicate >= 1 || rnd.Float64() < f.Duplicate) {
		p.Again = slices.Clone(batch)
		rnd.Shuffle(len(p.Again), func(i, j int) { p.Again[i], p.Again[j] = p.Again[j], p.Again[i] })
		p.Concurrent = rnd.IntN(2) == 0
	}
	p.Crash = f.Crash > 0 && rnd.Float64() < f.Crash
	return p
}

func (d *deliveryFaults) plan(batch []sqstypes.Message) invocationPlan {
	if d == nil {
		return invocationPlan{}
	}
	p := planInvocation(d.rnd, d.in.cfg, batch)
	d.in.batches.Add(1)
	if p.Again != nil {
		d.in.duplicated.Add(1)
		if p.Concurrent {
			d.in.concurrent.Add(1)
		}
	}
	if p.Crash {
		d.in.crashed.Add(1)
	}
	return p
}

// union is a followed by the messages of b it lacks (by message id).
func union(a, b []sqstypes.Message) []sqstypes.Message {
	seen := make(map[string]bool, len(a))
	out := slices.Clone(a)
	for _, m := range a {
		seen[aws.ToString(m.MessageId)] = true
	}
	for _, m := range b {
		if id := aws.ToString(m.MessageId); !seen[id] {
			seen[id] = true
			out = append(out, m)
		}
	}
	return out
}

// visibilityBatchAPI is the SQS call a crashed batch is brought back with.
type visibilityBatchAPI interface {
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// windowOpen says whether a throttle window is open at elapsed since the start.
func windowOpen(t Throttle, elapsed time.Duration) bool {
	if t.Every <= 0 || t.For <= 0 {
		return true
	}
	return elapsed%t.Every < t.For
}

// throttler fails SDK calls of one client configuration.
type throttler struct {
	in       *Injector
	mu       sync.Mutex
	rnd      *rand.Rand
	services map[string]bool
}

// decide answers the error code to fail a call of service with, or "".
func (t *throttler) decide(service string, now time.Time) string {
	cfg := t.in.cfg.Throttle
	if cfg.Rate <= 0 || (len(t.services) > 0 && !t.services[service]) || !windowOpen(cfg, now.Sub(t.in.start)) {
		return ""
	}
	t.mu.Lock()
	hit, coin := t.rnd.Float64() < cfg.Rate, t.rnd.IntN(2)
	t.mu.Unlock()
	if !hit {
		return ""
	}
	return throttleCode(service, coin)
}

// throttleCode is the error code a service throttles with; each is one the
// SDK's retryer knows as a throttle (retry.DefaultThrottleErrorCodes).
func throttleCode(service string, coin int) string {
	switch service {
	case "DynamoDB":
		if coin == 0 {
			return "ProvisionedThroughputExceededException"
		}
		return "ThrottlingException"
	case "SESv2":
		return "TooManyRequestsException"
	default:
		return "ThrottlingException"
	}
}

// APIOption is an aws.Config APIOptions entry that throttles the calls of
// the clients made from that config, label naming them (the function). It
// sits at the end of the finalize step: inside the SDK's retry loop, after
// signing, just before the request would be sent.
func (in *Injector) APIOption(label string) func(*middleware.Stack) error {
	if in == nil || in.cfg.Throttle.Rate <= 0 {
		return func(*middleware.Stack) error { return nil }
	}
	t := &throttler{in: in, rnd: in.source("sdk/" + label)}
	if len(in.cfg.Throttle.Services) > 0 {
		t.services = map[string]bool{}
		for _, s := range in.cfg.Throttle.Services {
			t.services[s] = true
		}
	}
	mw := middleware.FinalizeMiddlewareFunc("TunnelsInjectedThrottle", func(ctx context.Context, fin middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if code := t.decide(awsmiddleware.GetServiceID(ctx), time.Now()); code != "" {
			in.throttled.Add(1)
			return middleware.FinalizeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{
				Code: code, Message: "throttled by the local stack's fault injection", Fault: smithy.FaultServer,
			}
		}
		return next.HandleFinalize(ctx, fin)
	})
	return func(st *middleware.Stack) error { return st.Finalize.Add(mw, middleware.After) }
}
