package httpreq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/render"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// Content types set when no header names one.
const (
	ContentTypeJSON = "application/json"
	ContentTypeText = "text/plain; charset=utf-8"
)

// Render fills the definition's placeholders from data, escaping each value for where
// it lands, so subscriber data can change values but never the shape of the request:
//
//   - url: scheme and host must be literal (the destination is fixed when the tunnel is
//     saved). A value in the path is path-escaped ("/" becomes %2F, so it stays inside
//     its segment), in the url's own query it is query-escaped ("&", "=", "#" are
//     encoded). The rendered path may not hold a "." or ".." segment. A fragment is
//     dropped: it is never sent. Then each Query pair is appended, name as written,
//     value rendered, both query-escaped.
//   - headers: values rendered as they are; a value that then holds a line break or
//     another control character (tab excepted) is an error naming the header, and
//     nothing is sent. Spaces around a value are trimmed, as HTTP does.
//   - body: a JSON string is a text body, rendered as it is. Any other JSON value is
//     walked: object keys, numbers, booleans and nulls are kept as written; every string
//     is rendered and JSON-encoded again, so substituted quotes, backslashes and line
//     breaks are escaped. A string that is exactly one {{field.<id>}} of a number or
//     boolean field (fieldTypes: field id -> type) becomes a JSON number or boolean: the
//     field's value, else the placeholder's fallback read as that type, else null.
//
// Content-Type is added for a body unless a header sets it: application/json or
// text/plain; charset=utf-8. Errors wrap ErrInvalid and name the part at fault.
func Render(d Definition, data render.Data, fieldTypes map[string]string) (Rendered, error) {
	var r Rendered
	switch d.Method {
	case "GET", "POST", "PUT":
		r.Method = d.Method
	default:
		return Rendered{}, invalid("method must be GET, POST or PUT, not %q", d.Method)
	}

	u, query, err := renderURL(d.URL, d.Query, data)
	if err != nil {
		return Rendered{}, err
	}
	r.URL, r.Query = u, query

	r.Headers = make([]tunnel.NameValue, 0, len(d.Headers)+1)
	for _, h := range d.Headers {
		v, err := renderHeader(h, data)
		if err != nil {
			return Rendered{}, err
		}
		r.Headers = append(r.Headers, tunnel.NameValue{Name: h.Name, Value: v})
	}

	body := bytes.TrimSpace(d.Body)
	if len(body) == 0 || string(body) == "null" {
		return r, nil
	}
	if d.Method == "GET" {
		return Rendered{}, invalid("body: a GET request has no body")
	}
	if !json.Valid(body) {
		return Rendered{}, invalid("body: not a JSON value, nor a JSON string for a text body")
	}
	contentType := ContentTypeJSON
	if body[0] == '"' {
		var text string
		if err := json.Unmarshal(body, &text); err != nil {
			return Rendered{}, invalid("body: %v", err)
		}
		r.Body = render.Render(text, data)
		contentType = ContentTypeText
	} else {
		out, err := renderJSON(body, data, fieldTypes)
		if err != nil {
			return Rendered{}, err
		}
		r.Body, r.BodyIsJSON = out, true
	}
	if !hasHeader(r.Headers, "Content-Type") {
		r.Headers = append(r.Headers, tunnel.NameValue{Name: "Content-Type", Value: contentType})
	}
	return r, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func hasHeader(hs []tunnel.NameValue, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// renderURL renders the url template and appends the query list.
func renderURL(tmpl string, query []tunnel.NameValue, data render.Data) (string, []tunnel.NameValue, error) {
	tmpl = strings.TrimSpace(tmpl)
	lower := strings.ToLower(tmpl)
	var schemeLen int
	switch {
	case strings.HasPrefix(lower, "https://"):
		schemeLen = len("https://")
	case strings.HasPrefix(lower, "http://"):
		schemeLen = len("http://")
	default:
		return "", nil, invalid("url must start with a literal http:// or https://")
	}
	ps, err := render.Parse(tmpl)
	if err != nil {
		return "", nil, invalid("url: %v", err)
	}
	// Delimiters count only outside placeholders: a fallback may hold "/", "?" or "#".
	authEnd := indexOutside(tmpl, schemeLen, "/?#", ps)
	for _, p := range ps {
		if p.Start < authEnd {
			return "", nil, invalid("url: the host must be literal; placeholders may only follow it")
		}
	}
	authority := tmpl[schemeLen:authEnd]
	if authority == "" {
		return "", nil, invalid("url has no host")
	}
	queryStart := indexOutside(tmpl, authEnd, "?#", ps)
	fragStart := indexOutside(tmpl, queryStart, "#", ps)

	path := render.RenderEscaped(tmpl[authEnd:queryStart], data, url.PathEscape)
	for _, seg := range strings.Split(path, "/") {
		if s, err := url.PathUnescape(seg); err == nil && (s == "." || s == "..") {
			return "", nil, invalid("url: the rendered path holds a %q segment", s)
		}
	}
	var q []string
	if queryStart < fragStart { // tmpl[queryStart] is '?'
		if own := render.RenderEscaped(tmpl[queryStart+1:fragStart], data, url.QueryEscape); own != "" {
			q = append(q, own)
		}
	}
	rendered := make([]tunnel.NameValue, 0, len(query))
	for _, nv := range query {
		if nv.Name == "" {
			return "", nil, invalid("query: a parameter has no name")
		}
		v := render.Render(nv.Value, data)
		rendered = append(rendered, tunnel.NameValue{Name: nv.Name, Value: v})
		q = append(q, url.QueryEscape(nv.Name)+"="+url.QueryEscape(v))
	}

	out := tmpl[:authEnd] + path
	if len(q) > 0 {
		out += "?" + strings.Join(q, "&")
	}
	u, err := url.Parse(out)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the url, which may hold secrets
		}
		return "", nil, invalid("url is not valid once rendered: %v", err)
	}
	host := authority[strings.LastIndexByte(authority, '@')+1:]
	if u.Host != host || (u.Scheme != "http" && u.Scheme != "https") {
		return "", nil, invalid("url: the rendered url does not keep the literal scheme and host")
	}
	return out, rendered, nil
}

