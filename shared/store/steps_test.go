package store

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/tunnel"
)

func testStep(ws, sub, id string) engine.Step {
	return engine.Step{
		V: engine.MessageVersion, ID: id, WS: ws, Sub: sub, Tunnel: "webinar", Channel: engine.ChannelChat,
		Gen: 1, Block: "b1", Action: 2, At: t0,
	}
}

func claim(t *testing.T, st *Store, step engine.Step, now time.Time, lease time.Duration) engine.Claim {
	t.Helper()
	c, err := st.ClaimStep(t.Context(), step, now, now.Add(lease))
	if err != nil {
		t.Fatalf("ClaimStep(%s at %s): %v", step.ID, now.Format(time.RFC3339Nano), err)
	}
	return c
}

func TestClaimStep(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	step := testStep(ws, sub, "s1")
	const lease = 30 * time.Second

	c1 := claim(t, st, step, t0, lease)
	if c1.State != engine.Claimed || c1.Attempts != 1 || c1.Token == "" || c1.Record != nil {
		t.Fatalf("first claim = %+v, want Claimed, attempt 1, a token", c1)
	}
	sameTime(t, "first claim started_at", c1.StartedAt, t0)
	sameTime(t, "first claim first_at", c1.FirstAt, t0)

	// While leased (up to and including the lease's last instant): Busy.
	for _, at := range []time.Time{t0, t0.Add(10 * time.Second), t0.Add(lease)} {
		if c := claim(t, st, step, at, lease); c.State != engine.Busy || c.Token != "" {
			t.Errorf("claim at %s while leased = %+v, want Busy", at.Sub(t0), c)
		}
	}

	// After the lease: a second attempt, the first attempt's time kept.
	at2 := t0.Add(lease + time.Millisecond)
	c2 := claim(t, st, step, at2, lease)
	if c2.State != engine.Claimed || c2.Attempts != 2 || c2.Token == "" || c2.Token == c1.Token {
		t.Fatalf("claim after expiry = %+v, want Claimed, attempt 2, a new token", c2)
	}
	sameTime(t, "second claim started_at", c2.StartedAt, at2)
	sameTime(t, "second claim first_at", c2.FirstAt, t0)

	// The first owner's token is stale now.
	rec := engine.StepRecord{Step: step, Type: "message", Status: engine.StatusDone, StartedAt: t0, FinishedAt: t0.Add(time.Second)}
	if ok, err := st.CompleteStep(ctx, rec, c1.Token); err != nil || ok {
		t.Errorf("CompleteStep(stale token) = %v, %v; want false", ok, err)
	}
	if c := claim(t, st, step, at2.Add(time.Second), lease); c.State != engine.Busy {
		t.Errorf("claim after a stale completion = %+v, want Busy (still the second attempt's)", c)
	}

	// Release: a wrong token changes nothing; the right one frees the step at once.
	if err := st.ReleaseStep(ctx, step, "wrong"); err != nil {
		t.Errorf("ReleaseStep(wrong token): %v", err)
	}
	if c := claim(t, st, step, at2.Add(2*time.Second), lease); c.State != engine.Busy {
		t.Errorf("claim after a release with a wrong token = %+v, want Busy", c)
	}
	if err := st.ReleaseStep(ctx, step, c2.Token); err != nil {
		t.Errorf("ReleaseStep: %v", err)
	}
	at3 := at2.Add(3 * time.Second)
	c3 := claim(t, st, step, at3, lease)
	if c3.State != engine.Claimed || c3.Attempts != 3 {
		t.Fatalf("claim after release = %+v, want Claimed, attempt 3", c3)
	}
	sameTime(t, "third claim first_at", c3.FirstAt, t0)
	if ok, err := st.CompleteStep(ctx, rec, c2.Token); err != nil || ok {
		t.Errorf("CompleteStep(released token) = %v, %v; want false", ok, err)
	}

	// Complete with the owner's token; the record round-trips exactly.
	due := t0.Add(2 * time.Hour)
	rec = engine.StepRecord{
		Step: step, Type: "webhook", Status: engine.StatusFailed, Reason: "target answered 500",
		StartedAt: at3, FinishedAt: at3.Add(1500 * time.Millisecond),
		Detail: map[string]any{
			"status": float64(500), "ok": false, "url": "https://example.com/hook", "empty": "",
			"headers": map[string]any{"content-type": "application/json"},
			"tries":   []any{"first", float64(2), true},
		},
		Children: []engine.Outgoing{
			{Kind: engine.KindFlow, Step: engine.Step{V: 1, ID: "c1", WS: ws, Sub: sub, Tunnel: "webinar", Channel: "chat", Gen: 1, Block: "b2", At: at3}},
			{Kind: engine.KindEmail, Step: engine.Step{V: 1, ID: "c2", WS: ws, Sub: sub, Tunnel: "webinar", Channel: "chat", Gen: 1, Block: "b3", Action: 1, At: at3, Due: &due,
				Hold: &engine.Hold{Join: "j1", Actions: []string{"b4", "b5"}, Then: []string{"b6"}}}},
		},
	}
	if ok, err := st.CompleteStep(ctx, rec, c3.Token); err != nil || !ok {
		t.Fatalf("CompleteStep = %v, %v; want true", ok, err)
	}
	if ok, err := st.CompleteStep(ctx, rec, c3.Token); err != nil || ok {
		t.Errorf("CompleteStep(again) = %v, %v; want false", ok, err)
	}
	if err := st.ReleaseStep(ctx, step, c3.Token); err != nil {
		t.Errorf("ReleaseStep(after completion): %v", err)
	}

	done := claim(t, st, step, at3.Add(time.Hour), lease)
	if done.State != engine.Completed || done.Record == nil || done.Token != "" {
		t.Fatalf("claim of a completed step = %+v, want Completed with its record", done)
	}
	got := *done.Record
	if got.Type != rec.Type || got.Status != rec.Status || got.Reason != rec.Reason || got.Attempts != 3 {
		t.Errorf("record = type %q status %q reason %q attempts %d; want %q %q %q 3", got.Type, got.Status, got.Reason, got.Attempts, rec.Type, rec.Status, rec.Reason)
	}
	sameTime(t, "record started_at", got.StartedAt, rec.StartedAt)
	sameTime(t, "record finished_at", got.FinishedAt, rec.FinishedAt)
	if !reflect.DeepEqual(got.Detail, rec.Detail) {
		t.Errorf("record detail = %#v, want %#v", got.Detail, rec.Detail)
	}
	sameJSON(t, "record children", got.Children, rec.Children)
	wantStep := engine.Step{V: 1, ID: step.ID, Tunnel: step.Tunnel, Channel: step.Channel, Gen: step.Gen, Block: step.Block, Action: step.Action}
	if !reflect.DeepEqual(got.Step, wantStep) {
		t.Errorf("record step = %+v, want %+v", got.Step, wantStep)
	}

	// A step without detail or children.
	plain := testStep(ws, sub, "s2")
	c := claim(t, st, plain, t0, lease)
	if ok, err := st.CompleteStep(ctx, engine.StepRecord{Step: plain, Type: "tags", Status: engine.StatusSkipped, Reason: "no tags", StartedAt: t0, FinishedAt: t0}, c.Token); err != nil || !ok {
		t.Fatalf("CompleteStep(plain) = %v, %v", ok, err)
	}
	done = claim(t, st, plain, t0.Add(time.Minute), lease)
	if done.State != engine.Completed || done.Record.Status != engine.StatusSkipped || done.Record.Reason != "no tags" ||
		len(done.Record.Children) != 0 || len(done.Record.Detail) != 0 {
		t.Errorf("plain record = %+v", done.Record)
	}
	// The same step id for another subscriber is another step.
	if c := claim(t, st, testStep(ws, "another", "s1"), t0, lease); c.State != engine.Claimed || c.Attempts != 1 {
		t.Errorf("claim of s1 for another subscriber = %+v, want Claimed, attempt 1", c)
	}
}

