// Package render finds, checks and substitutes the placeholders of SPEC section 5:
// {{subscriber.first_name}}, {{field.<id>}}, {{var.<key>}}, {{tunnel.id}}, each with an
// optional fallback after a bar: {{subscriber.first_name|friend}}.
//
// The scanner is a hand-written loop over strings.Index, not a regular expression, because
// Render runs once per text parameter of every step.
package render

import (
	"fmt"
	"strings"
)

// Namespaces a placeholder name may start with.
const (
	NSSubscriber = "subscriber"
	NSField      = "field"
	NSVar        = "var"
	NSTunnel     = "tunnel"
)

// SubscriberKeys are the keys of the subscriber namespace, in the order the spec lists them.
var SubscriberKeys = []string{"first_name", "last_name", "email", "phone", "id"}

// maxKey is the longest field id or variable key (SPEC section 8: [A-Za-z0-9_-]{1,64}).
const maxKey = 64

// Placeholder is one {{...}} found in a text.
type Placeholder struct {
	Name        string // namespace and key, e.g. "subscriber.first_name", "field.age"
	Namespace   string // "subscriber", "field", "var", "tunnel" (or anything else, which Check refuses)
	Key         string // "first_name", a field id, a variable key, "id"
	Fallback    string // text after the bar, trimmed
	HasFallback bool   // a bar was present (the fallback may still be empty)
	Start, End  int    // byte offsets of "{{" and just past "}}" in the text
}

// String gives the placeholder in its canonical spelling, for messages.
func (p Placeholder) String() string {
	if p.HasFallback {
		return "{{" + p.Name + "|" + p.Fallback + "}}"
	}
	return "{{" + p.Name + "}}"
}

// SyntaxError is a malformed placeholder. Offset is the byte offset in the text where the
// problem starts.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("placeholder syntax error at offset %d: %s", e.Offset, e.Msg)
}

// RefError is a well-formed placeholder that refers to something that does not exist.
type RefError struct {
	Placeholder Placeholder
	Msg         string
}

func (e *RefError) Error() string { return e.Msg }

// scanner walks a text placeholder by placeholder. Each call to next returns either a
// placeholder or a syntax error; text that is not consumed by a placeholder is literal.
type scanner struct {
	text string
	pos  int
}

// next returns the next placeholder (ok) or syntax problem (err != nil); done when the
// text holds no more "{{".
func (s *scanner) next() (p Placeholder, err *SyntaxError, done bool) {
	text := s.text
	i := strings.Index(text[s.pos:], "{{")
	if i < 0 {
		s.pos = len(text)
		return p, nil, true
	}
	start := s.pos + i
	body := start + 2
	j := strings.Index(text[body:], "}}")
	if j < 0 {
		s.pos = len(text)
		return p, &SyntaxError{Offset: start, Msg: `"{{" is not closed by "}}"`}, false
	}
	inner := text[body : body+j]
	if k := strings.IndexByte(inner, '{'); k >= 0 {
		// Resume at the inner brace: "{{a {{b.c}}" most likely lost the first "}}",
		// and the second placeholder deserves its own check.
		s.pos = body + k
		return p, &SyntaxError{Offset: body + k, Msg: fmt.Sprintf(`"{" inside the placeholder that starts at offset %d (placeholders cannot be nested)`, start)}, false
	}
	end := body + j + 2
	s.pos = end
	p, msg := parseInner(inner)
	if msg != "" {
		return Placeholder{}, &SyntaxError{Offset: start, Msg: msg}, false
	}
	p.Start, p.End = start, end
	return p, nil, false
}

// parseInner parses what is between the braces: name, optional bar and fallback.
func parseInner(inner string) (Placeholder, string) {
	var p Placeholder
	name := inner
	if bar := strings.IndexByte(inner, '|'); bar >= 0 {
		name = inner[:bar]
		p.Fallback = strings.TrimSpace(inner[bar+1:])
		p.HasFallback = true
	}
	name = strings.TrimSpace(name)
	// quoted is built only on the error paths: Render parses on every call.
	quoted := func() string { return fmt.Sprintf("%q", "{{"+inner+"}}") }
	if name == "" {
		return p, "placeholder " + quoted() + " has no name"
	}
	dot := strings.IndexByte(name, '.')
	if dot < 0 {
		return p, fmt.Sprintf("placeholder %s must be namespace.key, e.g. {{subscriber.first_name}}", quoted())
	}
	ns, key := name[:dot], name[dot+1:]
	if ns == "" || !validName(ns, len(ns)) {
		return p, fmt.Sprintf("placeholder %s: namespace %q may hold only letters, digits, '_' and '-'", quoted(), ns)
	}
	if key == "" {
		return p, fmt.Sprintf("placeholder %s has no key after %q", quoted(), ns+".")
	}
	if !validName(key, maxKey) {
		return p, fmt.Sprintf("placeholder %s: key %q must be 1 to 64 letters, digits, '_' or '-'", quoted(), key)
	}
	p.Name, p.Namespace, p.Key = name, ns, key
	return p, ""
}

// validName reports whether s is 1..max of [A-Za-z0-9_-].
func validName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
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

