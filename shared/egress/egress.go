// Package egress is the only way the deployment makes outbound HTTP requests to
// addresses that users configure (an integration's base_url, the channel url, an
// external request's url). It refuses loopback, private, link-local (cloud
// metadata) and every other non-public destination unless the deployment allows
// that exact host:port (TUNNELS_EGRESS_ALLOW), and it bounds time, redirects and
// response size.
//
// The address guard runs twice: statically on the URL before anything is sent
// (CheckURL: scheme, credentials, literal IPs in every spelling, localhost names)
// and on the resolved address at connect time (the dialer's Control hook, backed
// by code.dny.dev/ssrf), so a public-looking name that resolves — or rebinds — to
// a private address is refused before any packet leaves. Redirects are new
// requests through the same transport, so both checks apply to them as well.
package egress

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Policy says which non-public destinations the deployment allows.
type Policy struct {
	// Allow holds exact "host:port" pairs that may be reached although they are
	// not public (and over plain http), from TUNNELS_EGRESS_ALLOW. Matching is
	// on the host:port the caller asked for, before name resolution; host names
	// compare case-insensitively and IP literals in canonical form.
	Allow []string
}

// ErrRefused is wrapped by every refusal: static (CheckURL), at dial time on the
// resolved address, and on a redirect. Test with errors.Is or IsRefused.
var ErrRefused = errors.New("destination refused")

// ErrTooManyRedirects is returned (wrapped) when a response chain exceeds
// Options.MaxRedirects.
var ErrTooManyRedirects = errors.New("too many redirects")

// ErrBodyTooLarge is returned by the body of a response from NewClient's client
// once more than Options.MaxBody bytes would be read. It is an error rather than
// a silent EOF so nobody mistakes a cut body for a whole one; ReadLimited turns
// it into truncated=true.
var ErrBodyTooLarge = errors.New("response body exceeds the size limit")

// RefusedError says which destination was refused and why. It wraps ErrRefused.
// It never carries the URL's path, query or credentials, which may hold secrets.
type RefusedError struct {
	Addr   string // the host:port (or resolved ip:port) that was refused
	Reason string // e.g. "link-local address"
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("destination %s refused: %s", e.Addr, e.Reason)
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// IsRefused reports whether err (or anything it wraps) is a refusal by this package.
func IsRefused(err error) bool { return errors.Is(err, ErrRefused) }

// ParseAllow parses TUNNELS_EGRESS_ALLOW: comma-separated host:port pairs with
// optional spaces around them. Empty entries are ignored, so "" yields nil. The
// entries come back normalised (lower-case host, canonical IP literal) so they
// compare exactly with what the transport sees.
func ParseAllow(s string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(s, ",") {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		host, port, err := net.SplitHostPort(entry)
		if err != nil {
			return nil, fmt.Errorf("egress: allow entry %q is not host:port", entry)
		}
		if host == "" {
			return nil, fmt.Errorf("egress: allow entry %q has no host", entry)
		}
		if !validPort(port) {
			return nil, fmt.Errorf("egress: allow entry %q: port must be a number from 1 to 65535", entry)
		}
		if !validAllowHost(host) {
			return nil, fmt.Errorf("egress: allow entry %q: host is not a valid name or IP address", entry)
		}
		out = append(out, normalizeHostPort(host, port))
	}
	return out, nil
}

// validPort accepts decimal 1-65535 with digits only (no sign, no spaces).
func validPort(port string) bool {
	if port == "" || len(port) > 5 {
		return false
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// validAllowHost accepts an IP literal or a DNS-style name. It exists so that a
// typo in the deployment parameter fails loudly at start instead of never matching.
func validAllowHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	for _, c := range host {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// normalizeHostPort gives the form used to compare a destination with Allow:
// lower-case host, IP literals in canonical form (so [0:0::1] equals [::1]).
func normalizeHostPort(host, port string) string {
	host = strings.ToLower(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

// allows reports whether the requested host:port is in Allow.
func (p Policy) allows(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	want := normalizeHostPort(host, port)
	for _, a := range p.Allow {
		h, pt, err := net.SplitHostPort(strings.TrimSpace(a))
		if err != nil {
			continue
		}
		if normalizeHostPort(h, pt) == want {
			return true
		}
	}
	return false
}

// Options bound what one client may spend on a request. Zero values take the defaults.
type Options struct {
	ConnectTimeout time.Duration // dial and TLS handshake; default 5s
	Timeout        time.Duration // whole request including reading the body; default 10s
	MaxBody        int64         // response body cap in bytes; default 1 MiB
	MaxRedirects   int           // default 5; negative: redirects are not followed (the 3xx is returned)
	UserAgent      string        // set when the request has none; default DefaultUserAgent
}

// Defaults for Options.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultMaxBody        = 1 << 20
	DefaultMaxRedirects   = 5
	DefaultUserAgent      = "Tunnels/1.0 (+https://github.com/tunnels/tunnels)"
)

func (o Options) withDefaults() Options {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxRedirects == 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	return o
}

// ReadLimited reads at most max bytes of r. truncated says r had more (or the
// client's own MaxBody cap was hit). On a read error the bytes read so far are
// returned with the error.
func ReadLimited(r io.Reader, max int64) (body []byte, truncated bool, err error) {
	if max < 0 {
		max = 0
	}
	limit := max
	if limit < math.MaxInt64 {
		limit++ // one byte more than allowed tells "exactly max" from "more than max"
	}
	body, err = io.ReadAll(io.LimitReader(r, limit))
	if errors.Is(err, ErrBodyTooLarge) {
		truncated, err = true, nil
	}
	if int64(len(body)) > max {
		body, truncated = body[:max], true
	}
	return body, truncated, err
}