func startRun(t *testing.T, st *Store, ws, sub string, r engine.RunStart) int {
	t.Helper()
	gen, err := st.StartRun(t.Context(), ws, sub, r)
	if err != nil {
		t.Fatalf("StartRun(%+v): %v", r, err)
	}
	return gen
}

func runOf(t *testing.T, st *Store, ws, sub, tunnelID string) engine.Run {
	t.Helper()
	return mustSubscriber(t, st, ws, sub).Runs[engine.RunKey(tunnelID, engine.ChannelChat)]
}

// MoveRun moves a run's count once per step, folds the run's end into the
// last move when the step saw the count, and moves nothing for an ended or
// replaced generation.
func TestMoveRun(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	if gen := startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "ev1", At: t0, Pending: 1}); gen != 1 {
		t.Fatalf("gen = %d, want 1", gen)
	}
	move := func(by string, gen, delta int, seen bool) bool {
		t.Helper()
		m := engine.RunMove{Tunnel: "webinar", Channel: engine.ChannelChat, Gen: gen, By: by, Delta: delta}
		if seen {
			r := runOf(t, st, ws, sub, "webinar")
			m.Seen = &r
		}
		ended, err := st.MoveRun(ctx, ws, sub, m)
		if err != nil {
			t.Fatalf("MoveRun(%s): %v", by, err)
		}
		return ended
	}
	pending := func(want int, why string) {
		t.Helper()
		if r := runOf(t, st, ws, sub, "webinar"); r.Pending != want {
			t.Errorf("%s: pending %d, want %d (run %+v)", why, r.Pending, want, r)
		}
	}
	// One step, two children: +1, once however often it is asked.
	for range 3 {
		if move("s1", 1, 1, true) {
			t.Fatal("a move to 2 ended the run")
		}
	}
	pending(2, "after s1")
	if r := runOf(t, st, ws, sub, "webinar"); !slices.Equal(r.Moved, []string{"s1"}) || r.Ended {
		t.Errorf("run = %+v, want s1 remembered, not ended", r)
	}
	// A wrong guess (another branch moved since the step read the run): the
	// end is not folded in, and the count is moved plainly.
	stale := runOf(t, st, ws, sub, "webinar")
	stale.Pending = 1
	if ended, err := st.MoveRun(ctx, ws, sub, engine.RunMove{Tunnel: "webinar", Channel: engine.ChannelChat, Gen: 1, By: "s2", Delta: -1, Seen: &stale}); err != nil || ended {
		t.Fatalf("MoveRun(wrong guess) = %v, %v; want a plain move", ended, err)
	}
	pending(1, "after s2")
	// The last branch ends, folded into its move.
	if !move("s3", 1, -1, true) {
		t.Fatal("the last move did not end the run")
	}
	pending(0, "after s3")
	if r := runOf(t, st, ws, sub, "webinar"); !r.Ended || len(r.Moved) != 0 {
		t.Errorf("run = %+v, want ended with no moves remembered", r)
	}
	if ended, err := st.EndRun(ctx, ws, sub, "webinar", engine.ChannelChat, 1, false); err != nil || ended {
		t.Errorf("EndRun after a folded end = %v, %v; want false (ended once)", ended, err)
	}
	// An ended generation moves no more (a late copy of s1 included).
	if move("s4", 1, 1, false) || move("s1", 1, 1, false) {
		t.Error("a move of an ended generation ended it again")
	}
	pending(0, "after moves of an ended run")

	// Generation 2: what generation 1 remembered is gone, and its late
	// steps move nothing.
	if gen := startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "ev2", At: t0.Add(time.Minute), Pending: 1}); gen != 2 {
		t.Fatalf("gen = %d, want 2", gen)
	}
	move("late", 1, -1, false)
	pending(1, "generation 2 after a late step of generation 1")
	move("g2a", 2, 1, false)
	// A plain move to 0 (the step did not see the run) ends it too.
	if !move("g2b", 2, -2, false) {
		t.Error("a plain move to 0 did not end the run")
	}
	pending(0, "generation 2 at its end")
	// A run that remembers maxMoved moves starts the set again.
	if gen := startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "ev3", At: t0.Add(2 * time.Minute), Pending: 5}); gen != 3 {
		t.Fatalf("gen = %d, want 3", gen)
	}
	move("g3a", 3, 1, false)
	full := runOf(t, st, ws, sub, "webinar")
	for i := range maxMoved {
		full.Moved = append(full.Moved, fmt.Sprintf("old%d", i))
	}
	if _, err := st.MoveRun(ctx, ws, sub, engine.RunMove{Tunnel: "webinar", Channel: engine.ChannelChat, Gen: 3, By: "g3b", Delta: 1, Seen: &full}); err != nil {
		t.Fatal(err)
	}
	if r := runOf(t, st, ws, sub, "webinar"); r.Pending != 7 || !slices.Equal(r.Moved, []string{"g3b"}) {
		t.Errorf("after a move past maxMoved: %+v, want pending 7 and only g3b remembered", r)
	}
	// A run that does not exist: nothing happens.
	if ended, err := st.MoveRun(ctx, ws, sub, engine.RunMove{Tunnel: "never-started", Channel: engine.ChannelChat, Gen: 1, By: "x", Delta: 1}); err != nil || ended {
		t.Errorf("MoveRun(no run) = %v, %v", ended, err)
	}
	if _, ok := mustSubscriber(t, st, ws, sub).Runs[engine.RunKey("never-started", engine.ChannelChat)]; ok {
		t.Error("moving a run that does not exist made it")
	}
}

