package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/actions/external"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/httpreq"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// POST /v1/external-requests/preview and /check (SPEC 4.10 and 8), routes of
// EditorHandler: the request of an external_request action rendered for a
// subscriber, and sent.
//
// Both answer the rendered request as it goes out, except the values of secret
// variables (saved with "secret": true), which are *** wherever they were rendered
// (httpreq.MaskSecrets): a marketer debugging a request sees every header, and the API
// never answers a secret. Journey entries mask those and, besides, anything whose name
// looks secret (httpreq.Mask).

// externalRequestRun is ExternalRequestRun of the API description.
type externalRequestRun struct {
	Request      *externalRequestDef `json:"request"`
	SubscriberID string              `json:"subscriber_id"`
}

// externalRequestDef is ExternalRequestDefinition: an external_request action, whose
// type and on_error may be given (pasted from a tunnel) and are not used.
type externalRequestDef struct {
	Type            string             `json:"type"`
	Method          string             `json:"method"`
	URL             string             `json:"url"`
	Description     string             `json:"description"`
	Headers         []tunnel.NameValue `json:"headers"`
	Query           []tunnel.NameValue `json:"query"`
	Body            json.RawMessage    `json:"body"`
	ResponseMapping []tunnel.Mapping   `json:"response_mapping"`
	OnError         []string           `json:"on_error"`
	TimeoutMS       int                `json:"timeout_ms"`
}

// prepared is a request rendered for its subscriber.
type prepared struct {
	def        httpreq.Definition
	rendered   httpreq.Rendered
	fieldTypes map[string]string
	secrets    []string // values of the workspace's secret variables
}

// prepare validates the body whole (every error at once, pointers into the body),
// finds the subscriber and renders the request for them.
func (s *Server) prepare(r *http.Request, ws string) (prepared, response, bool) {
	var in externalRequestRun
	if res, good := readBody(r, &in); !good {
		return prepared{}, res, false
	}
	var errs []FieldError
	if in.Request == nil {
		errs = append(errs, FieldError{Pointer: "/request", Detail: "request is required"})
	}
	if strings.TrimSpace(in.SubscriberID) == "" {
		errs = append(errs, FieldError{Pointer: "/subscriber_id", Detail: "subscriber_id is required"})
	}
	cat, err := s.Store.Catalog(r.Context(), ws)
	if err != nil {
		return prepared{}, internalErr(err), false
	}
	var a tunnel.Action
	if d := in.Request; d != nil {
		if d.Type != "" && d.Type != tunnel.ActionExternalRequest {
			errs = append(errs, FieldError{Pointer: "/request/type", Detail: fmt.Sprintf("type must be %q when given, not %q", tunnel.ActionExternalRequest, d.Type)})
		}
		a = tunnel.Action{
			Type: tunnel.ActionExternalRequest, Method: d.Method, URL: d.URL, Description: d.Description,
			Headers: d.Headers, Query: d.Query, Body: compactBody(d.Body), ResponseMapping: d.ResponseMapping,
			TimeoutMS: d.TimeoutMS,
		}
		for _, e := range tunnel.ValidateExternalRequest(a, cat) {
			e.Pointer = "/request" + e.Pointer
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return prepared{}, invalid(summary(errs), errs...), false
	}

	sub, err := s.Store.Subscriber(r.Context(), ws, in.SubscriberID)
	if errors.Is(err, engine.ErrNotFound) {
		return prepared{}, notFound(fmt.Sprintf("subscriber %q", in.SubscriberID)), false
	}
	if err != nil {
		return prepared{}, internalErr(err), false
	}
	vars, secrets, err := s.Store.VariablesAndSecrets(r.Context(), ws)
	if err != nil {
		return prepared{}, internalErr(err), false
	}
	p := prepared{def: httpreq.FromAction(a), fieldTypes: cat.Fields, secrets: secrets}
	p.rendered, err = httpreq.Render(p.def, external.RequestData(sub, "", vars), cat.Fields)
	if err != nil {
		// The definition is valid, but this subscriber's data cannot be sent safely
		// (a line break in a header) or does not fit a typed body placeholder.
		msg := strings.TrimPrefix(err.Error(), httpreq.ErrInvalid.Error()+": ")
		e := FieldError{Pointer: renderPointer(msg), Detail: "rendered for subscriber " + in.SubscriberID + ": " + msg}
		return prepared{}, invalid(summary([]FieldError{e}), e), false
	}
	return p, response{}, true
}

// compactBody drops a null body (none) and the white space of a JSON one, as saving a
// tunnel does.
func compactBody(raw json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, t) != nil {
		return t // validation says what is wrong with it
	}
	return b.Bytes()
}

