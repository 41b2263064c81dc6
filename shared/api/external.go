package api

// externalRequestRoutes serves POST /v1/external-requests/preview and /check (issue 6; see notYet in routes_test.go
// until then).
func (s *Server) externalRequestRoutes() []route {
	return nil
}
