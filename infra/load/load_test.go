package load

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tunnels/tunnels/infra/localstack"
)

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		want Latency
	}{
		{nil, Latency{}},
		{ms(7), Latency{7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond}},
		{ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), Latency{5 * time.Millisecond, 9 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}},
	}
	for _, tt := range tests {
		if got := percentiles(tt.in); got != tt.want {
			t.Errorf("percentiles(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i))
	}
	if got := percentiles(hundred); got.P50 != 50 || got.P90 != 90 || got.P99 != 99 || got.Max != 100 {
		t.Errorf("1..100: %+v", got)
	}
}

// TestLoad is the load test: TUNNELS_LOAD=1 go test ./infra/load -run TestLoad -v
// (TUNNELS_LOAD_SUBSCRIBERS sets the count, default 5,000). `make test`
// leaves it out; `make bench` runs the same load through infra/bench.
func TestLoad(t *testing.T) {
	if os.Getenv("TUNNELS_LOAD") == "" || testing.Short() {
		t.Skip("set TUNNELS_LOAD=1 to run the load test")
	}
	n := 5000
	if s := os.Getenv("TUNNELS_LOAD_SUBSCRIBERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("TUNNELS_LOAD_SUBSCRIBERS=%q", s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	t.Logf("system log: %s", env.LogPath)
	res, err := env.Run(context.Background(), Config{Subscribers: n, Timeout: 20 * time.Minute, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.Summary())
	for _, k := range localstack.Keys(res.Calls) {
		v := res.Calls[k]
		t.Logf("%-20s %-9s %-28s calls %6d entries %6d messages %6d empty %5d errors %4d rcu %.1f wcu %.1f",
			k.Label, k.Service, k.Operation, v.Calls, v.Entries, v.Messages, v.Empty, v.Errors, v.ReadUnits, v.WriteUnits)
	}
	if len(res.Errors) > 0 {
		t.Errorf("%d errors, want none; first: %v", len(res.Errors), res.Errors[:min(10, len(res.Errors))])
	}
	if res.Steps != n*StepsPerRun || res.Deliveries != n*MessagesPerRun {
		t.Errorf("%d steps and %d deliveries, want %d and %d", res.Steps, res.Deliveries, n*StepsPerRun, n*MessagesPerRun)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
