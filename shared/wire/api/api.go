// Package api wires the API function: every HTTP route but the editor's
// (package editor), with the browser console at GET /. It is the only
// function that links the console and the API's documentation.
package api

import (
	// The runtime image has no /usr/share/zoneinfo, and an event names the
	// subscriber's time zone, which the API checks: embed the zone names.
	_ "github.com/tunnels/tunnels/shared/schedule/zonenames"

	"net/http"

	"github.com/tunnels/tunnels/shared/api"
	"github.com/tunnels/tunnels/shared/console"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/messenger"
	"github.com/tunnels/tunnels/shared/queue"
	"github.com/tunnels/tunnels/shared/wire"
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
		Log:       d.Log,
		Messenger: messenger.New(d.Store(), d.Config), PublicURL: d.Config.PublicURL, TelegramAPI: d.Config.TelegramAPI,
		TelegramHTTP: egress.NewClient(egress.Policy{Allow: d.Config.EgressAllow}, egress.Options{}),
	}).Handler()
}
