package engine

import (
	"sync"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

type fakeStats struct {
	mu sync.Mutex
	m  map[string]map[string]int64 // tunnel -> counter -> n
}

func (f *fakeStats) Count(ws, tunnelID string, c map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]map[string]int64{}
	}
	if f.m[tunnelID] == nil {
		f.m[tunnelID] = map[string]int64{}
	}
	for k, v := range c {
		f.m[tunnelID][k] += v
	}
}

func TestStepsAreCounted(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{
		"main": {Name: "Main", Entry: "check", Blocks: []tunnel.Block{
			{ID: "check", Type: "condition", Branches: []tunnel.Branch{{When: rule(t, `{"has_tag": "vip"}`), Next: []string{"a"}}}, Else: []string{"b"}},
			{ID: "a", Type: "message", Text: "A"},
			{ID: "b", Type: "message", Text: "B", Next: []string{"go"}},
			{ID: "go", Type: "action", Actions: []tunnel.Action{{Type: "start", Tunnel: "side"}}},
		}},
		"side": {Name: "Side", Entry: "s", Blocks: []tunnel.Block{{ID: "s", Type: "message", Text: "S"}}},
	})
	st := &fakeStats{}
	for _, p := range h.procs {
		p.Stats = st
	}
	h.startRun("main", "check")
	h.drain()
	main, side := st.m["main"], st.m["side"]
	want := map[string]int64{"d#check": 1, "b#check#else": 1, "e#b": 1, "d#b": 1, "e#go": 1, "d#go": 1, "ended": 1}
	for k, v := range want {
		if main[k] != v {
			t.Errorf("main %s = %d, want %d (all: %v)", k, main[k], v, main)
		}
	}
	if main["e#a"] != 0 || main["runs"] != 0 {
		t.Errorf("main counted a branch not taken or a run: %v", main)
	}
	// START began a run of side: counted there, begun and ended.
	if side["runs"] != 1 || side["e#s"] != 1 || side["d#s"] != 1 || side["ended"] != 1 {
		t.Errorf("side: %v", side)
	}
}
