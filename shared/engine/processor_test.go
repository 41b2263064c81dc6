package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// mainTunnel: hello -> [act, side]; act = [add_tags (implemented), mention
// (not implemented here)] -> wait (delay 600 s) -> bye.
func mainTunnel() *tunnel.Tunnel {
	return &tunnel.Tunnel{Name: "Main", Entry: "hello", Blocks: []tunnel.Block{
		{ID: "hello", Type: "message", Text: "Hi {{subscriber.first_name|friend}}!", Next: []string{"act", "side"}},
		{ID: "act", Type: "action", Actions: []tunnel.Action{
			{Type: "add_tags", Tags: []string{"lead"}},
			{Type: "mention", Operator: "anna", Comment: "New lead"},
		}, Next: []string{"wait"}},
		{ID: "side", Type: "message", Text: "Side"},
		{ID: "wait", Type: "delay", Seconds: 600, Next: []string{"bye"}},
		{ID: "bye", Type: "message", Text: "Bye"},
	}}
}

func TestProcessorJourney(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"main": mainTunnel()})
	root := h.startRun("main", "hello")
	processed := h.drain()

	act0 := DeriveID(root.ID, "next", "act")
	act1 := DeriveID(act0, "action", "1")
	wait := DeriveID(act1, "next", "wait")
	side := DeriveID(root.ID, "held", "side")
	bye := DeriveID(wait, "next", "bye")

	notImpl := `action "mention" is not implemented in this deployment`
	wantJourney := []entry{
		{root.ID, "main", "hello", 0, "message", StatusDone, "", 1},
		{act0, "main", "act", 0, "add_tags", StatusDone, "", 1},
		{act1, "main", "act", 1, "mention", StatusFailed, notImpl, 1},
		{wait, "main", "wait", 0, "delay", StatusDone, "", 1},
		{side, "main", "side", 0, "message", StatusDone, "", 1},
		{bye, "main", "bye", 0, "message", StatusDone, "", 1},
	}
	journey := h.store.journeyCopy()
	if got := entries(journey); !reflect.DeepEqual(got, wantJourney) {
		t.Fatalf("journey:\n got %+v\nwant %+v", got, wantJourney)
	}
	// One second per step; bye waits for its delay.
	wantStarted := []time.Time{t0.Add(1 * time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second),
		t0.Add(4 * time.Second), t0.Add(5 * time.Second), t0.Add(605 * time.Second)}
	for i, r := range journey {
		if !r.StartedAt.Equal(wantStarted[i]) || !r.FinishedAt.Equal(wantStarted[i]) {
			t.Errorf("step %s started %s finished %s, want %s", r.Step.Block, r.StartedAt, r.FinishedAt, wantStarted[i])
		}
	}

	// The failure is recorded once and the block went on: the mention step
	// was processed once and its block's next block ran.
	failed := 0
	for _, o := range processed {
		if o.Step.ID == act1 {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("the unimplemented action was processed %d times, want 1", failed)
	}

	// The steps as they travelled: kinds, origin times, holds, due times.
	hold := &Hold{Join: root.ID, Actions: []string{"act"}, Then: []string{"side"}}
	at1 := t0.Add(time.Second)
	// spin: steps since the run last waited; side is a child of hello (the
	// hold's split), bye follows a 600 s delay.
	mk := func(id, block string, action int, at time.Time, due *time.Time, hold *Hold, spin int) Step {
		return Step{V: 1, ID: id, WS: testWS, Sub: testSub, Tunnel: "main", Channel: ChannelChat, Gen: 1,
			Block: block, Action: action, At: at, Due: due, Hold: hold, Spin: spin}
	}
	wantProcessed := []Outgoing{
		{Kind: KindFlow, Step: root},
		{Kind: KindTags, Step: mk(act0, "act", 0, at1, nil, hold, 1)},
		{Kind: KindTags, Step: mk(act1, "act", 1, at1, nil, hold, 2)},
		{Kind: KindFlow, Step: mk(wait, "wait", 0, at1, nil, nil, 3)},
		{Kind: KindFlow, Step: mk(side, "side", 0, at1, nil, nil, 1)},
		{Kind: KindFlow, Step: mk(bye, "bye", 0, t0.Add(4*time.Second), tp(t0.Add(604*time.Second)), nil, 0)},
	}
	if !reflect.DeepEqual(processed, wantProcessed) {
		t.Fatalf("processed steps:\n got %+v\nwant %+v", processed, wantProcessed)
	}

	// Priority: side was first sent by the action block's last action, in the
	// same batch as the block's own next block.
	for _, s := range h.queue.sentLog() {
		if s.o.Step.ID == side && !s.now.Equal(t0.Add(3*time.Second)) {
			t.Errorf("side was sent at %s, want when act's last action finished (%s)", s.now, t0.Add(3*time.Second))
		}
		// A 600 s delay fits a queue: sent with Due, not kept as a timer.
		if s.o.Step.ID == bye && !s.now.Equal(t0.Add(4*time.Second)) {
			t.Errorf("bye was sent at %s, want %s", s.now, t0.Add(4*time.Second))
		}
	}
	if ts := h.store.timerSteps(); len(ts) != 0 {
		t.Errorf("timers = %v, want none", ts)
	}

	// Side effects: one tag change, three chat messages in order.
	if want := []string{act0}; !reflect.DeepEqual(h.tagCalls, want) {
		t.Errorf("add_tags ran for %v, want %v", h.tagCalls, want)
	}
	wantTexts := []string{"main/hello: Hi Ann!", "main/side: Side", "main/bye: Bye"}
	if got := h.msgr.texts(); !reflect.DeepEqual(got, wantTexts) {
		t.Errorf("deliveries = %q, want %q", got, wantTexts)
	}
	d := h.msgr.deliveries[0]
	if !reflect.DeepEqual(d, ChatDelivery{StepID: root.ID, SubscriberID: testSub, Channel: "telegram", ExternalID: "123456",
		Tunnel: "main", Block: "hello", Text: "Hi Ann!"}) {
		t.Errorf("first delivery = %+v", d)
	}
	if m := h.store.chats["m"+root.ID]; m.Delivery != "delivered" || m.Text != "Hi Ann!" || m.Direction != "outbound" ||
		m.StepID != root.ID || !m.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("chat message = %+v", m)
	}
	if det := journey[0].Detail; det["message_id"] != "m"+root.ID || det["text"] != "Hi Ann!" || det["status"] != 200 {
		t.Errorf("hello detail = %v", det)
	}
	if det := journey[3].Detail; det["seconds"] != 600 || !det["due_at"].(time.Time).Equal(t0.Add(604*time.Second)) {
		t.Errorf("wait detail = %v", det)
	}

	// The run's pending count, after each step; it ends at 0.
	if got, want := h.store.pendingTrace["main#chat"], []int{1, 1, 2, 2, 1, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("pending after each step = %v, want %v", got, want)
	}
	if r := h.store.run("main", ChannelChat); r.Pending != 0 || r.Gen != 1 || !r.Recorded {
		t.Errorf("run = %+v, want generation 1, recorded, pending 0", r)
	}

	// Duplicate deliveries of completed steps: no second effect, and their
	// children, all claimed already, are not sent again...
	byID := map[string]Outgoing{}
	for _, o := range processed {
		byID[o.Step.ID] = o
	}
	dups := []struct {
		id   string
		want []Outgoing
	}{
		{root.ID, nil},
		{act0, nil},
		{act1, nil},
		{wait, nil},
		{bye, nil},
	}
	for _, dup := range dups {
		h.queue.take()
		if err := h.process(byID[dup.id], 2); err != nil {
			t.Fatalf("duplicate of %s: %v", byID[dup.id].Step.Block, err)
		}
		if got := h.queue.take(); len(got) != 0 {
			t.Errorf("duplicate of %s re-emitted %+v; its children were claimed", byID[dup.id].Step.Block, got)
		}
	}
	// ...but a child that never got a record (the first delivery died
	// between its record and its enqueue) is sent again, the same step.
	h.store.mu.Lock()
	for _, id := range []string{side, bye} {
		delete(h.store.steps, stepKey(byID[id].Step))
	}
	h.store.mu.Unlock()
	dups = []struct {
		id   string
		want []Outgoing
	}{
		{act1, []Outgoing{byID[side]}}, // wait, its other child, has its record
		{wait, []Outgoing{byID[bye]}},
	}
	for _, dup := range dups {
		h.queue.take()
		if err := h.process(byID[dup.id], 2); err != nil {
			t.Fatalf("duplicate of %s: %v", byID[dup.id].Step.Block, err)
		}
		got := h.queue.take()
		if !resent(h, got, dup.want) {
			t.Errorf("duplicate of %s re-emitted\n %+v\nwant %+v", byID[dup.id].Step.Block, got, dup.want)
		}
	}
	if len(h.tagCalls) != 1 || len(h.msgr.deliveries) != 3 || len(h.store.journeyCopy()) != 6 {
		t.Errorf("duplicates had effects: %d tag calls, %d deliveries, %d journey entries",
			len(h.tagCalls), len(h.msgr.deliveries), len(h.store.journeyCopy()))
	}
	if r := h.store.run("main", ChannelChat); r.Pending != 0 {
		t.Errorf("duplicates moved the pending count to %d", r.Pending)
	}
}

