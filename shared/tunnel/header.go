package tunnel

import "strings"

// ValidHeaderName reports whether name is an HTTP header field name: an
// RFC 9110 token, as httpguts.ValidHeaderFieldName checks it. It is here
// rather than imported because golang.org/x/net/http/httpguts brings its
// idna and Unicode tables (about 100 KB, kept by their package
// initialisation) into every function that links this package: all of them,
// through the engine.
func ValidHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
