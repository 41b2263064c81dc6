package devstack_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileName is a first name that breaks naive templating in every context.
const hostileName = "Ann \"x\", \n}"

// hookCall is one request as a webhook target got it.
type hookCall struct {
	Method, Path, Query, IdempotencyKey, Token, ContentType string
	Body                                                    []byte
}

// hookTarget is an external API on an allowed loopback port. Each path answers by
// the number of the call with that Idempotency-Key (1 for the first), so a retried
// step sees a different answer than its first attempt.
type hookTarget struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []hookCall
}

const bigBody = 2 << 20 // larger than what a request reads (1 MiB)

func newHookTarget(t *testing.T) *hookTarget {
	h := &hookTarget{}
	h.srv = allowedServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := hookCall{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Idempotency-Key"), r.Header.Get("X-Token"), r.Header.Get("Content-Type"), body}
		h.mu.Lock()
		h.calls = append(h.calls, c)
		n := 0
		for _, x := range h.calls {
			if x.Path == c.Path && x.IdempotencyKey == c.IdempotencyKey {
				n++
			}
		}
		h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=abc123")
		switch r.URL.Path {
		case "/leads":
			fmt.Fprintf(w, `{"data":{"id":"LMS-%s","score":"17.5","vip":1,"since":"2024-05-01T10:00:00+02:00","items":[{"n":3}]}}`, r.Method)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"no such course"}`)
		case "/busy": // rate-limited once, then fine
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"error":"slow down"}`)
				return
			}
			io.WriteString(w, `{"id":"after-busy"}`)
		case "/flaky": // slow on the first and the fifth call, unavailable between
			if n == 1 || n >= 5 {
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/big":
			io.WriteString(w, `{"pad":"`+strings.Repeat("x", bigBody)+`"}`)
		case "/redirect": // to a loopback port the deployment may not call
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		}
	}))
	return h
}

func (h *hookTarget) URL(path string) string { return h.srv.URL + path }

