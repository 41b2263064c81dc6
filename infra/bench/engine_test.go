package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tunnels/tunnels/infra/load"
	"github.com/tunnels/tunnels/shared/engine"
)

// The in-process run really runs the tunnel: every run ends with nothing
// pending and the tags the tunnel leaves (engaged, not lead).
func TestEngineInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, st, err := runEngineWith(ctx, 200, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 200*load.StepsPerRun || res.StepsPerSec <= 0 || st.completed.Load() != res.Steps {
		t.Fatalf("result %+v, %d completed", res, st.completed.Load())
	}
	for i := range st.shards {
		for id, sub := range st.shards[i].subs {
			r := sub.Runs[engine.RunKey("load", engine.ChannelChat)]
			if r.Pending != 0 || !slices.Equal(sub.Tags, []string{"engaged"}) {
				t.Fatalf("%s: pending %d, tags %v; want 0 and [engaged]", id, r.Pending, sub.Tags)
			}
		}
		if n := len(st.shards[i].chats); n%load.MessagesPerRun != 0 {
			t.Errorf("shard %d holds %d chat messages, not whole runs of %d", i, n, load.MessagesPerRun)
		}
	}
}

// BenchmarkEngineOneCore is the one-core figure of `make bench` (one run to
// warm up, then one timed), for profiling:
//
//	go test -run '^$' -bench EngineOneCore -benchtime 200000x -cpuprofile cpu.out ./infra/bench
//
// An op is a step; steps/s leaves the setup and the warm-up out.
func BenchmarkEngineOneCore(b *testing.B) {
	res, err := runEngineOneCore(context.Background(), max(b.N/load.StepsPerRun, 1), 1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.StepsPerSec, "steps/s")
}