func TestJourney(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	// Completed in another order than they started.
	for _, i := range []int{3, 1, 5, 2, 4} {
		step := testStep(ws, sub, fmt.Sprintf("s%d", i))
		started := t0.Add(time.Duration(i) * time.Second)
		c := claim(t, st, step, started, time.Minute)
		rec := engine.StepRecord{Step: step, Type: "message", Status: engine.StatusDone, Reason: fmt.Sprint(i), StartedAt: started, FinishedAt: started.Add(time.Millisecond)}
		if ok, err := st.CompleteStep(ctx, rec, c.Token); err != nil || !ok {
			t.Fatalf("CompleteStep(s%d) = %v, %v", i, ok, err)
		}
	}
	claim(t, st, testStep(ws, sub, "s0-in-progress"), t0, time.Minute) // not finished: not in the journey

	var ids []string
	var cursors []bool
	p := Page{Limit: 2}
	for i := 0; i < 6; i++ {
		recs, next, err := st.Journey(ctx, ws, sub, p)
		if err != nil {
			t.Fatalf("Journey: %v", err)
		}
		for _, r := range recs {
			ids = append(ids, r.Step.ID+"/"+r.Reason+"/"+r.Status)
			sameTime(t, "journey started_at of "+r.Step.ID, r.StartedAt, t0.Add(time.Duration(r.Step.ID[1]-'0')*time.Second))
		}
		cursors = append(cursors, next != nil)
		if next == nil {
			break
		}
		p.Cursor = *next
	}
	want := []string{"s1/1/done", "s2/2/done", "s3/3/done", "s4/4/done", "s5/5/done"}
	if !reflect.DeepEqual(ids, want) || !reflect.DeepEqual(cursors, []bool{true, true, false}) {
		t.Errorf("journey = %v (cursor after each page %v), want %v in pages of 2 2 1", ids, cursors, want)
	}
	if recs, next, err := st.Journey(ctx, ws, "another", Page{}); err != nil || len(recs) != 0 || next != nil {
		t.Errorf("Journey(another subscriber) = %v, %v, %v", recs, next, err)
	}
	first, next, err := st.Journey(ctx, ws, sub, Page{Limit: 1})
	if err != nil || len(first) != 1 || next == nil {
		t.Fatalf("Journey(limit 1) = %v, %v, %v", first, next, err)
	}
	if _, _, err := st.Journey(ctx, ws, "another", Page{Cursor: *next}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("Journey(another subscriber's cursor) error = %v, want ErrBadCursor", err)
	}
}

func TestStartRun(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	if _, err := st.PutTunnel(ctx, ws, "webinar", &tunnel.Tunnel{Name: "Webinar"}); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, st, ws, "1")
	subscribers := func() int {
		t.Helper()
		r, err := st.GetTunnel(ctx, ws, "webinar")
		if err != nil {
			t.Fatal(err)
		}
		return r.Subscribers
	}

	first := engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, Recorded: true, By: "event:ev1", At: t0, Pending: 1}
	if gen := startRun(t, st, ws, sub, first); gen != 1 {
		t.Fatalf("gen = %d, want 1", gen)
	}
	retry := first
	retry.Pending, retry.At = 7, t0.Add(time.Minute) // a retry changes nothing
	if gen := startRun(t, st, ws, sub, retry); gen != 1 {
		t.Errorf("gen of a retry = %d, want 1", gen)
	}
	got := runOf(t, st, ws, sub, "webinar")
	sameTime(t, "run started_at", got.StartedAt, t0)
	got.StartedAt = time.Time{}
	if want := (engine.Run{Tunnel: "webinar", Channel: engine.ChannelChat, Gen: 1, Recorded: true, Pending: 1, StartedBy: "event:ev1"}); !reflect.DeepEqual(got, want) {
		t.Errorf("run = %+v, want %+v", got, want)
	}
	if n := subscribers(); n != 1 {
		t.Errorf("tunnel subscribers = %d, want 1", n)
	}

	// A start that is not a subscription: a new generation, still recorded.
	if gen := startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "step:s9", At: t0.Add(time.Hour), Pending: 2}); gen != 2 {
		t.Errorf("gen = %d, want 2", gen)
	}
	got = runOf(t, st, ws, sub, "webinar")
	if got.Gen != 2 || !got.Recorded || got.Pending != 2 || got.StartedBy != "step:s9" {
		t.Errorf("run = %+v, want gen 2, recorded, pending 2", got)
	}
	sameTime(t, "run started_at of gen 2", got.StartedAt, t0.Add(time.Hour))
	// Subscribing again counts nobody twice.
	if gen := startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, Recorded: true, By: "event:ev3", At: t0.Add(2 * time.Hour), Pending: 1}); gen != 3 {
		t.Errorf("gen = %d, want 3", gen)
	}
	if n := subscribers(); n != 1 {
		t.Errorf("tunnel subscribers after a second subscription = %d, want 1", n)
	}
	// Another tunnel's run is its own; a run of a tunnel not (or no longer) stored still starts.
	if gen := startRun(t, st, ws, sub, engine.RunStart{Tunnel: "gone", Channel: engine.ChannelChat, Recorded: true, By: "event:ev4", At: t0, Pending: 1}); gen != 1 {
		t.Errorf("gen of another tunnel = %d, want 1", gen)
	}
	if _, err := st.GetTunnel(ctx, ws, "gone"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("counting a subscriber of a tunnel not stored made it: %v", err)
	}
	if _, err := st.StartRun(ctx, ws, "nope", first); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("StartRun(missing subscriber) error = %v, want ErrNotFound", err)
	}
}