// indexOutside returns the index of the first byte of s at or after from that is one of
// chars and lies outside every placeholder, or len(s).
func indexOutside(s string, from int, chars string, ps []render.Placeholder) int {
	for i := from; i < len(s); i++ {
		if strings.IndexByte(chars, s[i]) < 0 {
			continue
		}
		inside := false
		for _, p := range ps {
			if i >= p.Start && i < p.End {
				inside = true
				break
			}
		}
		if !inside {
			return i
		}
	}
	return len(s)
}

// renderHeader renders a header value and refuses what would split or corrupt it.
func renderHeader(h tunnel.NameValue, data render.Data) (string, error) {
	if !tunnel.ValidHeaderName(h.Name) {
		return "", invalid("header %q: not a valid header name", h.Name)
	}
	v := render.Render(h.Value, data)
	if err := checkHeader(h.Name, v); err != nil {
		return "", err
	}
	return strings.Trim(v, " \t"), nil
}

// checkHeader refuses an invalid name, and a value with a line break (which would let
// data add headers or a body) or another control character (tab excepted).
func checkHeader(name, value string) error {
	if !tunnel.ValidHeaderName(name) {
		return invalid("header %q: not a valid header name", name)
	}
	if strings.ContainsAny(value, "\r\n") {
		return invalid("header %s: value contains a line break", name)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return invalid("header %s: value contains a control character", name)
		}
	}
	return nil
}

// renderJSON rewrites a JSON body with its strings rendered.
func renderJSON(body []byte, data render.Data, fieldTypes map[string]string) (string, error) {
	rw := rewriter{
		leaf: func(b *bytes.Buffer, s string) error {
			return renderLeaf(b, s, data, fieldTypes)
		},
	}
	return rw.run(body)
}

// renderLeaf writes one rendered string leaf: a typed value for a single number or
// boolean field placeholder, else the rendered text as a JSON string.
func renderLeaf(b *bytes.Buffer, s string, data render.Data, fieldTypes map[string]string) error {
	if p, ok := render.Single(s); ok && p.Namespace == render.NSField {
		if typ := fieldTypes[p.Key]; typ == fields.Number || typ == fields.Boolean {
			v, present := data.Lookup(p)
			what := "the value"
			if !present {
				if p.Fallback == "" {
					b.WriteString("null")
					return nil
				}
				v, what = p.Fallback, "the fallback"
			}
			conv, err := fields.Convert(typ, v)
			if err != nil {
				return invalid("body: %s of %s: %v", what, p, err)
			}
			enc, err := json.Marshal(conv)
			if err != nil {
				return invalid("body: %s of %s: %v", what, p, err)
			}
			b.Write(enc)
			return nil
		}
	}
	return writeString(b, render.Render(s, data))
}

// writeString writes s as a JSON string. HTML characters are left alone (json.Marshal
// would turn & into \u0026: valid, but not what the user wrote).
func writeString(b *bytes.Buffer, s string) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode ends with a newline
	return nil
}

// rewriter copies a JSON document compactly, in its own key order, with string leaves
// replaced by leaf and, when secret says so, an object member's whole value replaced by
// a masked string.
type rewriter struct {
	leaf   func(b *bytes.Buffer, s string) error
	secret func(key string) bool
}

func (rw rewriter) run(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var b bytes.Buffer
	tok, err := dec.Token()
	if err != nil {
		return "", invalid("body: %v", err)
	}
	if err := rw.value(dec, &b, tok); err != nil {
		return "", err
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", invalid("body: more than one JSON value")
	}
	return b.String(), nil
}

func (rw rewriter) value(dec *json.Decoder, b *bytes.Buffer, tok json.Token) error {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			b.WriteByte('{')
			for first := true; dec.More(); first = false {
				kt, err := dec.Token()
				if err != nil {
					return invalid("body: %v", err)
				}
				key, _ := kt.(string)
				if !first {
					b.WriteByte(',')
				}
				if err := writeString(b, key); err != nil {
					return invalid("body: %v", err)
				}
				b.WriteByte(':')
				vt, err := dec.Token()
				if err != nil {
					return invalid("body: %v", err)
				}
				if rw.secret != nil && rw.secret(key) {
					if err := skip(dec, vt); err != nil {
						return err
					}
					b.WriteString(`"` + masked + `"`)
					continue
				}
				if err := rw.value(dec, b, vt); err != nil {
					return err
				}
			}
			b.WriteByte('}')
		case '[':
			b.WriteByte('[')
			for first := true; dec.More(); first = false {
				if !first {
					b.WriteByte(',')
				}
				vt, err := dec.Token()
				if err != nil {
					return invalid("body: %v", err)
				}
				if err := rw.value(dec, b, vt); err != nil {
					return err
				}
			}
			b.WriteByte(']')
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return invalid("body: %v", err)
		}
	case string:
		if rw.leaf != nil {
			return rw.leaf(b, t)
		}
		return writeString(b, t)
	case json.Number:
		b.WriteString(string(t))
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case nil:
		b.WriteString("null")
	}
	return nil
}

// skip consumes the rest of the value that starts with tok.
func skip(dec *json.Decoder, tok json.Token) error {
	if d, ok := tok.(json.Delim); !ok || (d != '{' && d != '[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return invalid("body: %v", err)
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}
