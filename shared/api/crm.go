package api

// crmRoutes serves GET /v1/integrations/{id}/pipelines (issue 5; see notYet in routes_test.go
// until then).
func (s *Server) crmRoutes() []route {
	return nil
}
