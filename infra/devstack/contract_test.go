package devstack_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
)

// The contract checker every API test leans on must be able to say no.
func TestContractCheckerRefusesWrongShapes(t *testing.T) {
	needSystem(t)
	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/v1/health", 200, `{"status": 5}`},
		{"GET", "/v1/tags/lead", 200, `{"id": "lead"}`},                                                         // name and times missing
		{"GET", "/v1/tags", 200, `{"tags": [], "next_cursor": null, "extra": 1}`},                               // unknown member
		{"GET", "/v1/tags/x", 404, `{"type": "t", "title": "t", "status": 404, "detail": "d", "code": "oops"}`}, // unknown code
		{"GET", "/v1/subscribers/x/journey", 200, `{"steps": [{"step_id": "s", "status": "maybe"}], "next_cursor": null}`},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, "http://api.example"+c.path, nil)
		req.Header.Set("Authorization", "Bearer k")
		ct := "application/json"
		if c.status >= 400 {
			ct = "application/problem+json"
		}
		res := &http.Response{StatusCode: c.status, Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(bytes.NewReader([]byte(c.body))), Request: req}
		contractM.Lock()
		ok, _ := contract.ValidateHttpResponse(req, res)
		contractM.Unlock()
		if ok {
			t.Errorf("%s %s %d %s passed the contract check; it should not", c.method, c.path, c.status, c.body)
		}
	}
}