// joinTunnel: p -> [a1, a2, m]; a1 and a2 are one-action blocks.
func joinTunnel() *tunnel.Tunnel {
	return &tunnel.Tunnel{Entry: "p", Blocks: []tunnel.Block{
		{ID: "p", Type: "message", Text: "p", Next: []string{"a1", "a2", "m"}},
		{ID: "a1", Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"x"}}}},
		{ID: "a2", Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"y"}}}},
		{ID: "m", Type: "message", Text: "m"},
	}}
}

func TestProcessorPriorityJoin(t *testing.T) {
	var released [2][]Outgoing
	for i, order := range [][2]string{{"a1", "a2"}, {"a2", "a1"}} {
		t.Run(order[0]+" first", func(t *testing.T) {
			h := newHarness(t, map[string]*tunnel.Tunnel{"j": joinTunnel()})
			root := h.startRun("j", "p")
			h.clock.Advance(time.Second)
			if err := h.process(h.queue.take()[0], 1); err != nil {
				t.Fatal(err)
			}
			started := map[string]Outgoing{}
			for _, o := range h.queue.take() {
				started[o.Step.Block] = o
			}
			if len(started) != 2 || started["a1"].Step.Hold == nil || started["m"].Step.ID != "" {
				t.Fatalf("p started %+v, want a1 and a2 holding m", started)
			}
			wantHold := Hold{Join: root.ID, Actions: []string{"a1", "a2"}, Then: []string{"m"}}
			if !reflect.DeepEqual(*started["a2"].Step.Hold, wantHold) {
				t.Fatalf("hold = %+v, want %+v", *started["a2"].Step.Hold, wantHold)
			}
			h.clock.Advance(time.Second)
			if err := h.process(started[order[0]], 1); err != nil {
				t.Fatal(err)
			}
			if got := h.queue.take(); len(got) != 0 {
				t.Fatalf("the first action sibling released %+v; m must wait for both", got)
			}
			if len(h.msgr.deliveries) != 1 {
				t.Fatalf("deliveries = %v", h.msgr.texts())
			}
			h.clock.Advance(time.Second)
			if err := h.process(started[order[1]], 1); err != nil {
				t.Fatal(err)
			}
			released[i] = h.queue.take()
			want := []Outgoing{{Kind: KindFlow, Step: Step{V: 1, ID: DeriveID(root.ID, "held", "m"), WS: testWS,
				Sub: testSub, Tunnel: "j", Channel: ChannelChat, Gen: 1, Block: "m", At: t0.Add(time.Second), Spin: 1}}}
			if !reflect.DeepEqual(released[i], want) {
				t.Fatalf("released %+v, want %+v", released[i], want)
			}
			if h.store.joinCalls != 2 {
				t.Errorf("JoinBlock called %d times, want 2", h.store.joinCalls)
			}
			// A duplicate of the releasing sibling re-emits the same step; a
			// duplicate of the other one emits nothing.
			h.queue.take()
			if err := h.process(started[order[0]], 2); err != nil {
				t.Fatal(err)
			}
			if got := h.queue.take(); len(got) != 0 {
				t.Errorf("duplicate of the first sibling emitted %+v", got)
			}
			if err := h.process(started[order[1]], 2); err != nil {
				t.Fatal(err)
			}
			if got := h.queue.take(); !resent(h, got, want) {
				t.Errorf("duplicate of the releasing sibling emitted %+v, want %+v", got, want)
			}
			h.clock.Advance(time.Second)
			if err := h.process(want[0], 1); err != nil {
				t.Fatal(err)
			}
			if got := h.msgr.texts(); !reflect.DeepEqual(got, []string{"j/p: p", "j/m: m"}) {
				t.Errorf("deliveries = %q", got)
			}
			if r := h.store.run("j", ChannelChat); r.Pending != 0 {
				t.Errorf("pending = %d, want 0", r.Pending)
			}
		})
	}
	if !reflect.DeepEqual(released[0], released[1]) {
		t.Fatalf("the released step depends on which sibling finished last:\n%+v\n%+v", released[0], released[1])
	}
}

