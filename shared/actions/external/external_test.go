package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/httpreq"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// fakeWebhookStore is the store of the action, in memory.
type fakeWebhookStore struct {
	statuses []int    // RecordRequestStatus calls, in order
	secrets  []string // values of secret variables
	mu       sync.Mutex
	vars     map[string]string
	fields   map[string]string
	written  map[string]any
	writes   int
	varsErr  error
	setErr   error
}

func (f *fakeWebhookStore) VariablesAndSecrets(ctx context.Context, ws string) (map[string]string, []string, error) {
	vars, err := f.variables()
	return vars, f.secrets, err
}

func (f *fakeWebhookStore) variables() (map[string]string, error) {
	return f.vars, f.varsErr
}

func (f *fakeWebhookStore) Catalog(ctx context.Context, ws string) (tunnel.Catalog, error) {
	return tunnel.Catalog{Fields: f.fields}, nil
}

func (f *fakeWebhookStore) RecordRequestStatus(ctx context.Context, ws, sub string, status int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, status)
	return nil
}

func (f *fakeWebhookStore) SetFields(ctx context.Context, ws, sub string, values map[string]any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.writes++
	if f.written == nil {
		f.written = map[string]any{}
	}
	for k, v := range values {
		f.written[k] = v
	}
	return nil
}

func newStore() *fakeWebhookStore {
	return &fakeWebhookStore{
		vars: map[string]string{"lms_token": "s3cret-token", "src": "web"},
		fields: map[string]string{
			"lms_id": "string", "score": "number", "vip": "boolean", "since": "date", "age": "number", "nick": "string",
		},
	}
}

// seen is one request as the target server got it.
type seen struct {
	Method, Path, RawQuery, ContentType, IdempotencyKey, UserAgent, Token string
	Body                                                                  []byte
}

// target is a loopback server the test's egress client may call; h answers.
func target(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) (*httptest.Server, *[]seen, *sync.Mutex) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"),
			r.Header.Get("Idempotency-Key"), r.Header.Get("User-Agent"), r.Header.Get("X-Token"), body})
		n := len(got)
		mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(srv.Close)
	return srv, &got, &mu
}

func clientFor(srvs ...*httptest.Server) *http.Client {
	var allow []string
	for _, s := range srvs {
		allow = append(allow, strings.TrimPrefix(s.URL, "http://"))
	}
	return egress.NewClient(egress.Policy{Allow: allow}, egress.Options{Timeout: httpreq.MaxTimeout, MaxBody: httpreq.MaxBodyLimit})
}

func hostile() *engine.Subscriber {
	return &engine.Subscriber{
		ID: "sub1", FirstName: "Ann \"x\", \n}", LastName: "O'Brien & {{var.lms_token}}", Email: "a+b@example.com",
		Fields: map[string]any{"age": 41.0, "nick": "a/../b?c=d#e"},
	}
}

func actionContext(a tunnel.Action, sub *engine.Subscriber, attempt int, final bool) *engine.ActionContext {
	return &engine.ActionContext{
		Step:   engine.Step{ID: "step-123", WS: "ws1", Sub: sub.ID, Tunnel: "webinar", Block: "act"},
		Action: a, Subscriber: sub, Attempt: attempt, FinalAttempt: final,
	}
}

func runAction(t *testing.T, st *fakeWebhookStore, client *http.Client, ac *engine.ActionContext) (engine.Outcome, error) {
	t.Helper()
	return Actions(st, client)[tunnel.ActionExternalRequest](context.Background(), ac)
}

