// Package httpreq is the external_request action (SPEC section 4.10): it renders a
// request definition for a subscriber, safely for each context a value lands in (Render),
// sends it through the egress client (Do), says whether the outcome is final or worth a
// retry (Classify), hides secrets before anything is logged or stored (Mask), and picks
// the response mapping's values out of the answer (Map).
//
// The package is pure: no AWS, no store. The webhook step, the preview endpoint and the
// check endpoint all go through the same Render, so what a preview shows is what a step
// sends (minus Idempotency-Key and User-Agent, which Do adds).
package httpreq

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// Definition is an external request as the tunnel (or a preview/check call) defines it,
// placeholders unrendered.
type Definition struct {
	Method          string
	URL             string
	Description     string
	Headers         []tunnel.NameValue
	Query           []tunnel.NameValue
	Body            json.RawMessage // a JSON value, or a JSON string for a text body; empty or null: none
	ResponseMapping []tunnel.Mapping
	TimeoutMS       int // 0: DefaultTimeout
}

// FromAction takes the request of an external_request action.
func FromAction(a tunnel.Action) Definition {
	return Definition{
		Method:          a.Method,
		URL:             a.URL,
		Description:     a.Description,
		Headers:         a.Headers,
		Query:           a.Query,
		Body:            a.Body,
		ResponseMapping: a.ResponseMapping,
		TimeoutMS:       a.TimeoutMS,
	}
}

// Time and size bounds.
const (
	DefaultTimeout = 10 * time.Second // a definition without timeout_ms
	MaxTimeout     = 30 * time.Second // tunnel.MaxTimeoutMS; nothing waits longer

	DefaultMaxBody = 64 << 10 // response bytes kept by default: what a journey entry holds
	MaxBodyLimit   = 1 << 20  // the most Do ever reads (egress.DefaultMaxBody)

	// ReasonBodyMax is how many bytes of the response body a failure reason quotes.
	ReasonBodyMax = 256
)

// Timeout is how long the request may take: its timeout_ms, DefaultTimeout when unset,
// never more than MaxTimeout. Pass it as Options.Timeout.
func (d Definition) Timeout() time.Duration {
	if d.TimeoutMS <= 0 {
		return DefaultTimeout
	}
	t := time.Duration(d.TimeoutMS) * time.Millisecond
	if t > MaxTimeout {
		return MaxTimeout
	}
	return t
}

// Rendered is a request ready to send: placeholders substituted, query folded into URL.
type Rendered struct {
	Method string
	URL    string // absolute; carries the url's own query and then Query, escaped
	// Query is the definition's query list rendered (values unescaped), for display; it is
	// already part of URL.
	Query []tunnel.NameValue
	// Headers are the definition's headers rendered, plus Content-Type when there is a
	// body and no header set it. Idempotency-Key and User-Agent are added by Do.
	Headers    []tunnel.NameValue
	Body       string // "" for none
	BodyIsJSON bool   // Body is a JSON document (else text)
}

// MarshalJSON writes the preview shape of SPEC section 8 (RenderedRequest in the API
// description): {"method", "url", "headers", "body"}, the body a JSON value for a JSON
// body, a string for a text body, null when there is none. Query is not repeated: the
// url carries it. Marshal Mask(r), not r, wherever the answer leaves the process.
func (r Rendered) MarshalJSON() ([]byte, error) {
	var body any
	switch {
	case r.BodyIsJSON && json.Valid([]byte(r.Body)):
		body = json.RawMessage(r.Body)
	case r.Body != "":
		body = r.Body
	}
	headers := r.Headers
	if headers == nil {
		headers = []tunnel.NameValue{}
	}
	return json.Marshal(struct {
		Method  string             `json:"method"`
		URL     string             `json:"url"`
		Headers []tunnel.NameValue `json:"headers"`
		Body    any                `json:"body"`
	}{r.Method, r.URL, headers, body})
}

// Errors. Every error of Render wraps ErrInvalid; every error of Do wraps one of the
// others (and, through *Error, its cause: errors.Is(err, egress.ErrRefused) holds too).
var (
	// ErrInvalid: the request cannot be built (bad definition, or subscriber data that
	// cannot be sent safely, e.g. a line break in a header). Permanent.
	ErrInvalid = errors.New("invalid request")
	// ErrRefused: the destination, a redirect's, or what a name resolved to is not
	// allowed by the egress policy. Nothing was sent to it. Permanent.
	ErrRefused = errors.New("destination refused")
	// ErrTimeout: no complete answer within the time bound. Transient.
	ErrTimeout = errors.New("request timed out")
	// ErrConnection: DNS failure, connection refused or reset, TLS failure, a broken
	// answer. Transient.
	ErrConnection = errors.New("connection failed")
	// ErrRedirects: the redirect chain was longer than the egress client allows. Permanent.
	ErrRedirects = errors.New("too many redirects")
)
