package app

import (
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// emailActions wires create_email_subscriber and send_email (the email
// function). Until issue 4 lands it has none, and the engine records those
// action types failed "not implemented in this deployment".
func emailActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return nil
}

// emailMessage sends a message block's email content on an email run. Until
// issue 4 lands there is none, and the engine records such steps failed.
func emailMessage(d Deps, st *store.Store) engine.ActionFunc {
	return nil
}