func (h *hookTarget) callsTo(path string) []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookCall
	for _, c := range h.calls {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// hookWorkspace is a workspace with the fields and variable the tests map into and use.
func hookWorkspace(t *testing.T, name string) *api {
	a := newWorkspace(t, name)
	for id, typ := range map[string]string{"lms_id": "string", "score": "number", "vip": "boolean", "since": "date", "items": "number"} {
		a.must(http.MethodPut, "/v1/fields/"+id, map[string]string{"name": id, "type": typ}, http.StatusOK, nil)
	}
	// A secret variable is write-only: no answer shows its value.
	var v map[string]any
	a.must(http.MethodPut, "/v1/variables/lms_token", map[string]any{"value": "tok-s3cret", "secret": true}, http.StatusOK, &v)
	if v["id"] != "lms_token" || v["secret"] != true || v["value"] != nil {
		t.Fatalf("variable %v", v)
	}
	a.must(http.MethodGet, "/v1/variables/lms_token", nil, http.StatusOK, &v)
	if v["value"] != nil {
		t.Fatalf("GET answered a secret variable's value: %v", v)
	}
	a.must(http.MethodPut, "/v1/variables/public_key", map[string]any{"value": "pk-visible"}, http.StatusOK, &v)
	if v["value"] != "pk-visible" || v["secret"] != false {
		t.Fatalf("variable %v", v)
	}
	for _, tag := range []string{"ok", "fell-back"} {
		a.must(http.MethodPut, "/v1/tags/"+tag, map[string]string{"name": tag}, http.StatusOK, nil)
	}
	return a
}

func (a *api) fields(sub string) map[string]any {
	a.t.Helper()
	var c struct {
		Fields map[string]any `json:"fields"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	return c.Fields
}

func stepsOfType(j []journeyStep, typ string) []journeyStep {
	var out []journeyStep
	for _, s := range j {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// Every method through the whole pipeline: the webhook function renders with the
// subscriber's (hostile) data and the workspace's variables, sends with the step id as
// Idempotency-Key, maps the answer into typed fields on the card, reports the path that
// matched nothing, and masks the token in the journey.
func TestExternalRequestMethods(t *testing.T) {
	needSystem(t)
	h := newHookTarget(t)
	a := hookWorkspace(t, "Webhook methods")
	call := func(method string) map[string]any {
		c := map[string]any{"type": "external_request", "method": method, "description": method + " the lead",
			"url":     h.URL("/leads") + "?src={{tunnel.id}}&who={{subscriber.first_name}}",
			"headers": []map[string]string{{"name": "X-Token", "value": "{{var.lms_token}}"}},
			"query":   []map[string]string{{"name": "email", "value": "{{subscriber.email|none}}"}},
			"response_mapping": []map[string]string{
				{"path": "data.id", "field": "lms_id"}, {"path": "data.score", "field": "score"},
				{"path": "data.vip", "field": "vip"}, {"path": "data.since", "field": "since"},
				{"path": "data.items.0.n", "field": "items"}, {"path": "data.nothing.here", "field": "score"}},
		}
		if method != "GET" {
			c["body"] = map[string]any{"name": "{{subscriber.first_name}}", "phone": "{{subscriber.phone|n/a}}", "n": "{{field.items}}", "fixed": []any{1, true, nil}}
		}
		return c
	}
	a.must(http.MethodPut, "/v1/tunnels/hooks", map[string]any{"name": "Hooks", "entry": "calls", "blocks": []any{
		map[string]any{"id": "calls", "type": "action", "actions": []any{call("GET"), call("POST"), call("PUT")}, "next": []string{"done"}},
		map[string]any{"id": "done", "type": "action", "actions": []any{map[string]any{"type": "add_tags", "tags": []string{"ok"}}}},
	}}, http.StatusOK, nil)
	sub := a.subscribe("hooks-1", "hooks", "601", hostileName)
	j := a.finished(sub, "hooks")

	steps := stepsOfType(j, "external_request")
	if len(steps) != 3 {
		t.Fatalf("external_request steps:%s", describe(j))
	}
	calls := h.callsTo("/leads")
	if len(calls) != 3 {
		t.Fatalf("the target got %d calls, want 3: %+v", len(calls), calls)
	}
	for i, method := range []string{"GET", "POST", "PUT"} {
		s, c := steps[i], calls[i]
		if s.Status != "done" || s.Attempts != 1 {
			t.Errorf("%s step %s %q after %d attempts", method, s.Status, s.Reason, s.Attempts)
		}
		if c.Method != method || c.IdempotencyKey != s.StepID || c.Token != "tok-s3cret" {
			t.Errorf("%s call %+v (step %s)", method, c, s.StepID)
		}
		q, err := url.ParseQuery(c.Query)
		if err != nil || q.Get("who") != hostileName || q.Get("src") != "hooks" || q.Get("email") != "none" || len(q) != 3 {
			t.Errorf("%s query %q decodes to %v (%v)", method, c.Query, q, err)
		}
		if method == "GET" {
			if len(c.Body) != 0 {
				t.Errorf("GET sent a body %q", c.Body)
			}
		} else {
			var body map[string]any
			if err := json.Unmarshal(c.Body, &body); err != nil || c.ContentType != "application/json" {
				t.Fatalf("%s body is not JSON (%v, %s): %s", method, err, c.ContentType, c.Body)
			}
			// items was mapped by the GET before: a typed 3, not "3".
			want := map[string]any{"name": hostileName, "phone": "+1555601", "n": 3.0, "fixed": []any{1.0, true, nil}}
			if fmt.Sprint(body) != fmt.Sprint(want) {
				t.Errorf("%s body = %v, want %v", method, body, want)
			}
		}
		d := s.Detail
		if d["method"] != method || d["status"] != 200.0 || d["truncated"] != false || !strings.HasPrefix(fmt.Sprint(d["body"]), `{"data":{"id":"LMS-`+method) {
			t.Errorf("%s detail %v", method, d)
		}
		if raw, _ := json.Marshal(d); strings.Contains(string(raw), "tok-s3cret") || !strings.Contains(string(raw), `{"name":"X-Token","value":"***"}`) {
			t.Errorf("%s detail must mask the token: %s", method, raw)
		}
		if u, _ := d["url"].(string); !strings.HasPrefix(u, h.URL("/leads")+"?src=hooks&who=Ann+%22x%22%2C+%0A%7D&email=none") {
			t.Errorf("%s detail url %q", method, u)
		}
		mapping, _ := d["mapping"].([]any)
		if len(mapping) != 6 || fmt.Sprint(mapping[5]) != "map[error:path matched nothing field:score path:data.nothing.here]" {
			t.Errorf("%s mapping %v: the unmatched path must be reported", method, mapping)
		}
	}
	// Typed values on the card; the last call's id wins.
	want := map[string]any{"lms_id": "LMS-PUT", "score": 17.5, "vip": true, "since": "2024-05-01T08:00:00.000Z", "items": 3.0}
	if got := a.fields(sub); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields = %v, want %v", got, want)
	}
	if tags := a.card(sub).Tags; !slices.Equal(tags, []string{"ok"}) {
		t.Errorf("tags %v: the run must go on at next", tags)
	}
}

// Failures: a 4xx fails at once and the run goes to on_error; a 429 is retried after its
// Retry-After and then succeeds; a slow server is retried and, when its last attempt
// times out too, the run goes to on_error; an oversized answer is cut.
func TestExternalRequestFailuresAndRetries(t *testing.T) {
	needSystem(t)
	h := newHookTarget(t)
	a := hookWorkspace(t, "Webhook failures")
	tunnelFor := func(id, path string, timeoutMS int, mapping bool) {
		req := map[string]any{"type": "external_request", "method": "POST", "url": h.URL(path),
			"body": "plain text for {{subscriber.first_name}}", "on_error": []string{"fallback"}, "timeout_ms": timeoutMS}
		if mapping {
			req["response_mapping"] = []map[string]string{{"path": "id", "field": "lms_id"}}
		}
		a.must(http.MethodPut, "/v1/tunnels/"+id, map[string]any{"name": id, "entry": "call", "blocks": []any{
			map[string]any{"id": "call", "type": "action", "actions": []any{req}, "next": []string{"next"}},
			map[string]any{"id": "next", "type": "action", "actions": []any{map[string]any{"type": "add_tags", "tags": []string{"ok"}}}},
			map[string]any{"id": "fallback", "type": "action", "actions": []any{map[string]any{"type": "add_tags", "tags": []string{"fell-back"}}}},
		}}, http.StatusOK, nil)
	}
	tunnelFor("missing", "/missing", 0, true)
	tunnelFor("busy", "/busy", 0, true)
	tunnelFor("flaky", "/flaky", 300, false)
	tunnelFor("big", "/big", 0, true)
	subs := map[string]string{}
	for i, id := range []string{"missing", "busy", "flaky", "big"} {
		subs[id] = a.subscribe("fail-"+id, id, fmt.Sprint(700+i), hostileName)
	}
	step := func(id string) (journeyStep, []string) {
		t.Helper()
		j := a.finished(subs[id], id)
		steps := stepsOfType(j, "external_request")
		if len(steps) != 1 {
			t.Fatalf("%s:%s", id, describe(j))
		}
		return steps[0], a.card(subs[id]).Tags
	}

	s, tags := step("missing")
	if s.Status != "failed" || s.Reason != `HTTP 404 Not Found: {"error":"no such course"}` || s.Attempts != 1 ||
		s.Detail["status"] != 404.0 || s.Detail["body"] != `{"error":"no such course"}` || fmt.Sprint(s.Detail["on_error"]) != "[fallback]" {
		t.Errorf("4xx step %s %q attempts %d detail %v", s.Status, s.Reason, s.Attempts, s.Detail)
	}
	if !slices.Equal(tags, []string{"fell-back"}) {
		t.Errorf("4xx: tags %v, want the on_error path only", tags)
	}
	if c := h.callsTo("/missing"); len(c) != 1 || string(c[0].Body) != "plain text for "+hostileName || c[0].ContentType != "text/plain; charset=utf-8" {
		t.Errorf("4xx calls %+v", c)
	}
	if f := a.fields(subs["missing"]); len(f) != 0 {
		t.Errorf("a failed request wrote fields %v", f)
	}

	s, tags = step("busy")
	busy := h.callsTo("/busy")
	if s.Status != "done" || s.Attempts != 2 || len(busy) != 2 || busy[0].IdempotencyKey != s.StepID || busy[1].IdempotencyKey != s.StepID {
		t.Errorf("429 then 200: step %s %q attempts %d, calls %+v", s.Status, s.Reason, s.Attempts, busy)
	}
	if !slices.Equal(tags, []string{"ok"}) || a.fields(subs["busy"])["lms_id"] != "after-busy" {
		t.Errorf("429 then 200: tags %v fields %v", tags, a.fields(subs["busy"]))
	}

	s, tags = step("flaky")
	flaky := h.callsTo("/flaky")
	if s.Status != "failed" || s.Attempts != 5 || len(flaky) != 5 || s.Reason != "POST "+strings.TrimPrefix(h.URL(""), "http://")+": no complete answer within 300ms (gave up after 5 attempts)" {
		t.Errorf("slow server: step %s %q attempts %d, %d calls", s.Status, s.Reason, s.Attempts, len(flaky))
	}
	if _, answered := s.Detail["status"]; answered || s.Detail["error"] != "POST "+strings.TrimPrefix(h.URL(""), "http://")+": no complete answer within 300ms" {
		t.Errorf("slow server detail %v", s.Detail)
	}
	if !slices.Equal(tags, []string{"fell-back"}) {
		t.Errorf("slow server: tags %v, want the on_error path", tags)
	}

	s, _ = step("big")
	body, _ := s.Detail["body"].(string)
	mapping := fmt.Sprint(s.Detail["mapping"])
	if s.Status != "done" || s.Detail["truncated"] != true || len(body) != 8<<10 || !strings.HasPrefix(body, `{"pad":"xxx`) ||
		mapping != "[map[error:response is not JSON field:lms_id path:id]]" {
		t.Errorf("oversized answer: %s %q truncated=%v body %d bytes mapping %s", s.Status, s.Reason, s.Detail["truncated"], len(body), mapping)
	}
}

// Preview renders without sending; check sends and answers without writing; refused
// destinations and failures answer 422; bad definitions 400 with pointers.
func TestExternalRequestPreviewAndCheck(t *testing.T) {
	needSystem(t)
	h := newHookTarget(t)
	a := hookWorkspace(t, "Webhook preview")
	sub := a.subscribe("preview-1", "default", "801", hostileName)
	before := a.card(sub)
	request := map[string]any{
		"type": "external_request", "method": "POST", "url": h.URL("/leads") + "?who={{subscriber.first_name}}",
		"headers": []map[string]string{{"name": "X-Token", "value": "{{var.lms_token}}"}, {"name": "X-Who", "value": "{{subscriber.phone}}"},
			{"name": "Authorization", "value": "Bearer {{var.public_key}}"}},
		"query":            []map[string]string{{"name": "email", "value": "{{subscriber.email|none}}"}},
		"body":             map[string]any{"name": "{{subscriber.first_name}}", "token": "{{var.lms_token}}", "n": "{{field.score|2.5}}"},
		"response_mapping": []map[string]string{{"path": "data.id", "field": "lms_id"}, {"path": "data.vip", "field": "vip"}, {"path": "data.none", "field": "score"}},
		"on_error":         []string{"anything"},
	}
	run := map[string]any{"request": request, "subscriber_id": sub}

	var preview struct {
		Method  string              `json:"method"`
		URL     string              `json:"url"`
		Headers []map[string]string `json:"headers"`
		Body    map[string]any      `json:"body"`
	}
	a.must(http.MethodPost, "/v1/external-requests/preview", run, http.StatusOK, &preview)
	wantURL := h.URL("/leads") + "?who=Ann+%22x%22%2C+%0A%7D&email=none"
	if preview.Method != "POST" || preview.URL != wantURL {
		t.Errorf("preview %s %s, want POST %s", preview.Method, preview.URL, wantURL)
	}
	// Only the secret variable is masked: the Authorization header, though its name
	// looks secret, shows what really goes out (a variable that is not secret).
	wantHeaders := `[map[name:X-Token value:***] map[name:X-Who value:+1555801] map[name:Authorization value:Bearer pk-visible] map[name:Content-Type value:application/json]]`
	if fmt.Sprint(preview.Headers) != wantHeaders {
		t.Errorf("preview headers %v, want %s", preview.Headers, wantHeaders)
	}
	if want := map[string]any{"name": hostileName, "token": "***", "n": 2.5}; fmt.Sprint(preview.Body) != fmt.Sprint(want) {
		t.Errorf("preview body %v, want %v", preview.Body, want)
	}
	if c := h.callsTo("/leads"); len(c) != 0 {
		t.Fatalf("preview sent %d requests", len(c))
	}

	type checkAnswer struct {
		Request struct {
			URL     string              `json:"url"`
			Headers []map[string]string `json:"headers"`
		} `json:"request"`
		Response struct {
			Status    int                 `json:"status"`
			Headers   []map[string]string `json:"headers"`
			Body      string              `json:"body"`
			Truncated bool                `json:"truncated"`
		} `json:"response"`
		Mapping    []map[string]any `json:"mapping"`
		DurationMS *int             `json:"duration_ms"`
	}
	var check checkAnswer
	a.must(http.MethodPost, "/v1/external-requests/check", run, http.StatusOK, &check)
	calls := h.callsTo("/leads")
	if len(calls) != 1 || calls[0].IdempotencyKey != "" || calls[0].Token != "tok-s3cret" {
		t.Fatalf("check calls %+v", calls)
	}
	var sent map[string]any
	if err := json.Unmarshal(calls[0].Body, &sent); err != nil || sent["name"] != hostileName || sent["n"] != 2.5 {
		t.Errorf("check sent %s (%v)", calls[0].Body, err)
	}
	if check.Request.URL != wantURL || fmt.Sprint(check.Request.Headers) != wantHeaders || check.DurationMS == nil {
		t.Errorf("check request %+v duration %v", check.Request, check.DurationMS)
	}
	if check.Response.Status != 200 || check.Response.Truncated || !strings.HasPrefix(check.Response.Body, `{"data":{"id":"LMS-POST"`) {
		t.Errorf("check response %+v", check.Response)
	}
	if hs := fmt.Sprint(check.Response.Headers); !strings.Contains(hs, "map[name:Set-Cookie value:***]") || strings.Contains(hs, "abc123") {
		t.Errorf("check response headers %s: the cookie must be masked", hs)
	}
	wantMapping := "[map[field:lms_id path:data.id value:LMS-POST] map[field:vip path:data.vip value:true] map[error:path matched nothing field:score path:data.none]]"
	if fmt.Sprint(check.Mapping) != wantMapping {
		t.Errorf("check mapping %v, want %s", check.Mapping, wantMapping)
	}

	// A 4xx answer is still an answer.
	missing := map[string]any{"request": map[string]any{"method": "GET", "url": h.URL("/missing"),
		"response_mapping": []map[string]string{{"path": "error", "field": "lms_id"}}}, "subscriber_id": sub}
	check = checkAnswer{}
	a.must(http.MethodPost, "/v1/external-requests/check", missing, http.StatusOK, &check)
	if check.Response.Status != 404 || check.Response.Body != `{"error":"no such course"}` ||
		fmt.Sprint(check.Mapping) != "[map[error:nothing is written for an HTTP 404 answer field:lms_id path:error]]" {
		t.Errorf("check of a 404: %+v %v", check.Response, check.Mapping)
	}

	// An oversized answer is cut at the stated size.
	check = checkAnswer{}
	a.must(http.MethodPost, "/v1/external-requests/check", map[string]any{"request": map[string]any{"method": "GET", "url": h.URL("/big")}, "subscriber_id": sub}, http.StatusOK, &check)
	if !check.Response.Truncated || len(check.Response.Body) != 64<<10 {
		t.Errorf("check of a big answer: truncated=%v, %d bytes", check.Response.Truncated, len(check.Response.Body))
	}

	// No answer: refused destinations, a redirect to one, a timeout.
	other := forbiddenServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request reached a port the deployment may not call: %s %s", r.Method, r.URL)
	}))
	for _, tc := range []struct{ url, code, detail string }{
		{"https://169.254.169.254/latest/meta-data/", "destination_refused", "destination 169.254.169.254:443 refused: link-local address"},
		{"http://169.254.169.254/latest/meta-data/", "destination_refused", "destination 169.254.169.254:80 refused: plain http is allowed only for a host:port in TUNNELS_EGRESS_ALLOW"},
		{"https://10.0.0.1/", "destination_refused", "destination 10.0.0.1:443 refused: private address"},
		{"https://0x7f.1:" + strings.Split(other.URL, ":")[2] + "/", "destination_refused", "loopback address (127.0.0.1)"},
		{other.URL + "/x", "destination_refused", "plain http is allowed only for a host:port in TUNNELS_EGRESS_ALLOW"},
		{h.URL("/redirect") + "?to=" + url.QueryEscape(other.URL+"/stolen"), "destination_refused", "plain http is allowed only"},
		{h.URL("/flaky"), "request_failed", "no complete answer within 300ms"},
	} {
		body := map[string]any{"request": map[string]any{"method": "GET", "url": tc.url, "timeout_ms": 300}, "subscriber_id": sub}
		p := a.problem(http.MethodPost, "/v1/external-requests/check", body, http.StatusUnprocessableEntity, tc.code)
		if !strings.Contains(p.Detail, tc.detail) || strings.Contains(p.Detail, "meta-data") || strings.Contains(p.Detail, "stolen") {
			t.Errorf("check %s: detail %q, want it to say %q (and never the path)", tc.url, p.Detail, tc.detail)
		}
	}

	// A definition that does not validate: every error, with pointers into the body.
	p := a.problem(http.MethodPost, "/v1/external-requests/check", map[string]any{"request": map[string]any{
		"method": "DELETE", "url": "ftp://example.com/x", "headers": []map[string]string{{"name": "Bad Name", "value": "v"}},
		"response_mapping": []map[string]string{{"path": "data.*", "field": "nope"}}, "body": "{{subscriber.age}}"},
		"subscriber_id": sub}, http.StatusBadRequest, "validation_failed")
	var pointers []string
	for _, e := range p.Errors {
		pointers = append(pointers, e.Pointer)
	}
	for _, want := range []string{"/request/method", "/request/url", "/request/headers/0/name", "/request/response_mapping/0/path", "/request/response_mapping/0/field", "/request/body"} {
		if !slices.Contains(pointers, want) {
			t.Errorf("validation errors %v lack %s", p.Errors, want)
		}
	}
	p = a.problem(http.MethodPost, "/v1/external-requests/preview", map[string]any{"request": map[string]any{"method": "GET"}}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 2 || p.Errors[0].Pointer != "/subscriber_id" && p.Errors[1].Pointer != "/subscriber_id" {
		t.Errorf("missing url and subscriber: %+v", p.Errors)
	}
	// Subscriber data that cannot go into a header: 400 at the header, nothing sent.
	p = a.problem(http.MethodPost, "/v1/external-requests/check", map[string]any{"request": map[string]any{"method": "GET", "url": h.URL("/leads"),
		"headers": []map[string]string{{"name": "X-Name", "value": "{{subscriber.first_name}}"}}}, "subscriber_id": sub}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/request/headers" || !strings.Contains(p.Detail, "line break") {
		t.Errorf("a line break in a header: %+v", p)
	}
	a.problem(http.MethodPost, "/v1/external-requests/preview", map[string]any{"request": map[string]any{"method": "GET", "url": h.URL("/leads")}, "subscriber_id": "nobody"}, http.StatusNotFound, "not_found")
	a.problem(http.MethodPost, "/v1/external-requests/check", map[string]any{"request": map[string]any{"method": "GET", "url": h.URL("/leads")}, "subscriber_id": "nobody"}, http.StatusNotFound, "not_found")

	// Nothing was written: the card is as it was and the journey has no entry.
	after := a.card(sub)
	if fmt.Sprint(after) != fmt.Sprint(before) || len(a.fields(sub)) != 0 {
		t.Errorf("card changed: %+v -> %+v, fields %v", before, after, a.fields(sub))
	}
	if j := a.journey(sub); len(j) != 0 {
		t.Errorf("journey entries after preview and check:%s", describe(j))
	}
	if c := h.callsTo("/leads"); len(c) != 1 {
		t.Errorf("%d calls to /leads: only the one check may have sent", len(c))
	}
}
