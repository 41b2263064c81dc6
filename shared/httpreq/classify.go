package httpreq

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// Verdict says what a request's outcome means for the step.
type Verdict int

const (
	// OK: a 2xx answer, or a 3xx the client did not follow. The step is done.
	OK Verdict = iota + 1
	// Transient: a timeout, a connection error, 408, 429 or 5xx. Worth a retry; when
	// retries run out the run goes to on_error.
	Transient
	// Permanent: a refused destination, an invalid request, too many redirects, or any
	// other status (4xx). Retrying would not help; the run goes to on_error now.
	Permanent
)

func (v Verdict) String() string {
	switch v {
	case OK:
		return "ok"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// Outcome is Classify's judgement.
type Outcome struct {
	Verdict Verdict
	Status  int // the HTTP status, 0 when no answer came
	// RetryAfter is the answer's Retry-After (seconds or an HTTP date), 0 when absent or
	// already past. Only set for Transient. The caller caps it to its own retry policy.
	RetryAfter time.Duration
	// Reason says why, for the journey entry: "HTTP 404 Not Found: <start of the body>",
	// or the error's message. It never holds the URL's path or query. "" for OK.
	Reason string
}

// Classify judges Do's result: err first (its kind), then the status.
func Classify(resp Response, err error) Outcome {
	return classifyAt(resp, err, time.Now())
}

func classifyAt(resp Response, err error, now time.Time) Outcome {
	if err != nil {
		o := Outcome{Verdict: Transient, Status: resp.Status, Reason: stripURL(err).Error()}
		switch {
		case errors.Is(err, ErrRefused), errors.Is(err, ErrInvalid), errors.Is(err, ErrRedirects):
			o.Verdict = Permanent
		}
		return o
	}
	s := resp.Status
	switch {
	case s >= 200 && s < 400:
		return Outcome{Verdict: OK, Status: s}
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500 && s < 600:
		o := Outcome{Verdict: Transient, Status: s, RetryAfter: retryAfter(resp.Headers, now)}
		o.Reason = statusReason(resp)
		if o.RetryAfter > 0 {
			o.Reason += fmt.Sprintf(" (retry after %s)", o.RetryAfter)
		}
		return o
	case s == 0:
		return Outcome{Verdict: Permanent, Reason: "no answer"}
	default:
		return Outcome{Verdict: Permanent, Status: s, Reason: statusReason(resp)}
	}
}

// statusReason is "HTTP 404 Not Found: <first ReasonBodyMax bytes of the body>", the body
// on one line.
func statusReason(resp Response) string {
	r := "HTTP " + strconv.Itoa(resp.Status)
	if t := http.StatusText(resp.Status); t != "" {
		r += " " + t
	}
	if b := excerpt(resp.Body, ReasonBodyMax); b != "" {
		r += ": " + b
	}
	return r
}

// excerpt puts s on one line (runs of white space become one space) and cuts it to at
// most max bytes at a character boundary, marking the cut with "…".
func excerpt(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date (RFC 9110 section
// 10.2.3). Anything else, or a date already past, is 0.
func retryAfter(hs []tunnel.NameValue, now time.Time) time.Duration {
	for _, h := range hs {
		if !strings.EqualFold(h.Name, "Retry-After") {
			continue
		}
		v := strings.TrimSpace(h.Value)
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if n <= 0 {
				return 0
			}
			if n > int64(24*time.Hour/time.Second) {
				n = int64(24 * time.Hour / time.Second) // keeps the Duration from overflowing
			}
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			if d := t.Sub(now); d > 0 {
				return (d + time.Second - 1).Truncate(time.Second) // whole seconds, rounded up
			}
		}
		return 0
	}
	return 0
}
