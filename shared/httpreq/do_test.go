package httpreq

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/render"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// received is a request as the test server saw it.
type received struct {
	Method      string
	EscapedPath string
	RawQuery    string
	Header      http.Header
	Body        []byte
}

// target is a loopback server that records what it receives.
type target struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []received
}

func (tg *target) got() []received {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]received(nil), tg.reqs...)
}

// hostPort is the server's 127.0.0.1:port.
func (tg *target) hostPort() string { return strings.TrimPrefix(tg.srv.URL, "http://") }

// newTarget starts a server on 127.0.0.1 that records each request and then calls h
// (nil: answer 200 {"ok":true}).
func newTarget(t *testing.T, h http.HandlerFunc) *target {
	t.Helper()
	tg := &target{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.reqs = append(tg.reqs, received{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
		tg.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// clientFor is an egress client that allows exactly the given host:port pairs.
func clientFor(t *testing.T, o egress.Options, allow ...string) *http.Client {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = MaxTimeout
	}
	if o.MaxBody == 0 {
		o.MaxBody = MaxBodyLimit
	}
	return egress.NewClient(egress.Policy{Allow: allow}, o)
}

// send renders d for data and sends it with o (Client filled in for tg).
func send(t *testing.T, tg *target, d Definition, data render.Data, o Options) (Rendered, Response, error) {
	t.Helper()
	r, err := Render(d, data, testTypes)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if o.Client == nil {
		o.Client = clientFor(t, egress.Options{}, tg.hostPort())
	}
	resp, err := Do(context.Background(), r, o)
	return r, resp, err
}

func TestDoMethods(t *testing.T) {
	tests := []struct {
		name      string
		def       Definition
		wantPath  string
		wantQuery url.Values
		wantHdr   map[string]string
		wantBody  string
	}{
		{
			name: "GET with headers and query",
			def: Definition{Method: "GET", URL: "/leads/{{subscriber.id}}?src={{tunnel.id}}",
				Headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{var.token}}"}, {Name: "Accept", Value: "application/json"}},
				Query:   []tunnel.NameValue{{Name: "email", Value: "{{subscriber.email|none}}"}}},
			wantPath:  "/leads/sub-1",
			wantQuery: url.Values{"src": {"webinar"}, "email": {"ann@example.com"}},
			wantHdr:   map[string]string{"X-Token": "s3cr3t", "Accept": "application/json", "Content-Type": ""},
			wantBody:  "",
		},
		{
			name: "POST JSON",
			def: Definition{Method: "POST", URL: "/leads",
				Headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{var.token}}"}},
				Body:    json.RawMessage(`{"name": "{{subscriber.first_name}}", "phone": "{{subscriber.phone|n/a}}", "age": "{{field.age}}", "vip": "{{field.vip}}"}`)},
			wantPath: "/leads",
			wantHdr:  map[string]string{"X-Token": "s3cr3t", "Content-Type": "application/json"},
			wantBody: `{"name":"Ann","phone":"+15550001","age":42,"vip":true}`,
		},
		{
			name: "PUT text",
			def: Definition{Method: "PUT", URL: "/notes/{{subscriber.id}}",
				Body: json.RawMessage(`"Note for {{subscriber.first_name}} {{subscriber.last_name}}"`)},
			wantPath: "/notes/sub-1",
			wantHdr:  map[string]string{"Content-Type": "text/plain; charset=utf-8"},
			wantBody: "Note for Ann Lee",
		},
		{
			name: "POST JSON with the user's content type",
			def: Definition{Method: "POST", URL: "/x",
				Headers: []tunnel.NameValue{{Name: "Content-Type", Value: "application/vnd.api+json"}},
				Body:    json.RawMessage(`[1,"{{subscriber.email}}"]`)},
			wantPath: "/x",
			wantHdr:  map[string]string{"Content-Type": "application/vnd.api+json"},
			wantBody: `[1,"ann@example.com"]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(t, nil)
			tt.def.URL = tg.srv.URL + tt.def.URL
			_, resp, err := send(t, tg, tt.def, testData(), Options{IdempotencyKey: "step-1"})
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if resp.Status != 200 || resp.Body != `{"ok":true}` || resp.Truncated {
				t.Fatalf("response = %+v", resp)
			}
			reqs := tg.got()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests", len(reqs))
			}
			g := reqs[0]
			if g.Method != tt.def.Method || g.EscapedPath != tt.wantPath {
				t.Fatalf("server saw %s %s, want %s %s", g.Method, g.EscapedPath, tt.def.Method, tt.wantPath)
			}
			q, _ := url.ParseQuery(g.RawQuery)
			if tt.wantQuery == nil {
				tt.wantQuery = url.Values{}
			}
			if !reflect.DeepEqual(q, tt.wantQuery) {
				t.Fatalf("query = %v, want %v", q, tt.wantQuery)
			}
			for k, v := range tt.wantHdr {
				if got := g.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if string(g.Body) != tt.wantBody {
				t.Fatalf("body = %q, want %q", g.Body, tt.wantBody)
			}
			if got := g.Header.Get("Idempotency-Key"); got != "step-1" {
				t.Errorf("Idempotency-Key = %q", got)
			}
			if got := g.Header.Get("User-Agent"); got != egress.DefaultUserAgent {
				t.Errorf("User-Agent = %q", got)
			}
		})
	}
}

func TestDoHostileSubscriberData(t *testing.T) {
	values := []string{
		hostile,
		`Ann "x", \n}`,
		`"}],"admin":true,"x":["`,
		"a&b=c#d/e?f", "../../admin", "%2e%2e", "+ +", "😀 ünïcødé 中文", "\\", "line1\r\nline2",
	}
	for _, v := range values {
		tg := newTarget(t, nil)
		data := testData()
		data.Subscriber["first_name"] = v
		def := Definition{
			Method: "POST",
			URL:    tg.srv.URL + "/u/{{subscriber.first_name}}/x?own={{subscriber.first_name}}&fixed=1",
			Query:  []tunnel.NameValue{{Name: "q", Value: "pre {{subscriber.first_name}}"}},
			Body:   json.RawMessage(`{"name": "{{subscriber.first_name}}", "text": "Hi {{subscriber.first_name}}!", "age": "{{field.age}}"}`),
		}
		_, _, err := send(t, tg, def, data, Options{})
		if err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		reqs := tg.got()
		if len(reqs) != 1 {
			t.Fatalf("value %q: server saw %d requests", v, len(reqs))
		}
		g := reqs[0]
		segs := strings.Split(g.EscapedPath, "/")
		if len(segs) != 4 || segs[1] != "u" || segs[3] != "x" {
			t.Fatalf("value %q: path %q", v, g.EscapedPath)
		}
		if seg, _ := url.PathUnescape(segs[2]); seg != v {
			t.Fatalf("value %q: path segment arrived as %q", v, seg)
		}
		q, err := url.ParseQuery(g.RawQuery)
		if err != nil {
			t.Fatalf("value %q: query %q: %v", v, g.RawQuery, err)
		}
		want := url.Values{"own": {v}, "fixed": {"1"}, "q": {"pre " + v}}
		if !reflect.DeepEqual(q, want) {
			t.Fatalf("value %q: query = %v, want %v", v, q, want)
		}
		if !json.Valid(g.Body) {
			t.Fatalf("value %q: body is not valid JSON: %s", v, g.Body)
		}
		var body map[string]any
		if err := json.Unmarshal(g.Body, &body); err != nil {
			t.Fatal(err)
		}
		wantBody := map[string]any{"name": v, "text": "Hi " + v + "!", "age": 42.0}
		if !reflect.DeepEqual(body, wantBody) {
			t.Fatalf("value %q: body = %v, want %v", v, body, wantBody)
		}
	}
}

func TestDoLineBreakInHeaderIsNeverSent(t *testing.T) {
	tg := newTarget(t, nil)
	data := testData()
	data.Vars["token"] = "abc\r\nX-Admin: true"
	def := Definition{Method: "GET", URL: tg.srv.URL + "/", Headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{var.token}}"}}}
	_, err := Render(def, data, nil)
	if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "header X-Token: value contains a line break") {
		t.Fatalf("Render err = %v", err)
	}
	// A Rendered built by hand is held to the same rule by Do.
	r := Rendered{Method: "GET", URL: tg.srv.URL + "/", Headers: []tunnel.NameValue{{Name: "X-Token", Value: "abc\nX-Admin: true"}}}
	_, err = Do(context.Background(), r, Options{Client: clientFor(t, egress.Options{}, tg.hostPort())})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "header X-Token: value contains a line break") {
		t.Fatalf("Do err = %v", err)
	}
	if strings.Contains(err.Error(), "abc") {
		t.Fatalf("error repeats the header value: %v", err)
	}
	if Classify(Response{}, err).Verdict != Permanent {
		t.Fatalf("verdict = %v", Classify(Response{}, err).Verdict)
	}
	if n := len(tg.got()); n != 0 {
		t.Fatalf("server saw %d requests", n)
	}
}

func TestDoFallbacks(t *testing.T) {
	tg := newTarget(t, nil)
	data := testData()
	delete(data.Subscriber, "email") // missing
	data.Subscriber["phone"] = ""    // empty counts as missing
	delete(data.Fields, "age")
	def := Definition{
		Method:  "POST",
		URL:     tg.srv.URL + "/p/{{subscriber.phone|no-phone}}?e={{subscriber.email|none}}",
		Headers: []tunnel.NameValue{{Name: "X-Mail", Value: "{{subscriber.email|nobody@example.com}}"}, {Name: "X-Empty", Value: "{{subscriber.email}}"}},
		Query:   []tunnel.NameValue{{Name: "phone", Value: "{{subscriber.phone|n/a}}"}},
		Body:    json.RawMessage(`{"phone": "{{subscriber.phone|n/a}}", "age": "{{field.age|18}}", "vip": "{{field.empty_bool}}", "none": "{{subscriber.email}}"}`),
	}
	if _, _, err := send(t, tg, def, data, Options{}); err != nil {
		t.Fatal(err)
	}
	g := tg.got()[0]
	if g.EscapedPath != "/p/no-phone" {
		t.Errorf("path = %q", g.EscapedPath)
	}
	if q, _ := url.ParseQuery(g.RawQuery); !reflect.DeepEqual(q, url.Values{"e": {"none"}, "phone": {"n/a"}}) {
		t.Errorf("query = %v", q)
	}
	if h := g.Header.Get("X-Mail"); h != "nobody@example.com" {
		t.Errorf("X-Mail = %q", h)
	}
	if vs, ok := g.Header["X-Empty"]; !ok || len(vs) != 1 || vs[0] != "" {
		t.Errorf("X-Empty = %q, %v", vs, ok)
	}
	if string(g.Body) != `{"phone":"n/a","age":18,"vip":null,"none":""}` {
		t.Errorf("body = %s", g.Body)
	}
}

func TestDoTimeout(t *testing.T) {
	release := make(chan struct{})
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/slow?token=secret"}, testData(), Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if resp.Status != 0 {
		t.Fatalf("status = %d", resp.Status)
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "/slow") {
		t.Fatalf("error shows the url: %v", err)
	}
	if o := Classify(resp, err); o.Verdict != Transient {
		t.Fatalf("verdict = %v", o.Verdict)
	}
}

func TestDoTimeoutWhileReadingBody(t *testing.T) {
	release := make(chan struct{})
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/"}, testData(), Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "reading the answer") {
		t.Fatalf("err = %v, want ErrTimeout while reading", err)
	}
	if resp.Status != 200 || resp.Body != "partial" || !resp.Truncated {
		t.Fatalf("response = %+v", resp)
	}
	if Classify(resp, err).Verdict != Transient {
		t.Fatal("not transient")
	}
}

func TestDoBodyCap(t *testing.T) {
	big := strings.Repeat("a", 100_000)
	accents := strings.Repeat("é", 1000) // 2000 bytes
	tests := []struct {
		name      string
		body      string
		clientMax int64
		max       int64
		wantLen   int
		wantTrunc bool
	}{
		{"under the cap", "hello", 0, 1000, 5, false},
		{"exactly the cap", strings.Repeat("b", 1000), 0, 1000, 1000, false},
		{"over the cap", big, 0, 1000, 1000, true},
		{"default cap", big + big, 0, 0, DefaultMaxBody, true},
		{"over the limit is capped at MaxBodyLimit", strings.Repeat(big, 11), 0, 10 << 20, MaxBodyLimit, true},
		{"client's own smaller cap", big, 500, 1000, 500, true},
		{"cut inside a character", accents, 0, 1001, 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tt.body) })
			client := clientFor(t, egress.Options{MaxBody: tt.clientMax}, tg.hostPort())
			_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/"}, testData(), Options{Client: client, MaxBody: tt.max})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Body) != tt.wantLen || resp.Truncated != tt.wantTrunc {
				t.Fatalf("len %d truncated %v, want %d %v", len(resp.Body), resp.Truncated, tt.wantLen, tt.wantTrunc)
			}
			if !utf8.ValidString(resp.Body) || !strings.HasPrefix(tt.body, resp.Body) {
				t.Fatalf("body is not a valid prefix of what was sent")
			}
		})
	}
}

func TestDoInvalidUTF8Body(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok \xff\xfe end")) })
	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/"}, testData(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body != "ok \uFFFD end" {
		t.Fatalf("body = %q", resp.Body)
	}
}

func TestDoRedirects(t *testing.T) {
	other := newTarget(t, nil) // not allowed
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.srv.URL+"/steal?token=secret", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
		default:
			io.WriteString(w, "final")
		}
	})

	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/away?key=hush"}, testData(), Options{})
	if !errors.Is(err, ErrRefused) || !errors.Is(err, egress.ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
	for _, leak := range []string{"secret", "hush", "/steal", "/away"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error shows %q: %v", leak, err)
		}
	}
	if o := Classify(resp, err); o.Verdict != Permanent || !strings.Contains(o.Reason, "refused") {
		t.Fatalf("outcome = %+v", o)
	}
	if n := len(other.got()); n != 0 {
		t.Fatalf("the not-allowed server saw %d requests", n)
	}

	// A redirect within the allowed host:port is followed, body and all (307 keeps POST).
	_, resp, err = send(t, tg, Definition{Method: "POST", URL: tg.srv.URL + "/here", Body: json.RawMessage(`{"a":1}`)}, testData(), Options{})
	if err != nil || resp.Status != 200 || resp.Body != "final" {
		t.Fatalf("followed redirect: %+v, %v", resp, err)
	}
	if reqs := tg.got(); len(reqs) < 2 || reqs[len(reqs)-1].Method != "POST" || string(reqs[len(reqs)-1].Body) != `{"a":1}` {
		t.Fatalf("redirected request: %+v", reqs)
	}
}

func TestDoUnfollowedRedirectIsOK(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.example.com/", http.StatusFound)
	})
	client := clientFor(t, egress.Options{MaxRedirects: -1}, tg.hostPort())
	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/"}, testData(), Options{Client: client})
	if err != nil || resp.Status != 302 {
		t.Fatalf("%+v, %v", resp, err)
	}
	if o := Classify(resp, err); o.Verdict != OK {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestDoTooManyRedirects(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	client := clientFor(t, egress.Options{MaxRedirects: 2}, tg.hostPort())
	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/loop"}, testData(), Options{Client: client})
	if !errors.Is(err, ErrRedirects) || Classify(resp, err).Verdict != Permanent {
		t.Fatalf("err = %v", err)
	}
}

func TestDoRefusesMetadataAddress(t *testing.T) {
	client := clientFor(t, egress.Options{}) // allows nothing
	for _, u := range []string{
		"https://169.254.169.254/latest/meta-data/?token=abc",
		"http://169.254.169.254/latest/meta-data/?token=abc",
		"https://[::ffff:169.254.169.254]/latest?token=abc",
	} {
		r, err := Render(Definition{Method: "GET", URL: u}, testData(), nil)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		resp, err := Do(context.Background(), r, Options{Client: client})
		if !errors.Is(err, ErrRefused) || !egress.IsRefused(err) {
			t.Fatalf("%s: err = %v, want ErrRefused", u, err)
		}
		if resp.Status != 0 {
			t.Fatalf("%s: got an answer %d", u, resp.Status)
		}
		msg := err.Error()
		if !strings.Contains(msg, "169.254.169.254") || strings.Contains(msg, "abc") || strings.Contains(msg, "meta-data") {
			t.Fatalf("%s: message %q", u, msg)
		}
		var e *Error
		if !errors.As(err, &e) || e.Kind != ErrRefused {
			t.Fatalf("%s: not an *Error of kind ErrRefused: %#v", u, err)
		}
	}
	// The https form is refused for what the address is, before anything is dialled.
	r, _ := Render(Definition{Method: "GET", URL: "https://169.254.169.254/"}, testData(), nil)
	_, err := Do(context.Background(), r, Options{Client: client})
	if err == nil || !strings.Contains(err.Error(), "link-local address") {
		t.Fatalf("err = %v, want a link-local refusal", err)
	}
}

func TestDoRefusesLoopbackNotAllowed(t *testing.T) {
	tg := newTarget(t, nil)
	client := clientFor(t, egress.Options{}) // the server's port is not allowed
	_, _, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/"}, testData(), Options{Client: client})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v", err)
	}
	if n := len(tg.got()); n != 0 {
		t.Fatalf("server saw %d requests", n)
	}
}

func TestDoConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	client := clientFor(t, egress.Options{}, addr)
	r, err := Render(Definition{Method: "GET", URL: "http://" + addr + "/x?password=pw1"}, testData(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Do(context.Background(), r, Options{Client: client})
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want ErrConnection: connection refused", err)
	}
	if strings.Contains(err.Error(), "pw1") {
		t.Fatalf("error shows the query: %v", err)
	}
	if want := "GET " + addr + ": connection refused"; err.Error() != want {
		t.Fatalf("message = %q, want %q", err, want)
	}
	if o := Classify(resp, err); o.Verdict != Transient {
		t.Fatalf("outcome = %+v", o)
	}
}

func TestDoTLSFailure(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "https://")
	client := clientFor(t, egress.Options{}, addr)
	r, _ := Render(Definition{Method: "GET", URL: srv.URL + "/"}, testData(), nil)
	_, err := Do(context.Background(), r, Options{Client: client})
	if !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "TLS handshake failed") {
		t.Fatalf("err = %v, want a TLS ErrConnection", err)
	}
}

func TestDoStatuses(t *testing.T) {
	tests := []struct {
		status     int
		header     map[string]string
		body       string
		verdict    Verdict
		retryAfter time.Duration
		reason     string
	}{
		{200, nil, `{"ok":true}`, OK, 0, ""},
		{201, nil, ``, OK, 0, ""},
		{429, map[string]string{"Retry-After": "7"}, "slow down", Transient, 7 * time.Second, "HTTP 429 Too Many Requests: slow down (retry after 7s)"},
		{500, nil, "boom", Transient, 0, "HTTP 500 Internal Server Error: boom"},
		{503, map[string]string{"Retry-After": "2"}, "", Transient, 2 * time.Second, "HTTP 503 Service Unavailable (retry after 2s)"},
		{404, nil, `{"error": "no such lead"}`, Permanent, 0, `HTTP 404 Not Found: {"error": "no such lead"}`},
		{400, nil, strings.Repeat("x", 1000), Permanent, 0, "HTTP 400 Bad Request: " + strings.Repeat("x", ReasonBodyMax) + "…"},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/?api_key=k1"}, testData(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || resp.Body != tt.body {
				t.Fatalf("response = %d %q", resp.Status, resp.Body)
			}
			o := Classify(resp, err)
			want := Outcome{Verdict: tt.verdict, Status: tt.status, RetryAfter: tt.retryAfter, Reason: tt.reason}
			if o != want {
				t.Fatalf("outcome = %+v\nwant      %+v", o, want)
			}
		})
	}
}

func TestDoUserAgentAndIdempotencyKey(t *testing.T) {
	tests := []struct {
		name    string
		headers []tunnel.NameValue
		o       Options
		wantUA  string
		wantKey []string
	}{
		{"defaults", nil, Options{IdempotencyKey: "st-1"}, egress.DefaultUserAgent, []string{"st-1"}},
		{"user's agent comes first", []tunnel.NameValue{{Name: "User-Agent", Value: "MyApp/2"}}, Options{IdempotencyKey: "st-1"}, "MyApp/2 " + egress.DefaultUserAgent, []string{"st-1"}},
		{"own product name", nil, Options{UserAgent: "Tunnels-test/0"}, "Tunnels-test/0", nil},
		{"step key replaces the user's", []tunnel.NameValue{{Name: "Idempotency-Key", Value: "mine"}}, Options{IdempotencyKey: "st-2"}, egress.DefaultUserAgent, []string{"st-2"}},
		{"no key for a check", nil, Options{}, egress.DefaultUserAgent, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(t, nil)
			r := Rendered{Method: "GET", URL: tg.srv.URL + "/", Headers: tt.headers}
			tt.o.Client = clientFor(t, egress.Options{}, tg.hostPort())
			if _, err := Do(context.Background(), r, tt.o); err != nil {
				t.Fatal(err)
			}
			g := tg.got()[0]
			if ua := g.Header.Values("User-Agent"); len(ua) != 1 || ua[0] != tt.wantUA {
				t.Errorf("User-Agent = %q, want %q", ua, tt.wantUA)
			}
			if k := g.Header.Values("Idempotency-Key"); !reflect.DeepEqual(k, tt.wantKey) {
				t.Errorf("Idempotency-Key = %q, want %q", k, tt.wantKey)
			}
		})
	}
}

func TestDoResponseHeadersSorted(t *testing.T) {
	tg := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-B", "2")
		w.Header().Add("x-a", "first")
		w.Header().Add("X-A", "second")
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		io.WriteString(w, "hi")
	})
	_, resp, err := send(t, tg, Definition{Method: "GET", URL: tg.srv.URL + "/"}, testData(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []tunnel.NameValue{
		{Name: "Content-Length", Value: "2"},
		{Name: "Content-Type", Value: "text/plain"},
		{Name: "Date", Value: "Mon, 02 Jan 2006 15:04:05 GMT"},
		{Name: "X-A", Value: "first"},
		{Name: "X-A", Value: "second"},
		{Name: "X-B", Value: "2"},
	}
	if !reflect.DeepEqual(resp.Headers, want) {
		t.Fatalf("headers = %v", resp.Headers)
	}
	b, _ := json.Marshal(resp)
	if !strings.HasPrefix(string(b), `{"status":200,"headers":[{"name":"Content-Length","value":"2"}`) || !strings.HasSuffix(string(b), `"body":"hi","truncated":false}`) {
		t.Fatalf("json = %s", b)
	}
}

func TestDoNeedsClient(t *testing.T) {
	_, err := Do(context.Background(), Rendered{Method: "GET", URL: "https://api.example.com/"}, Options{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

func TestDoInvalidURL(t *testing.T) {
	client := clientFor(t, egress.Options{})
	_, err := Do(context.Background(), Rendered{Method: "GET", URL: "https://api.example.com/%zz?token=abc"}, Options{Client: client})
	if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "abc") {
		t.Fatalf("err = %v", err)
	}
}
