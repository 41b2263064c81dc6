package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestClaimFree(t *testing.T) {
	tn := &tunnel.Tunnel{Entry: "a", Blocks: []tunnel.Block{
		{ID: "a", Type: "action", Actions: []tunnel.Action{{Type: "add_tags"}, {Type: "remove_tags"}, {Type: "mark_unread"}}},
		{ID: "d", Type: "delay"},
		{ID: "c", Type: "condition"}, {ID: "s", Type: "split"},
		{ID: "m", Type: "message", Text: "hi"},
	}}
	tests := []struct {
		block  string
		action int
		want   bool
	}{
		{"a", 0, true}, {"a", 1, true}, {"a", 2, false}, {"a", 3, true},
		{"d", 0, true}, {"c", 0, true}, {"s", 0, true},
		{"m", 0, false}, {"gone", 0, true},
	}
	for _, tc := range tests {
		if got := claimFree(tn, Step{Block: tc.block, Action: tc.action}); got != tc.want {
			t.Errorf("claimFree(%s#%d) = %v, want %v", tc.block, tc.action, got, tc.want)
		}
	}
	if !claimFree(nil, Step{Block: "a"}) {
		t.Error("a step of a removed tunnel is only recorded skipped: it needs no claim")
	}
}

// A step whose effect is idempotent runs without a claim: one read of its
// record, the effect, and the record created at completion.
func TestClaimFreeStepIsOneWrite(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	if err := h.process(o, 1); err != nil {
		t.Fatal(err)
	}
	if h.store.claimCalls != 0 || h.store.peekCalls != 1 {
		t.Fatalf("claims %d, peeks %d: want no claim and one look at the record", h.store.claimCalls, h.store.peekCalls)
	}
	want := []entry{{o.Step.ID, "one", "act", 0, "add_tags", StatusDone, "", 1}}
	if got := entries(h.store.journeyCopy()); !reflect.DeepEqual(got, want) {
		t.Fatalf("journey = %+v, want %+v", got, want)
	}
	child := DeriveID(o.Step.ID, "next", "m")
	if got := ids(h.queue.take()); !reflect.DeepEqual(got, []string{child}) {
		t.Fatalf("children = %v", got)
	}
	if r := h.store.run("one", ChannelChat); r.Pending != 1 {
		t.Errorf("pending = %d, want 1 (the message)", r.Pending)
	}

	// A late duplicate does not apply the effect again; the child, never
	// recorded, is sent again after ResendDelay.
	h.clock.Set(t0.Add(time.Minute))
	if err := h.process(o, 1); err != nil {
		t.Fatal(err)
	}
	if len(h.tagCalls) != 1 {
		t.Fatalf("the effect ran %d times, want once", len(h.tagCalls))
	}
	again := h.queue.take()
	if len(again) != 1 || again[0].Step.ID != child || again[0].Step.Wait == nil || !again[0].Step.Wait.Equal(t0.Add(time.Minute+ResendDelay)) {
		t.Fatalf("re-sent children = %+v", again)
	}
	if len(h.store.journeyCopy()) != 1 {
		t.Fatal("the duplicate was recorded again")
	}
}

// Two copies of a claim-free step running at once both apply the (idempotent)
// effect, but only one records the step, moves the run's count and sends its
// children.
func TestClaimFreeConcurrentCopies(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	var inner error
	h.duringTags = func() { inner = h.process(o, 1) }
	if err := h.process(o, 1); err != nil {
		t.Fatal(err)
	}
	if inner != nil {
		t.Fatal(inner)
	}
	if len(h.tagCalls) != 2 {
		t.Fatalf("effect calls = %d, want 2 (both copies were past the look at the record)", len(h.tagCalls))
	}
	if got := entries(h.store.journeyCopy()); len(got) != 1 {
		t.Fatalf("journey = %+v, want one entry", got)
	}
	// The winner sends the child; the loser, which acknowledges the same
	// queue message, re-sends it delayed in case the winner's send fails.
	got := h.queue.take()
	if len(got) != 2 || got[0].Step.ID != got[1].Step.ID || (got[0].Step.Wait == nil) == (got[1].Step.Wait == nil) {
		t.Fatalf("children = %+v, want the child and one delayed copy", got)
	}
	if r := h.store.run("one", ChannelChat); r.Pending != 1 {
		t.Errorf("pending = %d, want 1: the losing copy must not move it", r.Pending)
	}
}

// A transient failure of a claim-free step leaves nothing to release: the
// retry runs at once.
func TestClaimFreeTransientError(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": oneAction()})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	h.failTags = 1
	if err := h.process(o, 1); err == nil {
		t.Fatal("want the transient error")
	}
	if h.store.releaseCalls != 0 || len(h.store.journeyCopy()) != 0 || len(h.queue.take()) != 0 {
		t.Fatal("a failed claim-free attempt must write and send nothing")
	}
	if _, ok := h.store.stepState(o.Step.ID); ok {
		t.Fatal("a failed claim-free attempt left a record")
	}
	if err := h.process(o, 2); err != nil {
		t.Fatal(err)
	}
	want := []entry{{o.Step.ID, "one", "act", 0, "add_tags", StatusDone, "", 2}}
	if got := entries(h.store.journeyCopy()); !reflect.DeepEqual(got, want) {
		t.Fatalf("journey = %+v, want %+v (attempts from the queue's receive count)", got, want)
	}
}

// The run's count moves after the step's record, in a write of its own. When
// that write fails, the next delivery finds the record, moves the count
// (once), and sends the children.
func TestRunMoveAfterRecord(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": {Entry: "act", Blocks: []tunnel.Block{
		{ID: "act", Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"x"}}}, Next: []string{"a", "b"}},
		{ID: "a", Type: "delay"}, {ID: "b", Type: "delay"},
	}}})
	h.startRun("one", "act")
	o := h.queue.take()[0]
	h.store.failMove = 1
	if err := h.process(o, 1); err == nil {
		t.Fatal("want the failed move's error")
	}
	if len(h.store.journeyCopy()) != 1 || len(h.queue.take()) != 0 {
		t.Fatal("the record stays, and no child may leave before the count moved")
	}
	if r := h.store.run("one", ChannelChat); r.Pending != 1 {
		t.Fatalf("pending = %d before the move", r.Pending)
	}
	if err := h.process(o, 2); err != nil {
		t.Fatal(err)
	}
	if got := h.queue.take(); len(got) != 2 {
		t.Errorf("children sent %d, want 2", len(got))
	}
	moves := h.store.moveCalls
	if err := h.process(o, 3); err != nil { // one more copy: the move is remembered
		t.Fatal(err)
	}
	if h.store.moveCalls != moves {
		t.Error("a remembered move was tried again")
	}
	if r := h.store.run("one", ChannelChat); r.Pending != 2 {
		t.Errorf("pending = %d, want 2 (two branches, moved once)", r.Pending)
	}
	if len(h.tagCalls) != 1 {
		t.Errorf("the effect ran %d times", len(h.tagCalls))
	}
}
