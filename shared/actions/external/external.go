// Package external runs the external_request action (the webhook function)
// and what the API's check request shares with it. It is apart from package
// actions because its request rendering and response mapping (httpreq, gjson)
// are the webhook function's and the API's alone.
package external

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/httpreq"
	"github.com/tunnels/tunnels/shared/render"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// The external_request action (SPEC 4.10) and what the check endpoint shares with it:
// both render with RequestData, send through Requests.Send (the egress client, the
// same bounds, the same judgement), so a check shows what a step would do.

// WebhookStore is what external_request needs of the database.
type WebhookStore interface {
	// VariablesAndSecrets answers the workspace's variables ({{var.key}}) and
	// the values of the secret ones, masked in the journey.
	VariablesAndSecrets(ctx context.Context, ws string) (map[string]string, []string, error)
	// Catalog answers the workspace's catalog; the request reads its field types
	// (typed body placeholders, the response mapping's conversions).
	Catalog(ctx context.Context, ws string) (tunnel.Catalog, error)
	// SetFields writes converted custom field values on the card.
	SetFields(ctx context.Context, ws, sub string, values map[string]any) error
	// RecordRequestStatus keeps the status of the subscriber's last request
	// (0: no answer), which condition blocks test as last_request.
	RecordRequestStatus(ctx context.Context, ws, sub string, status int) error
}

// Sizes of the response body kept where people read it.
const (
	// JourneyBodyMax is how much of a response body a journey entry keeps. A journey page
	// holds up to 500 entries and must stay far below Lambda's 6 MB answer, so it is much
	// less than what is read for the mapping (httpreq.MaxBodyLimit).
	JourneyBodyMax = 8 << 10
	// CheckBodyMax is how much of a response body the check endpoint answers (the
	// "stated size" of CheckResponse.body).
	CheckBodyMax = httpreq.DefaultMaxBody
	// deadlineMargin is kept free of the request at the end of an invocation, so the
	// step can still be recorded (or the check answered) after a timeout.
	deadlineMargin = 2 * time.Second
)

// Actions runs external_request with client, which must be an egress client
// (egress.NewClient) built with Timeout >= httpreq.MaxTimeout and MaxBody >=
// httpreq.MaxBodyLimit.
func Actions(st WebhookStore, client *http.Client) map[string]engine.ActionFunc {
	w := webhook{st: st, rq: Requests{Client: client}}
	return map[string]engine.ActionFunc{tunnel.ActionExternalRequest: w.run}
}

type webhook struct {
	st WebhookStore
	rq Requests
}

