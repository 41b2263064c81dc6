package engine

// Regression tests of engine bugs found while writing the tests beside this
// file: each asserts the behaviour SPEC.md and DESIGN.md ask for, and failed
// against the engine before its fix.

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// A held sibling must start once every action sibling has ended, however it
// ended: a sibling dropped as "stopped" or "block removed" never reaches
// JoinBlock, so the message it held back is stranded.
func TestBugHeldSiblingStrandedWhenActionSiblingDropped(t *testing.T) {
	tests := []struct {
		name string
		drop func(h *harness)
	}{
		{"stopped at the action sibling", func(h *harness) {
			sub := h.store.sub(testWS, testSub)
			sub.Stops["j"] = []StopMarker{{At: h.clock.Now(), Block: "a1", ByTunnel: "other", ByBlock: "x", ByGen: 1, ByChan: ChannelChat, StepID: "stop-1"}}
			h.store.putSubscriber(sub)
		}},
		{"action sibling removed by an edit", func(h *harness) {
			edited := joinTunnel()
			edited.Blocks[0].Next = []string{"a2", "m"}
			edited.Blocks = append(edited.Blocks[:1], edited.Blocks[2:]...) // a1 is gone
			h.tunnels.set("j", edited)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, map[string]*tunnel.Tunnel{"j": joinTunnel()})
			h.startRun("j", "p")
			h.clock.Advance(time.Second)
			if err := h.process(h.queue.take()[0], 1); err != nil { // p starts a1 and a2, holding m
				t.Fatal(err)
			}
			h.clock.Advance(time.Second)
			tc.drop(h)
			h.drain()
			if got := h.msgr.texts(); !reflect.DeepEqual(got, []string{"j/p: p", "j/m: m"}) {
				t.Fatalf("deliveries = %q; m is not reachable from what was dropped and must still start", got)
			}
			if r := h.store.run("j", ChannelChat); r.Pending != 0 {
				t.Fatalf("pending = %d, want 0", r.Pending)
			}
		})
	}
}

// A STOP step retried after its marker was written (a crash or a failed
// completion between AddStop and CompleteStep) finds its own marker, records
// itself "skipped stopped" and drops the rest of its action block.
func TestBugStopStepRetryDropsItself(t *testing.T) {
	tn := &tunnel.Tunnel{Entry: "s", Blocks: []tunnel.Block{
		{ID: "s", Type: "action", Actions: []tunnel.Action{{Type: "stop"}, {Type: "add_tags", Tags: []string{"x"}}}},
	}}
	h := newHarness(t, map[string]*tunnel.Tunnel{"tun": tn})
	root := h.startRun("tun", "s")
	o := h.queue.take()[0]
	h.clock.Set(t0.Add(time.Second))
	h.store.failComplete = 1
	if err := h.process(o, 1); err == nil {
		t.Fatal("the completion failure must be reported")
	}
	h.clock.Set(t0.Add(time.Minute)) // the lease ran out; SQS redelivers
	if err := h.process(o, 2); err != nil {
		t.Fatal(err)
	}
	want := []entry{{root.ID, "tun", "s", 0, "stop", StatusDone, "", 2}}
	if got := entries(h.store.journeyCopy()); !reflect.DeepEqual(got, want) {
		t.Fatalf("journey = %+v, want %+v", got, want)
	}
	if got := ids(h.queue.take()); !reflect.DeepEqual(got, []string{DeriveID(root.ID, "action", "1")}) {
		t.Fatalf("children = %v; the block's next action must still run", got)
	}
}

// The scheduler may pass a minute bucket before a step that read its clock
// earlier writes a timer into it; that timer is then never moved.
func TestBugTimerWrittenBehindSchedulerCursor(t *testing.T) {
	tn := &tunnel.Tunnel{Entry: "d", Blocks: []tunnel.Block{
		{ID: "d", Type: "delay", Seconds: 901, Next: []string{"m"}},
		{ID: "m", Type: "message", Text: "later"},
	}}
	h := newHarness(t, map[string]*tunnel.Tunnel{"t": tn})
	s := h.startRun("t", "d")
	h.queue.take()
	ctx := context.Background()
	schedClock := newClock(t0)
	sc := &Scheduler{Timers: h.store, Queue: h.queue, Now: schedClock.Now}
	// The delay step starts at 10:00:58.5 (due 10:15:59.5, bucket 10:15); the
	// 10:01 tick runs at 10:01:00.1, before the step's timer write lands.
	h.clock.Set(t0.Add(58*time.Second + 500*time.Millisecond))
	schedClock.Set(t0.Add(time.Minute + 100*time.Millisecond))
	h.store.beforePut = func() {
		if _, err := sc.Tick(ctx); err != nil {
			t.Error(err)
		}
	}
	if err := h.process(Outgoing{Kind: KindFlow, Step: s}, 1); err != nil {
		t.Fatal(err)
	}
	h.store.beforePut = nil
	moved := 0
	for m := 2; m <= 16; m++ {
		schedClock.Set(t0.Add(time.Duration(m) * time.Minute))
		n, err := sc.Tick(ctx)
		if err != nil {
			t.Fatal(err)
		}
		moved += n
	}
	if moved != 1 {
		t.Fatalf("the timer due at 10:15:59.5 was moved %d times by 10:16 (timers left %v)", moved, h.store.timerSteps())
	}
}