// Every method through render, send, classify and map; hostile data arrives escaped.
func TestExternalRequestSendsEveryMethodSafely(t *testing.T) {
	answer := `{"data":{"id":"LMS-42","score":"17.5","vip":1,"since":"2024-05-01T10:00:00+02:00","items":[{"id":7}]}}`
	for _, method := range []string{"GET", "POST", "PUT"} {
		t.Run(method, func(t *testing.T) {
			srv, got, _ := target(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, answer)
			})
			a := tunnel.Action{
				Type: "external_request", Method: method,
				URL:     srv.URL + "/leads/{{field.nick}}?src={{tunnel.id}}&who={{subscriber.first_name}}",
				Headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{var.lms_token}}"}, {Name: "X-Src", Value: "{{var.src}}"}},
				Query:   []tunnel.NameValue{{Name: "email", Value: "{{subscriber.email|none}}"}, {Name: "phone", Value: "{{subscriber.phone|n/a}}"}},
				ResponseMapping: []tunnel.Mapping{
					{Path: "data.id", Field: "lms_id"}, {Path: "data.score", Field: "score"},
					{Path: "data.vip", Field: "vip"}, {Path: "data.since", Field: "since"},
					{Path: "data.items.0.id", Field: "nick"}, {Path: "data.missing", Field: "lms_id"},
				},
				OnError: []string{"oops"},
			}
			if method != "GET" {
				a.Body = json.RawMessage(`{"name":"{{subscriber.first_name}}","last":"{{subscriber.last_name}}","age":"{{field.age}}","phone":"{{subscriber.phone|n/a}}"}`)
			}
			st := newStore()
			out, err := runAction(t, st, clientFor(srv), actionContext(a, hostile(), 1, false))
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != engine.StatusDone || out.Continue != nil {
				t.Fatalf("outcome %+v", out)
			}
			if len(*got) != 1 {
				t.Fatalf("server got %d requests", len(*got))
			}
			r := (*got)[0]
			if r.Method != method || r.IdempotencyKey != "step-123" || r.Token != "s3cret-token" || !strings.HasPrefix(r.UserAgent, "Tunnels/") {
				t.Errorf("request %+v", r)
			}
			if r.Path != "/leads/a/../b?c=d#e" {
				t.Errorf("path = %q: the field value must stay inside its segment", r.Path)
			}
			q, err := url.ParseQuery(r.RawQuery)
			if err != nil {
				t.Fatal(err)
			}
			want := url.Values{"src": {"webinar"}, "who": {"Ann \"x\", \n}"}, "email": {"a+b@example.com"}, "phone": {"n/a"}}
			if fmt.Sprint(q) != fmt.Sprint(want) {
				t.Errorf("query = %v, want %v", q, want)
			}
			if method == "GET" {
				if len(r.Body) != 0 || r.ContentType != "" {
					t.Errorf("GET sent a body %q (%s)", r.Body, r.ContentType)
				}
			} else {
				var body map[string]any
				if err := json.Unmarshal(r.Body, &body); err != nil {
					t.Fatalf("body is not JSON: %v: %s", err, r.Body)
				}
				wantBody := map[string]any{"name": "Ann \"x\", \n}", "last": "O'Brien & {{var.lms_token}}", "age": 41.0, "phone": "n/a"}
				if fmt.Sprint(body) != fmt.Sprint(wantBody) || r.ContentType != "application/json" {
					t.Errorf("body = %v (%s), want %v", body, r.ContentType, wantBody)
				}
			}
			wantFields := map[string]any{"lms_id": "LMS-42", "score": 17.5, "vip": true, "since": "2024-05-01T08:00:00.000Z", "nick": "7"}
			if fmt.Sprint(st.written) != fmt.Sprint(wantFields) {
				t.Errorf("written %v, want %v", st.written, wantFields)
			}
			d := out.Detail
			if d["method"] != method || d["status"] != 200 || d["body"] != answer || d["truncated"] != false {
				t.Errorf("detail %v", d)
			}
			if u := d["url"].(string); !strings.Contains(u, srv.URL+"/leads/") || strings.Contains(u, "s3cret") {
				t.Errorf("detail url %q", u)
			}
			hs := fmt.Sprint(d["headers"])
			if strings.Contains(hs, "s3cret") || !strings.Contains(hs, "map[name:X-Token value:***]") || !strings.Contains(hs, "map[name:X-Src value:web]") {
				t.Errorf("detail headers %s: the token must be masked, the rest kept", hs)
			}
			mapping := d["mapping"].([]any)
			last := mapping[len(mapping)-1].(map[string]any)
			if last["path"] != "data.missing" || last["error"] != httpreq.MapNoMatch || len(mapping) != 6 {
				t.Errorf("mapping %v: the unmatched path must be reported", mapping)
			}
			if _, ok := d["duration_ms"].(int64); !ok {
				t.Errorf("duration_ms %T", d["duration_ms"])
			}
		})
	}
}

