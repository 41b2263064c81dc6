package localstack

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServePattern(t *testing.T) {
	for _, c := range []struct {
		e    HTTPEvent
		want string
	}{
		{HTTPEvent{Method: "ANY", Path: "/"}, "/{$}"},
		{HTTPEvent{Method: "ANY", Path: "/{proxy+}"}, "/{proxy...}"},
		{HTTPEvent{Method: "PUT", Path: "/v1/tunnels/{id}"}, "PUT /v1/tunnels/{id}"},
		{HTTPEvent{Method: "POST", Path: "/v1/external-requests/{proxy+}"}, "POST /v1/external-requests/{proxy...}"},
		{HTTPEvent{Method: "ANY", Path: "$default"}, "/"},
	} {
		got, err := servePattern(c.e)
		if err != nil || got != c.want {
			t.Errorf("%s %s: %q, %v; want %q", c.e.Method, c.e.Path, got, err, c.want)
		}
	}
	for _, e := range []HTTPEvent{{Method: "GET", Path: "v1/x"}, {Method: "GET", Path: "/{proxy+}/x"}} {
		if got, err := servePattern(e); err == nil {
			t.Errorf("%s %s: %q accepted", e.Method, e.Path, got)
		}
	}
}

// Requests go to the function of the most specific route, as on API Gateway.
func TestHTTPRouterPicksTheMostSpecificRoute(t *testing.T) {
	fns := []Function{
		{LogicalID: "ApiFunction", HTTP: []HTTPEvent{{EventName: "Root", Method: "ANY", Path: "/"}, {EventName: "Proxy", Method: "ANY", Path: "/{proxy+}"}}},
		{LogicalID: "EditorFunction", HTTP: []HTTPEvent{{EventName: "Save", Method: "PUT", Path: "/v1/tunnels/{id}"}, {EventName: "Try", Method: "POST", Path: "/v1/external-requests/{proxy+}"}}},
		{LogicalID: "FlowFunction"},
	}
	r, err := NewHTTPRouter(fns, func(f Function) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, f.LogicalID+" "+r.URL.Path) }), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, want string }{
		{"GET", "/", "ApiFunction /"},
		{"GET", "/v1/tunnels/t1", "ApiFunction /v1/tunnels/t1"},
		{"PUT", "/v1/tunnels/t1", "EditorFunction /v1/tunnels/t1"},
		{"DELETE", "/v1/tunnels/t1", "ApiFunction /v1/tunnels/t1"},
		{"PUT", "/v1/tunnels/t1/stats", "ApiFunction /v1/tunnels/t1/stats"},
		{"POST", "/v1/external-requests/check", "EditorFunction /v1/external-requests/check"},
		{"GET", "/v1/external-requests/check", "ApiFunction /v1/external-requests/check"},
		{"POST", "/v1/events", "ApiFunction /v1/events"},
	} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader("")))
		if got := w.Body.String(); got != c.want {
			t.Errorf("%s %s went to %q, want %q", c.method, c.path, got, c.want)
		}
	}
}

func TestHTTPRouterRefuses(t *testing.T) {
	ok := func(Function) (http.Handler, error) { return http.NotFoundHandler(), nil }
	if _, err := NewHTTPRouter([]Function{{LogicalID: "F"}}, ok); err == nil {
		t.Error("a template without HTTP events")
	}
	ambiguous := []Function{
		{LogicalID: "A", HTTP: []HTTPEvent{{EventName: "E", Method: "ANY", Path: "/a/{x}"}}},
		{LogicalID: "B", HTTP: []HTTPEvent{{EventName: "E", Method: "PUT", Path: "/{proxy+}"}}},
	}
	if _, err := NewHTTPRouter(ambiguous, ok); err == nil || !strings.Contains(err.Error(), "B: event E") {
		t.Errorf("ambiguous routes: %v", err)
	}
	failing := func(Function) (http.Handler, error) { return nil, errors.New("no handler") }
	if _, err := NewHTTPRouter(ambiguous[:1], failing); err == nil || !strings.Contains(err.Error(), "A: no handler") {
		t.Errorf("a function without a handler: %v", err)
	}
}