func TestProcessorSingleActionSiblingReleasesWithoutJoin(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"main": mainTunnel()})
	h.startRun("main", "hello")
	h.drain()
	if h.store.joinCalls != 0 {
		t.Fatalf("JoinBlock called %d times; one action sibling needs no join record", h.store.joinCalls)
	}
}

// oneAction: act = [add_tags] -> m.
func oneAction() *tunnel.Tunnel {
	return &tunnel.Tunnel{Entry: "act", Blocks: []tunnel.Block{
		{ID: "act", Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"lead"}}}, Next: []string{"m"}},
		{ID: "m", Type: "message", Text: "m"},
	}}
}

// oneClaimedAction is oneAction with an action that needs a claim (mark_unread;
// the harness runs it with the same fake as add_tags, which needs none).
func oneClaimedAction() *tunnel.Tunnel {
	t := oneAction()
	t.Blocks[0].Actions[0].Type = "mark_unread"
	return t
}

func TestProcessorBusyClaim(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneClaimedAction()})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	// Another invocation holds the step for a minute.
	if c, err := h.store.ClaimStep(context.Background(), o.Step, t0, t0.Add(time.Minute)); err != nil || c.State != Claimed {
		t.Fatalf("setup claim: %+v, %v", c, err)
	}
	h.clock.Set(t0.Add(30 * time.Second))
	err := h.process(o, 1)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Process = %v, want ErrBusy", err)
	}
	if len(h.tagCalls) != 0 || len(h.store.journeyCopy()) != 0 || len(h.queue.take()) != 0 {
		t.Fatalf("a busy step had effects: tags %v, journey %v", h.tagCalls, h.store.journeyCopy())
	}
	// At the end of the lease (exactly) it is still held; after it, the step is ours.
	h.clock.Set(t0.Add(time.Minute))
	if err := h.process(o, 2); !errors.Is(err, ErrBusy) {
		t.Fatalf("at the lease's end: %v, want ErrBusy", err)
	}
	h.clock.Set(t0.Add(time.Minute + time.Millisecond))
	if err := h.process(o, 3); err != nil {
		t.Fatalf("after the lease: %v", err)
	}
	got := entries(h.store.journeyCopy())
	if len(got) != 1 || got[0].Status != StatusDone || got[0].Attempt != 2 {
		t.Fatalf("journey = %+v, want one done entry with 2 attempts", got)
	}
}

func TestProcessorTransientActionErrorRetries(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneClaimedAction()})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	h.failTags = 1
	h.clock.Set(t0.Add(time.Second))
	err := h.process(o, 1)
	if err == nil || errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "tag store timed out") {
		t.Fatalf("Process = %v, want the action's transient error", err)
	}
	st, ok := h.store.stepState(o.Step.ID)
	if !ok || !st.inProgress || !st.leaseUntil.IsZero() || h.store.releaseCalls != 1 {
		t.Fatalf("after a transient error the lease must be released: %+v (releases %d)", st, h.store.releaseCalls)
	}
	if len(h.store.journeyCopy()) != 0 || len(h.queue.take()) != 0 {
		t.Fatal("a failed attempt must record and emit nothing")
	}
	// The redelivery need not wait for the lease.
	h.clock.Set(t0.Add(2 * time.Second))
	if err := h.process(o, 2); err != nil {
		t.Fatalf("retry: %v", err)
	}
	want := []entry{{o.Step.ID, "one", "act", 0, "mark_unread", StatusDone, "", 2}}
	if got := entries(h.store.journeyCopy()); !reflect.DeepEqual(got, want) {
		t.Fatalf("journey = %+v, want %+v", got, want)
	}
	rec := h.store.journeyCopy()[0]
	if !rec.StartedAt.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("started_at = %s, want the attempt that took effect (%s)", rec.StartedAt, t0.Add(2*time.Second))
	}
	if !reflect.DeepEqual(h.tagAttempts, []int{1, 2}) || !reflect.DeepEqual(h.final, []bool{false, false}) {
		t.Errorf("attempts seen by the action = %v final %v", h.tagAttempts, h.final)
	}
	if got := ids(h.queue.take()); !reflect.DeepEqual(got, []string{DeriveID(o.Step.ID, "next", "m")}) {
		t.Errorf("children = %v", got)
	}
	// The queue's last receive is the final attempt.
	h2 := newHarness(t, map[string]*tunnel.Tunnel{"one": oneClaimedAction()})
	h2.startRun("one", "act")
	if err := h2.process(h2.queue.take()[0], 5); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h2.final, []bool{true}) {
		t.Errorf("attempt 5 of 5: FinalAttempt = %v, want true", h2.final)
	}
}

func TestProcessorLease(t *testing.T) {
	tests := []struct {
		name     string
		lease    time.Duration
		deadline *time.Time
		want     time.Time
	}{
		{"default", 0, nil, t0.Add(30 * time.Second)},
		{"configured", 2 * time.Minute, nil, t0.Add(2 * time.Minute)},
		{"the invocation's deadline", 2 * time.Minute, tp(t0.Add(7 * time.Second)), t0.Add(7 * time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneClaimedAction()})
			h.startRun("one", "act")
			o := h.queue.take()[0]
			p := h.procs[KindTags]
			p.Lease = tc.lease
			ctx := context.Background()
			if tc.deadline != nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, *tc.deadline)
				defer cancel()
			}
			// A crash between the effect and its record: the lease stays.
			h.store.failComplete = 1
			h.store.crashed = true
			if err := p.Process(ctx, o.Step, 1); err == nil || !strings.Contains(err.Error(), "complete step") {
				t.Fatalf("Process = %v, want the completion error", err)
			}
			st, _ := h.store.stepState(o.Step.ID)
			if !st.leaseUntil.Equal(tc.want) {
				t.Fatalf("lease until %s, want %s", st.leaseUntil, tc.want)
			}
			if len(h.queue.take()) != 0 {
				t.Fatal("children were sent before the step was recorded")
			}
			if err := h.process(o, 2); !errors.Is(err, ErrBusy) {
				t.Fatalf("retry inside the lease = %v, want ErrBusy", err)
			}
			h.clock.Set(tc.want.Add(time.Millisecond))
			if err := h.process(o, 3); err != nil {
				t.Fatalf("retry after the lease: %v", err)
			}
			if got := entries(h.store.journeyCopy()); len(got) != 1 || got[0].Attempt != 2 || got[0].Status != StatusDone {
				t.Fatalf("journey = %+v", got)
			}
		})
	}
}

