package actions

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestChooseOperator(t *testing.T) {
	ops := []string{"anna", "boris", "carl"}
	for i, want := range []string{"anna", "boris", "carl", "anna", "boris"} {
		if got := ChooseOperator("evenly", ops, store.PlanState{Assigned: int64(i)}); got != want {
			t.Errorf("evenly after %d deals = %s, want %s", i, got, want)
		}
	}
	open := map[string]int64{"anna": 2, "boris": 1, "carl": 1}
	if got := ChooseOperator("fewest", ops, store.PlanState{Open: open}); got != "boris" {
		t.Errorf("fewest = %s, want boris (tie with carl goes to the earlier)", got)
	}
	if got := ChooseOperator("fewest", ops, store.PlanState{}); got != "anna" {
		t.Errorf("fewest with no deals = %s", got)
	}
	seen := map[string]bool{}
	for range 200 {
		got := ChooseOperator("random", ops, store.PlanState{})
		if !slices.Contains(ops, got) {
			t.Fatalf("random chose %q", got)
		}
		seen[got] = true
	}
	if len(seen) != 3 {
		t.Errorf("random over 200 draws chose only %v", seen)
	}
	if got := ChooseOperator("none", ops, store.PlanState{}); got != "" {
		t.Errorf("none = %q", got)
	}
	if got := ChooseOperator("evenly", nil, store.PlanState{}); got != "" {
		t.Errorf("no operators = %q", got)
	}
}

// planStore is a StateStore with plans and slot reservations only.
type planStore struct {
	StateStore
	plans    map[string]store.SalesPlan
	reserved map[string]int64
	calls    int
}

func (p *planStore) GetSalesPlan(_ context.Context, _, id string) (store.SalesPlan, error) {
	pl, ok := p.plans[id]
	if !ok {
		return store.SalesPlan{}, engine.ErrNotFound
	}
	return pl, nil
}

func (p *planStore) PlanMembers(_ context.Context, _, _ string, subs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, s := range subs {
		out[s] = s == "member"
	}
	return out, nil
}

func (p *planStore) ReservePlanSlots(_ context.Context, _, plan string, k int) (int64, error) {
	p.calls++
	first := p.reserved[plan]
	p.reserved[plan] += int64(k)
	return first, nil
}

func TestPrepareSalesPlans(t *testing.T) {
	st := &planStore{reserved: map[string]int64{"q4": 7}, plans: map[string]store.SalesPlan{
		"q4":   {ID: "q4", Operators: []string{"anna", "boris"}, Distribution: "evenly"},
		"rand": {ID: "rand", Operators: []string{"anna"}, Distribution: "random"},
	}}
	step := func(id, plan string) engine.PreparedStep {
		return engine.PreparedStep{Step: engine.Step{ID: id, WS: "w", Sub: "sub-" + id}, Action: tunnel.Action{Type: "add_to_sales_plan", Plan: plan}}
	}
	member := step("m", "q4")
	member.Step.Sub = "member" // already in the plan: no slot
	again := step("a2", "q4")
	again.Step.Sub = "sub-a" // the same subscriber twice in a batch: one slot
	got, err := PrepareSalesPlans(st)(context.Background(), []engine.PreparedStep{
		step("a", "q4"), step("b", "rand"), member, step("c", "q4"), again, step("d", "ghost"), step("e", "q4"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(7), "c": int64(8), "e": int64(9)}
	if !reflect.DeepEqual(got, want) || st.calls != 1 {
		t.Errorf("prepared %v in %d reservations, want %v in 1", got, st.calls, want)
	}
}
