package engine

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func timerAt(id string, due time.Time) Outgoing {
	return Outgoing{Kind: KindFlow, Step: Step{V: 1, ID: id, WS: testWS, Sub: testSub, Tunnel: "t",
		Channel: ChannelChat, Gen: 1, Block: "b", At: t0.Add(-2 * time.Hour), Due: tp(due)}}
}

func putTimers(t *testing.T, st *fakeStore, out ...Outgoing) {
	t.Helper()
	for _, o := range out {
		if err := st.PutTimer(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSchedulerTick(t *testing.T) {
	ctx := context.Background()
	st := newStore()
	q := &fakeQueue{}
	clock := newClock(t0.Add(5*time.Minute + 30*time.Second)) // 10:05:30: buckets up to 10:14 are due within 15 minutes less the 5-minute margin
	sc := &Scheduler{Timers: st, Queue: q, Now: clock.Now}
	past := timerAt("past", t0.Add(-30*time.Minute+10*time.Second)) // 09:30:10, within the first tick's hour
	soon := timerAt("soon", t0.Add(5*time.Minute))                  // 10:05:00
	edge := timerAt("edge", t0.Add(14*time.Minute+59*time.Second))  // 10:14:59: its bucket ends by 10:15:30
	over := timerAt("over", t0.Add(15*time.Minute+10*time.Second))  // 10:15:10: its bucket ends after 10:15:30
	late := timerAt("late", t0.Add(time.Hour))                      // 11:00:00
	putTimers(t, st, late, over, edge, soon, past)

	moved, err := sc.Tick(ctx)
	if err != nil || moved != 3 {
		t.Fatalf("Tick = %d, %v; want 3 moved", moved, err)
	}
	log := q.sentLog()
	var got []Outgoing
	for _, s := range log {
		if !s.now.Equal(t0.Add(5*time.Minute + 30*time.Second)) {
			t.Errorf("%s sent with now %s", s.o.Step.ID, s.now)
		}
		got = append(got, s.o)
	}
	// In bucket order, unchanged: the queue delays each to its own due time.
	if want := []Outgoing{past, soon, edge}; !reflect.DeepEqual(got, want) {
		t.Fatalf("moved\n %+v\nwant %+v", got, want)
	}
	if left := st.timerSteps(); !reflect.DeepEqual(left, []string{"late", "over"}) {
		t.Fatalf("timers left = %v, want [late over]", left)
	}
	cur, ok, _ := st.SchedulerCursor(ctx)
	if !ok || !cur.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("cursor = %s (%v), want 10:15", cur, ok)
	}

	// Twice at the same moment: nothing more.
	moved, err = sc.Tick(ctx)
	if err != nil || moved != 0 || len(q.sentLog()) != 3 {
		t.Fatalf("second Tick = %d, %v (sent %d); want 0", moved, err, len(q.sentLog()))
	}
	if cur2, _, _ := st.SchedulerCursor(ctx); !cur2.Equal(cur) {
		t.Fatalf("second Tick moved the cursor to %s", cur2)
	}

	// A minute later the 10:15 bucket is entirely within the queue's delay.
	clock.Set(t0.Add(6 * time.Minute))
	moved, err = sc.Tick(ctx)
	if err != nil || moved != 1 || q.sentLog()[3].o.Step.ID != "over" {
		t.Fatalf("Tick at 10:06 = %d, %v; want over moved", moved, err)
	}
	if cur, _, _ := st.SchedulerCursor(ctx); !cur.Equal(t0.Add(16 * time.Minute)) {
		t.Fatalf("cursor = %s, want 10:16", cur)
	}
	// The last timer goes at 10:46, 14 to 15 minutes ahead of its due time.
	clock.Set(t0.Add(50*time.Minute + 59*time.Second))
	if moved, _ := sc.Tick(ctx); moved != 0 {
		t.Fatalf("Tick at 10:50:59 moved %d", moved)
	}
	clock.Set(t0.Add(51 * time.Minute))
	if moved, _ := sc.Tick(ctx); moved != 1 {
		t.Fatalf("Tick at 10:51 moved %d", moved)
	}
	if left := st.timerSteps(); len(left) != 0 {
		t.Fatalf("timers left = %v", left)
	}
}

func TestSchedulerCatchUpIsBounded(t *testing.T) {
	ctx := context.Background()
	st := newStore()
	q := &fakeQueue{}
	start := t0.Add(-5 * time.Hour) // 05:00
	if err := st.SetSchedulerCursor(ctx, start); err != nil {
		t.Fatal(err)
	}
	putTimers(t, st, timerAt("in", start.Add(3*time.Minute+20*time.Second)), timerAt("next-tick", start.Add(12*time.Minute)))
	sc := &Scheduler{Timers: st, Queue: q, Now: func() time.Time { return t0 }, MaxBuckets: 10}
	moved, err := sc.Tick(ctx)
	if err != nil || moved != 1 {
		t.Fatalf("Tick = %d, %v; want 1", moved, err)
	}
	if cur, _, _ := st.SchedulerCursor(ctx); !cur.Equal(start.Add(10 * time.Minute)) {
		t.Fatalf("cursor = %s, want 10 buckets on (05:10)", cur)
	}
	if moved, _ := sc.Tick(ctx); moved != 1 {
		t.Fatalf("the next tick moved %d, want the 05:12 timer", moved)
	}
}

func TestSchedulerSendFailureKeepsTimerAndCursor(t *testing.T) {
	ctx := context.Background()
	st := newStore()
	q := &fakeQueue{err: errors.New("sqs down")}
	putTimers(t, st, timerAt("a", t0.Add(2*time.Minute)))
	sc := &Scheduler{Timers: st, Queue: q, Now: func() time.Time { return t0 }}
	moved, err := sc.Tick(ctx)
	if err == nil || moved != 0 || !strings.Contains(err.Error(), "enqueue timer a: sqs down") {
		t.Fatalf("Tick = %d, %v; want the enqueue error", moved, err)
	}
	if left := st.timerSteps(); !reflect.DeepEqual(left, []string{"a"}) {
		t.Fatalf("timers = %v; a timer not sent must stay", left)
	}
	if cur, _, _ := st.SchedulerCursor(ctx); !cur.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("cursor = %s; it must stop at the bucket that failed (10:02)", cur)
	}
	q.err = nil
	if moved, err := sc.Tick(ctx); err != nil || moved != 1 {
		t.Fatalf("retry Tick = %d, %v", moved, err)
	}
}