// What the queue does with each kind of failure, on an ordinary and on the last attempt.
func TestExternalRequestFailures(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	srv, _, _ := target(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "7")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case "/down":
			http.Error(w, "upstream broke", http.StatusBadGateway)
		case "/missing":
			http.Error(w, `{"error":"no such lead"}`, http.StatusNotFound)
		case "/slow":
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		case "/redirect":
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		}
	})
	client := clientFor(srv)
	tests := []struct {
		name, url   string
		final       bool
		onError     []string
		retry       bool          // a transient error is returned
		retryAfter  time.Duration // and its wait
		reason      string        // else: failed with this in the reason
		status      any           // detail status
		continueRun bool
	}{
		{name: "429 with Retry-After", url: "/busy", retry: true, retryAfter: 7 * time.Second},
		{name: "5xx", url: "/down", retry: true},
		{name: "timeout", url: "/slow", retry: true},
		{name: "429 on the last attempt", url: "/busy", final: true, onError: []string{"fallback"}, reason: "HTTP 429 Too Many Requests: slow down (retry after 7s) (gave up after 5 attempts)", status: 429, continueRun: true},
		{name: "5xx on the last attempt without on_error", url: "/down", final: true, reason: "HTTP 502 Bad Gateway: upstream broke (gave up after 5 attempts)", status: 502},
		{name: "timeout on the last attempt", url: "/slow", final: true, onError: []string{"fallback"}, reason: "no complete answer within 200ms (gave up after 5 attempts)", continueRun: true},
		{name: "4xx", url: "/missing", onError: []string{"fallback"}, reason: `HTTP 404 Not Found: {"error":"no such lead"}`, status: 404, continueRun: true},
		{name: "4xx without on_error", url: "/missing", reason: "HTTP 404 Not Found", status: 404},
		{name: "redirect to a port not allowed", url: "/redirect", onError: []string{"fallback"}, reason: "destination 127.0.0.1:1 refused", continueRun: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tunnel.Action{Type: "external_request", Method: "GET", URL: srv.URL + tc.url, TimeoutMS: 200, OnError: tc.onError,
				ResponseMapping: []tunnel.Mapping{{Path: "id", Field: "lms_id"}}}
			attempt := 2
			if tc.final {
				attempt = 5
			}
			st := newStore()
			out, err := runAction(t, st, client, actionContext(a, hostile(), attempt, tc.final))
			if st.writes != 0 {
				t.Errorf("a failed request wrote fields %v", st.written)
			}
			if tc.retry {
				var rl *RetryLater
				if !errors.As(err, &rl) {
					t.Fatalf("got %+v, %v; want a transient error", out, err)
				}
				var ra stepbatch.RetryAfter
				if !errors.As(err, &ra) || ra.RetryAfter() != tc.retryAfter {
					t.Errorf("RetryAfter = %v, want %v", rl.After, tc.retryAfter)
				}
				if strings.Contains(err.Error(), srv.URL) {
					t.Errorf("error names the url: %v", err)
				}
				if len(st.statuses) != 0 {
					t.Errorf("a request to be retried recorded its status %v", st.statuses)
				}
				return
			}
			// The last word of the request is what a condition on last_request reads.
			wantStatus := 0
			if n, ok := tc.status.(int); ok {
				wantStatus = n
			}
			if len(st.statuses) != 1 || st.statuses[0] != wantStatus {
				t.Errorf("recorded statuses %v, want [%d]", st.statuses, wantStatus)
			}
			if err != nil {
				t.Fatalf("error %v; want a final outcome", err)
			}
			if out.Status != engine.StatusFailed || !strings.Contains(out.Reason, tc.reason) {
				t.Errorf("outcome %s %q, want failed with %q", out.Status, out.Reason, tc.reason)
			}
			if got := out.Detail["status"]; got != tc.status {
				t.Errorf("detail status %v, want %v (%v)", got, tc.status, out.Detail)
			}
			if tc.continueRun != (len(out.Continue) > 0) || (tc.continueRun && out.Continue[0] != "fallback") {
				t.Errorf("continue = %v, want on_error %v", out.Continue, tc.onError)
			}
			if tc.continueRun && fmt.Sprint(out.Detail["on_error"]) != "[fallback]" {
				t.Errorf("detail on_error = %v", out.Detail["on_error"])
			}
		})
	}
}

// Metadata, private and loopback addresses are refused before anything is sent (the
// egress guard's static check on literal addresses), and the run goes to on_error.
func TestExternalRequestRefusesPrivateDestinations(t *testing.T) {
	srv, got, _ := target(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	client := egress.NewClient(egress.Policy{}, egress.Options{Timeout: httpreq.MaxTimeout, MaxBody: httpreq.MaxBodyLimit})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://0x7f000001:" + port + "/",
		"http://2130706433:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/", srv.URL + "/",
	} {
		a := tunnel.Action{Type: "external_request", Method: "POST", URL: u, Body: json.RawMessage(`{"a":1}`), OnError: []string{"fallback"}}
		out, err := runAction(t, newStore(), client, actionContext(a, hostile(), 1, false))
		if err != nil || out.Status != engine.StatusFailed || !strings.Contains(out.Reason, "refused") || len(out.Continue) != 1 {
			t.Errorf("%s: %+v %v; want failed, refused, on_error", u, out, err)
		}
	}
	if len(*got) != 0 {
		t.Errorf("the loopback server got %d requests", len(*got))
	}
}

