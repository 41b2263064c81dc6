// Package email wires the email function: create_email_subscriber,
// send_email and the email content of message blocks, sent through SES v2.
// It is the only function that makes an SES client.
package email

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/mail/sesmail"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/wire"
)

// Handler builds the email function's SQS batch handler.
func Handler(d wire.Deps) *stepbatch.Handler {
	st := d.Store()
	e := &actions.Email{Store: st, Tunnels: st, Mailer: Mailer(d)}
	return wire.StepHandler(d, st, engine.KindEmail, wire.Kind{Actions: e.Actions(), EmailMessage: e.Message})
}

// Mailer sends through SES v2. An identity given as an ARN (one shared with
// this account by sending authorization) authorizes the From address; a
// plain identity name needs nothing in the request (IAM allows ses:SendEmail
// on it only, see template.yaml).
func Mailer(d wire.Deps) *sesmail.Mailer {
	m := &sesmail.Mailer{API: sesv2.NewFromConfig(d.AWS)}
	if strings.HasPrefix(d.Config.SESIdentity, "arn:") {
		m.FromArn = d.Config.SESIdentity
	}
	return m
}
