package amocrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tunnels/tunnels/shared/egress"
)

const (
	// VendorRate is amoCRM's documented limit: 7 requests per second.
	VendorRate = 7
	// DefaultInterval spaces one Client's requests. It is a little slower than
	// 1/7 s on purpose: at exactly 7/s the 1st and the 8th request leave
	// exactly one second apart, and ordinary scheduling jitter then lands both
	// in the same 1-second window at amoCRM, which answers 429.
	DefaultInterval = 150 * time.Millisecond

	// RefreshSkew: tokens are refreshed this long before they expire, so a
	// token does not run out between our check and amoCRM reading it.
	RefreshSkew = 60 * time.Second
	// RefreshLease is the lease asked of the TokenStore. It outlives
	// refreshTimeout so nobody else starts a refresh with the same (single-use)
	// refresh token while ours may still be in flight.
	RefreshLease = 30 * time.Second

	refreshTimeout = 15 * time.Second // bound on the OAuth call itself
	saveTimeout    = 10 * time.Second // bound on storing rotated tokens
	leaseWaits     = 6                // reloads while someone else refreshes (≈ 5 s in all)
	maxBody        = 8 << 20          // our own cap on an answer, on top of the HTTP client's
)

// NewLimiter answers the limiter one process should use when `instances`
// processes (e.g. concurrent Lambda instances) share one amoCRM account: the
// vendor's 7 requests per second divided among them (minus the jitter margin
// of DefaultInterval). instances < 1 counts as 1.
func NewLimiter(instances int) *rate.Limiter {
	if instances < 1 {
		instances = 1
	}
	return rate.NewLimiter(rate.Every(DefaultInterval*time.Duration(instances)), 1)
}

// Client talks to one amoCRM account. Set the exported fields, then share it
// by pointer: its methods are safe for concurrent use (do not copy it after
// first use). It retries nothing itself except one token refresh and one retry
// after a 401; every other failure is returned classified (see the Err*
// values) so the caller's queue retries with back-off.
type Client struct {
	// BaseURL is the account's address, e.g. "https://example.amocrm.ru"
	// (from the OAuth redirect's referer; never guessed).
	BaseURL string
	// HTTP sends every request. The deployment passes its SSRF-safe egress
	// client (shared/egress); nil means http.DefaultClient.
	HTTP *http.Client
	// Creds are the integration's OAuth client credentials.
	Creds Credentials
	// Tokens is where the tokens live, shared by all processes.
	Tokens TokenStore
	// Limiter paces this Client's requests, token refreshes included. nil
	// means NewLimiter(1): about 7 requests per second, burst 1. amoCRM's
	// limit is per account, so with N concurrent function instances each
	// should get 7/N: pass NewLimiter(N).
	Limiter *rate.Limiter
	// Now is the clock for token expiry; nil means time.Now.
	Now func() time.Time
	// Logger receives refresh events and refused answers (with X-Request-Id,
	// never tokens); nil means slog.Default().
	Logger *slog.Logger

	initOnce   sync.Once
	limiter    *rate.Limiter
	refreshMu  sync.Mutex // one refresh at a time within this process
	mu         sync.Mutex // guards the fields below
	cached     Tokens
	cachedVer  string
	haveCached bool
	deadVer    string // a version amoCRM refused for good
	haveDead   bool
}

