package engine

import (
	"context"
	"fmt"
	"time"
)

// Timer is a stored delayed step.
type Timer struct {
	Key      string
	Outgoing Outgoing
}

// TimerStore keeps steps delayed beyond what a queue can hold.
type TimerStore interface {
	DueTimers(ctx context.Context, bucket time.Time) ([]Timer, error)
	DeleteTimer(ctx context.Context, t Timer) error
	SchedulerCursor(ctx context.Context) (bucket time.Time, ok bool, err error)
	SetSchedulerCursor(ctx context.Context, bucket time.Time) error
}

// timerMargin keeps the scheduler behind buckets still being written.
const timerMargin = 5 * time.Minute

// Scheduler moves timers to their queues once they are within a queue's
// delay: a timer due in 40 minutes goes to the queue 25 minutes from now with
// a 15-minute delay, so long delays keep second precision.
type Scheduler struct {
	Timers TimerStore
	Queue  Queue
	Now    func() time.Time
	// MaxBuckets bounds the minutes one tick catches up on (default a day).
	MaxBuckets int
}

// Tick moves every timer whose minute bucket lies entirely within the queue
// delay from now. It is safe to run twice at once: steps dedupe by id.
func (sc *Scheduler) Tick(ctx context.Context) (moved int, err error) {
	now := time.Now().UTC()
	if sc.Now != nil {
		now = sc.Now().UTC()
	}
	limit := sc.MaxBuckets
	if limit <= 0 {
		limit = 24 * 60
	}
	// The last bucket whose every due time is within the queue's delay, less
	// a margin: a step writes its timer only when due more than MaxQueueDelay
	// after its own clock reading, so buckets that close to now may still be
	// receiving timers. Moving them 5 minutes later keeps the cursor from
	// passing a bucket that is still being written.
	horizon := now.Add(MaxQueueDelay - timerMargin).Truncate(time.Minute).Add(-time.Minute)
	cursor, ok, err := sc.Timers.SchedulerCursor(ctx)
	if err != nil {
		return 0, fmt.Errorf("scheduler cursor: %w", err)
	}
	if !ok {
		cursor = now.Truncate(time.Minute).Add(-time.Hour)
	}
	for i := 0; i < limit && !cursor.After(horizon); i++ {
		timers, err := sc.Timers.DueTimers(ctx, cursor)
		if err != nil {
			return moved, fmt.Errorf("timers of %s: %w", cursor.Format(time.RFC3339), err)
		}
		for _, t := range timers {
			if err := sc.Queue.Send(ctx, now, []Outgoing{t.Outgoing}); err != nil {
				return moved, fmt.Errorf("enqueue timer %s: %w", t.Outgoing.Step.ID, err)
			}
			if err := sc.Timers.DeleteTimer(ctx, t); err != nil {
				return moved, fmt.Errorf("delete timer %s: %w", t.Outgoing.Step.ID, err)
			}
			moved++
		}
		cursor = cursor.Add(time.Minute)
		if err := sc.Timers.SetSchedulerCursor(ctx, cursor); err != nil {
			return moved, fmt.Errorf("advance cursor: %w", err)
		}
	}
	return moved, nil
}
