package app

import (
	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// stateActions wires set_field, add_to_sales_plan, mention and mark_unread
// (the tags function: the subscriber's card and chat).
func stateActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return actions.SubscriberState(st)
}
