package api

// planRoutes serves GET /v1/sales-plans/{id}/deals and PATCH on a deal (issue 3; see notYet in routes_test.go
// until then).
func (s *Server) planRoutes() []route {
	return nil
}