// renderPointer points a Render error at the part of the request it names.
func renderPointer(msg string) string {
	for _, part := range []struct{ prefix, ptr string }{
		{"method", "/request/method"}, {"url", "/request/url"}, {"header", "/request/headers"},
		{"query", "/request/query"}, {"body", "/request/body"},
	} {
		if strings.HasPrefix(msg, part.prefix) {
			return part.ptr
		}
	}
	return "/request"
}

// previewExternalRequest renders the request for the subscriber; nothing is sent.
func (s *Server) previewExternalRequest(r *http.Request, ws string) response {
	p, res, good := s.prepare(r, ws)
	if !good {
		return res
	}
	return ok(httpreq.MaskSecrets(p.rendered, p.secrets))
}

// checkBudget bounds a check's request (its timeout_ms may be 30 s, API
// Gateway's own limit for the whole call).
const checkBudget = 25 * time.Second

// checkResult is CheckResult of the API description.
type checkResult struct {
	Request    httpreq.Rendered        `json:"request"`
	Response   httpreq.Response        `json:"response"`
	Mapping    []httpreq.MappingResult `json:"mapping"`
	DurationMS int64                   `json:"duration_ms"`
}

// checkExternalRequest sends the request for the subscriber, as a step would (without
// an Idempotency-Key: it is not a step), and answers the answer and what the mapping
// would write. Nothing is written.
func (s *Server) checkExternalRequest(r *http.Request, ws string) response {
	p, res, good := s.prepare(r, ws)
	if !good {
		return res
	}
	client := s.External
	if client == nil {
		client = egress.NewClient(s.Egress, egress.Options{Timeout: httpreq.MaxTimeout, MaxBody: httpreq.MaxBodyLimit})
		defer client.CloseIdleConnections()
	}
	// API Gateway answers 503 itself to a request that takes 30 s: a check that
	// has not been answered by then ends in time to say so (422 request_failed).
	ctx, cancel := context.WithTimeout(r.Context(), checkBudget)
	defer cancel()
	ex := external.Requests{Client: client}.Send(ctx, p.rendered, p.def, p.fieldTypes, "")
	if ex.Response.Status == 0 {
		// No answer at all. The error names the method and host:port and what went
		// wrong, never the path or query (they may carry secrets).
		code := "request_failed"
		if errors.Is(ex.Err, httpreq.ErrRefused) {
			code = "destination_refused"
		}
		detail := "no answer"
		if ex.Err != nil {
			detail = ex.Err.Error()
		}
		return fail(http.StatusUnprocessableEntity, code, detail)
	}
	resp := ex.Response
	body, cut := external.CutBody(resp.Body, external.CheckBodyMax)
	resp.Body, resp.Truncated = httpreq.MaskSecretText(body, p.secrets), cut || resp.Truncated
	resp.Headers = httpreq.MaskHeaders(resp.Headers)
	if resp.Headers == nil {
		resp.Headers = []tunnel.NameValue{}
	}
	mapping := ex.Mapping
	if mapping == nil {
		mapping = []httpreq.MappingResult{}
	}
	return ok(checkResult{
		Request: httpreq.MaskSecrets(p.rendered, p.secrets), Response: resp, Mapping: mapping,
		DurationMS: resp.Duration.Milliseconds(),
	})
}
