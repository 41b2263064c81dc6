// Package connector sends chat messages to the workspace's channel connector
// (SPEC section 8): a signed JSON POST to the channel url. It classifies the
// outcome so the step runner knows whether to retry (ErrTransient) or fail the
// step (ErrPermanent).
package connector

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/egress"
)

// Header names of the connector contract.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderTimestamp      = "X-Tunnels-Timestamp"
	HeaderSignature      = "X-Tunnels-Signature"
)

// MaxResultBody is how much of the connector's answer is kept (Result.Body and
// error messages).
const MaxResultBody = 1 << 10

// DefaultTolerance is the clock skew Verify accepts when given none.
const DefaultTolerance = 5 * time.Minute

var (
	// ErrTransient: the message may not have been delivered; retry later
	// (timeout, connection error, 429, 5xx).
	ErrTransient = errors.New("channel connector: transient failure")
	// ErrPermanent: retrying will not help; the step fails (another 4xx, a
	// destination that is not allowed, a channel without url or secret).
	ErrPermanent = errors.New("channel connector: permanent failure")
	// ErrInvalidSignature is wrapped by every Verify failure.
	ErrInvalidSignature = errors.New("invalid connector signature")
)

// Channel is the workspace's connector: where to POST and the signing secret.
type Channel struct {
	URL, Secret string
}

// Message is the body of a chat message to the connector; the field order is
// the order of the JSON keys in SPEC section 8.
type Message struct {
	StepID       string `json:"step_id"`
	SubscriberID string `json:"subscriber_id"`
	Channel      string `json:"channel"`
	ExternalID   string `json:"external_id"`
	Tunnel       string `json:"tunnel"`
	Block        string `json:"block"`
	Text         string `json:"text"`
	// Buttons, when the block has any: [{"id", "text"}] (funnel logic).
	Buttons []Button `json:"buttons,omitempty"`
}

// Button is a reply button the connector shows with the text.
type Button struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// Result is what the connector answered: its status and the first
// MaxResultBody bytes of its body. Status is 0 when no answer came back.
type Result struct {
	Status int
	Body   string
}

// Client sends messages. HTTP must be an egress client (nil: one with the
// default options that allows no non-public address); Now defaults to time.Now.
type Client struct {
	HTTP *http.Client
	Now  func() time.Time
}

// defaultHTTP is shared so that a zero Client still reuses connections.
var defaultHTTP = sync.OnceValue(func() *http.Client {
	return egress.NewClient(egress.Policy{}, egress.Options{})
})

// Send POSTs m to ch.URL, signed with ch.Secret. A 2xx answer is delivery and
// returns a nil error. Otherwise the error wraps ErrTransient (timeout,
// connection error, 429, 5xx) or ErrPermanent (another status, a refused or
// invalid destination). The Result carries the answer whenever there was one.
// Errors never contain the secret, nor the url's path or query.
func (c *Client) Send(ctx context.Context, ch Channel, m Message) (Result, error) {
	if m.StepID == "" {
		return Result{}, fmt.Errorf("%w: message has no step id", ErrPermanent)
	}
	if ch.Secret == "" {
		return Result{}, fmt.Errorf("%w: channel has no secret", ErrPermanent)
	}
	u, err := url.Parse(ch.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Result{}, fmt.Errorf("%w: channel url is not a valid http(s) url", ErrPermanent)
	}
	body, err := encode(m)
	if err != nil {
		return Result{}, fmt.Errorf("%w: encode message: %v", ErrPermanent, err)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ts := now().Unix()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("%w: channel url is not a valid http(s) url", ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, m.StepID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(ch.Secret, ts, body))

	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Result{}, classify(err)
	}
	defer resp.Body.Close()
	// A body that fails half-way is still an answer: the status decides.
	raw, _, _ := egress.ReadLimited(resp.Body, MaxResultBody)
	res := Result{Status: resp.StatusCode, Body: cutUTF8(raw)}

	switch s := resp.StatusCode; {
	case s >= 200 && s <= 299:
		return res, nil
	case s == http.StatusTooManyRequests || s >= 500:
		return res, fmt.Errorf("%w: channel answered %d: %q", ErrTransient, s, res.Body)
	default: // another 4xx, or a final 1xx/3xx the connector should not send
		return res, fmt.Errorf("%w: channel answered %d: %q", ErrPermanent, s, res.Body)
	}
}

// encode marshals m without HTML escaping, so "<b>" reaches the connector as
// written; the signature covers exactly these bytes.
func encode(m Message) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// classify turns a failed exchange (no answer) into a typed error. The
// *url.Error wrapper is dropped because it repeats the whole url.
func classify(err error) error {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	switch {
	case egress.IsRefused(err):
		return fmt.Errorf("%w: channel url is not allowed: %w", ErrPermanent, inner)
	case errors.Is(err, egress.ErrTooManyRedirects):
		return fmt.Errorf("%w: %w", ErrPermanent, inner)
	default: // timeout, connection refused or reset, DNS, TLS, cancelled context
		return fmt.Errorf("%w: %w", ErrTransient, inner)
	}
}

// cutUTF8 drops a rune split by the size cut at the end of b.
func cutUTF8(b []byte) string {
	for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	return string(b)
}

// Sign is the X-Tunnels-Signature value: "sha256=" + hex HMAC-SHA256 with the
// channel secret of "<ts>.<body>".
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a request as a connector receives it: the timestamp header
// is within tolerance of now (tolerance <= 0 means DefaultTolerance) and the
// signature matches body. Errors wrap ErrInvalidSignature and never contain the
// secret or the expected signature.
func Verify(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret to verify with", ErrInvalidSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	tsText := header.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ts < 0 || tsText != strconv.FormatInt(ts, 10) {
		return fmt.Errorf("%w: missing or malformed %s", ErrInvalidSignature, HeaderTimestamp)
	}
	skew := now.Unix() - ts
	if skew < 0 {
		skew = -skew
	}
	if skew < 0 || skew > int64(math.Ceil(tolerance.Seconds())) {
		return fmt.Errorf("%w: %s is outside the allowed clock skew", ErrInvalidSignature, HeaderTimestamp)
	}
	sig, ok := strings.CutPrefix(header.Get(HeaderSignature), "sha256=")
	if !ok {
		return fmt.Errorf("%w: missing %s or not sha256=<hex>", ErrInvalidSignature, HeaderSignature)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex", ErrInvalidSignature, HeaderSignature)
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(Sign(secret, ts, body), "sha256="))
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: signature does not match", ErrInvalidSignature)
	}
	return nil
}
