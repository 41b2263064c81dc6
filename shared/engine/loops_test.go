package engine

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func startBlock(id, target string) tunnel.Block {
	return tunnel.Block{ID: id, Type: "action", Actions: []tunnel.Action{{Type: "start", Tunnel: target}}}
}

// steps processes up to n queued steps (as drain does) and reports how many
// it processed.
func (h *harness) steps(n int) int {
	h.t.Helper()
	for i := 0; i < n; i++ {
		if _, ok := h.processNext(); !ok {
			return i
		}
	}
	return n
}

func (h *harness) limitSteps(n int) {
	for _, p := range h.procs {
		p.MaxStepsWithoutWait = n
	}
}

func TestStartLoopAcrossTunnelsEnds(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{
		"loop-a": {Name: "A", Entry: "go", Blocks: []tunnel.Block{startBlock("go", "loop-b")}},
		"loop-b": {Name: "B", Entry: "go", Blocks: []tunnel.Block{startBlock("go", "loop-a")}},
	})
	h.limitSteps(10)
	h.startRun("loop-a", "go")
	h.drain() // fails the test if the loop does not end

	journey := h.store.journeyCopy()
	if len(journey) != 11 {
		t.Fatalf("journey has %d steps, want 10 done and 1 failed: %+v", len(journey), entries(journey))
	}
	for i, r := range journey[:10] {
		if r.Status != StatusDone || r.Step.Spin != i {
			t.Errorf("step %d: status %s spin %d, want done spin %d", i, r.Status, r.Step.Spin, i)
		}
	}
	last := journey[10]
	if last.Status != StatusFailed || last.Step.Spin != 10 {
		t.Fatalf("last step: %+v", last)
	}
	for _, want := range []string{`"loop-a"/"go" -> "loop-b"/"go" -> "loop-a"/"go"`, "limit is 10", "at least 60 seconds"} {
		if !strings.Contains(last.Reason, want) {
			t.Errorf("reason %q lacks %q", last.Reason, want)
		}
	}
	if loop, _ := last.Detail["loop"].([]string); strings.Join(loop, " ") != "loop-a/go loop-b/go loop-a/go" {
		t.Errorf("detail loop = %v", last.Detail["loop"])
	}
	if len(last.Children) != 0 {
		t.Errorf("the failed step started %d steps", len(last.Children))
	}
}

func TestLongFunnelWithoutDelayRuns(t *testing.T) {
	var blocks []tunnel.Block
	for i := 0; i < 60; i++ {
		b := tunnel.Block{ID: "m" + strconv.Itoa(i), Type: "message", Text: "step " + strconv.Itoa(i)}
		if i%2 == 1 {
			b = tunnel.Block{ID: "m" + strconv.Itoa(i), Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"t"}}}}
		}
		if i < 59 {
			b.Next = []string{"m" + strconv.Itoa(i+1)}
		}
		blocks = append(blocks, b)
	}
	h := newHarness(t, map[string]*tunnel.Tunnel{"long": {Name: "Long", Entry: "m0", Blocks: blocks}})
	h.startRun("long", "m0")
	h.drain()
	journey := h.store.journeyCopy()
	if len(journey) != 60 {
		t.Fatalf("journey has %d steps, want 60", len(journey))
	}
	for _, r := range journey {
		if r.Status != StatusDone {
			t.Fatalf("step %s: %s %s", r.Step.Block, r.Status, r.Reason)
		}
	}
	if s := journey[59].Step.Spin; s != 59 {
		t.Errorf("last step spin = %d, want 59", s)
	}
}

// loopThrough is a -> wait (seconds) -> a: a drip when the wait is a minute
// or more, a spin when it is shorter.
func loopThrough(seconds int) *tunnel.Tunnel {
	return &tunnel.Tunnel{Name: "Drip", Entry: "a", Blocks: []tunnel.Block{
		{ID: "a", Type: "message", Text: "tick", Next: []string{"wait"}},
		{ID: "wait", Type: "delay", Seconds: seconds, Next: []string{"a"}},
	}}
}

func TestLoopThroughAMinuteDelayKeepsGoing(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"drip": loopThrough(60)})
	h.limitSteps(3)
	h.startRun("drip", "a")
	if n := h.steps(50); n != 50 {
		t.Fatalf("the drip stopped after %d steps", n)
	}
	for _, r := range h.store.journeyCopy() {
		if r.Status != StatusDone {
			t.Fatalf("step %s: %s %s", r.Step.Block, r.Status, r.Reason)
		}
		if r.Step.Spin > 1 {
			t.Fatalf("step %s has spin %d after a 60 s delay", r.Step.Block, r.Step.Spin)
		}
	}
}

func TestLoopThroughAShortDelayEnds(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"spin": loopThrough(59)})
	h.limitSteps(6)
	h.startRun("spin", "a")
	h.drain()
	journey := h.store.journeyCopy()
	if len(journey) != 7 || journey[6].Status != StatusFailed {
		t.Fatalf("journey = %+v, want 6 done and 1 failed", entries(journey))
	}
	if !strings.Contains(journey[6].Reason, `"spin"/"a" -> "spin"/"wait" -> "spin"/"a"`) {
		t.Errorf("reason = %q", journey[6].Reason)
	}
}

func TestSpinCarriesThroughActionsHoldsAndStart(t *testing.T) {
	// hello -> [act (2 actions, the second a START of other), side]:
	// every child counts one more step than its parent; side, held until act
	// is done, is still hello's child.
	h := newHarness(t, map[string]*tunnel.Tunnel{
		"main": {Name: "Main", Entry: "hello", Blocks: []tunnel.Block{
			{ID: "hello", Type: "message", Text: "Hi", Next: []string{"act", "side"}},
			{ID: "act", Type: "action", Actions: []tunnel.Action{
				{Type: "add_tags", Tags: []string{"lead"}}, {Type: "start", Tunnel: "other"},
			}},
			{ID: "side", Type: "message", Text: "Side"},
		}},
		"other": {Name: "Other", Entry: "o", Blocks: []tunnel.Block{{ID: "o", Type: "message", Text: "O"}}},
	})
	h.startRun("main", "hello")
	h.drain()
	want := map[string]int{"main/hello#0": 0, "main/act#0": 1, "main/act#1": 2, "main/side#0": 1, "other/o#0": 3}
	got := map[string]int{}
	for _, r := range h.store.journeyCopy() {
		got[r.Step.Tunnel+"/"+r.Step.Block+"#"+strconv.Itoa(r.Step.Action)] = r.Step.Spin
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s spin = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