// "Once per r.By" (ports.go): a start retried after another start made a
// newer generation must find its own generation, not start a third one. This
// happens when an event is retried after a crash before its event record was
// written, while another event of the same subscriber got through.
func TestStartRunLateRetry(t *testing.T) {
	st, _, ws := newStore(t)
	sub := newSubscriber(t, st, ws, "1")
	a := engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "event:A", At: t0, Pending: 1}
	b := engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "event:B", At: t0.Add(time.Second), Pending: 1}
	if gen := startRun(t, st, ws, sub, a); gen != 1 {
		t.Fatalf("gen(A) = %d", gen)
	}
	if gen := startRun(t, st, ws, sub, b); gen != 2 {
		t.Fatalf("gen(B) = %d", gen)
	}
	if gen := startRun(t, st, ws, sub, a); gen != 1 {
		t.Errorf("gen of a late retry of A = %d, want 1 (A's own generation)", gen)
	}
	if r := runOf(t, st, ws, sub, "webinar"); r.Gen != 2 || r.StartedBy != "event:B" {
		t.Errorf("run after a late retry of A = gen %d started by %q, want gen 2 by event:B", r.Gen, r.StartedBy)
	}
}

func TestStartRunConcurrent(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	if _, err := st.PutTunnel(ctx, ws, "conc", &tunnel.Tunnel{Name: "Concurrent"}); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, st, ws, "1")
	const n = 20
	gens := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			gens[i], errs[i] = st.StartRun(ctx, ws, sub, engine.RunStart{
				Tunnel: "conc", Channel: engine.ChannelChat, Recorded: true, By: fmt.Sprintf("event:%d", i), At: t0, Pending: 1,
			})
		})
	}
	close(start)
	wg.Wait()
	var failed int
	for i, err := range errs {
		if err != nil {
			failed++
			t.Errorf("StartRun %d: %v", i, err)
		}
	}
	sorted := slices.Clone(gens)
	sort.Ints(sorted)
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	if !reflect.DeepEqual(sorted, want) {
		t.Errorf("generations answered = %v, want each of 1..%d once (%d calls failed)", sorted, n, failed)
	}
	if r := runOf(t, st, ws, sub, "conc"); r.Gen != n-failed || !r.Recorded {
		t.Errorf("run = %+v, want gen %d, recorded", r, n-failed)
	}
	if r, err := st.GetTunnel(ctx, ws, "conc"); err != nil || r.Subscribers != 1 {
		t.Errorf("tunnel subscribers = %d, %v; want 1", r.Subscribers, err)
	}
}

// failTunnelCount fails the first write of a tunnel's subscriber count, as a
// throttled request or a crash right after the run was written would.
type failTunnelCount struct {
	DB
	mu     sync.Mutex
	failed bool
}

func (f *failTunnelCount) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if f.fail(in.Key) {
		return nil, errors.New("injected: ProvisionedThroughputExceededException")
	}
	return f.DB.UpdateItem(ctx, in, opts...)
}

// The count may be written inside a transaction with the run: fail that too.
func (f *failTunnelCount) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	for _, it := range in.TransactItems {
		if it.Update != nil && f.fail(it.Update.Key) {
			return nil, errors.New("injected: ProvisionedThroughputExceededException")
		}
	}
	return f.DB.TransactWriteItems(ctx, in, opts...)
}

func (f *failTunnelCount) fail(k map[string]types.AttributeValue) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := !f.failed && str(k, "sk") == "STATS" && strings.Contains(str(k, "pk"), "#webinar#") // the count in a stats shard
	if fail {
		f.failed = true
	}
	return fail
}

// The tunnel's count follows the start, outside its transaction: a failed
// count write fails nothing (the run starts, the count is lost), and a
// retried start never counts twice.
func TestStartRunCountFailed(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	if _, err := st.PutTunnel(ctx, ws, "webinar", &tunnel.Tunnel{Name: "Webinar"}); err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, st, ws, "1")
	fault := &failTunnelCount{DB: testDB}
	faulty := New(fault, testTable)
	r := engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, Recorded: true, By: "event:ev1", At: t0, Pending: 1}
	if gen, err := faulty.StartRun(ctx, ws, sub, r); err != nil || gen != 1 {
		t.Fatalf("StartRun with a failing count write = %d, %v; want generation 1", gen, err)
	}
	if !fault.failed {
		t.Fatal("the fault was not injected")
	}
	if gen, err := faulty.StartRun(ctx, ws, sub, r); err != nil || gen != 1 {
		t.Fatalf("retry = %d, %v; want 1", gen, err)
	}
	if tr, err := st.GetTunnel(ctx, ws, "webinar"); err != nil || tr.Subscribers != 0 {
		t.Errorf("tunnel subscribers = %d, %v; want 0 (lost with its write, never counted by the retry)", tr.Subscribers, err)
	}
	other := newSubscriber(t, st, ws, "2")
	if _, err := st.StartRun(ctx, ws, other, r); err != nil {
		t.Fatal(err)
	}
	if tr, err := st.GetTunnel(ctx, ws, "webinar"); err != nil || tr.Subscribers != 1 {
		t.Errorf("tunnel subscribers = %d, %v; want 1", tr.Subscribers, err)
	}
}

func stopIDs(ms []engine.StopMarker) []string {
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.StepID)
	}
	return ids
}