func (c *Client) init() {
	c.initOnce.Do(func() {
		c.limiter = c.Limiter
		if c.limiter == nil {
			c.limiter = NewLimiter(1)
		}
	})
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// request is one API call: path without query, the raw query, a JSON body.
type request struct {
	method string
	path   string
	query  string
	body   any
}

func (r request) op() string { return r.method + " " + r.path }

// do sends an authorised API call and decodes a 2xx JSON answer into out
// (unless out is nil or the answer is 204). It answers the HTTP status.
func (c *Client) do(ctx context.Context, r request, out any) (int, error) {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return 0, &Error{Kind: ErrValidation, Op: r.op(), Detail: "encoding the request: " + err.Error()}
		}
	}
	if c.Tokens == nil {
		return 0, &Error{Kind: ErrAccount, Op: r.op(), Detail: "no token store configured"}
	}
	tok, ver, err := c.token(ctx)
	if err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		a, err := c.send(ctx, r.method, r.path, r.query, payload, tok.AccessToken)
		if err != nil {
			return 0, err
		}
		if a.status == http.StatusUnauthorized {
			if attempt == 0 {
				c.logger().InfoContext(ctx, "amocrm: access token refused, refreshing", "op", r.op(), "request_id", a.requestID)
				if tok, ver, err = c.renew(ctx, ver, tok); err != nil {
					return 0, err
				}
				continue
			}
			e := classify(r.op(), a)
			e.Detail = "amoCRM refused a freshly refreshed access token; reconnect the amoCRM integration"
			return 0, e
		}
		if a.status < 200 || a.status > 299 {
			e := classify(r.op(), a)
			c.logger().WarnContext(ctx, "amocrm: request refused", "op", r.op(), "status", a.status, "request_id", a.requestID, "error", e.Error())
			return a.status, e
		}
		if a.status == http.StatusNoContent || out == nil {
			return a.status, nil
		}
		if len(bytes.TrimSpace(a.body)) == 0 {
			return a.status, &Error{Kind: ErrTransient, Op: r.op(), Status: a.status, RequestID: a.requestID, Detail: "empty answer"}
		}
		if !isJSONType(a.header.Get("Content-Type"), true) {
			return a.status, &Error{Kind: ErrTransient, Op: r.op(), Status: a.status, RequestID: a.requestID,
				Detail: "answer is not JSON (" + a.header.Get("Content-Type") + ")"}
		}
		if err := json.Unmarshal(a.body, out); err != nil {
			return a.status, &Error{Kind: ErrTransient, Op: r.op(), Status: a.status, RequestID: a.requestID, Detail: "unreadable answer", Err: err}
		}
		return a.status, nil
	}
}

// send makes one HTTP exchange, paced by the limiter, and reads the answer in
// full. A failure to get an answer comes back classified.
func (c *Client) send(ctx context.Context, method, path, query string, payload []byte, bearer string) (*answer, error) {
	c.init()
	op := method + " " + path
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, &Error{Kind: ErrTransient, Op: op, Detail: "waiting for the rate limiter", Err: ctxErrOr(ctx, err)}
	}
	u := strings.TrimRight(c.BaseURL, "/") + path
	if query != "" {
		u += "?" + query
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, &Error{Kind: ErrAccount, Op: op, Detail: "invalid amoCRM base URL", Err: stripURL(err)}
	}
	req.Header.Set("Accept", "application/hal+json, application/json, application/problem+json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	a := &answer{status: resp.StatusCode, header: resp.Header, body: data, requestID: resp.Header.Get("X-Request-Id")}
	if err != nil {
		e := transportError(ctx, op, err)
		e.Status, e.RequestID = a.status, a.requestID
		return nil, e
	}
	if len(data) > maxBody {
		return nil, &Error{Kind: ErrTransient, Op: op, Status: a.status, RequestID: a.requestID, Detail: "answer too large"}
	}
	return a, nil
}

// transportError classifies a failure to get (or read) an answer.
func transportError(ctx context.Context, op string, err error) *Error {
	err = stripURL(err)
	if egress.IsRefused(err) {
		return &Error{Kind: ErrAccount, Op: op, Detail: "the amoCRM address is refused by the egress policy", Err: err}
	}
	return &Error{Kind: ErrTransient, Op: op, Detail: "no answer", Err: ctxErrOr(ctx, err)}
}

// ctxErrOr prefers the context's own error, so errors.Is(err,
// context.DeadlineExceeded) holds when the caller's deadline was the cause.
func ctxErrOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

// stripURL drops *url.Error's copy of the URL (its query holds phones and
// emails) and keeps the cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
