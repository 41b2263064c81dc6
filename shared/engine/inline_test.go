package engine

import (
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// hello -> wait (30 s) -> then -> pause (20 s) -> bye
func inlineTunnel() map[string]*tunnel.Tunnel {
	return map[string]*tunnel.Tunnel{"main": {Name: "Main", Entry: "hello", Blocks: []tunnel.Block{
		{ID: "hello", Type: "message", Text: "Hello", Next: []string{"wait"}},
		{ID: "wait", Type: "delay", Seconds: 30, Next: []string{"then"}},
		{ID: "then", Type: "message", Text: "Then", Next: []string{"pause"}},
		{ID: "pause", Type: "delay", Seconds: 20, Next: []string{"bye"}},
		{ID: "bye", Type: "message", Text: "Bye"},
	}}}
}

// TestDelayRunsWithinItsParent: a delay after a message runs within the
// message's step: its own journey entry and counts, no queue hop, and the
// block after it goes out due when the delay ends; a duplicate of the
// message runs nothing again and re-sends the same step.
func TestDelayRunsWithinItsParent(t *testing.T) {
	h := newHarness(t, inlineTunnel())
	st := &fakeStats{}
	for _, p := range h.procs {
		p.Stats = st
	}
	h.startRun("main", "hello")
	hello := h.queue.take()[0]
	if err := h.process(hello, 1); err != nil {
		t.Fatal(err)
	}
	j := h.store.journeyCopy()
	if got := entries(j); len(got) != 2 || got[0].Block != "hello" || got[1].Block != "wait" || got[1].Type != "delay" || got[1].Status != StatusDone {
		t.Fatalf("journey = %+v, want hello, then the wait done within it", got)
	}
	waitID := DeriveID(hello.Step.ID, "next", "wait")
	if j[1].Step.ID != waitID || j[1].Detail["seconds"] != 30 || j[1].Attempts != 1 {
		t.Fatalf("the wait's record: %+v", j[1])
	}
	out := h.queue.take()
	if len(out) != 1 || out[0].Step.Block != "then" || out[0].Step.ID != DeriveID(waitID, "next", "then") ||
		out[0].Step.Due == nil || !out[0].Step.Due.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("sent %+v, want then due at %v", out, t0.Add(30*time.Second))
	}
	if _, ok := h.store.stepState(waitID); ok {
		t.Fatal("the wait has an item of its own; it should live in hello's")
	}
	if m := st.m["main"]; m["e#wait"] != 1 || m["d#wait"] != 1 || m["e#then"] != 1 || m["d#hello"] != 1 {
		t.Fatalf("counts %v, want the wait entered and done, then entered", m)
	}

	// A duplicate of hello: nothing runs again, the same step goes out again.
	if err := h.process(hello, 2); err != nil {
		t.Fatal(err)
	}
	if n := len(h.store.journeyCopy()); n != 2 {
		t.Fatalf("the duplicate recorded %d more steps", n-2)
	}
	if again := h.queue.take(); len(again) != 1 || again[0].Step.ID != out[0].Step.ID {
		t.Fatalf("the duplicate sent %+v, want %s again", again, out[0].Step.ID)
	}
	if m := st.m["main"]; m["d#wait"] != 1 || m["e#then"] != 1 {
		t.Fatalf("the duplicate counted again: %v", m)
	}

	// The rest of the run: then (with pause within it), bye.
	h.clock.Set(t0.Add(30 * time.Second))
	h.queue.Send(t.Context(), h.clock.Now(), out)
	h.drain()
	got := entries(h.store.journeyCopy())
	want := []string{"hello", "wait", "then", "pause", "bye"}
	if len(got) != len(want) {
		t.Fatalf("journey = %+v, want %v", got, want)
	}
	for i, b := range want {
		if got[i].Block != b || got[i].Status != StatusDone {
			t.Errorf("journey[%d] = %+v, want %s done", i, got[i], b)
		}
	}
	if r := h.store.run("main", ChannelChat); r.Pending != 0 {
		t.Errorf("pending %d after the last step, want 0", r.Pending)
	}
	if texts := h.msgr.texts(); len(texts) != 3 {
		t.Errorf("deliveries %v, want 3", texts)
	}
}

