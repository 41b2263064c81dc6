package httpreq

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// MaskSecrets returns r with every value of a secret variable replaced by ***
// wherever it was rendered: in the URL (as it is, query- or path-escaped), the
// query list, the headers and the body (as it is or JSON-escaped). Everything
// else stays as it will be sent, so a preview shows what really goes out.
func MaskSecrets(r Rendered, secrets []string) Rendered {
	if len(secrets) == 0 {
		return r
	}
	forms := secretForms(secrets)
	out := r
	out.URL = replaceAll(r.URL, forms)
	if r.Query != nil {
		out.Query = make([]tunnel.NameValue, len(r.Query))
		for i, q := range r.Query {
			q.Value = replaceAll(q.Value, forms)
			out.Query[i] = q
		}
	}
	if r.Headers != nil {
		out.Headers = make([]tunnel.NameValue, len(r.Headers))
		for i, h := range r.Headers {
			h.Value = replaceAll(h.Value, forms)
			out.Headers[i] = h
		}
	}
	out.Body = replaceAll(r.Body, forms)
	return out
}

// MaskSecretText replaces every value of a secret variable in s (a response
// body that echoes one, a log line) by ***.
func MaskSecretText(s string, secrets []string) string {
	if len(secrets) == 0 {
		return s
	}
	return replaceAll(s, secretForms(secrets))
}

// secretForms lists each secret as it may appear once rendered, longest first
// so a longer secret is not half-masked by a shorter one inside it.
func secretForms(secrets []string) []string {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		if b, err := json.Marshal(s); err == nil {
			add(strings.Trim(string(b), `"`)) // with HTML escapes (\u0026)
		}
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if enc.Encode(s) == nil {
			add(strings.Trim(strings.TrimSpace(buf.String()), `"`))
		}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}

func replaceAll(s string, forms []string) string {
	for _, f := range forms {
		if strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, masked)
		}
	}
	return s
}
