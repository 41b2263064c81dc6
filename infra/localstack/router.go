package localstack

import (
	"fmt"
	"net/http"
	"strings"
)

// NewHTTPRouter is the local stack's HTTP API: each request goes to the
// function whose HttpApi event's route matches it, as API Gateway selects
// routes — a full path before a greedy one ({proxy+}), a named method
// before ANY, $default last. Routes become net/http ServeMux patterns, whose
// "most specific wins" is that order; two routes neither of which is more
// specific than the other (ANY /a/{x} and PUT /{proxy+}) are refused, and
// should not be written.
func NewHTTPRouter(fns []Function, handler func(Function) (http.Handler, error)) (http.Handler, error) {
	mux := http.NewServeMux()
	n := 0
	for _, f := range fns {
		if len(f.HTTP) == 0 {
			continue
		}
		h, err := handler(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.LogicalID, err)
		}
		for _, e := range f.HTTP {
			pattern, err := servePattern(e)
			if err != nil {
				return nil, fmt.Errorf("%s: event %s: %w", f.LogicalID, e.EventName, err)
			}
			if err := handle(mux, pattern, h); err != nil {
				return nil, fmt.Errorf("%s: event %s: %w", f.LogicalID, e.EventName, err)
			}
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("the template routes no HTTP event to a function")
	}
	return mux, nil
}

// handle registers a pattern, turning ServeMux's panic on a conflict into an
// error.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// servePattern writes an HttpApi route as a ServeMux pattern: "PUT
// /v1/tunnels/{id}" stays, ANY drops its method, {proxy+} becomes
// {proxy...}, "/" matches only itself and $default everything.
func servePattern(e HTTPEvent) (string, error) {
	if e.Path == "$default" {
		return "/", nil
	}
	if !strings.HasPrefix(e.Path, "/") {
		return "", fmt.Errorf("path %q does not start with /", e.Path)
	}
	segs := strings.Split(e.Path[1:], "/")
	for i, s := range segs {
		if name, ok := strings.CutSuffix(strings.TrimPrefix(s, "{"), "+}"); ok && strings.HasPrefix(s, "{") {
			if i != len(segs)-1 {
				return "", fmt.Errorf("path %q: a greedy variable must be its last segment", e.Path)
			}
			segs[i] = "{" + name + "...}"
		}
	}
	path := "/" + strings.Join(segs, "/")
	if path == "/" {
		path = "/{$}"
	}
	if e.Method == "" || e.Method == "ANY" {
		return path, nil
	}
	return e.Method + " " + path, nil
}
