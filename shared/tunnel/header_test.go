package tunnel

import (
	"testing"

	"golang.org/x/net/http/httpguts"
)

func TestValidHeaderNameIsHTTPGuts(t *testing.T) {
	names := []string{"", "X-Api-Key", "Authorization", "a b", "x:y", "ü", "x\x00", "!#$%&'*+-.^_`|~09azAZ", "(x)", "a/b"}
	for c := 0; c < 256; c++ {
		names = append(names, string([]byte{byte(c)}), "X"+string([]byte{byte(c)}))
	}
	for _, n := range names {
		if got, want := ValidHeaderName(n), httpguts.ValidHeaderFieldName(n); got != want {
			t.Errorf("ValidHeaderName(%q) = %v, httpguts says %v", n, got, want)
		}
	}
}