func TestAddStop(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	m := engine.StopMarker{
		At: t0.Add(time.Second), Block: "b2", ByTunnel: "other", ByBlock: "b9", ByGen: 3, ByChan: "chat",
		Gens: map[string]int{"chat": 2, "email": 1}, StepID: "stop-1", ByAction: 4,
	}
	for range 2 {
		if err := st.AddStop(ctx, ws, sub, "webinar", m); err != nil {
			t.Fatalf("AddStop: %v", err)
		}
	}
	got := mustSubscriber(t, st, ws, sub).Stops["webinar"]
	if len(got) != 1 {
		t.Fatalf("stops after a repeated AddStop = %+v, want one", got)
	}
	sameTime(t, "marker at", got[0].At, m.At)
	got[0].At = m.At
	if !reflect.DeepEqual(got[0], m) {
		t.Errorf("marker = %+v, want %+v", got[0], m)
	}
	// A marker for every block (no Block, no Gens) round-trips too.
	all := engine.StopMarker{At: t0.Add(2 * time.Second), StepID: "stop-2"}
	if err := st.AddStop(ctx, ws, sub, "webinar", all); err != nil {
		t.Fatal(err)
	}
	got = mustSubscriber(t, st, ws, sub).Stops["webinar"]
	if len(got) != 2 || got[1].Block != "" || got[1].Gens != nil || got[1].StepID != "stop-2" {
		t.Errorf("stops = %+v", got)
	}

	// At most 50, the newest kept, in order.
	var want []string
	for i := range 60 {
		id := fmt.Sprintf("k%02d", i)
		want = append(want, id)
		if err := st.AddStop(ctx, ws, sub, "webinar", engine.StopMarker{At: t0.Add(time.Duration(i) * time.Minute), StepID: id}); err != nil {
			t.Fatalf("AddStop(%s): %v", id, err)
		}
	}
	want = want[10:]
	if ids := stopIDs(mustSubscriber(t, st, ws, sub).Stops["webinar"]); !reflect.DeepEqual(ids, want) {
		t.Errorf("stops after 62 markers = %v, want %v", ids, want)
	}
	if err := st.AddStop(ctx, ws, sub, "webinar", engine.StopMarker{At: t0, StepID: "k59"}); err != nil {
		t.Fatal(err)
	}
	if ids := stopIDs(mustSubscriber(t, st, ws, sub).Stops["webinar"]); !reflect.DeepEqual(ids, want) {
		t.Errorf("stops after a repeat of the newest = %v, want unchanged", ids)
	}
	if err := st.AddStop(ctx, ws, "nope", "webinar", m); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("AddStop(missing subscriber) error = %v, want ErrNotFound", err)
	}
}

