package egress

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// NewClient returns the HTTP client for user-configured addresses. Every
// request, the first and each redirect, passes CheckURL and then the dial-time
// guard; TLS certificates are verified; at most o.MaxRedirects redirects are
// followed; the whole exchange, body included, is bounded by o.Timeout; reading
// more than o.MaxBody bytes of a body fails with ErrBodyTooLarge (ReadLimited
// reports it as truncated). A request without a User-Agent gets o.UserAgent.
func NewClient(p Policy, o Options) *http.Client {
	return newClient(p, o, nil)
}

// newClient lets tests resolve names with a stub resolver (nil: the system's).
func newClient(p Policy, o Options, resolver *net.Resolver) *http.Client {
	o = o.withDefaults()
	d := newDialer(p, o.ConnectTimeout, resolver)
	transport := &http.Transport{
		// No proxy, deliberately: through a proxy the dialer would see only the
		// proxy's address and the guard would check the wrong thing.
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    o.ConnectTimeout,
		ResponseHeaderTimeout:  o.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true, // a custom DialContext turns HTTP/2 off unless asked
		MaxIdleConns:           32,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Transport: &guardedTransport{
			policy:    p,
			userAgent: o.UserAgent,
			maxBody:   o.MaxBody,
			next:      transport,
		},
		CheckRedirect: checkRedirect(o.MaxRedirects),
		Timeout:       o.Timeout,
	}
}

// checkRedirect caps the chain. The URL checks need not be repeated here: the
// redirected request goes through guardedTransport like any other.
func checkRedirect(max int) func(*http.Request, []*http.Request) error {
	return func(_ *http.Request, via []*http.Request) error {
		if max < 0 {
			return http.ErrUseLastResponse
		}
		// via holds the requests already made, so len(via) > max means this
		// would be redirect number max+1.
		if len(via) > max {
			return fmt.Errorf("%w: stopped after %d", ErrTooManyRedirects, max)
		}
		return nil
	}
}

// dialer decides allowed host:port pairs. The Control hook only ever sees the
// resolved ip:port, so it cannot tell that "127.0.0.1:8080" was asked for as the
// allowed "localhost:8080". DialContext still receives the host:port the request
// named (no proxy is used), so the allow decision is made here, before
// resolution: an allowed pair is dialled without the guard, anything else through
// the guarded dialer.
type dialer struct {
	policy  Policy
	guarded *net.Dialer
	open    *net.Dialer
}

func newDialer(p Policy, connectTimeout time.Duration, resolver *net.Resolver) *dialer {
	return &dialer{
		policy: p,
		guarded: &net.Dialer{
			Timeout:   connectTimeout,
			KeepAlive: 30 * time.Second,
			Resolver:  resolver,
			Control:   control,
		},
		open: &net.Dialer{
			Timeout:   connectTimeout,
			KeepAlive: 30 * time.Second,
			Resolver:  resolver,
		},
	}
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.policy.allows(addr) {
		return d.open.DialContext(ctx, network, addr)
	}
	return d.guarded.DialContext(ctx, network, addr)
}

// guardedTransport applies CheckURL to every request (so redirects too), sets
// the User-Agent and caps the response body.
type guardedTransport struct {
	policy    Policy
	userAgent string
	maxBody   int64
	next      http.RoundTripper
}

func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.policy.checkURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper must close the body, even on error
		}
		return nil, err
	}
	if req.Header.Get("User-Agent") == "" {
		// A RoundTripper must not modify the caller's request.
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.userAgent)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, max: t.maxBody}
	return resp, nil
}

// cappedBody yields at most max bytes, then ErrBodyTooLarge if more was sent.
type cappedBody struct {
	rc  io.ReadCloser
	max int64
	n   int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, ErrBodyTooLarge
	}
	// Ask for at most one byte past the cap: enough to know there is more.
	if room := b.max - b.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return n - int(b.n-b.max), ErrBodyTooLarge
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
