package api

import (
	"slices"
	"testing"

	"github.com/tunnels/tunnels/shared/apidoc"
)

// notYet are documented operations whose issue has not landed; each is a
// contract the API will answer. Remove a line when its handler lands.
var notYet = map[string]string{}

// The mux and the OpenAPI document describe the same API.
func TestRoutesMatchTheOpenAPIDocument(t *testing.T) {
	documented, err := apidoc.Routes()
	if err != nil {
		t.Fatal(err)
	}
	var doc []string
	for _, r := range documented {
		doc = append(doc, r.String())
	}
	served := []string{"GET /v1/health", "GET /v1/openapi.json", "POST /v1/workspaces"}
	for _, r := range (&Server{}).publicRoutes() {
		served = append(served, r.pattern)
	}
	for _, r := range slices.Concat((&Server{}).routes(), (&Server{}).editorRoutes()) {
		served = append(served, r.pattern)
	}
	for _, r := range served {
		if !slices.Contains(doc, r) {
			t.Errorf("%s is served but not in openapi.json", r)
		}
	}
	for _, r := range doc {
		if !slices.Contains(served, r) && notYet[r] == "" {
			t.Errorf("%s is in openapi.json but not served", r)
		}
		if slices.Contains(served, r) && notYet[r] != "" {
			t.Errorf("%s is served now: remove it from notYet", r)
		}
	}
	for r := range notYet {
		if !slices.Contains(doc, r) {
			t.Errorf("notYet lists %s, which openapi.json does not have", r)
		}
	}
}
