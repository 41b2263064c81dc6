package app

import (
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// webhookActions wires external_request (the webhook function). Until issue 6 lands it has none, and the engine
// records those action types failed "not implemented in this deployment".
func webhookActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return nil
}
