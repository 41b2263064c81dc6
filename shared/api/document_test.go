package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tunnels/tunnels/shared/apidoc"
)

func TestAcceptsGzip(t *testing.T) {
	for _, c := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"br, GZIP;q=0.5"}, true},
		{[]string{"deflate", "x-gzip"}, true},
		{[]string{"*"}, true},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.0, *"}, false}, // named at zero: * does not bring it back
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=x"}, false},
		{[]string{"gzip;Q=0"}, false}, // the parameter name is case-insensitive
		{[]string{"gzip;q=NaN, *"}, true},
		{[]string{"gzip;q=1.5"}, false},
		{[]string{"gzip;q=0.0001"}, false},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"gzip ; q = 0.5"}, true},
		{[]string{"gzipped"}, false},
	} {
		if got := acceptsGzip(c.header); got != c.want {
			t.Errorf("Accept-Encoding %q: %v, want %v", c.header, got, c.want)
		}
	}
}

func TestDocumentIsServedCompressedWhenAccepted(t *testing.T) {
	h := (&Server{}).Handler()
	get := func(accept string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil)
		if accept != "" {
			r.Header.Set("Accept-Encoding", accept)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Header().Get("Vary") != "Accept-Encoding" || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("Accept-Encoding %q: %d %v", accept, w.Code, w.Header())
		}
		return w
	}
	plain := get("")
	if plain.Header().Get("Content-Encoding") != "" || !bytes.Equal(plain.Body.Bytes(), apidoc.JSON()) {
		t.Errorf("without gzip: Content-Encoding %q, %d bytes", plain.Header().Get("Content-Encoding"), plain.Body.Len())
	}
	zipped := get("gzip, deflate, br")
	if zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() >= plain.Body.Len()/4 {
		t.Fatalf("with gzip: Content-Encoding %q, %d bytes", zipped.Header().Get("Content-Encoding"), zipped.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(zr); err != nil || !bytes.Equal(b, apidoc.JSON()) {
		t.Errorf("the compressed answer is not the document (%v)", err)
	}
}
