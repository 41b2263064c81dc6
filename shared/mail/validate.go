package mail

import (
	"errors"
	"maps"
	"net/mail"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits. A header line may be 998 octets (RFC 5322 §2.1.1); SES caps a
// custom header's name plus value at 996 characters.
const (
	maxLine        = 998
	maxHeader      = 996
	maxAddress     = 254 // RFC 5321 forward-path minus the angle brackets
	maxTag         = 256
	maxIdempotency = 200
)

// FieldError is one problem with one field of a Message. It matches
// ErrInvalid and ErrRejected with errors.Is: a message that does not validate
// is never sent and never will be.
type FieldError struct {
	Field   string // "from.address", "from.name", "from.reply_to", "to", "subject", "html", "text", "list_unsubscribe", "tags", "idempotency_key"
	Problem string
}

func (e *FieldError) Error() string { return "mail: " + e.Field + ": " + e.Problem }

// Is makes a FieldError match ErrInvalid and ErrRejected.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid || target == ErrRejected }

// Validate checks m before anything is sent: every address is one bare
// address (no display name, comment, group or list: a display name belongs
// in From.Name only), no line break or other control character in any header
// value (header injection), UTF-8 text, a subject that fits one header line
// once encoded, a non-blank html body, an https List-Unsubscribe URL, and
// SES-shaped tags. It returns every problem found, joined; errors.As with
// *FieldError gives the first.
func (m Message) Validate() error {
	var errs []error
	add := func(field, problem string) { errs = append(errs, &FieldError{field, problem}) }

	if p := addressProblem(m.From.Address); p != "" {
		add("from.address", p)
	}
	if m.From.ReplyTo != "" {
		if p := addressProblem(m.From.ReplyTo); p != "" {
			add("from.reply_to", p)
		}
	}
	if p := addressProblem(m.To); p != "" {
		add("to", p)
	}
	if p := headerTextProblem(m.From.Name); p != "" {
		add("from.name", p)
	} else if m.From.Name != "" && strings.TrimSpace(m.From.Name) == "" {
		add("from.name", "is blank")
	} else if len("From: ")+len(m.From.FromHeader()) > maxLine {
		add("from.name", "too long for a header line once encoded")
	}

	switch p := headerTextProblem(m.Subject); {
	case p != "":
		add("subject", p)
	case strings.TrimSpace(m.Subject) == "":
		add("subject", "is required")
	case len("Subject: ")+len(m.EncodedSubject()) > maxLine:
		add("subject", "too long: over 998 characters once encoded")
	}

	switch {
	case !utf8.ValidString(m.HTML):
		add("html", "is not valid UTF-8")
	case strings.TrimSpace(m.HTML) == "":
		add("html", "is required")
	}
	if !utf8.ValidString(m.Text) {
		add("text", "is not valid UTF-8")
	}

	if m.ListUnsubscribe != "" {
		if p := unsubscribeProblem(m.ListUnsubscribe); p != "" {
			add("list_unsubscribe", p)
		}
	} else if m.ListUnsubscribePost {
		add("list_unsubscribe", "one-click unsubscribe (List-Unsubscribe-Post) needs an https List-Unsubscribe URL")
	}

	for _, name := range slices.Sorted(maps.Keys(m.Tags)) {
		value := m.Tags[name]
		if !tagToken(name) {
			add("tags", "name "+quote(name)+" must be 1-256 ASCII letters, digits, '_' or '-'")
		} else if !tagToken(value) {
			add("tags", "value of "+quote(name)+" must be 1-256 ASCII letters, digits, '_' or '-'")
		}
	}

	if k := m.IdempotencyKey; k != "" {
		if hasLineBreak(k) {
			add("idempotency_key", "contains a line break (header injection)")
		} else if len(k) > maxIdempotency || !printableASCII(k) {
			add("idempotency_key", "must be at most 200 printable ASCII characters without spaces")
		}
	}
	return errors.Join(errs...)
}

// addressProblem says what is wrong with s as a bare address, or "".
// net/mail does the RFC 5322 parse; requiring its result to be exactly the
// input refuses names, comments, angle brackets, quoted local parts and
// anything it would normalize.
func addressProblem(s string) string {
	switch {
	case s == "":
		return "is required"
	case hasLineBreak(s):
		return "contains a line break (header injection)"
	}
	a, err := mail.ParseAddress(s)
	switch {
	case err == nil && (a.Name != "" || a.Address != s):
		return "must be a single bare address like local@example.com, without display name, comment or brackets"
	case !printableASCII(s):
		// SES does not do SMTPUTF8: the local part must be ASCII and an
		// internationalized domain must be given in punycode.
		return "must be printable ASCII without spaces (use punycode for an internationalized domain)"
	case len(s) > maxAddress:
		return "is longer than 254 characters"
	case err != nil:
		return "is not an email address"
	}
	if !hostname(s[strings.LastIndexByte(s, '@')+1:]) {
		return "must have a domain name like example.com"
	}
	return ""
}

// hostname: dot-separated labels of letters, digits and inner hyphens, at
// least two of them. It refuses address literals ([192.0.2.1]) and bare hosts.
func hostname(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// headerTextProblem checks text that goes into a header (subject, display
// name): valid UTF-8, no line break, no other control character.
func headerTextProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case hasLineBreak(s):
		return "contains a line break (header injection)"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "contains a control character"
		}
	}
	return ""
}

func unsubscribeProblem(s string) string {
	if hasLineBreak(s) {
		return "contains a line break (header injection)"
	}
	// The URL goes between angle brackets in a comma-separated list, so
	// brackets, commas and spaces would change the header's meaning.
	if !printableASCII(s) || strings.ContainsAny(s, "<>,") {
		return "must be a URL of printable ASCII without spaces, '<', '>' or ','"
	}
	if len(HeaderListUnsubscribe)+len(s)+2 > maxHeader {
		return "is too long for a header"
	}
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.Opaque != "" {
		return "must be an absolute https URL"
	}
	if u.User != nil {
		return "must not carry credentials"
	}
	return ""
}

func hasLineBreak(s string) bool { return strings.ContainsAny(s, "\r\n") }

// printableASCII: every byte is a visible ASCII character (0x21-0x7e).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func tagToken(s string) bool {
	if s == "" || len(s) > maxTag {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// quote shows a possibly hostile value in an error message safely: escaped,
// and cut short.
func quote(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "..."
	}
	return strconv.Quote(s)
}