// TestDelayAfterDelayWaits: a delay right after a delay is not due when the
// first one runs, so it runs apart, when the first wait is over.
func TestDelayAfterDelayWaits(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"main": {Name: "Main", Entry: "hello", Blocks: []tunnel.Block{
		{ID: "hello", Type: "message", Text: "Hello", Next: []string{"d1"}},
		{ID: "d1", Type: "delay", Seconds: 30, Next: []string{"d2"}},
		{ID: "d2", Type: "delay", Seconds: 40, Next: []string{"bye"}},
		{ID: "bye", Type: "message", Text: "Bye"},
	}}})
	h.startRun("main", "hello")
	if err := h.process(h.queue.take()[0], 1); err != nil {
		t.Fatal(err)
	}
	out := h.queue.take()
	if len(out) != 1 || out[0].Step.Block != "d2" || !out[0].Step.Due.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("sent %+v, want d2 due after d1's 30 s", out)
	}
	h.clock.Set(t0.Add(30 * time.Second))
	if err := h.process(out[0], 1); err != nil {
		t.Fatal(err)
	}
	if next := h.queue.take(); len(next) != 1 || next[0].Step.Block != "bye" || !next[0].Step.Due.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("sent %+v, want bye due 40 s after d2 ran", next)
	}
}

// TestDelayOfAnotherKindRunsApart: only the flow function runs delays, so a
// delay after a tag action (the tags function) is its own step.
func TestDelayOfAnotherKindRunsApart(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"main": {Name: "Main", Entry: "tag", Blocks: []tunnel.Block{
		{ID: "tag", Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"vip"}}}, Next: []string{"wait"}},
		{ID: "wait", Type: "delay", Seconds: 30, Next: []string{"bye"}},
		{ID: "bye", Type: "message", Text: "Bye"},
	}}})
	h.startRun("main", "tag")
	if err := h.process(h.queue.take()[0], 1); err != nil {
		t.Fatal(err)
	}
	if out := h.queue.take(); len(out) != 1 || out[0].Step.Block != "wait" {
		t.Fatalf("sent %+v, want the wait as its own step", out)
	}
	if n := len(h.store.journeyCopy()); n != 1 {
		t.Fatalf("journey has %d entries, want the tag step alone", n)
	}
}

// TestStopWhileTheParentRunsCoversItsDelay: a STOP that lands while the
// message before a delay is being delivered (its marker earlier than the
// message's end) still covers the block after the delay: the delay ran as
// of the message's start, so its children carry that time.
func TestStopWhileTheParentRunsCoversItsDelay(t *testing.T) {
	h := newHarness(t, inlineTunnel())
	h.startRun("main", "hello")
	hello := h.queue.take()[0]
	h.msgr.during = func() {
		// Another tunnel STOPs main one second in; the delivery ends at 5 s.
		if err := h.store.AddStop(t.Context(), testWS, testSub, "main", StopMarker{At: t0.Add(3 * time.Second),
			ByTunnel: "other", ByBlock: "halt", ByGen: 1, ByChan: ChannelChat, StepID: "stop-1", Gens: map[string]int{ChannelChat: 1}}); err != nil {
			t.Error(err)
		}
		h.clock.Set(t0.Add(5 * time.Second))
	}
	if err := h.process(hello, 1); err != nil {
		t.Fatal(err)
	}
	out := h.queue.take()
	if len(out) != 1 || out[0].Step.Block != "then" || !out[0].Step.At.Equal(t0) {
		t.Fatalf("sent %+v, want then stamped with hello's start %v", out, t0)
	}
	h.clock.Set(t0.Add(30 * time.Second))
	if err := h.process(out[0], 1); err != nil {
		t.Fatal(err)
	}
	j := entries(h.store.journeyCopy())
	if last := j[len(j)-1]; last.Block != "then" || last.Status != StatusSkipped || last.Reason != "stopped" {
		t.Fatalf("journey = %+v, want then stopped", j)
	}
	if texts := h.msgr.texts(); len(texts) != 1 {
		t.Fatalf("deliveries %v: the STOP let the branch go on", texts)
	}
}
