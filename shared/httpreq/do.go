package httpreq

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// Options are what Do needs besides the request.
type Options struct {
	// Client sends the request. It must be an egress client (egress.NewClient): that is
	// where destinations are checked. Build it with Timeout >= MaxTimeout and MaxBody >=
	// the MaxBody below, or its own, shorter bounds apply first. Required.
	Client *http.Client
	// MaxBody is how many response bytes are kept; more is cut and Response.Truncated
	// set. Default DefaultMaxBody (64 KiB); at most MaxBodyLimit (1 MiB).
	MaxBody int64
	// Timeout bounds the whole exchange, body included. Default DefaultTimeout (10 s);
	// at most MaxTimeout (30 s). Use Definition.Timeout().
	Timeout time.Duration
	// IdempotencyKey is sent as the Idempotency-Key header (the step id), replacing any
	// header of that name. Empty: no header (a check request, which is not a step).
	IdempotencyKey string
	// UserAgent names the product; default egress.DefaultUserAgent. It is always sent:
	// when the definition sets its own User-Agent, that value comes first and the
	// product's follows it as a second product token ("MyApp/2 Tunnels/1.0 (...)"), so
	// the receiver always learns who is calling.
	UserAgent string
}

func (o Options) withDefaults() Options {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.MaxBody > MaxBodyLimit {
		o.MaxBody = MaxBodyLimit
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Timeout > MaxTimeout {
		o.Timeout = MaxTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = egress.DefaultUserAgent
	}
	return o
}

// Response is the answer, as much of it as is kept. Its JSON is the check answer's
// "response" (SPEC section 8): status, headers, body, truncated.
type Response struct {
	Status  int                `json:"status"`
	Headers []tunnel.NameValue `json:"headers"` // sorted by name (canonical form), values in received order
	// Body is the response body as text: at most Options.MaxBody bytes (DefaultMaxBody,
	// 64 KiB, by default), cut at a character boundary, invalid UTF-8 replaced by U+FFFD.
	Body      string        `json:"body"`
	Truncated bool          `json:"truncated"` // the body was longer than Body
	Duration  time.Duration `json:"-"`         // from sending to the end of the body
}

// Error is a failure of Do. Its message names the method and host:port, never the path,
// query or user info (they may hold secrets). It wraps Kind (ErrRefused, ErrTimeout,
// ErrConnection, ErrRedirects, ErrInvalid) and the cause.
type Error struct {
	Kind   error
	Method string
	Host   string // host:port
	Detail string // what happened, e.g. "DNS lookup of api.example.com failed: no such host"
	cause  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Method, e.Host, e.Detail)
}

// Unwrap lets errors.Is match both the kind and the cause (e.g. egress.ErrRefused).
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.cause}
}

// Do sends r through o.Client and reads at most o.MaxBody bytes of the answer. Any HTTP
// answer, whatever its status, is a Response with a nil error: Classify judges statuses.
// Redirects are followed by the client (each one checked by the egress guard).
//
// A failure is an *Error (see the Err* kinds). When the answer's headers arrived but
// reading its body failed, the Response is returned too, with what was read.
func Do(ctx context.Context, r Rendered, o Options) (Response, error) {
	host := hostOf(r.URL)
	if o.Client == nil {
		return Response{}, &Error{Kind: ErrInvalid, Method: r.Method, Host: host, Detail: "no HTTP client configured"}
	}
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	var body io.Reader // stays a nil interface without a body: no Content-Length: 0 on a GET
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return Response{}, &Error{Kind: ErrInvalid, Method: r.Method, Host: host, Detail: "cannot build the request: " + stripURL(err).Error()}
	}
	for _, h := range r.Headers {
		// Render refuses these already; a Rendered built by hand gets the same rule.
		if err := checkHeader(h.Name, h.Value); err != nil {
			return Response{}, &Error{Kind: ErrInvalid, Method: r.Method, Host: host, Detail: strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")}
		}
		req.Header.Add(h.Name, h.Value)
	}
	ua := o.UserAgent
	if own := strings.TrimSpace(req.Header.Get("User-Agent")); own != "" {
		ua = own + " " + ua
	}
	req.Header.Set("User-Agent", ua)
	if o.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", o.IdempotencyKey)
	}

	start := time.Now()
	resp, err := o.Client.Do(req)
	if err != nil {
		return Response{Duration: time.Since(start)}, classifyErr(ctx, r.Method, host, err, o.Timeout)
	}
	defer resp.Body.Close()
	raw, truncated, rerr := egress.ReadLimited(resp.Body, o.MaxBody)
	out := Response{
		Status:    resp.StatusCode,
		Headers:   sortedHeaders(resp.Header),
		Body:      text(raw, truncated),
		Truncated: truncated,
		Duration:  time.Since(start),
	}
	if rerr != nil {
		out.Truncated = true // what we have is not the whole body
		e := classifyErr(ctx, r.Method, host, rerr, o.Timeout)
		e.Detail = "reading the answer: " + e.Detail
		return out, e
	}
	return out, nil
}

