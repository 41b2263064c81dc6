package load

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestBurst subscribes many subscribers at once to one tunnel whose action
// joins one evenly distributed sales plan, and checks nothing is lost or
// doubled: the tunnel's count, one deal each, the deals round the operators
// within one, and few refused writes (no item every subscriber writes).
// TUNNELS_BURST_SUBSCRIBERS sets the count (default 600 here; `make bench`
// runs 10,000 and reports the figures).
func TestBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the emulators")
	}
	n := 600
	if s := os.Getenv("TUNNELS_BURST_SUBSCRIBERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("TUNNELS_BURST_SUBSCRIBERS=%q", s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	res, err := env.Burst(context.Background(), BurstConfig{Subscribers: n, Timeout: 15 * time.Minute, Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors[:min(5, len(res.Errors))])
	}
	if res.Recorded != n || res.Deals != n || res.Welcomes != n {
		t.Errorf("recorded %d, deals %d, welcomes %d; want %d each", res.Recorded, res.Deals, res.Welcomes, n)
	}
	if spread := res.Spread(); spread > 1 {
		t.Errorf("deals per operator %v differ by %d: evenly must stay within one", res.PerOperator, spread)
	}
	if c := res.ConflictsPerStep(); c >= 0.05 {
		t.Errorf("%d refused writes over %d steps = %.3f per step, want < 0.05", res.Conflicts, res.Steps, c)
	}
}
