package amocrm

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The kinds of failure. Every error the Client returns wraps exactly one of
// them (test with errors.Is), so a caller decides retry or give up without
// reading messages. None of the messages carries a token or a secret.
var (
	// ErrRateLimited: amoCRM answered 429. Retry later, after RetryAfter if the
	// error carries one (errors.As to *Error).
	ErrRateLimited = errors.New("amoCRM rate limit exceeded")
	// ErrTransient: 5xx, a timeout, a connection failure, an unreadable
	// answer, a 403 block page, or another process holding the token refresh.
	// Retry with back-off.
	ErrTransient = errors.New("amoCRM temporarily unavailable")
	// ErrValidation: amoCRM refused the data (400 with validation errors, or
	// another client-side 4xx). Retrying the same request cannot succeed.
	ErrValidation = errors.New("amoCRM rejected the data")
	// ErrAccount: the account cannot serve the request (lapsed subscription,
	// missing rights, a base URL the egress policy refuses). Not retryable and
	// not the subscriber's data at fault.
	ErrAccount = errors.New("amoCRM account problem")
	// ErrReconnect: the tokens are gone for good (refresh token refused or
	// revoked, long-lived token expired). The user must reconnect the
	// integration; nothing is retried until they do.
	ErrReconnect = errors.New("the amoCRM integration must be reconnected")
	// ErrNotFound: the entity does not exist (404).
	ErrNotFound = errors.New("not found in amoCRM")
)

// Retryable reports whether err is worth retrying later (rate limit or a
// transient failure).
func Retryable(err error) bool {
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrTransient)
}

// Error is the error the Client returns. Kind is one of the Err* values.
type Error struct {
	Kind      error         // ErrRateLimited, ErrTransient, ErrValidation, ErrAccount, ErrReconnect or ErrNotFound
	Op        string        // e.g. "POST /api/v4/leads/complex" (never the query: it holds phones and emails)
	Status    int           // HTTP status; 0 when no answer came back
	RequestID string        // amoCRM's X-Request-Id: quote it to amoCRM support
	Detail    string        // amoCRM's own detail (or hint), or what went wrong
	Fields    []FieldError  // amoCRM's validation errors, in its order
	Retry     time.Duration // Retry-After when amoCRM sent one
	Err       error         // the underlying cause (a network or context error), if any
}

