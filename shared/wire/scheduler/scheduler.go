// Package scheduler wires the scheduler function: it moves due long-delay
// timers to their queues, with the store and the queues only.
package scheduler

import (
	"context"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/wire"
)

// Handler builds the scheduler function's EventBridge handler.
func Handler(d wire.Deps) func(ctx context.Context, ev events.EventBridgeEvent) error {
	sc := &engine.Scheduler{Timers: d.Store(), Queue: d.Queues()}
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		moved, err := sc.Tick(ctx)
		d.Log.Info("scheduler tick", "moved", moved, "error", err)
		return err
	}
}
