package engine

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func rule(t *testing.T, js string) *tunnel.Rule {
	t.Helper()
	var r tunnel.Rule
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatalf("rule %s: %v", js, err)
	}
	return &r
}

func TestEvaluateRules(t *testing.T) {
	sub := &Subscriber{
		ID: "s1", Email: "ann@example.com", FirstName: "Ann", Timezone: "Europe/Moscow",
		Tags:     []string{"lead", "vip"},
		Channels: []Identity{{Channel: "tg", ExternalID: "1"}},
		Fields: map[string]any{
			"age": 30.0, "city": "Saint Petersburg", "paid": true, "empty": "",
			"birthday": "1996-05-01", "webinar_at": "2026-12-24T18:00:00.000Z",
		},
		Plans:          map[string]PlanMembership{"q4": {Plan: "q4", Status: "won"}},
		LastHTTPStatus: 502,
	}
	cases := []struct {
		rule string
		want bool
	}{
		{`{"has_tag": "vip"}`, true},
		{`{"has_tag": "cold"}`, false},
		{`{"lacks_tag": "cold"}`, true},
		{`{"lacks_tag": "vip"}`, false},
		{`{"field": "age", "op": "gt", "value": 18}`, true},
		{`{"field": "age", "op": "lt", "value": 18}`, false},
		{`{"field": "age", "op": "eq", "value": 30}`, true},
		{`{"field": "age", "op": "ne", "value": 30}`, false},
		{`{"field": "city", "op": "contains", "value": "petersburg"}`, true},
		{`{"field": "city", "op": "eq", "value": "saint petersburg"}`, true},
		{`{"field": "city", "op": "ne", "value": "Moscow"}`, true},
		{`{"field": "paid", "op": "eq", "value": true}`, true},
		{`{"field": "paid", "op": "ne", "value": true}`, false},
		{`{"field": "empty", "op": "is_set"}`, false},
		{`{"field": "empty", "op": "not_set"}`, true},
		{`{"field": "missing", "op": "not_set"}`, true},
		{`{"field": "missing", "op": "eq", "value": "x"}`, false},
		{`{"field": "missing", "op": "ne", "value": "x"}`, true},
		{`{"field": "missing", "op": "lt", "value": 5}`, false},
		{`{"field": "birthday", "op": "lt", "value": "2000-01-01"}`, true},
		{`{"field": "birthday", "op": "eq", "value": "1996-05-01"}`, true},
		{`{"field": "webinar_at", "op": "gt", "value": "2026-12-24T20:00:00+03:00"}`, true},
		{`{"field": "webinar_at", "op": "eq", "value": "2026-12-24T21:00:00+03:00"}`, true},
		{`{"subscriber": "email", "op": "is_set"}`, true},
		{`{"subscriber": "phone", "op": "is_set"}`, false},
		{`{"subscriber": "phone", "op": "not_set"}`, true},
		{`{"subscriber": "email", "op": "contains", "value": "@EXAMPLE.com"}`, true},
		{`{"subscriber": "timezone", "op": "eq", "value": "europe/moscow"}`, true},
		{`{"plan": "q4", "op": "is_set"}`, true},
		{`{"plan": "q1", "op": "is_set"}`, false},
		{`{"plan": "q1", "op": "not_set"}`, true},
		{`{"plan": "q4", "op": "eq", "value": "won"}`, true},
		{`{"plan": "q4", "op": "ne", "value": "won"}`, false},
		{`{"plan": "q1", "op": "eq", "value": "won"}`, false},
		{`{"channel": "tg"}`, true},
		{`{"channel": "vk"}`, false},
		{`{"last_request": "http_status", "op": "gt", "value": 499}`, true},
		{`{"last_request": "http_status", "op": "lt", "value": 400}`, false},
		{`{"last_request": "http_status", "op": "is_set"}`, true},
		{`{"all": [{"has_tag": "vip"}, {"field": "age", "op": "gt", "value": 18}]}`, true},
		{`{"all": [{"has_tag": "vip"}, {"has_tag": "cold"}]}`, false},
		{`{"any": [{"has_tag": "cold"}, {"channel": "tg"}]}`, true},
		{`{"any": [{"has_tag": "cold"}, {"channel": "vk"}]}`, false},
		{`{"not": {"has_tag": "cold"}}`, true},
		{`{"not": {"any": [{"has_tag": "vip"}]}}`, false},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			got, why := Evaluate(rule(t, c.rule), sub)
			if got != c.want {
				t.Fatalf("Evaluate = %v (%s), want %v", got, why, c.want)
			}
			if why == "" {
				t.Fatal("no explanation")
			}
		})
	}
}

