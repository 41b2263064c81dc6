package httpreq

import (
	"net/url"
	"strings"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// masked replaces a secret value.
const masked = "***"

// secretWords are substrings of names (any case) whose values are treated as secrets.
// Over-masking a harmless "monkey" parameter costs nothing; leaking a token does.
var secretWords = []string{
	"token", "key", "secret", "password", "passwd", "pwd", "auth", "signature",
	"session", "cookie", "credential", "private",
}

// LooksSecret reports whether a header, query parameter or JSON key named name
// probably carries a secret.
func LooksSecret(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Mask returns a copy of r safe to log, store in a journey entry or show in a preview:
//   - the URL loses its user info and fragment, and query values whose names look
//     secret (LooksSecret) become ***; the Query list likewise;
//   - header values whose names look secret become *** (Authorization and
//     Proxy-Authorization keep their scheme: "Bearer ***"; Cookie is always masked);
//   - in a JSON body, the value of every object member whose key looks secret becomes
//     "***", whatever it was. A text body is kept as it is.
//
// Non-secret values stay: they are what a user needs to see to debug a request.
func Mask(r Rendered) Rendered {
	out := r
	out.URL = maskURL(r.URL)
	if r.Query != nil {
		out.Query = make([]tunnel.NameValue, len(r.Query))
		for i, q := range r.Query {
			if LooksSecret(q.Name) && q.Value != "" {
				q.Value = masked
			}
			out.Query[i] = q
		}
	}
	out.Headers = MaskHeaders(r.Headers)
	if r.BodyIsJSON {
		rw := rewriter{secret: LooksSecret}
		if b, err := rw.run([]byte(r.Body)); err == nil {
			out.Body = b
		} else {
			out.Body = masked // not JSON after all: show nothing rather than risk a secret
		}
	}
	return out
}

// MaskHeaders returns a copy of hs with secret-looking values replaced, as Mask does.
// Use it on response headers too (Set-Cookie) before storing them.
func MaskHeaders(hs []tunnel.NameValue) []tunnel.NameValue {
	if hs == nil {
		return nil
	}
	out := make([]tunnel.NameValue, len(hs))
	for i, h := range hs {
		if h.Value != "" && LooksSecret(h.Name) {
			h.Value = maskHeaderValue(h.Name, h.Value)
		}
		out[i] = h
	}
	return out
}

// maskHeaderValue keeps the scheme of an Authorization value ("Bearer", "Basic"): it
// tells a reader which kind of credential went out without showing it.
func maskHeaderValue(name, value string) string {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization":
		if scheme, _, ok := strings.Cut(strings.TrimSpace(value), " "); ok && tunnel.ValidHeaderName(scheme) {
			return scheme + " " + masked
		}
	}
	return masked
}

// maskURL removes user info and the fragment and masks secret query values, keeping the
// order and spelling of everything else.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	u.User = nil
	u.Fragment, u.RawFragment = "", ""
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, part := range parts {
			name, value, _ := strings.Cut(part, "=")
			n, err := url.QueryUnescape(name)
			if err != nil {
				n = name
			}
			if value != "" && LooksSecret(n) {
				parts[i] = name + "=" + masked
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.String()
}