// Subscriber data that cannot be sent safely fails the step without sending.
func TestExternalRequestRefusesALineBreakInAHeader(t *testing.T) {
	srv, got, _ := target(t, func(w http.ResponseWriter, r *http.Request, n int) {})
	a := tunnel.Action{Type: "external_request", Method: "GET", URL: srv.URL, OnError: []string{"fallback"},
		Headers: []tunnel.NameValue{{Name: "X-Name", Value: "{{subscriber.first_name}}"}}}
	out, err := runAction(t, newStore(), clientFor(srv), actionContext(a, hostile(), 1, false))
	if err != nil || out.Status != engine.StatusFailed || out.Reason != "cannot build the request: header X-Name: value contains a line break" || len(out.Continue) != 1 {
		t.Errorf("%+v %v", out, err)
	}
	if len(*got) != 0 {
		t.Errorf("sent %d requests", len(*got))
	}
}

// An answer larger than a journey entry keeps is cut there, but mapped whole.
func TestExternalRequestBigAnswer(t *testing.T) {
	big := `{"pad":"` + strings.Repeat("é", 50<<10) + `","id":"deep"}`
	srv, _, _ := target(t, func(w http.ResponseWriter, r *http.Request, n int) { io.WriteString(w, big) })
	a := tunnel.Action{Type: "external_request", Method: "GET", URL: srv.URL, ResponseMapping: []tunnel.Mapping{{Path: "id", Field: "lms_id"}}}
	st := newStore()
	out, err := runAction(t, st, clientFor(srv), actionContext(a, hostile(), 1, false))
	if err != nil || out.Status != engine.StatusDone {
		t.Fatalf("%+v %v", out, err)
	}
	body := out.Detail["body"].(string)
	if len(body) > JourneyBodyMax || len(body) < JourneyBodyMax-1 || out.Detail["truncated"] != true || !strings.HasPrefix(big, body) {
		t.Errorf("journey body of %d bytes, truncated=%v", len(body), out.Detail["truncated"])
	}
	if st.written["lms_id"] != "deep" {
		t.Errorf("written %v", st.written)
	}
}

// A store that fails makes the step retry; a request is not sent without time to record it.
func TestExternalRequestTransientTrouble(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, `{"id":"x"}`)
	}))
	defer srv.Close()
	a := tunnel.Action{Type: "external_request", Method: "GET", URL: srv.URL, ResponseMapping: []tunnel.Mapping{{Path: "id", Field: "lms_id"}}}

	st := newStore()
	st.varsErr = errors.New("throttled")
	if _, err := runAction(t, st, clientFor(srv), actionContext(a, hostile(), 1, true)); err == nil || hits.Load() != 0 {
		t.Errorf("variables unreadable: err %v, %d requests", err, hits.Load())
	}

	st = newStore()
	st.setErr = errors.New("throttled")
	if _, err := runAction(t, st, clientFor(srv), actionContext(a, hostile(), 1, false)); err == nil || hits.Load() != 1 {
		t.Errorf("fields unwritable: err %v, %d requests", err, hits.Load())
	}

	ctx, cancel := context.WithTimeout(context.Background(), deadlineMargin)
	defer cancel()
	_, err := Actions(newStore(), clientFor(srv))[tunnel.ActionExternalRequest](ctx, actionContext(a, hostile(), 1, false))
	var rl *RetryLater
	if !errors.As(err, &rl) || !strings.Contains(rl.Reason, "too little time left") {
		t.Errorf("no time left: %v", err)
	}
	if hits.Load() != 1 {
		t.Errorf("sent with no time left: %d requests", hits.Load())
	}
}

func TestCutBody(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
		cut  bool
	}{
		{"hello", 10, "hello", false},
		{"hello", 5, "hello", false},
		{"hello", 4, "hell", true},
		{"héllo", 2, "h", true}, // é is two bytes: never split
		{"héllo", 3, "hé", true},
		{"", 0, "", false},
	} {
		got, cut := CutBody(tc.in, tc.max)
		if got != tc.want || cut != tc.cut {
			t.Errorf("CutBody(%q, %d) = %q, %v; want %q, %v", tc.in, tc.max, got, cut, tc.want, tc.cut)
		}
	}
}
