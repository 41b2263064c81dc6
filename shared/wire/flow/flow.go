// Package flow wires the flow function: message, delay, START and STOP
// steps, with the messenger (connector and Telegram) of chat messages.
package flow

import (
	// The runtime image has no /usr/share/zoneinfo, and delay windows are in
	// the subscriber's or a named time zone (engine): embed the zone database.
	_ "github.com/tunnels/tunnels/shared/schedule/zonedata"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/messenger"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/wire"
)

// Handler builds the flow function's SQS batch handler.
func Handler(d wire.Deps) *stepbatch.Handler {
	st := d.Store()
	return wire.StepHandler(d, st, engine.KindFlow, wire.Kind{Messenger: messenger.New(st, d.Config)})
}
