package app

import (
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// crmActions wires amo_contact and amo_deal (the crm function). Until issue 5 lands it has none, and the engine
// records those action types failed "not implemented in this deployment".
func crmActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return nil
}
