// Package apidoc provides the OpenAPI 3.1 document of the Tunnels HTTP API.
//
// The document is hand-written (openapi.json beside this file) and embedded,
// so the API serves exactly what the repository holds at GET /v1/openapi.json,
// and the API's tests can compare its routes with the mux through Routes. It
// is embedded gzip-compressed (openapi.json.gz, written by go generate; a
// test says when it is stale): 20 KB instead of 140 KB in the API function,
// and what a client that accepts gzip receives.
package apidoc

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Gzip is the OpenAPI document, gzip-compressed.
//
//go:generate go run github.com/tunnels/tunnels/infra/gzipfile openapi.json openapi.json.gz
//go:embed openapi.json.gz
var Gzip []byte

var plain struct {
	once sync.Once
	doc  []byte
}

// JSON returns the OpenAPI document, decompressed on the first call. The
// embedded bytes are checked by this package's tests, so a failure here is a
// broken build: it panics.
func JSON() []byte {
	plain.once.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(Gzip))
		if err == nil {
			plain.doc, err = io.ReadAll(zr)
		}
		if err != nil {
			panic(fmt.Sprintf("apidoc: the embedded openapi.json.gz: %v", err))
		}
	})
	return plain.doc
}

// Route is one operation of the document: an HTTP method (upper case) and a
// path as the document spells it, e.g. {Method: "GET", Path: "/v1/tags/{id}"}.
type Route struct {
	Method, Path string
}

// String gives the route as a Go ServeMux pattern, "GET /v1/tags/{id}".
func (r Route) String() string { return r.Method + " " + r.Path }

// methods are the path-item keys that hold operations (OpenAPI 3.1, 4.8.9).
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Routes lists every operation of the document, sorted by path then method.
// It parses JSON on each call so a broken document shows up as an error in
// the tests that use it rather than as a panic at init.
func Routes() ([]Route, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(JSON(), &doc); err != nil {
		return nil, fmt.Errorf("apidoc: decode openapi.json: %w", err)
	}
	var routes []Route
	for path, item := range doc.Paths {
		for _, m := range methods {
			if _, ok := item[m]; ok {
				routes = append(routes, Route{Method: strings.ToUpper(m), Path: path})
			}
		}
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("apidoc: openapi.json has no operations")
	}
	sort.Slice(routes, func(i, j int) bool {
		if routes[i].Path != routes[j].Path {
			return routes[i].Path < routes[j].Path
		}
		return routes[i].Method < routes[j].Method
	})
	return routes, nil
}
