// Package tags wires the tags function: tags, custom fields, sales plan,
// mentions and unread marks (the subscriber's card and chat).
package tags

import (
	"maps"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/tunnel"
	"github.com/tunnels/tunnels/shared/wire"
)

// Handler builds the tags function's SQS batch handler.
func Handler(d wire.Deps) *stepbatch.Handler {
	st := d.Store()
	acts := actions.Tags(st)
	maps.Copy(acts, actions.SubscriberState(st)) // set_field, add_to_sales_plan, mention, mark_unread
	return wire.StepHandler(d, st, engine.KindTags, wire.Kind{
		Actions: acts,
		// A batch's joins of one evenly distributed plan share one
		// reservation of round-robin slots.
		Prepare: map[string]engine.PrepareFunc{tunnel.ActionAddToSalesPlan: actions.PrepareSalesPlans(st)},
	})
}