// addStopsConcurrently runs AddStop for ids at once and answers the errors.
func addStopsConcurrently(t *testing.T, st *Store, ws, sub, tunnelID string, ids []string) []error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, id := range ids {
		wg.Go(func() {
			<-start
			errs[i] = st.AddStop(t.Context(), ws, sub, tunnelID, engine.StopMarker{At: t0, StepID: id})
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func TestAddStopConcurrent(t *testing.T) {
	st, _, ws := newStore(t)
	sub := newSubscriber(t, st, ws, "1")
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("c%d", i))
	}
	for i, err := range addStopsConcurrently(t, st, ws, sub, "webinar", ids) {
		if err != nil {
			t.Errorf("AddStop(%s): %v", ids[i], err)
		}
	}
	got := stopIDs(mustSubscriber(t, st, ws, sub).Stops["webinar"])
	sort.Strings(got)
	if !reflect.DeepEqual(got, ids) {
		t.Errorf("stops after 10 concurrent AddStop = %v, want %v", got, ids)
	}
}

// Once the list holds 50 markers its size no longer changes when one is
// added: concurrent adders must still not overwrite each other.
func TestAddStopConcurrentWhenFull(t *testing.T) {
	st, _, ws := newStore(t)
	sub := newSubscriber(t, st, ws, "1")
	var old []string
	for i := range maxStops {
		id := fmt.Sprintf("old%02d", i)
		old = append(old, id)
		if err := st.AddStop(t.Context(), ws, sub, "webinar", engine.StopMarker{At: t0, StepID: id}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, fmt.Sprintf("new%d", i))
	}
	for i, err := range addStopsConcurrently(t, st, ws, sub, "webinar", ids) {
		if err != nil {
			t.Errorf("AddStop(%s): %v", ids[i], err)
		}
	}
	got := stopIDs(mustSubscriber(t, st, ws, sub).Stops["webinar"])
	if len(got) != maxStops || !reflect.DeepEqual(got[:maxStops-5], old[5:]) {
		t.Errorf("stops = %v, want the 45 newest old markers then the 5 new ones", got)
	}
	newOnes := slices.Clone(got[min(len(got), maxStops-5):])
	sort.Strings(newOnes)
	if !reflect.DeepEqual(newOnes, ids) {
		t.Errorf("new markers kept = %v, want all of %v (lost updates)", newOnes, ids)
	}
}

func TestJoinBlock(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	join := func(joinID, block string) bool {
		t.Helper()
		ok, err := st.JoinBlock(ctx, ws, sub, joinID, block, 3, "step-"+block)
		if err != nil {
			t.Fatalf("JoinBlock(%s, %s): %v", joinID, block, err)
		}
		return ok
	}
	for _, c := range []struct {
		block string
		want  bool
		why   string
	}{
		{"a", false, "first of 3"},
		{"b", false, "second of 3"},
		{"a", false, "retry of a before the set is full"},
		{"c", true, "the completion that fills the set"},
		{"c", true, "retry of the releaser (stable)"},
		{"a", false, "retry of a sibling after the release"},
		{"b", false, "retry of another sibling after the release"},
		{"c", true, "the releaser once more"},
	} {
		if got := join("j1", c.block); got != c.want {
			t.Errorf("%s: JoinBlock(%s) = %v, want %v", c.why, c.block, got, c.want)
		}
	}
	// Joins are per join id and per subscriber.
	if join("j2", "c") {
		t.Error("JoinBlock on another join released with one of 3")
	}
	if ok, err := st.JoinBlock(ctx, ws, "another", "j1", "a", 1, "step-x"); err != nil || !ok {
		t.Errorf("JoinBlock(total 1) = %v, %v; want true", ok, err)
	}
}

func TestJoinBlockConcurrent(t *testing.T) {
	st, _, ws := newStore(t)
	sub := newSubscriber(t, st, ws, "1")
	blocks := []string{"a", "b", "c"}
	for round := range 10 {
		joinID := fmt.Sprintf("j%d", round)
		type answer struct {
			by      string
			release bool
			err     error
		}
		answers := make([]answer, 2*len(blocks)) // every sibling delivered twice
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range answers {
			b := blocks[i%len(blocks)]
			wg.Go(func() {
				<-start
				ok, err := st.JoinBlock(t.Context(), ws, sub, joinID, b, len(blocks), "step-"+b)
				answers[i] = answer{"step-" + b, ok, err}
			})
		}
		close(start)
		wg.Wait()
		releasers := map[string]bool{}
		for _, a := range answers {
			if a.err != nil {
				t.Fatalf("round %d: JoinBlock(%s): %v", round, a.by, a.err)
			}
			if a.release {
				releasers[a.by] = true
			}
		}
		if len(releasers) != 1 {
			t.Errorf("round %d: released by %v, want exactly one sibling", round, releasers)
		}
	}
}

func TestTimers(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := t.Context()
	// Far from any other test's time: timer partitions are global.
	bucket := time.Date(2031, 1, 1, 8, 15, 0, 0, time.UTC)
	out := func(id string, due time.Time) engine.Outgoing {
		return engine.Outgoing{Kind: engine.KindEmail, Step: engine.Step{
			V: 1, ID: id, WS: "ws", Sub: "sub", Tunnel: "webinar", Channel: "chat", Gen: 1, Block: "b" + id, At: t0, Due: &due,
			Hold: &engine.Hold{Join: "j", Actions: []string{"x"}, Then: []string{"y"}},
		}}
	}
	o1 := out("t1", bucket.Add(20*time.Second+500*time.Millisecond))
	o2 := out("t2", bucket.Add(59*time.Second+999*time.Millisecond))
	o3 := out("t3", bucket.Add(time.Minute))
	o0 := out("t0", bucket.Add(-time.Nanosecond))
	for _, o := range []engine.Outgoing{o2, o1, o3, o0, o1} {
		if err := st.PutTimer(ctx, o); err != nil {
			t.Fatalf("PutTimer(%s): %v", o.Step.ID, err)
		}
	}
	due := func(b time.Time) []engine.Timer {
		t.Helper()
		list, err := st.DueTimers(ctx, b)
		if err != nil {
			t.Fatalf("DueTimers(%s): %v", b, err)
		}
		return list
	}
	got := due(bucket)
	if len(got) != 2 {
		t.Fatalf("DueTimers(08:15) = %+v, want t1 and t2", got)
	}
	sameJSON(t, "timers of 08:15", []engine.Outgoing{got[0].Outgoing, got[1].Outgoing}, []engine.Outgoing{o1, o2})
	sameJSON(t, "timers of 08:15 asked at 08:15:42", due(bucket.Add(42*time.Second)), got)
	if next := due(bucket.Add(time.Minute)); len(next) != 1 || next[0].Outgoing.Step.ID != "t3" {
		t.Errorf("DueTimers(08:16) = %+v, want t3", next)
	}
	if prev := due(bucket.Add(-time.Minute)); len(prev) != 1 || prev[0].Outgoing.Step.ID != "t0" {
		t.Errorf("DueTimers(08:14) = %+v, want t0", prev)
	}
	if err := st.DeleteTimer(ctx, got[0]); err != nil {
		t.Fatalf("DeleteTimer: %v", err)
	}
	if left := due(bucket); len(left) != 1 || left[0].Outgoing.Step.ID != "t2" {
		t.Errorf("DueTimers after deleting t1 = %+v, want t2", left)
	}
	if err := st.DeleteTimer(ctx, got[0]); err != nil {
		t.Errorf("DeleteTimer(again): %v", err)
	}
	if none := due(bucket.Add(time.Hour)); len(none) != 0 {
		t.Errorf("DueTimers(empty bucket) = %+v", none)
	}
	if err := st.PutTimer(ctx, engine.Outgoing{Kind: engine.KindFlow, Step: engine.Step{ID: "no-due"}}); err == nil {
		t.Error("PutTimer without a due time succeeded")
	}
}

func TestSchedulerCursor(t *testing.T) {
	st, _, _ := newStore(t)
	ctx := t.Context()
	// The cursor is global: this is the only test that touches it.
	if _, ok, err := st.SchedulerCursor(ctx); err != nil || ok {
		t.Fatalf("SchedulerCursor before any = ok %v, %v; want none", ok, err)
	}
	at := time.Date(2026, 11, 24, 10, 5, 0, 0, time.UTC)
	for _, c := range []struct {
		set, want time.Time
	}{
		{at, at},
		{at.Add(-2 * time.Minute), at}, // never back
		{at, at},                       // the same
		{at.Add(time.Minute), at.Add(time.Minute)},       // forward
		{at.Add(25 * time.Hour), at.Add(25 * time.Hour)}, // across a day
		{at.Add(time.Hour), at.Add(25 * time.Hour)},      // back again: no
	} {
		if err := st.SetSchedulerCursor(ctx, c.set); err != nil {
			t.Fatalf("SetSchedulerCursor(%s): %v", c.set, err)
		}
		got, ok, err := st.SchedulerCursor(ctx)
		if err != nil || !ok {
			t.Fatalf("SchedulerCursor = %v, %v", ok, err)
		}
		sameTime(t, "cursor after set "+c.set.Format(time.RFC3339), got, c.want)
	}
}

// A step that runs without a claim: PeekStep looks, CompleteStep with no
// token creates the record once (moving the run's count once), and a live
// claim of the same step (the tunnel was edited in between) wins over it.
func TestClaimFreeCompletion(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "ev1", At: t0, Pending: 1})
	step := testStep(ws, sub, "free")

	peek := func(at time.Time) engine.Claim {
		t.Helper()
		c, err := st.PeekStep(ctx, step, at)
		if err != nil {
			t.Fatalf("PeekStep: %v", err)
		}
		return c
	}
	if c := peek(t0); c.State != engine.Claimed || c.Token != "" {
		t.Fatalf("PeekStep(new) = %+v, want Claimed without a token", c)
	}
	rec := engine.StepRecord{Step: step, Type: "add_tags", Status: engine.StatusDone, Attempts: 2, StartedAt: t0, FinishedAt: t0.Add(time.Millisecond)}
	for i, want := range []bool{true, false} {
		ok, err := st.CompleteStep(ctx, rec, "")
		if err != nil || ok != want {
			t.Fatalf("CompleteStep #%d = %v, %v; want %v", i+1, ok, err, want)
		}
	}
	c := peek(t0.Add(time.Hour))
	if c.State != engine.Completed || c.Record == nil || c.Record.Attempts != 2 || c.Record.Type != "add_tags" {
		t.Fatalf("PeekStep(recorded) = %+v", c)
	}
	sameTime(t, "started_at", c.Record.StartedAt, t0)
	if recs, _, err := st.Journey(ctx, ws, sub, Page{}); err != nil || len(recs) != 1 || recs[0].Step.ID != "free" {
		t.Errorf("journey = %+v, %v", recs, err)
	}

	// A live claim: Busy for PeekStep, and a claim-free completion loses.
	held := testStep(ws, sub, "held")
	claim(t, st, held, t0, time.Minute)
	if c, err := st.PeekStep(ctx, held, t0.Add(time.Second)); err != nil || c.State != engine.Busy {
		t.Errorf("PeekStep(claimed) = %+v, %v; want Busy", c, err)
	}
	late := engine.StepRecord{Step: held, Status: engine.StatusDone, StartedAt: t0.Add(time.Second), FinishedAt: t0.Add(time.Second)}
	if ok, err := st.CompleteStep(ctx, late, ""); err != nil || ok {
		t.Errorf("CompleteStep(no token, live claim) = %v, %v; want false", ok, err)
	}
	// Once the claim's lease ran out, the step is free again.
	after := t0.Add(2 * time.Minute)
	if c, err := st.PeekStep(ctx, held, after); err != nil || c.State != engine.Claimed {
		t.Errorf("PeekStep(expired claim) = %+v, %v; want Claimed", c, err)
	}
	late.StartedAt = after
	if ok, err := st.CompleteStep(ctx, late, ""); err != nil || !ok {
		t.Errorf("CompleteStep(no token, expired claim) = %v, %v; want true", ok, err)
	}
}

