// Package mail is the provider-neutral core of sending email: the message a
// send_email step (or an email run's message block) hands to a Mailer, its
// validation, how its header values are encoded, a plain-text alternative
// derived from HTML, and the classification of send failures into "retry" and
// "give up". It imports no AWS SDK; sesmail adapts it to SES v2.
package mail

import (
	"context"
	"strings"
)

// Sender is an email bot's sender connection (SPEC.md §8 catalog body
// {"from_address", "from_name", "reply_to"}).
type Sender struct {
	Address string // bare address, local@domain
	Name    string // display name, any Unicode; may be empty
	ReplyTo string // bare address; may be empty
}

// Message is one email to one recipient.
type Message struct {
	From    Sender
	To      string // bare address, local@domain
	Subject string
	HTML    string
	Text    string // plain-text alternative; derived from HTML when empty
	// ListUnsubscribe is an https URL put in a List-Unsubscribe header.
	ListUnsubscribe string
	// ListUnsubscribePost adds "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
	// (RFC 8058); it needs ListUnsubscribe.
	ListUnsubscribePost bool
	// Tags are provider message tags (SES EmailTags): names and values of
	// ASCII letters, digits, '_' and '-', at most 256 each.
	Tags map[string]string
	// IdempotencyKey (the step id) travels in the X-Tunnels-Idempotency-Key
	// header. SES has no idempotent send, so this does not dedupe by itself:
	// it lets a duplicate be traced to its step in the mailbox and in the
	// local SES store. Printable ASCII, no spaces, at most 200 characters.
	IdempotencyKey string
}

// Mailer sends a message and returns the provider's message id. Errors are
// classified: errors.Is(err, ErrTransient) means try again later (and
// ErrThrottled is a kind of it); anything else — ErrRejected, including
// ErrInvalid for a message that never left — is permanent for this message.
type Mailer interface {
	Send(ctx context.Context, m Message) (messageID string, err error)
}

// Header names this package emits.
const (
	HeaderListUnsubscribe     = "List-Unsubscribe"
	HeaderListUnsubscribePost = "List-Unsubscribe-Post"
	HeaderIdempotencyKey      = "X-Tunnels-Idempotency-Key"

	// OneClick is the only value RFC 8058 defines for List-Unsubscribe-Post.
	OneClick = "List-Unsubscribe=One-Click"
)

// Header is one extra message header, its value ready to put on the wire
// (printable ASCII).
type Header struct {
	Name, Value string
}

// Headers are the extra headers of m beyond From/To/Reply-To/Subject, in a
// fixed order. Call after Validate: values are not re-checked here.
func (m Message) Headers() []Header {
	var hs []Header
	if m.ListUnsubscribe != "" {
		hs = append(hs, Header{HeaderListUnsubscribe, "<" + m.ListUnsubscribe + ">"})
		if m.ListUnsubscribePost {
			hs = append(hs, Header{HeaderListUnsubscribePost, OneClick})
		}
	}
	if m.IdempotencyKey != "" {
		hs = append(hs, Header{HeaderIdempotencyKey, m.IdempotencyKey})
	}
	return hs
}

// PlainText is the text part to send: m.Text, or one derived from m.HTML
// when m.Text is blank, so every message is multipart/alternative with a
// readable text part (spam filters penalize HTML-only mail).
func (m Message) PlainText() string {
	if strings.TrimSpace(m.Text) != "" {
		return m.Text
	}
	return TextFromHTML(m.HTML)
}
