package app

import (
	"strings"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/mail"
	"github.com/tunnels/tunnels/shared/mail/sesmail"
	"github.com/tunnels/tunnels/shared/store"
)

// emailActions wires create_email_subscriber and send_email (the email
// function).
func emailActions(d Deps, st *store.Store) map[string]engine.ActionFunc {
	return emailSender(d, st).Actions()
}

// emailMessage sends a message block's email content on an email run.
func emailMessage(d Deps, st *store.Store) engine.ActionFunc {
	return emailSender(d, st).Message
}

// emailSender sends through SES v2. An identity given as an ARN (one shared
// with this account by sending authorization) authorizes the From address;
// a plain identity name needs nothing in the request (IAM allows
// ses:SendEmail on it only, see template.yaml).
func emailSender(d Deps, st *store.Store) *actions.Email {
	m := &sesmail.Mailer{}
	if d.SES != nil {
		m.API = d.SES // a nil *sesv2.Client in the interface would panic; sesmail reports a missing one
	}
	if strings.HasPrefix(d.Config.SESIdentity, "arn:") {
		m.FromArn = d.Config.SESIdentity
	}
	var mailer mail.Mailer = m
	return &actions.Email{Store: st, Tunnels: st, Mailer: mailer}
}