func TestProcessorLostCompletion(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	h.store.loseComplete = true
	// Another invocation owns the record, and it is not finished as far as
	// this one can see: retried, nothing sent (the owner sends the children;
	// once it recorded them, a retry re-sends those unclaimed, delayed).
	if err := h.process(o, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("Process = %v; want ErrBusy while the step's record is not finished", err)
	}
	if got := h.queue.take(); len(got) != 0 {
		t.Fatalf("emitted %+v; the invocation that completed the step sends its children", got)
	}
}

func TestProcessorSkips(t *testing.T) {
	edited := oneAction()
	edited.Blocks[0].Actions = nil // the action block lost its actions
	tests := []struct {
		name    string
		setup   func(h *harness) Step
		kind    Kind // the function the step belongs to now
		reason  string
		typ     string
		wantRun Run // the run afterwards (its pending count)
	}{
		{
			name: "block removed",
			setup: func(h *harness) Step {
				s := h.startRun("one", "act")
				s.Block = "gone"
				return s
			},
			kind: KindFlow, reason: "block removed", typ: "unknown", wantRun: Run{Gen: 1, Pending: 0},
		},
		{
			name: "action removed",
			setup: func(h *harness) Step {
				s := h.startRun("one", "act")
				h.tunnels.set("one", edited)
				return s
			},
			kind: KindFlow, reason: "block removed", typ: "action", wantRun: Run{Gen: 1, Pending: 0},
		},
		{
			name: "tunnel removed",
			setup: func(h *harness) Step {
				s := h.startRun("one", "act")
				h.tunnels.set("one", nil)
				return s
			},
			kind: KindTags, reason: "tunnel removed", typ: "unknown", wantRun: Run{Gen: 1, Pending: 0},
		},
		{
			name: "superseded generation",
			setup: func(h *harness) Step {
				s := h.startRun("one", "act")
				if _, err := h.store.StartRun(context.Background(), testWS, testSub, RunStart{
					Tunnel: "one", Channel: ChannelChat, By: "evt-2", At: t0, Pending: 1}); err != nil {
					t.Fatal(err)
				}
				return s
			},
			// The newer generation's count is not the old step's to move.
			kind: KindTags, reason: "superseded by generation 2 of this tunnel", typ: "add_tags", wantRun: Run{Gen: 2, Pending: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
			s := tc.setup(h)
			h.queue.take()
			if err := h.procs[tc.kind].Process(context.Background(), s, 1); err != nil {
				t.Fatal(err)
			}
			want := []entry{{s.ID, "one", s.Block, 0, tc.typ, StatusSkipped, tc.reason, 1}}
			if got := entries(h.store.journeyCopy()); !reflect.DeepEqual(got, want) {
				t.Fatalf("journey = %+v, want %+v", got, want)
			}
			if len(h.tagCalls) != 0 {
				t.Fatal("add_tags ran for a skipped step")
			}
			if got := h.queue.take(); len(got) != 0 {
				t.Fatalf("a skipped step emitted %+v", got)
			}
			if r := h.store.run("one", ChannelChat); r.Gen != tc.wantRun.Gen || r.Pending != tc.wantRun.Pending {
				t.Fatalf("run = %+v, want generation %d pending %d", r, tc.wantRun.Gen, tc.wantRun.Pending)
			}
		})
	}
}

func TestProcessorMissingSubscriberDropsStep(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	s := h.startRun("one", "act")
	s.Sub = "nobody"
	if err := h.procs[KindTags].Process(context.Background(), s, 1); err != nil {
		t.Fatalf("Process = %v, want the step acknowledged", err)
	}
	if h.store.claimCalls != 0 || len(h.store.journeyCopy()) != 0 || len(h.tagCalls) != 0 {
		t.Fatal("a step of a deleted subscriber must do nothing")
	}
}

func TestProcessorHandsOverStepOfAnotherKind(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	s := h.startRun("one", "act")
	h.queue.take()
	h.clock.Set(t0.Add(time.Second))
	// The tunnel was edited: the action is a CRM action now.
	edited := oneAction()
	edited.Blocks[0].Actions[0] = tunnel.Action{Type: "amo_contact", Integration: "amo"}
	h.tunnels.set("one", edited)
	if err := h.procs[KindTags].Process(context.Background(), s, 1); err != nil {
		t.Fatal(err)
	}
	log := h.queue.sentLog()
	last := log[len(log)-1]
	if !reflect.DeepEqual(last.o, Outgoing{Kind: KindCRM, Step: s}) || !last.now.Equal(t0.Add(time.Second)) {
		t.Fatalf("handed over %+v at %s, want the same step to crm", last.o, last.now)
	}
	if h.store.claimCalls != 0 || len(h.store.journeyCopy()) != 0 {
		t.Fatal("a handed-over step must not be claimed or recorded")
	}
}

