package actions

import (
	"slices"
	"testing"

	"github.com/tunnels/tunnels/shared/store"
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
