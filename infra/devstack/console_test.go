package devstack_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// Issue 10 (first part): the console is served by the API function, without a key.
func TestConsoleIsServed(t *testing.T) {
	needSystem(t)
	res, err := http.Get(sys.APIURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(res.Header.Get("Cache-Control"), "no-cache") {
		t.Fatalf("GET /: %d %v", res.StatusCode, res.Header)
	}
	js := regexp.MustCompile(`/console/app\.[0-9a-f]{12}\.js`).FindString(string(body))
	if js == "" {
		t.Fatalf("no hashed script in the page:\n%s", body)
	}
	res, err = http.Get(sys.APIURL + js)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Cache-Control"), "immutable") || !strings.Contains(string(script), "/v1/tunnels") {
		t.Fatalf("GET %s: %d %v", js, res.StatusCode, res.Header)
	}
	// Unknown paths still answer problem+json.
	res, err = http.Get(sys.APIURL + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET /nothing-here: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