// START of the tunnel the run is in makes a new generation of the same run,
// which supersedes the current one, so the rest of the starting action block
// and what follows it are skipped. SPEC 3: "The current run goes on unless a
// stop also says otherwise."
func TestBugStartOfOwnTunnelSupersedesCurrentRun(t *testing.T) {
	tn := &tunnel.Tunnel{Entry: "act", Blocks: []tunnel.Block{
		{ID: "act", Type: "action", Actions: []tunnel.Action{
			{Type: "start", Tunnel: "main", Block: "b2"},
			{Type: "add_tags", Tags: []string{"x"}},
		}, Next: []string{"after"}},
		{ID: "after", Type: "message", Text: "After"},
		{ID: "b2", Type: "message", Text: "B2"},
	}}
	h := newHarness(t, map[string]*tunnel.Tunnel{"main": tn})
	h.startRun("main", "act")
	h.drain()
	if len(h.tagCalls) != 1 {
		t.Errorf("add_tags after the START ran %d times, want 1 (journey %+v)", len(h.tagCalls), entries(h.store.journeyCopy()))
	}
	got := map[string]bool{}
	for _, s := range h.msgr.texts() {
		got[s] = true
	}
	if !got["main/b2: B2"] || !got["main/after: After"] {
		t.Errorf("deliveries = %q; want both the started block and the current run's next block", h.msgr.texts())
	}
}

// [stop other, start other] in one block: the START comes after the STOP, so
// its sending must proceed; when both read the same instant (or the START's
// host clock is behind the STOP's) the new sending is dropped as "stopped".
func TestBugStartAtTheStopsInstantIsDropped(t *testing.T) {
	defs := startStopTunnels()
	defs["main"] = &tunnel.Tunnel{Entry: "re", Blocks: []tunnel.Block{
		{ID: "re", Type: "action", Actions: []tunnel.Action{{Type: "stop", Tunnel: "other"}, {Type: "start", Tunnel: "other"}}},
	}}
	h := newHarness(t, defs)
	h.startRun("main", "re")
	if err := h.process(h.queue.take()[0], 1); err != nil { // stop, at t0
		t.Fatal(err)
	}
	if err := h.process(h.queue.take()[0], 1); err != nil { // start, also at t0
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	h.drain()
	if got := h.msgr.texts(); !reflect.DeepEqual(got, []string{"other/o1: O1", "other/o2: O2"}) {
		t.Fatalf("deliveries = %q (journey %+v); the sending started after the STOP must proceed", got, entries(h.store.journeyCopy()))
	}
}

// START reads its target through the cache only; a block added to the target
// within the cache's TTL is reported gone and the START is skipped for good.
// DESIGN: "a step never depends on the cache being fresh to be correct".
func TestBugStartTrustsStaleCache(t *testing.T) {
	defs := startStopTunnels()
	old := &tunnel.Tunnel{Entry: "o1", Blocks: []tunnel.Block{{ID: "o1", Type: "message", Text: "O1"}}}
	h := newHarness(t, map[string]*tunnel.Tunnel{"main": defs["main"], "other": old})
	cache := &CachedTunnels{Source: h.tunnels, TTL: time.Hour}
	for _, p := range h.procs {
		p.Tunnels = cache
	}
	if _, err := cache.Tunnel(context.Background(), testWS, "other"); err != nil {
		t.Fatal(err)
	}
	h.tunnels.set("other", defs["other"]) // o2 was just added
	h.startRun("main", "go")
	if err := h.process(h.queue.take()[0], 1); err != nil {
		t.Fatal(err)
	}
	j := h.store.journeyCopy()
	if len(j) != 2 || j[0].Status != StatusDone || j[1].Step.Block != "pause" { // the delay after it ran within it
		t.Fatalf("start = %+v, want done, then the pause", entries(j))
	}
}
