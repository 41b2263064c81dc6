// Package webhook wires the webhook function: external requests.
package webhook

import (
	"net/http"

	"github.com/tunnels/tunnels/shared/actions/external"
	"github.com/tunnels/tunnels/shared/config"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/httpreq"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/wire"
)

// Handler builds the webhook function's SQS batch handler.
func Handler(d wire.Deps) *stepbatch.Handler {
	st := d.Store()
	return wire.StepHandler(d, st, engine.KindWebhook,
		wire.Kind{Actions: external.Actions(st, ExternalClient(d.Config))})
}

// ExternalClient is the egress client of external requests, for the webhook
// function and the editor's check request, built once per function. Its own
// bounds are httpreq's caps, so each request's timeout_ms and the mapping's
// read size are what apply.
func ExternalClient(cfg config.Config) *http.Client {
	return egress.NewClient(egress.Policy{Allow: cfg.EgressAllow},
		egress.Options{Timeout: httpreq.MaxTimeout, MaxBody: httpreq.MaxBodyLimit})
}
