package store

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// countingStore is a store on the test table whose UpdateItem calls are
// counted.
func countingStore(t *testing.T, updates *atomic.Int64) *Store {
	t.Helper()
	client := dynamodb.New(testDB.Options(), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("countUpdates", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if _, ok := in.Parameters.(*dynamodb.UpdateItemInput); ok {
					updates.Add(1)
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
		})
	})
	return New(client, testTable)
}

// TestStatsBufferWritesOncePerEvery: a busy instance writes a tunnel's
// counters once per Every, whatever the number of batches; a quiet one after
// its batch; what waits is written by Run's tick, at its end, and at
// Shutdown; nothing is lost or doubled.
func TestStatsBufferWritesOncePerEvery(t *testing.T) {
	_, _, ws := newStore(t)
	ctx := t.Context()
	var updates atomic.Int64
	st := countingStore(t, &updates)
	b := &StatsBuffer{Store: st, Every: time.Hour}

	// Quiet: the first batch writes at once.
	b.Count(ws, "t1", map[string]int64{"d#a": 1})
	if err := b.AfterBatch(ctx); err != nil {
		t.Fatal(err)
	}
	if n := updates.Load(); n != 1 {
		t.Fatalf("the first batch made %d writes, want 1", n)
	}
	// Busy: 50 batches within Every write nothing more...
	for range 50 {
		b.Count(ws, "t1", map[string]int64{"d#a": 2, "e#b": 1})
		if err := b.AfterBatch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := updates.Load(); n != 1 {
		t.Fatalf("50 batches within Every made %d more writes, want 0", n-1)
	}
	// ...until Shutdown (Lambda's SIGTERM) writes what waits, once.
	b.Shutdown()
	if n := updates.Load(); n != 2 {
		t.Fatalf("Shutdown made %d writes, want 1", n-1)
	}
	got, err := st.TunnelStats(ctx, ws, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got["d#a"] != 101 || got["e#b"] != 50 {
		t.Fatalf("stats %v, want d#a 101 and e#b 50", got)
	}

	// Run writes what waits on its tick and once more at its end.
	r := &StatsBuffer{Store: st, Every: 20 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	r.Count(ws, "t2", map[string]int64{"runs": 1})
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := st.TunnelStats(ctx, ws, "t2")
		if err != nil {
			t.Fatal(err)
		}
		if s["runs"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run's tick never wrote the waiting count")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Count(ws, "t2", map[string]int64{"ended": 1})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s, err := st.TunnelStats(ctx, ws, "t2"); err != nil || s["runs"] != 1 || s["ended"] != 1 {
		t.Fatalf("after Run's end: %v, %v; want runs 1 and ended 1", s, err)
	}
}
