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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// asClient wraps a cause the way http.Client does: in a *url.Error that repeats the URL.
func asClient(cause error) error {
	return &url.Error{Op: "Get", URL: "https://api.example.com/x?token=abc", Err: cause}
}

func dialErr(errno syscall.Errno) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
}

func TestClassifyErr(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		ctxErr bool // the request's context had expired
		kind   error
		detail string
	}{
		{"connection refused", asClient(dialErr(syscall.ECONNREFUSED)), false, ErrConnection, "connection refused"},
		{"connection reset", asClient(dialErr(syscall.ECONNRESET)), false, ErrConnection, "connection reset"},
		{"no such host", asClient(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "nope.example.com", IsNotFound: true}}), false,
			ErrConnection, "DNS lookup of nope.example.com failed: no such host"},
		{"DNS server failure", asClient(&net.DNSError{Err: "server misbehaving", Name: "x.example.com", IsTemporary: true}), false,
			ErrConnection, "DNS lookup of x.example.com failed: server misbehaving"},
		{"DNS timeout", asClient(&net.DNSError{Err: "i/o timeout", Name: "x.example.com", IsTimeout: true}), false, ErrTimeout, "no complete answer within 10s"},
		{"deadline", asClient(context.DeadlineExceeded), false, ErrTimeout, "no complete answer within 10s"},
		{"os deadline", asClient(os.ErrDeadlineExceeded), false, ErrTimeout, "no complete answer within 10s"},
		{"any error once the context expired", asClient(io.ErrUnexpectedEOF), true, ErrTimeout, "no complete answer within 10s"},
		{"canceled", asClient(context.Canceled), false, ErrConnection, "request canceled"},
		{"refused at dial", asClient(&net.OpError{Op: "dial", Err: &egress.RefusedError{Addr: "10.0.0.1:443", Reason: "private address"}}), false,
			ErrRefused, "destination 10.0.0.1:443 refused: private address"},
		{"refused on redirect", asClient(&egress.RefusedError{Addr: "127.0.0.1:9", Reason: "loopback address"}), false,
			ErrRefused, "destination 127.0.0.1:9 refused: loopback address"},
		{"too many redirects", asClient(fmt.Errorf("%w: stopped after 5", egress.ErrTooManyRedirects)), false, ErrRedirects, "too many redirects: stopped after 5"},
		{"unknown authority", asClient(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false,
			ErrConnection, "TLS handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"not TLS", asClient(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), false,
			ErrConnection, "TLS handshake failed: tls: first record does not look like a TLS handshake"},
		{"broken answer", asClient(io.ErrUnexpectedEOF), false, ErrConnection, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.ctxErr {
				c, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
				defer cancel()
				ctx = c
			}
			e := classifyErr(ctx, "POST", "api.example.com:443", tt.err, DefaultTimeout)
			if e.Kind != tt.kind || e.Detail != tt.detail {
				t.Fatalf("kind %v detail %q, want %v %q", e.Kind, e.Detail, tt.kind, tt.detail)
			}
			if !errors.Is(e, tt.kind) {
				t.Fatalf("errors.Is(%v, %v) = false", e, tt.kind)
			}
			if want := "POST api.example.com:443: " + tt.detail; e.Error() != want {
				t.Fatalf("message %q, want %q", e.Error(), want)
			}
			if strings.Contains(e.Error(), "abc") {
				t.Fatalf("message shows the url: %q", e)
			}
			var ue *url.Error
			if errors.As(e, &ue) {
				t.Fatal("the *url.Error (with its url) is still wrapped")
			}
		})
	}
	// The cause stays reachable: errors.Is sees egress's sentinel through ours.
	e := classifyErr(context.Background(), "GET", "h:443", asClient(&egress.RefusedError{Addr: "h:443", Reason: "r"}), time.Second)
	if !errors.Is(e, egress.ErrRefused) {
		t.Fatal("egress.ErrRefused not reachable")
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 300e6, time.UTC)
	hdr := func(v string) []tunnel.NameValue { return []tunnel.NameValue{{Name: "Retry-After", Value: v}} }
	tests := []struct {
		name string
		resp Response
		err  error
		want Outcome
	}{
		{"200", Response{Status: 200, Body: "ok"}, nil, Outcome{Verdict: OK, Status: 200}},
		{"204", Response{Status: 204}, nil, Outcome{Verdict: OK, Status: 204}},
		{"304 not followed", Response{Status: 304}, nil, Outcome{Verdict: OK, Status: 304}},
		{"429 seconds", Response{Status: 429, Headers: hdr("30")}, nil,
			Outcome{Verdict: Transient, Status: 429, RetryAfter: 30 * time.Second, Reason: "HTTP 429 Too Many Requests (retry after 30s)"}},
		{"429 http date", Response{Status: 429, Headers: []tunnel.NameValue{{Name: "retry-after", Value: "Tue, 24 Nov 2026 10:01:30 GMT"}}}, nil,
			Outcome{Verdict: Transient, Status: 429, RetryAfter: 90 * time.Second, Reason: "HTTP 429 Too Many Requests (retry after 1m30s)"}},
		{"429 date past", Response{Status: 429, Headers: hdr("Tue, 24 Nov 2026 09:00:00 GMT")}, nil,
			Outcome{Verdict: Transient, Status: 429, Reason: "HTTP 429 Too Many Requests"}},
		{"429 garbage", Response{Status: 429, Headers: hdr("soon")}, nil,
			Outcome{Verdict: Transient, Status: 429, Reason: "HTTP 429 Too Many Requests"}},
		{"429 negative", Response{Status: 429, Headers: hdr("-5")}, nil,
			Outcome{Verdict: Transient, Status: 429, Reason: "HTTP 429 Too Many Requests"}},
		{"429 huge", Response{Status: 429, Headers: hdr("99999999999999999")}, nil,
			Outcome{Verdict: Transient, Status: 429, RetryAfter: 24 * time.Hour, Reason: "HTTP 429 Too Many Requests (retry after 24h0m0s)"}},
		{"408", Response{Status: 408}, nil, Outcome{Verdict: Transient, Status: 408, Reason: "HTTP 408 Request Timeout"}},
		{"500 with body", Response{Status: 500, Body: "  stack\n\ttrace  "}, nil, Outcome{Verdict: Transient, Status: 500, Reason: "HTTP 500 Internal Server Error: stack trace"}},
		{"599 unknown text", Response{Status: 599}, nil, Outcome{Verdict: Transient, Status: 599, Reason: "HTTP 599"}},
		{"404", Response{Status: 404, Body: "nope"}, nil, Outcome{Verdict: Permanent, Status: 404, Reason: "HTTP 404 Not Found: nope"}},
		{"401", Response{Status: 401}, nil, Outcome{Verdict: Permanent, Status: 401, Reason: "HTTP 401 Unauthorized"}},
		{"no status", Response{}, nil, Outcome{Verdict: Permanent, Reason: "no answer"}},
		{"timeout", Response{}, &Error{Kind: ErrTimeout, Method: "GET", Host: "h:443", Detail: "no complete answer within 10s"}, Outcome{Verdict: Transient, Reason: "GET h:443: no complete answer within 10s"}},
		{"timeout reading body", Response{Status: 200}, &Error{Kind: ErrTimeout, Method: "GET", Host: "h:443", Detail: "x"}, Outcome{Verdict: Transient, Status: 200, Reason: "GET h:443: x"}},
		{"connection", Response{}, &Error{Kind: ErrConnection, Method: "GET", Host: "h:443", Detail: "connection refused"}, Outcome{Verdict: Transient, Reason: "GET h:443: connection refused"}},
		{"refused", Response{}, &Error{Kind: ErrRefused, Method: "GET", Host: "h:443", Detail: "d"}, Outcome{Verdict: Permanent, Reason: "GET h:443: d"}},
		{"redirects", Response{}, &Error{Kind: ErrRedirects, Method: "GET", Host: "h:443", Detail: "d"}, Outcome{Verdict: Permanent, Reason: "GET h:443: d"}},
		{"render error", Response{}, fmt.Errorf("%w: header X: value contains a line break", ErrInvalid), Outcome{Verdict: Permanent, Reason: "invalid request: header X: value contains a line break"}},
		{"raw url error is stripped", Response{}, asClient(errors.New("boom")), Outcome{Verdict: Transient, Reason: "boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyAt(tt.resp, tt.err, now); got != tt.want {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestClassifyBodyExcerpt(t *testing.T) {
	o := Classify(Response{Status: 422, Body: strings.Repeat("é", 300)}, nil)
	want := "HTTP 422 Unprocessable Entity: " + strings.Repeat("é", ReasonBodyMax/2) + "…"
	if o.Reason != want || o.Verdict != Permanent {
		t.Fatalf("reason = %q", o.Reason)
	}
	// a cut that lands inside a character backs off to its start
	if got := excerpt("a"+strings.Repeat("é", 10), 4); got != "aé…" {
		t.Fatalf("excerpt = %q", got)
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{OK: "ok", Transient: "transient", Permanent: "permanent", 0: "unknown"} {
		if v.String() != want {
			t.Errorf("%d: %q", v, v.String())
		}
	}
}

// Statuses the retry policy depends on, listed once so a change is a conscious one.
func TestClassifyStatusTable(t *testing.T) {
	for s := 200; s < 600; s++ {
		if http.StatusText(s) == "" && s%100 != 0 {
			continue
		}
		got := Classify(Response{Status: s}, nil).Verdict
		var want Verdict
		switch {
		case s < 400:
			want = OK
		case s == 408 || s == 429 || s >= 500:
			want = Transient
		default:
			want = Permanent
		}
		if got != want {
			t.Errorf("status %d: %v, want %v", s, got, want)
		}
	}
}
