package api

// deadLetterRoutes serves GET /v1/dead-letters and POST /v1/dead-letters/redrive (issue 7; see notYet in routes_test.go
// until then).
func (s *Server) deadLetterRoutes() []route {
	return nil
}