func TestLastRequestNotSet(t *testing.T) {
	sub := &Subscriber{}
	if ok, _ := Evaluate(rule(t, `{"last_request": "http_status", "op": "not_set"}`), sub); !ok {
		t.Fatal("a subscriber with no request: not_set should hold")
	}
	if ok, _ := Evaluate(rule(t, `{"last_request": "http_status", "op": "lt", "value": 400}`), sub); ok {
		t.Fatal("no status is not lower than 400")
	}
}

func TestChooseExplains(t *testing.T) {
	b := &tunnel.Block{ID: "c", Type: "condition", Branches: []tunnel.Branch{
		{Name: "vip", When: rule(t, `{"has_tag": "vip"}`)},
		{When: rule(t, `{"field": "age", "op": "gt", "value": 18}`)},
	}}
	i, why := Choose(b, &Subscriber{Fields: map[string]any{"age": 30.0}})
	if i != 1 || len(why) != 2 {
		t.Fatalf("Choose = %d %q", i, why)
	}
	if why[0] != `branch "vip": has_tag "vip": no` || why[1] != `branch 1: field "age" ("30") gt 18: yes` {
		t.Fatalf("why = %q", why)
	}
	if i, _ := Choose(b, &Subscriber{}); i != -1 {
		t.Fatalf("no branch holds: Choose = %d, want else", i)
	}
}

func TestSplitIsStickyAndWeighted(t *testing.T) {
	b := &tunnel.Block{ID: "ab", Type: "split", Branches: []tunnel.Branch{{Weight: 1}, {Weight: 3}}}
	counts := make([]int, 2)
	const n = 20000
	for i := 0; i < n; i++ {
		sub := fmt.Sprintf("sub-%d", i)
		k := SplitBranch(b, "ws", sub, "t")
		if again := SplitBranch(b, "ws", sub, "t"); again != k {
			t.Fatalf("subscriber %s took %d then %d", sub, k, again)
		}
		counts[k]++
	}
	// 1:3 within a few standard deviations (sd of a binomial here ≈ 61).
	if counts[0] < n/4-300 || counts[0] > n/4+300 {
		t.Fatalf("counts %v, want about %d : %d", counts, n/4, 3*n/4)
	}
	// Another tunnel (or block) draws anew: the split of one test says nothing of the next.
	same := 0
	for i := 0; i < 1000; i++ {
		sub := fmt.Sprintf("sub-%d", i)
		if SplitBranch(b, "ws", sub, "t") == SplitBranch(b, "ws", sub, "other") {
			same++
		}
	}
	if same > 800 {
		t.Fatalf("%d of 1000 subscribers took the same branch in two tunnels", same)
	}
}

func TestConditionAndSplitBlocksRun(t *testing.T) {
	h := newHarness(t, map[string]*tunnel.Tunnel{"logic": {Name: "Logic", Entry: "check", Blocks: []tunnel.Block{
		{ID: "check", Type: "condition", Branches: []tunnel.Branch{
			{Name: "vip", When: rule(t, `{"has_tag": "vip"}`), Next: []string{"vip"}},
			{Name: "has email", When: rule(t, `{"subscriber": "email", "op": "is_set"}`), Next: []string{"ab"}},
		}, Else: []string{"other"}},
		{ID: "ab", Type: "split", Branches: []tunnel.Branch{{Name: "A", Weight: 1, Next: []string{"a"}}, {Name: "B", Weight: 1, Next: []string{"b"}}}},
		{ID: "vip", Type: "message", Text: "vip"},
		{ID: "other", Type: "message", Text: "other"},
		{ID: "a", Type: "message", Text: "A"},
		{ID: "b", Type: "message", Text: "B"},
	}}})
	h.startRun("logic", "check")
	h.drain()
	j := h.store.journeyCopy()
	if len(j) != 3 {
		t.Fatalf("journey: %+v", entries(j))
	}
	if j[0].Type != "condition" || j[0].Detail["branch"] != 1 || j[0].Detail["name"] != "has email" {
		t.Fatalf("condition entry: %+v", j[0].Detail)
	}
	why, _ := j[0].Detail["why"].([]any)
	if len(why) != 2 || why[1] != `branch "has email": subscriber email ("ann@example.com") is_set: yes` {
		t.Fatalf("why = %q", why)
	}
	want := SplitBranch(&tunnel.Block{ID: "ab", Branches: []tunnel.Branch{{Weight: 1}, {Weight: 1}}}, testWS, testSub, "logic")
	if j[1].Type != "split" || j[1].Detail["branch"] != want || j[1].Detail["total_weight"] != 2 {
		t.Fatalf("split entry: %+v (want branch %d)", j[1].Detail, want)
	}
	if texts := h.msgr.texts(); len(texts) != 1 || texts[0] != "logic/"+[]string{"a", "b"}[want]+": "+[]string{"A", "B"}[want] {
		t.Fatalf("messages: %q", texts)
	}
	if r := h.store.run("logic", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending = %d, want 0", r.Pending)
	}
}
