package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The two handlers split the routes between them: each answers the other's
// with the API's 404 problem, and its own through the same key check.
func TestHandlersSplitTheRoutes(t *testing.T) {
	api, editor := (&Server{}).Handler(), (&Server{}).EditorHandler()
	call := func(h http.Handler, method, path string) (int, problem) {
		t.Helper()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(`{}`)))
		var p problem
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Fatalf("%s %s: Content-Type %q, want a problem", method, path, ct)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return w.Code, p
	}
	for _, r := range EditorRoutes() {
		method, path, _ := strings.Cut(r, " ")
		path = strings.ReplaceAll(path, "{id}", "welcome")
		if code, p := call(api, method, path); code != http.StatusNotFound || p.Code != "not_found" {
			t.Errorf("the api handler answers %s %s: %d %s", method, path, code, p.Code)
		}
		if code, p := call(editor, method, path); code != http.StatusUnauthorized || p.Code != "unauthorized" {
			t.Errorf("the editor, without a key, answers %s %s: %d %s", method, path, code, p.Code)
		}
	}
	for _, path := range []string{"/v1/tags", "/v1/health", "/v1/openapi.json", "/"} {
		if code, p := call(editor, http.MethodGet, path); code != http.StatusNotFound || p.Code != "not_found" {
			t.Errorf("the editor answers GET %s: %d %s", path, code, p.Code)
		}
	}
	if code, p := call(api, http.MethodGet, "/v1/tunnels/welcome"); code != http.StatusUnauthorized || p.Code != "unauthorized" {
		t.Errorf("the api handler, without a key, answers GET /v1/tunnels/welcome: %d %s", code, p.Code)
	}
}
