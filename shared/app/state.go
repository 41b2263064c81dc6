package app

import (
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// stateActions wires set_field, add_to_sales_plan, mention and mark_unread (the tags function). Until issue 3 lands it has none, and the engine
// records those action types failed "not implemented in this deployment".
func stateActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return nil
}