// hostOf returns the URL's host:port (default port filled in), for messages.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid url)"
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// stripURL removes the *url.Error layer, whose message repeats the whole URL (query
// and user info included).
func stripURL(err error) error {
	for {
		var ue *url.Error
		if !errors.As(err, &ue) {
			return err
		}
		err = ue.Err
	}
}

// classifyErr turns a transport error into an *Error of the right kind with a message
// free of the URL.
func classifyErr(ctx context.Context, method, host string, err error, limit time.Duration) *Error {
	cause := stripURL(err)
	e := &Error{Method: method, Host: host, cause: cause}
	var (
		dnsErr  *net.DNSError
		netErr  net.Error
		certErr *tls.CertificateVerificationError
		alert   tls.AlertError
		recErr  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
	)
	switch {
	case egress.IsRefused(cause):
		var re *egress.RefusedError
		if errors.As(cause, &re) {
			e.Kind, e.Detail = ErrRefused, re.Error()
		} else {
			e.Kind, e.Detail = ErrRefused, "destination refused"
		}
	case errors.Is(cause, egress.ErrTooManyRedirects):
		e.Kind, e.Detail = ErrRedirects, cause.Error()
	case errors.Is(cause, context.DeadlineExceeded), errors.Is(cause, os.ErrDeadlineExceeded),
		errors.As(cause, &netErr) && netErr.Timeout(), ctx.Err() == context.DeadlineExceeded:
		e.Kind, e.Detail = ErrTimeout, fmt.Sprintf("no complete answer within %s", limit)
	case errors.Is(cause, context.Canceled):
		e.Kind, e.Detail = ErrConnection, "request canceled"
	case errors.As(cause, &dnsErr):
		e.Kind = ErrConnection
		if dnsErr.IsNotFound {
			e.Detail = fmt.Sprintf("DNS lookup of %s failed: no such host", dnsErr.Name)
		} else {
			e.Detail = fmt.Sprintf("DNS lookup of %s failed: %s", dnsErr.Name, dnsErr.Err)
		}
	case errors.Is(cause, syscall.ECONNREFUSED):
		e.Kind, e.Detail = ErrConnection, "connection refused"
	case errors.Is(cause, syscall.ECONNRESET):
		e.Kind, e.Detail = ErrConnection, "connection reset"
	case errors.As(cause, &certErr), errors.As(cause, &unknown), errors.As(cause, &hostErr),
		errors.As(cause, &invErr), errors.As(cause, &alert), errors.As(cause, &recErr):
		e.Kind, e.Detail = ErrConnection, "TLS handshake failed: "+cause.Error()
	default:
		e.Kind, e.Detail = ErrConnection, cause.Error()
	}
	return e
}

// sortedHeaders lists h by canonical name; a repeated header gives one entry per value.
func sortedHeaders(h http.Header) []tunnel.NameValue {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]tunnel.NameValue, 0, len(h))
	for _, n := range names {
		for _, v := range h[n] {
			out = append(out, tunnel.NameValue{Name: n, Value: v})
		}
	}
	return out
}

// text makes a body valid UTF-8: a character cut in half by truncation is dropped,
// other invalid bytes become U+FFFD.
func text(b []byte, truncated bool) string {
	if truncated {
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