// A tunnel's recorded subscribers are counted in its stats shards: many
// subscriptions at once count exactly, and no single item takes them all.
// Deleting the tunnel deletes the counts.
func TestTunnelCountIsSharded(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	if _, err := st.PutTunnel(ctx, ws, "webinar", &tunnel.Tunnel{Name: "Webinar"}); err != nil {
		t.Fatal(err)
	}
	const n = 48
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		sub := newSubscriber(t, st, ws, fmt.Sprint(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.StartRun(ctx, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, Recorded: true, By: "ev", At: t0, Pending: 1})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := st.GetTunnel(ctx, ws, "webinar")
	if err != nil || r.Subscribers != n {
		t.Fatalf("subscribers = %d, %v; want %d", r.Subscribers, err, n)
	}
	if list, _, err := st.ListTunnels(ctx, ws, Page{}); err != nil || len(list) == 0 || list[len(list)-1].Subscribers != n {
		t.Errorf("ListTunnels = %+v, %v; want webinar with %d", list, err, n)
	}
	used, most := 0, int64(0)
	for i := range statsShards {
		out, err := testDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(testTable), Key: statsKey(ws, "webinar", i)})
		if err != nil {
			t.Fatal(err)
		}
		if c := num(out.Item, "recorded"); c > 0 {
			used++
			most = max(most, c)
		}
	}
	if used < statsShards/2 || most > n/2 {
		t.Errorf("%d of %d shards used, the busiest took %d of %d: the count is not spread", used, statsShards, most, n)
	}
	if err := st.DeleteTunnel(ctx, ws, "webinar"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutTunnel(ctx, ws, "webinar", &tunnel.Tunnel{Name: "Again"}); err != nil {
		t.Fatal(err)
	}
	if r, err := st.GetTunnel(ctx, ws, "webinar"); err != nil || r.Subscribers != 0 {
		t.Errorf("a tunnel made again = %d subscribers, %v; want 0", r.Subscribers, err)
	}
}

