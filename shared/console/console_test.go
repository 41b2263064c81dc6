package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

func TestConsoleServing(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	c.Index(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Security-Policy") != CSP || !strings.Contains(res.Header.Get("Cache-Control"), "no-cache") {
		t.Fatalf("index: %d %v", res.StatusCode, res.Header)
	}
	if strings.Contains(CSP, "unsafe") || !strings.Contains(CSP, "script-src 'self'") {
		t.Fatalf("CSP allows too much: %s", CSP)
	}
	// No inline script or style, and assets by their hashed names.
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]+</script>|<style|style=|\son[a-z]+=`).Match(body) {
		t.Fatalf("index has inline code:\n%s", body)
	}
	for _, name := range []string{"app.js", "app.css"} {
		p := c.Path(name)
		if !regexp.MustCompile(`^/console/app\.[0-9a-f]{12}\.(js|css)$`).MatchString(p) || !strings.Contains(string(body), p) {
			t.Fatalf("%s served as %q; index:\n%s", name, p, body)
		}
		rec := httptest.NewRecorder()
		c.Asset(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != 200 || rec.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" || rec.Body.Len() == 0 {
			t.Fatalf("%s: %d %v", p, rec.Code, rec.Header())
		}
	}
	rec = httptest.NewRecorder()
	c.Asset(rec, httptest.NewRequest(http.MethodGet, "/console/app.js", nil))
	if rec.Code != 404 {
		t.Fatalf("an unhashed name answered %d", rec.Code)
	}
	// The key is never put in a cookie or a URL by the page.
	js, _ := files.ReadFile("web/app.js")
	if strings.Contains(string(js), "document.cookie") || strings.Contains(string(js), "localStorage") || !strings.Contains(string(js), "sessionStorage") {
		t.Fatal("the API key must live in sessionStorage only")
	}
}

// TestScriptParses runs Node's parser over the script (Node 20 is on every
// machine that runs make test: the emulators need it).
func TestScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	if out, err := exec.Command(node, "--check", "web/app.js").CombinedOutput(); err != nil {
		t.Fatalf("app.js does not parse: %v\n%s", err, out)
	}
}