func TestProcessorMessageOutcomes(t *testing.T) {
	msg := &tunnel.Tunnel{Entry: "m", Blocks: []tunnel.Block{
		{ID: "m", Type: "message", Text: "Hello {{subscriber.first_name}} {{var.url}}", Next: []string{"n"}},
		{ID: "n", Type: "message", Text: "n"},
		{ID: "empty", Type: "message", Email: &tunnel.EmailContent{Subject: "s"}, Next: []string{"n"}},
	}}
	tests := []struct {
		name     string
		block    string
		err      error
		status   string
		reason   string
		delivery string
		children int
		retry    bool
	}{
		{"delivered", "m", nil, StatusDone, "", "delivered", 1, false},
		{"no channel connector", "m", ErrNoChannel, StatusSkipped, ErrNoChannel.Error(), "no_channel", 1, false},
		{"permanent failure", "m", fmt.Errorf("connector said 400: %w", ErrPermanent), StatusFailed,
			"connector said 400: permanent failure", "failed", 1, false},
		{"transient failure", "m", errors.New("connector timed out"), "", "", "", 0, true},
		{"no chat text", "empty", nil, StatusSkipped, "the block has no chat text", "", 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]*tunnel.Tunnel{"msg": msg})
			h.procs[KindFlow].Vars = fakeVars{"url": "https://x.test/w"}
			s := h.startRun("msg", tc.block)
			h.queue.take()
			h.msgr.err = tc.err
			err := h.process(Outgoing{Kind: KindFlow, Step: s}, 1)
			if tc.retry {
				if err == nil || !strings.Contains(err.Error(), "connector timed out") {
					t.Fatalf("Process = %v, want the transient error", err)
				}
				if len(h.store.journeyCopy()) != 0 || len(h.store.chats) != 0 || h.store.releaseCalls != 1 {
					t.Fatal("a transient failure must record nothing and release the lease")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			j := h.store.journeyCopy()
			if len(j) != 1 || j[0].Status != tc.status || j[0].Reason != tc.reason || j[0].Type != "message" {
				t.Fatalf("journey = %+v, want %s %q", entries(j), tc.status, tc.reason)
			}
			if got := len(h.queue.take()); got != tc.children {
				t.Fatalf("children = %d, want %d (the run goes on)", got, tc.children)
			}
			if tc.delivery == "" {
				if len(h.store.chats) != 0 {
					t.Fatalf("chat = %+v, want none", h.store.chats)
				}
				return
			}
			m := h.store.chats["m"+s.ID]
			if m.Delivery != tc.delivery || m.Text != "Hello Ann https://x.test/w" {
				t.Fatalf("chat message = %+v", m)
			}
			if j[0].Detail["message_id"] != "m"+s.ID || j[0].Detail["text"] != "Hello Ann https://x.test/w" {
				t.Fatalf("detail = %v", j[0].Detail)
			}
		})
	}
}

type fakeVars map[string]string

func (v fakeVars) Variables(ctx context.Context, ws string) (map[string]string, error) { return v, nil }

func TestProcessorEmailRun(t *testing.T) {
	tn := &tunnel.Tunnel{Entry: "m", Blocks: []tunnel.Block{
		{ID: "m", Type: "message", Text: "chat only"},
		{ID: "e", Type: "message", Text: "both", Email: &tunnel.EmailContent{Subject: "Welcome", HTML: "<p>hi</p>"}},
	}}
	tests := []struct {
		name   string
		block  string
		noImpl bool
		status string
		reason string
		emails int
	}{
		{"email content", "e", false, StatusDone, "", 1},
		{"no email content", "m", false, StatusSkipped, "the block has no email content", 0},
		{"email runs not implemented", "e", true, StatusFailed, "email runs are not implemented in this deployment", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]*tunnel.Tunnel{"t": tn})
			if tc.noImpl {
				h.procs[KindEmail].EmailMessage = nil
			}
			s := Step{V: 1, ID: "email-step", WS: testWS, Sub: testSub, Tunnel: "t", Channel: ChannelEmail, Gen: 1, Block: tc.block, At: t0}
			if k := StepKind(tn, s); k != KindEmail {
				t.Fatalf("kind = %s", k)
			}
			if err := h.procs[KindEmail].Process(context.Background(), s, 1); err != nil {
				t.Fatal(err)
			}
			want := []entry{{"email-step", "t", tc.block, 0, "message", tc.status, tc.reason, 1}}
			if got := entries(h.store.journeyCopy()); !reflect.DeepEqual(got, want) {
				t.Fatalf("journey = %+v, want %+v", got, want)
			}
			if len(h.emails) != tc.emails || len(h.msgr.deliveries) != 0 {
				t.Fatalf("emails %v, chat deliveries %v", h.emails, h.msgr.texts())
			}
		})
	}
}

// startStop: go = [start other/o2] -> pause (60 s) -> halt = [stop other] ->
// again = [start other]; other: o1 -> o2.
func startStopTunnels() map[string]*tunnel.Tunnel {
	return map[string]*tunnel.Tunnel{
		"main": {Entry: "go", Blocks: []tunnel.Block{
			{ID: "go", Type: "action", Actions: []tunnel.Action{{Type: "start", Tunnel: "other", Block: "o2"}}, Next: []string{"pause"}},
			{ID: "pause", Type: "delay", Seconds: 60, Next: []string{"halt"}},
			{ID: "halt", Type: "action", Actions: []tunnel.Action{{Type: "stop", Tunnel: "other"}}, Next: []string{"again"}},
			{ID: "again", Type: "action", Actions: []tunnel.Action{{Type: "start", Tunnel: "other"}}},
		}},
		"other": {Entry: "o1", Blocks: []tunnel.Block{
			{ID: "o1", Type: "message", Text: "O1", Next: []string{"o2"}},
			{ID: "o2", Type: "message", Text: "O2"},
		}},
	}
}

