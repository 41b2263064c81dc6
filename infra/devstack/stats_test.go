package devstack_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

type tunnelStats struct {
	Blocks []struct {
		Block    string `json:"block"`
		Done     int    `json:"done"`
		Skipped  int    `json:"skipped"`
		Failed   int    `json:"failed"`
		Waiting  int    `json:"waiting"`
		Branches []struct {
			Branch any    `json:"branch"`
			Name   string `json:"name"`
			Count  int    `json:"count"`
		} `json:"branches"`
	} `json:"blocks"`
	Recorded   int `json:"recorded"`
	ActiveRuns int `json:"active_runs"`
}

// Issue 10 item 5 and issue 13's A/B reading: per-block counters, the
// branches a split took, waiting steps and active runs, without journeys.
func TestTunnelStats(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Stats")
	a.must(http.MethodPut, "/v1/tunnels/ab", json.RawMessage(`{"name": "AB", "entry": "split", "blocks": [
		{"id": "split", "type": "split", "branches": [{"name": "A", "weight": 1, "next": ["a"]}, {"name": "B", "weight": 1, "next": ["b"]}]},
		{"id": "a", "type": "message", "text": "A", "next": ["wait"]},
		{"id": "b", "type": "message", "text": "B", "next": ["wait"]},
		{"id": "wait", "type": "delay", "seconds": 3600, "next": ["later"]},
		{"id": "later", "type": "message", "text": "Later"}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/quick", json.RawMessage(`{"name": "Quick", "entry": "q", "blocks": [
		{"id": "q", "type": "message", "text": "Quick"}]}`), http.StatusOK, nil)
	const n = 6
	for i := range n {
		a.subscribe(fmt.Sprintf("stats-%d", i), "ab", fmt.Sprintf("93%02d", i), "S")
	}
	a.subscribe("stats-q", "quick", "9399", "Q")
	stats := func(id string) tunnelStats {
		var s tunnelStats
		a.must(http.MethodGet, "/v1/tunnels/"+id+"/stats", nil, http.StatusOK, &s)
		return s
	}
	var s tunnelStats
	eventually(t, 30*time.Second, "every run at the hour's delay", func() (bool, string) {
		s = stats("ab")
		return len(s.Blocks) == 5 && s.Blocks[3].Done == n, fmt.Sprintf("%+v", s)
	})
	byBlock := map[string]int{}
	for i, b := range s.Blocks {
		byBlock[b.Block] = i
	}
	split := s.Blocks[byBlock["split"]]
	if split.Done != n || len(split.Branches) != 2 || split.Branches[0].Count+split.Branches[1].Count != n ||
		split.Branches[0].Name != "A" || s.Blocks[byBlock["a"]].Done != split.Branches[0].Count || s.Blocks[byBlock["b"]].Done != split.Branches[1].Count {
		t.Fatalf("split: %+v", s)
	}
	if later := s.Blocks[byBlock["later"]]; later.Waiting != n || later.Done != 0 {
		t.Fatalf("later waits for the delay: %+v", later)
	}
	if s.Recorded != n || s.ActiveRuns != n {
		t.Fatalf("recorded %d, active %d; want %d and %d", s.Recorded, s.ActiveRuns, n, n)
	}
	eventually(t, 30*time.Second, "the quick run to end", func() (bool, string) {
		q := stats("quick")
		return q.ActiveRuns == 0 && q.Blocks[0].Done == 1 && q.Blocks[0].Waiting == 0 && q.Recorded == 1, fmt.Sprintf("%+v", q)
	})
	a.problem(http.MethodGet, "/v1/tunnels/nope/stats", nil, http.StatusNotFound, "not_found")
}
