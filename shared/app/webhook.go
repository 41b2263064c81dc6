package app

import (
	"net/http"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/httpreq"
	"github.com/tunnels/tunnels/shared/store"
)

// webhookActions wires external_request (the webhook function).
func webhookActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return actions.ExternalRequests(st, externalClient(d))
}

// externalClient is the egress client of external requests, for the webhook function
// and the API's check request, built once per function. Its own bounds are httpreq's
// caps, so each request's timeout_ms and the mapping's read size are what apply.
func externalClient(d Deps) *http.Client {
	return egress.NewClient(egress.Policy{Allow: d.Config.EgressAllow},
		egress.Options{Timeout: httpreq.MaxTimeout, MaxBody: httpreq.MaxBodyLimit})
}
