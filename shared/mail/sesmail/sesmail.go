// Package sesmail sends mail.Message through Amazon SES v2 (aws-sdk-go-v2
// sesv2), and is the only place the email function touches the SDK.
//
// Simple content, not Raw. SES v2 Simple content carries custom Headers
// (types.MessageHeader): that is how List-Unsubscribe and
// List-Unsubscribe-Post reach the message, and SES itself builds the MIME
// (multipart/alternative, body transfer encoding, Message-ID, Date, DKIM).
// Raw content would work on SES too, but the local emulator
// (aws-ses-v2-local 2.10.2) parses a raw message with mailparser and stores
// only from, to, reply-to, subject and bodies: the headers would be sent and
// then be invisible to every local test. With Simple content the emulator
// stores the headers as given (GET /store "headers"), so what the tests check
// is what SES receives.
//
// Encoding: SES wants FromEmailAddress and Subject as 7-bit ASCII with RFC
// 2047 encoded words for anything else, so both are encoded here
// (mail.Sender.FromHeader, mail.Message.EncodedSubject); ASCII stays as it
// is. Bodies go as UTF-8 with Charset "UTF-8". The emulator stores from and
// subject exactly as sent, encoded words included.
package sesmail

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/tunnels/tunnels/shared/mail"
)

// SESAPI is the part of *sesv2.Client that Mailer uses.
type SESAPI interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// Mailer is a mail.Mailer over SES v2. It holds no state of its own: safe
// for concurrent use when API is (an *sesv2.Client is).
type Mailer struct {
	API SESAPI
	// FromArn, if set, is the ARN of the verified identity that authorizes
	// the From address (FromEmailAddressIdentityArn, for sending
	// authorization across accounts); empty uses the caller's own identity.
	FromArn string
	// ConfigurationSet, if set, names the SES configuration set (event
	// publishing, dedicated IPs, suppression) to send with.
	ConfigurationSet string
}

var _ mail.Mailer = (*Mailer)(nil)

// Send validates m and sends it, returning SES's MessageId. A message that
// does not validate is refused before any call (errors.Is mail.ErrInvalid).
// Call errors are classified (see classify): errors.Is mail.ErrTransient
// (and mail.ErrThrottled) to retry later, mail.ErrRejected to give up.
func (s *Mailer) Send(ctx context.Context, m mail.Message) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	if s.API == nil {
		// A wiring bug: transient, so the step lands in the DLQ and can be
		// re-driven once fixed instead of being failed for good.
		return "", mail.Transient("", errors.New("sesmail: Mailer has no SES client"))
	}
	out, err := s.API.SendEmail(ctx, s.input(m))
	if err != nil {
		return "", classify(err)
	}
	// SES always returns an id with a 200; if one ever did not, the mail was
	// still accepted, and retrying would send it twice.
	return aws.ToString(out.MessageId), nil
}

// input is the SendEmail request for m, which must have passed Validate.
func (s *Mailer) input(m mail.Message) *sesv2.SendEmailInput {
	utf8 := aws.String("UTF-8")
	body := &types.Body{Html: &types.Content{Data: aws.String(m.HTML), Charset: utf8}}
	if text := m.PlainText(); text != "" {
		body.Text = &types.Content{Data: aws.String(text), Charset: utf8}
	}
	msg := &types.Message{
		Subject: &types.Content{Data: aws.String(m.EncodedSubject()), Charset: utf8},
		Body:    body,
	}
	for _, h := range m.Headers() {
		msg.Headers = append(msg.Headers, types.MessageHeader{Name: aws.String(h.Name), Value: aws.String(h.Value)})
	}
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(m.From.FromHeader()),
		Destination:      &types.Destination{ToAddresses: []string{m.To}},
		Content:          &types.EmailContent{Simple: msg},
	}
	if m.From.ReplyTo != "" {
		in.ReplyToAddresses = []string{m.From.ReplyTo}
	}
	if s.FromArn != "" {
		in.FromEmailAddressIdentityArn = aws.String(s.FromArn)
	}
	if s.ConfigurationSet != "" {
		in.ConfigurationSetName = aws.String(s.ConfigurationSet)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
		in.EmailTags = append(in.EmailTags, types.MessageTag{Name: aws.String(k), Value: aws.String(m.Tags[k])})
	}
	return in
}
