// Package api wires the API function: every HTTP route, with the browser
// console at GET /. It is the only function that links the API, the console
// and the API's documentation.
package api

import (
	// The runtime image has no /usr/share/zoneinfo, and tunnels and events
	// name time zones the API validates: embed the zone database.
	_ "github.com/tunnels/tunnels/shared/schedule/zonedata"

	"net/http"

	"github.com/tunnels/tunnels/shared/api"
	"github.com/tunnels/tunnels/shared/console"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/messenger"
	"github.com/tunnels/tunnels/shared/queue"
	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/webhook"
)

// Handler builds the HTTP API handler.
func Handler(d wire.Deps) http.Handler {
	c, err := console.New()
	if err != nil {
		d.Log.Error("the console is not served", "error", err) // the API still is
		c = nil
	}
	return (&api.Server{
		Console: c,
		Store:   d.Store(), Queue: d.Queues(), AdminToken: d.Config.AdminToken,
		Egress: egress.Policy{Allow: d.Config.EgressAllow}, DLQ: &queue.DeadLetterQueues{API: d.SQS, URLs: d.Config.DLQs},
		External: webhook.ExternalClient(d.Config), Log: d.Log,
		Messenger: messenger.New(d.Store(), d.Config), PublicURL: d.Config.PublicURL, TelegramAPI: d.Config.TelegramAPI,
		TelegramHTTP: egress.NewClient(egress.Policy{Allow: d.Config.EgressAllow}, egress.Options{}),
	}).Handler()
}