// run sends the step's request and records what came of it.
//
// Failures: a refused destination, an invalid request or a 4xx answer (other than 408
// and 429) fail the step now; a timeout, a connection error, 408, 429 or 5xx is retried
// through the queue (after Retry-After when the answer gave one) and fails the step only
// on the last attempt the queue allows. A timeout is deliberately no different from the
// other transient errors: SPEC's "fails for good (after its retries) or times out" is
// read as "times out on its last attempt", because one slow answer is the most common
// passing failure of an API. Whenever the step fails, the run continues at the action's
// on_error blocks, if it has any, instead of the block's next.
func (w webhook) run(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	s, a := ac.Step, ac.Action
	def := httpreq.FromAction(a)
	cat, err := w.st.Catalog(ctx, s.WS)
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("read field types: %w", err)
	}
	// Variables are read whatever the texts hold: url, headers, query and body are
	// rendered together, and one read is cheaper than looking for "var." in each.
	vars, secrets, err := w.st.VariablesAndSecrets(ctx, s.WS)
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("read variables: %w", err)
	}
	r, err := httpreq.Render(def, RequestData(ac.Subscriber, s.Tunnel, vars), cat.Fields)
	if err != nil {
		// The subscriber's data cannot be sent safely (a line break in a header) or the
		// definition went bad: no retry can fix that.
		out := engine.Failed("cannot build the request: " + strings.TrimPrefix(err.Error(), httpreq.ErrInvalid.Error()+": "))
		out.Detail = map[string]any{"method": def.Method}
		return onError(out, a), nil
	}

	ex := w.rq.Send(ctx, r, def, cat.Fields, s.ID)
	ex.Secrets = secrets
	detail := ex.Detail()
	if ex.Outcome.Verdict != httpreq.Transient || ac.FinalAttempt {
		// The request's last word: what a condition on last_request reads.
		if err := w.st.RecordRequestStatus(ctx, s.WS, s.Sub, ex.Response.Status); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return engine.Outcome{}, fmt.Errorf("record the request's status: %w", err)
		}
	}
	switch ex.Outcome.Verdict {
	case httpreq.OK:
		values := map[string]any{}
		for _, m := range ex.Mapping {
			if m.Error == "" {
				values[m.Field] = m.Value
			}
		}
		if err := w.st.SetFields(ctx, s.WS, s.Sub, values); errors.Is(err, engine.ErrNotFound) {
			out := engine.Failed("the subscriber no longer exists; the response mapping was not written")
			out.Detail = detail
			return out, nil
		} else if err != nil {
			// Retried: the request goes again with the same Idempotency-Key.
			return engine.Outcome{}, fmt.Errorf("write the response mapping: %w", err)
		}
		return engine.Done(detail), nil
	case httpreq.Transient:
		if !ac.FinalAttempt {
			return engine.Outcome{}, &RetryLater{Reason: ex.Outcome.Reason, After: ex.Outcome.RetryAfter}
		}
		out := engine.Failed(fmt.Sprintf("%s (gave up after %d attempts)", ex.Outcome.Reason, ac.Attempt))
		out.Detail = detail
		return onError(out, a), nil
	default:
		out := engine.Failed(ex.Outcome.Reason)
		out.Detail = detail
		return onError(out, a), nil
	}
}

// onError sends the run to the action's on_error blocks, when it has some.
func onError(out engine.Outcome, a tunnel.Action) engine.Outcome {
	if len(a.OnError) > 0 {
		out.Continue = append([]string(nil), a.OnError...)
		if out.Detail == nil {
			out.Detail = map[string]any{}
		}
		out.Detail["on_error"] = toAnyList(a.OnError)
	}
	return out
}

// RetryLater is a transient failure of a request: the step is retried through the
// queue, after After when the answer said when (Retry-After), else with the queue's
// back-off. Its message never holds the url's path or query.
type RetryLater struct {
	Reason string
	After  time.Duration
}

func (e *RetryLater) Error() string { return "external request: " + e.Reason + "; retried" }

// RetryAfter is the wait the answer asked for (0: none); stepbatch honours it.
func (e *RetryLater) RetryAfter() time.Duration { return e.After }

// RequestData is the placeholder data of an external request: the subscriber's profile
// and fields, the tunnel id ("" outside a tunnel: preview and check), and the
// workspace's variables.
func RequestData(sub *engine.Subscriber, tunnelID string, vars map[string]string) render.Data {
	d := engine.SubscriberData(sub, tunnelID)
	d.Vars = vars
	return d
}

// Requests sends external requests through the egress client.
type Requests struct {
	Client *http.Client
}

// Exchange is one request sent and judged.
type Exchange struct {
	Request  httpreq.Rendered // as sent; Mask it before it is shown or stored
	Response httpreq.Response // Status 0: no answer came
	Err      error            // Do's error, nil when a whole answer came
	Outcome  httpreq.Outcome
	// Mapping is what the response mapping picks out of an OK answer; for any other
	// outcome every entry says why nothing is written.
	Mapping []httpreq.MappingResult
	// Secrets are the values of the workspace's secret variables: Detail
	// masks them wherever they were rendered or echoed.
	Secrets []string
}