// A chat message step keeps its record in the chat item of its message: the
// claim creates the item (hidden from the chat until sent), the completion
// writes the message and the record together, and the journey, the chat and
// StepsRecorded all find it there.
func TestChatRecord(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	step := testStep(ws, sub, "msg1")
	step.Action, step.InChat = 0, true
	due := t0.Add(time.Hour) // a delayed message is filed when it was meant to go
	step.Due = &due
	other := testStep(ws, sub, "plain")

	c := claim(t, st, step, t0.Add(time.Hour), time.Minute)
	if c.State != engine.Claimed {
		t.Fatalf("claim = %+v", c)
	}
	if msgs, _, err := st.Chat(ctx, ws, sub, Page{}); err != nil || len(msgs) != 0 {
		t.Fatalf("chat while sending = %+v, %v; want nothing yet", msgs, err)
	}
	if last, err := st.LastChatMessage(ctx, ws, sub); err != nil || last != nil {
		t.Fatalf("last message while sending = %+v, %v", last, err)
	}
	seen, err := st.StepsRecorded(ctx, ws, sub, []engine.Step{step, other})
	if err != nil || !seen["msg1"] || seen["plain"] {
		t.Fatalf("StepsRecorded = %v, %v; want msg1 only", seen, err)
	}
	// Another copy is busy; a copy that thinks the step is not a chat record
	// would look elsewhere (the processor decides by the block, so they agree).
	if c2 := claim(t, st, step, t0.Add(time.Hour+time.Second), time.Minute); c2.State != engine.Busy {
		t.Fatalf("second claim = %+v, want Busy", c2)
	}

	sentAt := t0.Add(time.Hour + 2*time.Second)
	msg := &engine.ChatMessage{ID: "mmsg1", Direction: "outbound", Text: "Hello Ann", Tunnel: "webinar", Block: "b1", StepID: "msg1",
		Delivery: "delivered", CreatedAt: c.FirstAt}
	rec := engine.StepRecord{Step: step, Type: "message", Status: engine.StatusDone, StartedAt: c.StartedAt, FinishedAt: sentAt,
		Detail: map[string]any{"text": "Hello Ann", "message_id": "mmsg1"}, Chat: msg}
	if ok, err := st.CompleteStep(ctx, rec, c.Token); err != nil || !ok {
		t.Fatalf("CompleteStep = %v, %v", ok, err)
	}
	if ok, err := st.CompleteStep(ctx, rec, c.Token); err != nil || ok {
		t.Fatalf("a second completion = %v, %v; want false", ok, err)
	}
	msgs, _, err := st.Chat(ctx, ws, sub, Page{})
	if err != nil || len(msgs) != 1 || msgs[0].Text != "Hello Ann" || msgs[0].ID != "mmsg1" || msgs[0].StepID != "msg1" || msgs[0].Delivery != "delivered" {
		t.Fatalf("chat = %+v, %v", msgs, err)
	}
	if last, err := st.LastChatMessage(ctx, ws, sub); err != nil || last == nil || last.ID != "mmsg1" {
		t.Errorf("last message = %+v, %v", last, err)
	}
	recs, _, err := st.Journey(ctx, ws, sub, Page{})
	if err != nil || len(recs) != 1 || recs[0].Step.ID != "msg1" || recs[0].Detail["text"] != "Hello Ann" || recs[0].Detail["message_id"] != "mmsg1" || recs[0].Attempts != 1 {
		t.Fatalf("journey = %+v, %v", recs, err)
	}
	if c3 := claim(t, st, step, t0.Add(2*time.Hour), time.Minute); c3.State != engine.Completed || c3.Record == nil || c3.Record.Step.ID != "msg1" {
		t.Errorf("claim after completion = %+v, want Completed", c3)
	}
	// The item is the chat's: filed at the step's chat time, never expiring
	// with the journey.
	item, err := testDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(testTable), Key: recordKey(step), ConsistentRead: aws.Bool(true)})
	if err != nil || len(item.Item) == 0 {
		t.Fatalf("chat record = %v, %v", item.Item, err)
	}
	if _, ok := item.Item["expires_at"]; ok {
		t.Error("a chat message expires with the journey")
	}
	if sk := str(item.Item, "sk"); sk != chatSK(due, "mmsg1") {
		t.Errorf("chat record key %q, want it filed at the due time", sk)
	}
	if d, ok := item.Item["detail"].(*types.AttributeValueMemberM); !ok || d.Value["text"] != nil {
		t.Errorf("the text is stored twice: detail %v", item.Item["detail"])
	}
}

// TestInlineRecords: the delays that ran within a step are kept in its item
// and shown by the journey as steps of their own, in order, with their
// detail; a look at the step answers them too.
func TestInlineRecords(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	startRun(t, st, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, By: "ev1", At: t0, Pending: 1})
	parent := testStep(ws, sub, "parent")
	wait := testStep(ws, sub, "wait")
	wait.Block = "wait"
	fin := t0.Add(2 * time.Millisecond)
	due := t0.Add(30 * time.Second)
	rec := engine.StepRecord{Step: parent, Type: "condition", Status: engine.StatusDone, Attempts: 1, StartedAt: t0, FinishedAt: fin,
		Inline: []engine.StepRecord{{Step: wait, Type: "delay", Status: engine.StatusDone, Attempts: 1, StartedAt: fin, FinishedAt: fin,
			Detail: map[string]any{"seconds": 30, "due_at": due}}}}
	// A second one, its id derived as a next block's (not stored), skipped.
	derived := parent
	derived.ID, derived.Block = engine.DeriveID(parent.ID, "next", "later"), "later"
	rec.Inline = append(rec.Inline, engine.StepRecord{Step: derived, Type: "delay", Status: engine.StatusSkipped, Reason: "the field is not set",
		Attempts: 1, StartedAt: fin, FinishedAt: fin})
	if ok, err := st.CompleteStep(ctx, rec, ""); err != nil || !ok {
		t.Fatalf("CompleteStep = %v, %v", ok, err)
	}
	recs, next, err := st.Journey(ctx, ws, sub, Page{})
	if err != nil || next != nil || len(recs) != 3 {
		t.Fatalf("journey = %+v, %v, %v; want the step and its two delays", recs, next, err)
	}
	var later engine.StepRecord
	for _, r := range recs {
		if r.Step.Block == "later" {
			later = r
		}
	}
	if later.Step.ID != derived.ID || later.Status != engine.StatusSkipped || later.Reason != "the field is not set" || later.Type != "delay" {
		t.Fatalf("the derived delay's entry = %+v", later)
	}
	recs = slices.DeleteFunc(recs, func(r engine.StepRecord) bool { return r.Step.Block == "later" })
	w := recs[1]
	if recs[0].Step.ID != "parent" || w.Step.ID != "wait" || w.Step.Block != "wait" || w.Type != "delay" || w.Status != engine.StatusDone ||
		w.Step.Tunnel != parent.Tunnel || w.Step.Gen != parent.Gen || w.Attempts != 1 || w.Detail["seconds"] != float64(30) {
		t.Fatalf("the delay's entry = %+v", w)
	}
	sameTime(t, "the delay's started_at", w.StartedAt, fin)
	if at, _ := time.Parse(time.RFC3339Nano, w.Detail["due_at"].(string)); !at.Equal(due) {
		t.Errorf("due_at = %v, want %v", w.Detail["due_at"], due)
	}
	// Paged one by one: the delay is its own page.
	first, cur, err := st.Journey(ctx, ws, sub, Page{Limit: 1})
	if err != nil || len(first) != 1 || first[0].Step.ID != "parent" || cur == nil {
		t.Fatalf("first page %+v, %v, %v", first, cur, err)
	}
	second, more, err := st.Journey(ctx, ws, sub, Page{Limit: 2, Cursor: *cur})
	if err != nil || len(second) != 2 || more != nil {
		t.Fatalf("second page %+v, %v, %v; want both delays", second, more, err)
	}
	if c, err := st.PeekStep(ctx, parent, t0.Add(time.Hour)); err != nil || c.Record == nil || len(c.Record.Inline) != 2 || c.Record.Inline[0].Step.ID != "wait" {
		t.Fatalf("PeekStep = %+v, %v", c, err)
	}
}
