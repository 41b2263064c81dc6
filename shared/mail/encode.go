package mail

import (
	"html"
	"mime"
	"net/mail"
)

// FromHeader is the sender as a From header value: the bare address when
// there is no name, else `Name <address>` with the name quoted when it is
// ASCII with specials (`"Acme, Inc." <a@x.com>`) and RFC 2047 Q-encoded when
// it is not ASCII (`=?utf-8?q?Ann_=C3=A9?= <a@x.com>`), as SES requires for
// FromEmailAddress.
func (s Sender) FromHeader() string {
	if s.Name == "" {
		return s.Address
	}
	return (&mail.Address{Name: s.Name, Address: s.Address}).String()
}

// EncodedSubject is the subject as 7-bit ASCII: unchanged when it is
// printable ASCII, else RFC 2047 encoded words in UTF-8, whichever of the Q
// (readable for mostly-Latin text) and B (compact for Cyrillic and CJK)
// encodings is shorter. SES v2 documents that Simple content's Subject must be
// 7-bit ASCII with encoded words for anything else.
func (m Message) EncodedSubject() string { return encodeWord(m.Subject) }

func encodeWord(s string) string {
	q := mime.QEncoding.Encode("UTF-8", s)
	if q == s {
		return s
	}
	if b := mime.BEncoding.Encode("UTF-8", s); len(b) < len(q) {
		return b
	}
	return q
}

// EscapeHTML escapes a value for substitution into HTML text or a quoted
// attribute (<, >, &, ' and "), for render.RenderEscaped: subscriber data
// placed into an email's html must not become markup.
func EscapeHTML(s string) string { return html.EscapeString(s) }
