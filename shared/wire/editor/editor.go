// Package editor wires the editor function: saving a tunnel and trying an
// external request (api.Server.EditorHandler), the routes that validate a
// whole funnel or call a user's server. It links the tunnel validator and the
// external-request client, which the API function does not.
package editor

import (
	// The runtime image has no /usr/share/zoneinfo, and a delay window names
	// the time zone a saved tunnel is checked against: embed the zone names.
	_ "github.com/tunnels/tunnels/shared/schedule/zonenames"

	"net/http"

	"github.com/tunnels/tunnels/shared/api"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/wire"
	"github.com/tunnels/tunnels/shared/wire/webhook"
)

// Handler builds the editor's HTTP handler.
func Handler(d wire.Deps) http.Handler {
	return (&api.Server{
		Store: d.Store(), Egress: egress.Policy{Allow: d.Config.EgressAllow},
		External: webhook.ExternalClient(d.Config), Log: d.Log,
	}).EditorHandler()
}