func TestProcessorStartAndStop(t *testing.T) {
	h := newHarness(t, startStopTunnels())
	root := h.startRun("main", "go")
	step := func(at time.Duration, o Outgoing) {
		t.Helper()
		h.clock.Set(t0.Add(at))
		if err := h.process(o, 1); err != nil {
			t.Fatalf("%s/%s: %v", o.Step.Tunnel, o.Step.Block, err)
		}
	}

	// START: a chat run of other, generation 1, not recorded.
	step(time.Second, h.queue.take()[0])
	out := h.queue.take()
	spawned := Outgoing{Kind: KindFlow, Step: Step{V: 1, ID: DeriveID(root.ID, "start", "other", "o2"), WS: testWS,
		Sub: testSub, Tunnel: "other", Channel: ChannelChat, Gen: 1, Block: "o2", At: t0.Add(time.Second), Spin: 1}}
	// The 60 s delay after the start runs within it (inlineDelays): what
	// goes out is the block after it, due a minute after the start.
	pauseID := DeriveID(root.ID, "next", "pause")
	if len(out) != 2 || !reflect.DeepEqual(out[1], spawned) {
		t.Fatalf("after start:\n got %+v\nwant [halt, %+v]", out, spawned)
	}
	halt := out[0]
	if halt.Step.Block != "halt" || halt.Step.ID != DeriveID(pauseID, "next", "halt") || halt.Step.Due == nil ||
		!halt.Step.Due.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("after start: %+v, want halt due at %v", halt.Step, t0.Add(61*time.Second))
	}
	wantRun := Run{Tunnel: "other", Channel: ChannelChat, Gen: 1, Recorded: false, Pending: 1,
		StartedAt: t0.Add(time.Second), StartedBy: root.ID}
	if r := h.store.run("other", ChannelChat); !reflect.DeepEqual(r, wantRun) {
		t.Fatalf("other's run = %+v, want %+v", r, wantRun)
	}
	if det := h.store.journeyCopy()[0].Detail; !reflect.DeepEqual(det, map[string]any{
		"tunnel": "other", "block": "o2", "channel": ChannelChat, "generation": 1}) {
		t.Fatalf("start detail = %v", det)
	}
	if r := h.store.run("main", ChannelChat); r.Pending != 1 {
		t.Fatalf("main pending = %d; the spawned run is not main's", r.Pending)
	}
	// A retry of the start step finds its generation instead of making one.
	if err := h.process(h.queue.sentLog()[0].o, 2); err != nil {
		t.Fatal(err)
	}
	if got := h.queue.take(); !resent(h, got, []Outgoing{halt, spawned}) || h.store.run("other", ChannelChat).Gen != 1 {
		t.Fatalf("duplicate start emitted %+v", got)
	}

	// other's o2 stays pending while main waits, then STOPs other.
	step(62*time.Second, halt)
	again := h.queue.take()
	wantMarker := StopMarker{At: t0.Add(62*time.Second + stopMargin), ByTunnel: "main", ByBlock: "halt", ByGen: 1,
		ByChan: ChannelChat, ByAction: 0, StepID: halt.Step.ID, Gens: map[string]int{ChannelChat: 1}}
	if ms := h.store.sub(testWS, testSub).Stops["other"]; !reflect.DeepEqual(ms, []StopMarker{wantMarker}) {
		t.Fatalf("stop markers = %+v, want %+v", ms, wantMarker)
	}
	step(63*time.Second, spawned)
	// A later START of other proceeds.
	step(64*time.Second, again[0])
	next := h.queue.take()
	if len(next) != 1 || next[0].Step.Tunnel != "other" || next[0].Step.Block != "o1" || next[0].Step.Gen != 2 ||
		!next[0].Step.At.Equal(t0.Add(64*time.Second)) {
		t.Fatalf("second start spawned %+v", next)
	}
	h.clock.Set(t0.Add(64 * time.Second))
	h.queue.Send(context.Background(), h.clock.Now(), next)
	h.drain()

	got := entries(h.store.journeyCopy())
	want := []struct{ block, typ, status, reason string }{
		{"go", "start", StatusDone, ""},
		{"pause", "delay", StatusDone, ""},
		{"halt", "stop", StatusDone, ""},
		{"o2", "message", StatusSkipped, "stopped"},
		{"again", "start", StatusDone, ""},
		{"o1", "message", StatusDone, ""},
		{"o2", "message", StatusDone, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("journey = %+v", got)
	}
	for i, w := range want {
		if got[i].Block != w.block || got[i].Type != w.typ || got[i].Status != w.status || got[i].Reason != w.reason {
			t.Errorf("journey[%d] = %+v, want %+v", i, got[i], w)
		}
	}
	if det := h.store.journeyCopy()[2].Detail; !reflect.DeepEqual(det, map[string]any{"tunnel": "other"}) {
		t.Errorf("stop detail = %v", det)
	}
	if texts := h.msgr.texts(); !reflect.DeepEqual(texts, []string{"other/o1: O1", "other/o2: O2"}) {
		t.Errorf("deliveries = %q", texts)
	}
	if r := h.store.run("other", ChannelChat); r.Gen != 2 || r.Pending != 0 || r.Recorded {
		t.Errorf("other's run = %+v, want generation 2, pending 0, not recorded", r)
	}
	if r := h.store.run("main", ChannelChat); r.Pending != 0 {
		t.Errorf("main pending = %d, want 0", r.Pending)
	}
}