// Send sends r (rendered from def) and judges the answer. idempotencyKey is the step
// id, "" for a check request. The whole answer body up to httpreq.MaxBodyLimit is read
// for the mapping; callers cut what they show. The request's time is its timeout_ms
// (httpreq's default and cap), shortened when ctx ends sooner so that there is time
// left to record the outcome.
func (rq Requests) Send(ctx context.Context, r httpreq.Rendered, def httpreq.Definition, fieldTypes map[string]string, idempotencyKey string) Exchange {
	ex := Exchange{Request: r}
	timeout := def.Timeout()
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl) - deadlineMargin
		if left < time.Duration(tunnel.MinTimeoutMS)*time.Millisecond {
			ex.Err = fmt.Errorf("%w: too little time left in this invocation to send it", httpreq.ErrTimeout)
			ex.Outcome = httpreq.Classify(ex.Response, ex.Err)
			ex.Mapping = notMapped(def.ResponseMapping, "not sent")
			return ex
		}
		timeout = min(timeout, left)
	}
	ex.Response, ex.Err = httpreq.Do(ctx, r, httpreq.Options{
		Client: rq.Client, MaxBody: httpreq.MaxBodyLimit, Timeout: timeout, IdempotencyKey: idempotencyKey,
	})
	ex.Outcome = httpreq.Classify(ex.Response, ex.Err)
	switch {
	case ex.Outcome.Verdict == httpreq.OK:
		ex.Mapping = httpreq.Map([]byte(ex.Response.Body), def.ResponseMapping, fieldTypes)
	case ex.Response.Status != 0 && ex.Err == nil:
		ex.Mapping = notMapped(def.ResponseMapping, fmt.Sprintf("nothing is written for an HTTP %d answer", ex.Response.Status))
	case ex.Response.Status != 0:
		ex.Mapping = notMapped(def.ResponseMapping, "the answer did not arrive whole")
	default:
		ex.Mapping = notMapped(def.ResponseMapping, "no answer")
	}
	return ex
}

func notMapped(ms []tunnel.Mapping, why string) []httpreq.MappingResult {
	out := make([]httpreq.MappingResult, len(ms))
	for i, m := range ms {
		out[i] = httpreq.MappingResult{Path: m.Path, Field: m.Field, Error: why}
	}
	return out
}

// Detail is the journey entry's detail: method, url and headers with secrets masked,
// status (when an answer came), duration, the start of the response body, and the
// mapping's results. Plain maps and lists only: the store writes it as a DynamoDB map.
func (ex Exchange) Detail() map[string]any {
	// Secret variables first (by value), then anything whose name looks
	// secret: a journey is kept and read by many, a preview by its author.
	m := httpreq.Mask(httpreq.MaskSecrets(ex.Request, ex.Secrets))
	d := map[string]any{
		"method":      m.Method,
		"url":         m.URL,
		"headers":     nameValues(m.Headers),
		"duration_ms": ex.Response.Duration.Milliseconds(),
	}
	if ex.Response.Status != 0 {
		body, cut := CutBody(httpreq.MaskSecretText(ex.Response.Body, ex.Secrets), JourneyBodyMax)
		d["status"] = ex.Response.Status
		d["body"] = body
		d["truncated"] = cut || ex.Response.Truncated
	}
	if ex.Err != nil {
		d["error"] = ex.Outcome.Reason
	}
	if len(ex.Mapping) > 0 {
		list := make([]any, len(ex.Mapping))
		for i, r := range ex.Mapping {
			e := map[string]any{"path": r.Path, "field": r.Field}
			if r.Error != "" {
				e["error"] = r.Error
			} else {
				e["value"] = r.Value
			}
			list[i] = e
		}
		d["mapping"] = list
	}
	return d
}

// CutBody keeps at most max bytes of s, cut at a character boundary; cut says whether
// anything was dropped.
func CutBody(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], true
}

func nameValues(nvs []tunnel.NameValue) []any {
	out := make([]any, len(nvs))
	for i, nv := range nvs {
		out[i] = map[string]any{"name": nv.Name, "value": nv.Value}
	}
	return out
}

func toAnyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