// FieldError is one entry of amoCRM's validation-errors.
type FieldError struct {
	RequestID string // the batch item it refers to
	Code      string // e.g. "NotSupportedChoice"
	Path      string // e.g. "custom_fields_values.0.field_id"
	Detail    string // amoCRM's explanation
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("amocrm: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		b.WriteString("request failed")
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(":")
		} else {
			b.WriteString(";")
		}
		if f.RequestID != "" {
			fmt.Fprintf(&b, " [item %s]", f.RequestID)
		}
		if f.Path != "" {
			b.WriteString(" ")
			b.WriteString(f.Path)
			b.WriteString(":")
		}
		if f.Detail != "" {
			b.WriteString(" ")
			b.WriteString(f.Detail)
		}
		if f.Code != "" {
			fmt.Fprintf(&b, " (%s)", f.Code)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Retry > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.Retry)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [X-Request-Id %s]", e.RequestID)
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is / errors.As.
func (e *Error) Unwrap() []error {
	out := make([]error, 0, 2)
	if e.Kind != nil {
		out = append(out, e.Kind)
	}
	if e.Err != nil {
		out = append(out, e.Err)
	}
	return out
}

// RetryAfter is amoCRM's Retry-After, or 0 when it sent none.
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// answer is an HTTP answer read in full.
type answer struct {
	status    int
	header    http.Header
	body      []byte
	requestID string
}

// problem is an application/problem+json body. Every field is optional, and
// status may be a number or a string, so it is decoded leniently.
type problem struct {
	Title            string          `json:"title"`
	Type             string          `json:"type"`
	Detail           string          `json:"detail"`
	Hint             string          `json:"hint"`
	Error            string          `json:"error"`             // OAuth servers' "invalid_grant"
	ErrorDescription string          `json:"error_description"` // OAuth servers' explanation
	ValidationErrors json.RawMessage `json:"validation-errors"`
}

// parseProblem reads a JSON error body; ok is false for anything else (an
// HTML block page, a plain-text 429, an empty body).
func parseProblem(a *answer) (p problem, fields []FieldError, ok bool) {
	body := strings.TrimSpace(string(a.body))
	if !strings.HasPrefix(body, "{") || !isJSONType(a.header.Get("Content-Type"), true) {
		return problem{}, nil, false
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		return problem{}, nil, false
	}
	return p, parseValidationErrors(p.ValidationErrors), true
}

// parseValidationErrors accepts the documented shape
// [{"request_id": "0", "errors": [{"code", "path", "detail"}]}] and, because
// the vendor shows no other, also a flat list of errors and numeric request ids.
func parseValidationErrors(raw json.RawMessage) []FieldError {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	type item struct {
		RequestID flexString `json:"request_id"`
		Code      string     `json:"code"`
		Path      string     `json:"path"`
		Detail    string     `json:"detail"`
		Errors    []struct {
			Code   string `json:"code"`
			Path   string `json:"path"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	var items []item
	if err := json.Unmarshal(raw, &items); err != nil {
		var one item
		if err := json.Unmarshal(raw, &one); err != nil {
			return []FieldError{{Detail: "unreadable validation-errors"}}
		}
		items = []item{one}
	}
	var out []FieldError
	for _, it := range items {
		if len(it.Errors) == 0 && (it.Code != "" || it.Path != "" || it.Detail != "") {
			out = append(out, FieldError{RequestID: string(it.RequestID), Code: it.Code, Path: it.Path, Detail: it.Detail})
		}
		for _, e := range it.Errors {
			out = append(out, FieldError{RequestID: string(it.RequestID), Code: e.Code, Path: e.Path, Detail: e.Detail})
		}
	}
	return out
}

// flexString decodes a JSON string or number as text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*f = flexString(n.String())
		return nil
	}
	*f = ""
	return nil
}

// accountProblem recognises the 400 that amoCRM has been seen to send for a
// lapsed subscription or missing rights: a problem body without
// validation-errors whose detail names an account error code. The vendor does
// not list the wording, so both a known code number and the usual words count.
// Compiled on first use, not at init: every function links this package
// through the store, and only the crm function and the API classify answers.
var accountProblem = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\b(account|subscription|tariff|payment|paid|rights|permission|access denied|forbidden|blocked|disabled)\b|\b(101|110|111|112|113|402|403)\b`)
})

// classify turns a non-2xx answer into an *Error.
func classify(op string, a *answer) *Error {
	e := &Error{Op: op, Status: a.status, RequestID: a.requestID}
	p, fields, isProblem := parseProblem(a)
	if isProblem {
		e.Detail = problemText(p)
		e.Fields = fields
	}
	switch s := a.status; {
	case s == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
		e.Retry = parseRetryAfter(a.header.Get("Retry-After"), time.Now())
		if !isProblem {
			e.Detail = "too many requests"
		}
	case s == http.StatusUnauthorized:
		e.Kind = ErrReconnect
	case s == http.StatusPaymentRequired:
		e.Kind = ErrAccount
	case s == http.StatusForbidden && !isProblem:
		// The block page after repeated limit violations is HTML: back off.
		e.Kind = ErrTransient
		e.Retry = parseRetryAfter(a.header.Get("Retry-After"), time.Now())
		e.Detail = "amoCRM blocked the requests (403 page): too many requests, back off"
	case s == http.StatusForbidden:
		e.Kind = ErrAccount // a problem body: missing rights
	case s == http.StatusNotFound:
		e.Kind = ErrNotFound
	case s == http.StatusBadRequest && len(e.Fields) > 0:
		e.Kind = ErrValidation
	case s == http.StatusBadRequest && isProblem && accountProblem().MatchString(e.Detail+" "+p.Title):
		e.Kind = ErrAccount
	case s == http.StatusRequestTimeout, s == http.StatusTooEarly, s == http.StatusConflict, s >= 500:
		e.Kind = ErrTransient
	default:
		e.Kind = ErrValidation
	}
	if e.Detail == "" && !isProblem && e.Kind != ErrTransient {
		e.Detail = "answer without a problem body"
	}
	return e
}

// parseRetryAfter reads delta-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// isJSONType accepts application/json, application/hal+json,
// application/problem+json; an absent type counts when lenient.
func isJSONType(ct string, lenient bool) bool {
	if ct == "" {
		return lenient
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// problemText is amoCRM's own words: detail and hint (OAuth problems put the
// reason in the hint), else an OAuth error description, else the title.
func problemText(p problem) string {
	d, h := strings.TrimSpace(p.Detail), strings.TrimSpace(p.Hint)
	switch {
	case d != "" && h != "" && !strings.EqualFold(d, h):
		return d + " (" + h + ")"
	case d != "" || h != "":
		return firstNonEmpty(d, h)
	}
	return firstNonEmpty(p.ErrorDescription, p.Error, p.Title)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
