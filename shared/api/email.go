package api

import "net/http"

// publicRoute is a path served without an API key.
type publicRoute struct {
	pattern string
	h       http.HandlerFunc
}

// publicRoutes are the paths that need no API key besides health and the
// OpenAPI document: GET /v1/email-accounts/unsubscribe (issue 4; see notYet
// in routes_test.go until then).
func (s *Server) publicRoutes() []publicRoute { return nil }
