// Package console serves the browser console: a client of the /v1 API that a
// marketer opens at the API's own address (GET /, no key: the user gives it
// to the page, which keeps it in sessionStorage). Assets are embedded and
// served under names that carry their content hash, with a year's cache;
// index.html is never cached, so a deploy is seen on the next load. A strict
// Content-Security-Policy allows scripts, styles and requests from the same
// origin only, and no inline script.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed web
var files embed.FS

// CSP is the console's Content-Security-Policy.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// AssetPrefix is where hashed assets are served.
const AssetPrefix = "/console/"

type asset struct {
	body        []byte
	contentType string
}

// Console is the handler of GET / and the assets. Build it with New.
type Console struct {
	index  []byte
	assets map[string]asset // by hashed name
	names  map[string]string
}

// New reads the embedded files once.
func New() (*Console, error) {
	c := &Console{assets: map[string]asset{}, names: map[string]string{}}
	entries, err := fs.ReadDir(files, "web")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Name() == "index.html" {
			continue
		}
		b, err := files.ReadFile("web/" + e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(e.Name())
		hashed := strings.TrimSuffix(e.Name(), ext) + "." + hex.EncodeToString(sum[:6]) + ext
		c.names[e.Name()] = AssetPrefix + hashed
		c.assets[hashed] = asset{body: b, contentType: mime.TypeByExtension(ext)}
	}
	raw, err := files.ReadFile("web/index.html")
	if err != nil {
		return nil, err
	}
	// index.html names its assets as {{asset "name"}}. They are put in by
	// plain replacement, not html/template: any use of text/template's
	// reflection makes the linker keep every exported method of every
	// reachable type, which links the whole DynamoDB client (its 60-odd
	// operations) into the API function and doubles its cold start.
	pairs := []string{}
	for name, p := range c.names {
		pairs = append(pairs, `{{asset "`+name+`"}}`, p)
	}
	index := strings.NewReplacer(pairs...).Replace(string(raw))
	if i := strings.Index(index, "{{"); i >= 0 {
		end := min(len(index), i+40)
		return nil, fmt.Errorf("console: index.html: unknown placeholder at byte %d: %q", i, index[i:end])
	}
	c.index = []byte(index)
	return c, nil
}

func secure(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// Index serves index.html, never cached.
func (c *Console) Index(w http.ResponseWriter, r *http.Request) {
	secure(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
	_, _ = w.Write(c.index)
}

// Asset serves a hashed asset, cached for a year (its name changes with it).
func (c *Console) Asset(w http.ResponseWriter, r *http.Request) {
	a, ok := c.assets[strings.TrimPrefix(r.URL.Path, AssetPrefix)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	secure(w.Header())
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(a.body)
}

// Path is the hashed path of an embedded asset ("app.js"), "" if none.
func (c *Console) Path(name string) string { return c.names[name] }