func TestProcessorStartSkips(t *testing.T) {
	tests := []struct {
		name   string
		action tunnel.Action
		reason string
	}{
		{"missing tunnel", tunnel.Action{Type: "start", Tunnel: "nope"}, `tunnel "nope" no longer exists`},
		{"missing block", tunnel.Action{Type: "start", Tunnel: "other", Block: "zz"}, `block "zz" no longer exists in tunnel "other"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defs := startStopTunnels()
			defs["main"].Blocks[0].Actions[0] = tc.action
			h := newHarness(t, defs)
			h.startRun("main", "go")
			if err := h.process(h.queue.take()[0], 1); err != nil {
				t.Fatal(err)
			}
			j := h.store.journeyCopy()
			// The delay after it ran within it (inlineDelays).
			if len(j) != 2 || j[0].Status != StatusSkipped || j[0].Reason != tc.reason || j[1].Step.Block != "pause" || j[1].Status != StatusDone {
				t.Fatalf("journey = %+v, want skipped %q, then the pause done", entries(j), tc.reason)
			}
			if got := ids(h.queue.take()); len(got) != 1 || got[0] != DeriveID(j[1].Step.ID, "next", "halt") {
				t.Fatalf("the run must go on past the pause to halt, got %v", got)
			}
			if h.store.startRunCalls != 1 { // the harness's own run start only
				t.Fatalf("StartRun called %d times", h.store.startRunCalls)
			}
		})
	}
}

// stopSelf: e -> [s, b]; s = [stop (own tunnel), add_tags, add_tags] -> n;
// b -> c (delay) -> d.
func TestProcessorStopOwnTunnel(t *testing.T) {
	tests := []struct {
		name  string
		block string
		want  []struct{ block, status, reason string }
	}{
		{
			name: "from a block", block: "b",
			want: []struct{ block, status, reason string }{
				{"e", StatusDone, ""}, {"s", StatusDone, ""}, {"s", StatusDone, ""}, {"s", StatusDone, ""},
				{"n", StatusDone, ""}, {"b", StatusSkipped, "stopped"},
			},
		},
		{
			name: "whole tunnel", block: "",
			want: []struct{ block, status, reason string }{
				{"e", StatusDone, ""}, {"s", StatusDone, ""}, {"s", StatusDone, ""}, {"s", StatusDone, ""},
				{"n", StatusSkipped, "stopped"}, {"b", StatusSkipped, "stopped"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tn := stopTunnel()
			tn.Blocks[1].Actions[0].Block = tc.block
			h := newHarness(t, map[string]*tunnel.Tunnel{"tun": tn})
			h.startRun("tun", "e")
			h.drain()
			got := entries(h.store.journeyCopy())
			if len(got) != len(tc.want) {
				t.Fatalf("journey = %+v", got)
			}
			for i, w := range tc.want {
				if got[i].Block != w.block || got[i].Status != w.status || got[i].Reason != w.reason {
					t.Errorf("journey[%d] = %+v, want %+v", i, got[i], w)
				}
			}
			if len(h.tagCalls) != 2 {
				t.Errorf("the stopping block's later actions ran %d times, want 2", len(h.tagCalls))
			}
			if r := h.store.run("tun", ChannelChat); r.Pending != 0 {
				t.Errorf("pending = %d, want 0", r.Pending)
			}
			wantStatus := "done"
			if tc.block == "" {
				wantStatus = "stopped"
			}
			sub := h.store.sub(testWS, testSub)
			if st := sub.Runs["tun#chat"].Status(sub.Stops["tun"]); st != wantStatus {
				t.Errorf("run status = %q, want %q", st, wantStatus)
			}
		})
	}
}

func TestProcessorDelays(t *testing.T) {
	delay := func(seconds int) *tunnel.Tunnel {
		return &tunnel.Tunnel{Entry: "d", Blocks: []tunnel.Block{
			{ID: "d", Type: "delay", Seconds: seconds, Next: []string{"m"}},
			{ID: "m", Type: "message", Text: "later"},
		}}
	}
	t.Run("15 minutes fit the queue", func(t *testing.T) {
		h := newHarness(t, map[string]*tunnel.Tunnel{"t": delay(900)})
		s := h.startRun("t", "d")
		h.queue.take()
		h.clock.Set(t0.Add(time.Second))
		if err := h.process(Outgoing{Kind: KindFlow, Step: s}, 1); err != nil {
			t.Fatal(err)
		}
		out := h.queue.take()
		if len(out) != 1 || out[0].Step.Due == nil || !out[0].Step.Due.Equal(t0.Add(901*time.Second)) {
			t.Fatalf("queued %+v, want m due at %s", out, t0.Add(901*time.Second))
		}
		if ts := h.store.timerSteps(); len(ts) != 0 {
			t.Fatalf("timers = %v", ts)
		}
	})
	t.Run("longer delays wait in a timer", func(t *testing.T) {
		h := newHarness(t, map[string]*tunnel.Tunnel{"t": delay(901)})
		s := h.startRun("t", "d")
		h.queue.take()
		h.clock.Set(t0.Add(time.Second))
		if err := h.process(Outgoing{Kind: KindFlow, Step: s}, 1); err != nil {
			t.Fatal(err)
		}
		if out := h.queue.take(); len(out) != 0 {
			t.Fatalf("queued %+v, want a timer", out)
		}
		mID := DeriveID(s.ID, "next", "m")
		if ts := h.store.timerSteps(); !reflect.DeepEqual(ts, []string{mID}) {
			t.Fatalf("timers = %v, want [%s]", ts, mID)
		}
		// Due 10:15:02, bucket 10:15: the scheduler moves it once the whole
		// bucket is within a queue delay less its 5-minute margin, at 10:06.
		sc := &Scheduler{Timers: h.store, Queue: h.queue, Now: h.clock.Now}
		h.clock.Set(t0.Add(5*time.Minute + 59*time.Second))
		if n, err := sc.Tick(context.Background()); err != nil || n != 0 {
			t.Fatalf("tick at 10:05:59 moved %d, %v", n, err)
		}
		h.clock.Set(t0.Add(6 * time.Minute))
		if n, err := sc.Tick(context.Background()); err != nil || n != 1 {
			t.Fatalf("tick at 10:06 moved %d, %v", n, err)
		}
		h.drain()
		j := h.store.journeyCopy()
		if len(j) != 2 || j[1].Step.ID != mID || !j[1].StartedAt.Equal(t0.Add(903*time.Second)) {
			t.Fatalf("journey = %+v", entries(j))
		}
		if r := h.store.run("t", ChannelChat); r.Pending != 0 {
			t.Fatalf("pending = %d", r.Pending)
		}
	})
	t.Run("a duplicate re-emits a far child to its timer", func(t *testing.T) {
		h := newHarness(t, map[string]*tunnel.Tunnel{"t": delay(3600)})
		s := h.startRun("t", "d")
		h.queue.take()
		if err := h.process(Outgoing{Kind: KindFlow, Step: s}, 1); err != nil {
			t.Fatal(err)
		}
		h.store.timers = map[string]timerItem{}
		if err := h.process(Outgoing{Kind: KindFlow, Step: s}, 2); err != nil {
			t.Fatal(err)
		}
		if ts := h.store.timerSteps(); len(ts) != 1 || len(h.queue.take()) != 0 {
			t.Fatalf("timers after duplicate = %v", ts)
		}
	})
}

func TestProcessorRereadsStaleCache(t *testing.T) {
	old := oneAction()
	fresh := oneAction()
	fresh.Blocks = append(fresh.Blocks, tunnel.Block{ID: "new", Type: "message", Text: "new block"})
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": old})
	cache := &CachedTunnels{Source: h.tunnels, TTL: time.Hour}
	for _, p := range h.procs {
		p.Tunnels = cache
	}
	if _, err := cache.Tunnel(context.Background(), testWS, "one"); err != nil {
		t.Fatal(err)
	}
	h.tunnels.set("one", fresh)
	s := Step{V: 1, ID: "new-step", WS: testWS, Sub: testSub, Tunnel: "one", Channel: ChannelChat, Gen: 1, Block: "new", At: t0}
	if err := h.procs[KindFlow].Process(context.Background(), s, 1); err != nil {
		t.Fatal(err)
	}
	if got := h.msgr.texts(); !reflect.DeepEqual(got, []string{"one/new: new block"}) {
		t.Fatalf("deliveries = %q; a block the cache did not know yet must run", got)
	}
}

func TestProcessorTunnelReadError(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	s := h.startRun("one", "act")
	h.tunnels.err = errors.New("dynamodb throttled")
	err := h.procs[KindTags].Process(context.Background(), s, 1)
	if err == nil || !strings.Contains(err.Error(), "read tunnel: dynamodb throttled") {
		t.Fatalf("Process = %v, want the read error (retry)", err)
	}
	if h.store.claimCalls != 0 {
		t.Fatal("claimed a step whose tunnel could not be read")
	}
}

func TestProcessorEnqueueErrorIsRetried(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	o := func() Outgoing { h.startRun("one", "act"); return h.queue.take()[0] }()
	h.queue.err = errors.New("sqs down")
	if err := h.process(o, 1); err == nil || !strings.Contains(err.Error(), "enqueue next steps: sqs down") {
		t.Fatalf("Process = %v, want the enqueue error", err)
	}
	// The step is recorded; the redelivery only re-sends its children.
	h.queue.err = nil
	if err := h.process(o, 2); err != nil {
		t.Fatal(err)
	}
	if got := ids(h.queue.take()); !reflect.DeepEqual(got, []string{DeriveID(o.Step.ID, "next", "m")}) {
		t.Fatalf("children = %v", got)
	}
	if len(h.tagCalls) != 1 {
		t.Fatalf("add_tags ran %d times, want 1", len(h.tagCalls))
	}
}

// The fakes must keep the engine honest: check the parts the tests rely on.
func TestFakeStoreContract(t *testing.T) {
	ctx := context.Background()
	f := newStore()
	f.putSubscriber(&Subscriber{ID: testSub, WS: testWS, Runs: map[string]Run{}})
	s := Step{ID: "x", WS: testWS, Sub: testSub, Tunnel: "t", Channel: ChannelChat, Gen: 1}
	c1, _ := f.ClaimStep(ctx, s, t0, t0.Add(time.Minute))
	c2, _ := f.ClaimStep(ctx, s, t0.Add(time.Second), t0.Add(time.Minute))
	if c1.State != Claimed || c1.Attempts != 1 || c2.State != Busy {
		t.Fatalf("claims: %+v %+v", c1, c2)
	}
	if ok, _ := f.CompleteStep(ctx, StepRecord{Step: s}, "wrong"); ok {
		t.Fatal("completed with a foreign token")
	}
	if ok, _ := f.CompleteStep(ctx, StepRecord{Step: s, Status: StatusDone}, c1.Token); !ok {
		t.Fatal("could not complete with the owner's token")
	}
	c3, _ := f.ClaimStep(ctx, s, t0.Add(time.Hour), t0.Add(2*time.Hour))
	if c3.State != Completed || c3.Record.Status != StatusDone {
		t.Fatalf("claim after completion: %+v", c3)
	}
	f.putSubscriber(&Subscriber{ID: testSub, WS: testWS, Runs: map[string]Run{"t#chat": {Tunnel: "t", Channel: ChannelChat, Gen: 1, Pending: 1}}})
	m := RunMove{Tunnel: "t", Channel: ChannelChat, Gen: 1, By: "x", Delta: 1}
	for i := range 2 {
		if ended, _ := f.MoveRun(ctx, testWS, testSub, m); ended || f.run("t", ChannelChat).Pending != 2 {
			t.Fatalf("move #%d: ended %v, run %+v; want pending 2 (moved once)", i+1, ended, f.run("t", ChannelChat))
		}
	}
	if ended, _ := f.MoveRun(ctx, testWS, testSub, RunMove{Tunnel: "t", Channel: ChannelChat, Gen: 1, By: "y", Delta: -2}); !ended {
		t.Fatal("a move to 0 must end the run")
	}
	r1, _ := f.JoinBlock(ctx, testWS, testSub, "j", "a", 2, "sa")
	r2, _ := f.JoinBlock(ctx, testWS, testSub, "j", "a", 2, "sa")
	r3, _ := f.JoinBlock(ctx, testWS, testSub, "j", "b", 2, "sb")
	r4, _ := f.JoinBlock(ctx, testWS, testSub, "j", "a", 2, "sa")
	if r1 || r2 || !r3 || r4 {
		t.Fatalf("join releases: %v %v %v %v, want only the completing block", r1, r2, r3, r4)
	}
}

// An action's on_error path (Outcome.Continue) replaces where its block goes
// when it is done; the block's remaining actions still run.
func TestProcessorOnErrorPath(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"w": {Entry: "act", Blocks: []tunnel.Block{
		{ID: "act", Type: "action", Actions: []tunnel.Action{
			{Type: "external_request", Method: "GET", URL: "https://api.example/x", OnError: []string{"oops"}},
			{Type: "add_tags", Tags: []string{"lead"}},
		}, Next: []string{"fine"}},
		{ID: "fine", Type: "message", Text: "fine"},
		{ID: "oops", Type: "message", Text: "oops"},
	}}})
	for _, p := range h.procs {
		p.Actions["external_request"] = func(ctx context.Context, ac *ActionContext) (Outcome, error) {
			out := Failed("timed out")
			out.Continue = ac.Action.OnError
			return out, nil
		}
	}
	h.startRun("w", "act")
	h.drain()
	var got []string
	for _, e := range entries(h.store.journeyCopy()) {
		got = append(got, e.Block+":"+e.Status)
	}
	want := []string{"act:failed", "act:done", "oops:done"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("journey %v, want %v", got, want)
	}
	if texts := h.msgr.texts(); !reflect.DeepEqual(texts, []string{"w/oops: oops"}) {
		t.Fatalf("delivered %q", texts)
	}
}

// resent tells whether a duplicate re-sent exactly want's steps, each
// delayed by ResendDelay (or its own later due time).
func resent(h *harness, got, want []Outgoing) bool {
	if len(got) != len(want) {
		return false
	}
	later := h.clock.Now().Add(ResendDelay)
	for i := range got {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Step.ID != w.Step.ID || g.Step.NotBefore() == nil {
			return false
		}
		wantDue := later
		if w.Step.Due != nil && w.Step.Due.After(later) {
			wantDue = *w.Step.Due
		}
		if !g.Step.NotBefore().Equal(wantDue) {
			return false
		}
		// The copy is held back by Wait; the tunnel's Due is kept as it was.
		g.Step.Wait = nil
		if !reflect.DeepEqual(g, w) {
			return false
		}
	}
	return true
}