// Parse returns every placeholder of text in order, or the first syntax error.
func Parse(text string) ([]Placeholder, error) {
	var out []Placeholder
	s := scanner{text: text}
	for {
		p, err, done := s.next()
		if done {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
}

// Known answers whether a placeholder refers to something that exists. The catalog lookup
// is the caller's; render knows only the fixed namespaces.
type Known interface {
	Field(id string) (fieldType string, ok bool)
	Variable(key string) bool
}

// Check returns every problem of text at once: syntax errors (*SyntaxError) and
// placeholders naming an unknown namespace, subscriber key, field or variable
// (*RefError). A nil known skips the field and variable lookups.
func Check(text string, known Known) []error {
	var errs []error
	s := scanner{text: text}
	for {
		p, serr, done := s.next()
		if done {
			return errs
		}
		if serr != nil {
			errs = append(errs, serr)
			continue
		}
		if err := checkRef(p, known); err != nil {
			errs = append(errs, err)
		}
	}
}

func checkRef(p Placeholder, known Known) error {
	ref := "{{" + p.Name + "}}"
	switch p.Namespace {
	case NSSubscriber:
		for _, k := range SubscriberKeys {
			if p.Key == k {
				return nil
			}
		}
		return &RefError{p, fmt.Sprintf("unknown placeholder %s: the subscriber namespace has %s", ref, strings.Join(SubscriberKeys, ", "))}
	case NSTunnel:
		if p.Key == "id" {
			return nil
		}
		return &RefError{p, fmt.Sprintf("unknown placeholder %s: the tunnel namespace has only id", ref)}
	case NSField:
		if known == nil {
			return nil
		}
		if _, ok := known.Field(p.Key); !ok {
			return &RefError{p, fmt.Sprintf("unknown field %q in placeholder %s", p.Key, ref)}
		}
		return nil
	case NSVar:
		if known == nil || known.Variable(p.Key) {
			return nil
		}
		return &RefError{p, fmt.Sprintf("unknown variable %q in placeholder %s", p.Key, ref)}
	default:
		return &RefError{p, fmt.Sprintf("unknown placeholder %s: namespace %q is not one of subscriber, field, var, tunnel", ref, p.Namespace)}
	}
}

// Data is what placeholders are filled from.
type Data struct {
	Subscriber map[string]string // first_name, last_name, email, phone, id
	Fields     map[string]string // field id -> value already formatted as text
	Vars       map[string]string // variable key -> value
	TunnelID   string
}

// Lookup returns the value a placeholder refers to. ok is false when the data has no value
// or an empty one: the spec treats both alike (the fallback applies).
func (d Data) Lookup(p Placeholder) (string, bool) {
	var v string
	switch p.Namespace {
	case NSSubscriber:
		v = d.Subscriber[p.Key]
	case NSField:
		v = d.Fields[p.Key]
	case NSVar:
		v = d.Vars[p.Key]
	case NSTunnel:
		if p.Key == "id" {
			v = d.TunnelID
		}
	}
	return v, v != ""
}

// Value is what the placeholder renders as: its value, else its fallback, else "".
func (d Data) Value(p Placeholder) string {
	if v, ok := d.Lookup(p); ok {
		return v
	}
	return p.Fallback
}

// Render substitutes every placeholder of text. Missing data without a fallback renders
// as "". Malformed placeholders (which saving a tunnel refuses) are left as literal text.
func Render(text string, d Data) string {
	return RenderEscaped(text, d, nil)
}

// RenderEscaped is Render with escape applied to each substituted value, fallbacks
// included, and never to the literal text around them: the caller picks the escape for
// the context (JSON string, URL, header). A nil escape substitutes values as they are.
func RenderEscaped(text string, d Data, escape func(string) string) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	var b strings.Builder
	b.Grow(len(text) + 16)
	last := 0
	s := scanner{text: text}
	for {
		p, serr, done := s.next()
		if done {
			break
		}
		if serr != nil {
			continue // stays literal: last is not advanced
		}
		b.WriteString(text[last:p.Start])
		v := d.Value(p)
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
		last = p.End
	}
	b.WriteString(text[last:])
	return b.String()
}

// Single reports whether text is exactly one placeholder, with nothing around it (not even
// spaces). A JSON body string that is a single placeholder of a number or boolean field
// keeps the field's type instead of becoming a string.
func Single(text string) (Placeholder, bool) {
	if !strings.HasPrefix(text, "{{") || !strings.HasSuffix(text, "}}") {
		return Placeholder{}, false
	}
	s := scanner{text: text}
	p, err, done := s.next()
	if done || err != nil || p.Start != 0 || p.End != len(text) {
		return Placeholder{}, false
	}
	return p, true
}

// HasPlaceholders reports whether text holds at least one "{{", well-formed or not.
func HasPlaceholders(text string) bool { return strings.Contains(text, "{{") }

// Literal returns text with every well-formed placeholder removed, so a caller can check
// the characters a user typed (e.g. no line breaks in a header value) apart from the data
// that will be substituted.
func Literal(text string) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	var b strings.Builder
	last := 0
	s := scanner{text: text}
	for {
		p, serr, done := s.next()
		if done {
			break
		}
		if serr != nil {
			continue
		}
		b.WriteString(text[last:p.Start])
		last = p.End
	}
	b.WriteString(text[last:])
	return b.String()
}
