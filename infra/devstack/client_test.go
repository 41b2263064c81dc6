package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/tunnels/tunnels/infra/devstack"
	"github.com/tunnels/tunnels/shared/apidoc"
	"github.com/tunnels/tunnels/shared/connector"
	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

// One local system for the package: emulators, provisioning, API and pollers.
var (
	sys       *devstack.System
	gateway   *botGateway
	contract  validator.Validator
	startErr  error
	contractM sync.Mutex
)

const connectorSecret = "test-connector-secret-0123456789"

func TestMain(m *testing.M) {
	code := func() int {
		if !shortMode() {
			gateway = newBotGateway()
			defer gateway.Close()
			tgAPI = telegramtest.New()
			defer tgAPI.Close()
			doc, err := libopenapi.NewDocument(apidoc.JSON())
			if err != nil {
				fmt.Fprintln(os.Stderr, "openapi:", err)
				return 1
			}
			v, errs := validator.NewValidator(doc)
			if len(errs) > 0 {
				fmt.Fprintln(os.Stderr, "openapi validator:", errs)
				return 1
			}
			contract = v
			logFile, _ := os.CreateTemp("", "tunnels-e2e-*.log")
			defer logFile.Close()
			systemLog = logFile.Name()
			fmt.Fprintln(os.Stderr, "local system log:", logFile.Name())
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			allow := []string{gateway.hostPort(), strings.TrimPrefix(tgAPI.URL(), "http://")}
			for range spareCount {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					fmt.Fprintln(os.Stderr, "reserve a loopback port:", err)
					return 1
				}
				spare <- ln
				allow = append(allow, ln.Addr().String())
			}
			for _, a := range allow {
				allowed[a] = true
			}
			sys, startErr = devstack.Start(ctx, devstack.Options{
				HTTPAddr:          "127.0.0.1:0",
				AdminToken:        "e2e-admin-token",
				EgressAllow:       strings.Join(allow, ","),
				SchedulerInterval: time.Second,
				Env:               map[string]string{"TUNNELS_TELEGRAM_API": tgAPI.URL()},
				CountCalls:        calls,
				Log:               slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if startErr != nil {
				fmt.Fprintln(os.Stderr, "devstack:", startErr)
				return 1
			}
			defer sys.Close()
		}
		code := m.Run()
		if code == 0 && sys != nil {
			// Every test has run: what the functions called, their
			// policies must allow.
			denied, err := unauthorizedCalls(calls.Permissions())
			if err != nil {
				fmt.Fprintln(os.Stderr, "check the functions' calls against their policies:", err)
				return 1
			}
			for _, d := range denied {
				fmt.Fprintln(os.Stderr, "FAIL (IAM):", d)
			}
			if len(denied) > 0 {
				return 1
			}
		}
		return code
	}()
	os.Exit(code)
}

// Loopback ports reserved before the system starts and listed in its
// TUNNELS_EGRESS_ALLOW, so a test can run a server the deployment may call
// (an amoCRM account, a webhook target): see allowedServer.
const spareCount = 16

// tgAPI is the fake Telegram Bot API the system calls (TUNNELS_TELEGRAM_API),
// and systemLog the file the system logs to.
var (
	tgAPI     *telegramtest.Server
	systemLog string
)

var spare = make(chan net.Listener, spareCount)

// allowed holds every host:port the shared system may call (written once,
// before any test runs).
var allowed = map[string]bool{}

// forbiddenServer is a server on loopback the shared system may not call:
// never on a port of the allow list (a test's allowed server, once closed,
// frees its port for the next listener).
func forbiddenServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	for range 20 {
		srv := httptest.NewServer(h)
		if !allowed[srv.Listener.Addr().String()] {
			t.Cleanup(srv.Close)
			return srv
		}
		defer srv.Close() // held until a free port is found, so it is not drawn again
	}
	t.Fatal("no loopback port outside the allow list")
	return nil
}

// allowedServer runs h on one of the reserved loopback ports: a server the
// local deployment is allowed to call. It is closed when the test ends.
func allowedServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	var ln net.Listener
	select {
	case ln = <-spare:
	default:
		t.Fatal("no reserved loopback port left; raise spareCount")
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func shortMode() bool {
	for _, a := range os.Args {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}

func needSystem(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the emulators")
	}
	if sys == nil {
		t.Fatalf("the local system did not start: %v", startErr)
	}
}

// api is a client of one workspace.
type api struct {
	t   *testing.T
	key string
	ws  string
}

// newWorkspace creates a workspace through the admin endpoint, so every test
// has its own tenant.
func newWorkspace(t *testing.T, name string) *api {
	t.Helper()
	admin := &api{t: t, key: sys.AdminToken}
	var out struct {
		WorkspaceID string `json:"workspace_id"`
		APIKey      string `json:"api_key"`
	}
	admin.must(http.MethodPost, "/v1/workspaces", map[string]string{"name": name}, http.StatusCreated, &out)
	if out.WorkspaceID == "" || !strings.HasPrefix(out.APIKey, "tk_") {
		t.Fatalf("workspace answer %+v", out)
	}
	return &api{t: t, key: out.APIKey, ws: out.WorkspaceID}
}

// do sends a request, checks request and answer against the OpenAPI
// document, and answers the status and body.
func (a *api) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			a.t.Fatal(err)
		}
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, sys.APIURL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	a.checkContract(method, path, raw, res, out)
	return res.StatusCode, out
}

// checkContract validates an answer against the OpenAPI document (the
// request too, when it is meant to be valid).
func (a *api) checkContract(method, path string, reqBody []byte, res *http.Response, body []byte) {
	a.t.Helper()
	req, _ := http.NewRequest(method, "http://api.example"+path, bytes.NewReader(reqBody))
	req.Header.Set("Content-Type", "application/json")
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	copyRes := &http.Response{StatusCode: res.StatusCode, Header: res.Header.Clone(), Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	contractM.Lock()
	ok, errs := contract.ValidateHttpResponse(req, copyRes)
	contractM.Unlock()
	if !ok && res.StatusCode == http.StatusNotFound && len(errs) == 1 && errs[0].ValidationType == "path" {
		ok = true // a path the API does not have: its 404 problem is checked by the test
	}
	if !ok {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Message+": "+e.Reason)
			for _, se := range e.SchemaValidationErrors {
				msgs = append(msgs, "  "+se.FieldPath+" "+se.Reason)
			}
		}
		a.t.Errorf("%s %s answered %d %s\nwhich the OpenAPI document does not allow:\n%s", method, path, res.StatusCode, truncate(body), strings.Join(msgs, "\n"))
	}
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// must sends a request, wants a status, and decodes the answer into out.
func (a *api) must(method, path string, body any, want int, out any) {
	a.t.Helper()
	got, raw := a.do(method, path, body)
	if got != want {
		a.t.Fatalf("%s %s = %d %s, want %d", method, path, got, truncate(raw), want)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
}

// problem is an RFC 9457 answer.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Errors []struct {
		Pointer string `json:"pointer"`
		Detail  string `json:"detail"`
	} `json:"errors"`
}

func (a *api) problem(method, path string, body any, want int, code string) problem {
	a.t.Helper()
	got, raw := a.do(method, path, body)
	var p problem
	if err := json.Unmarshal(raw, &p); err != nil {
		a.t.Fatalf("%s %s: not a problem: %s", method, path, raw)
	}
	if got != want || p.Status != want || p.Code != code || p.Detail == "" || p.Type == "" || p.Title == "" {
		a.t.Fatalf("%s %s = %d %+v, want %d code %q", method, path, got, p, want, code)
	}
	return p
}

// eventually retries cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not happen within %s; last state: %s", what, within, last)
}

// botGateway is the channel connector's far side: a real HTTP server on
// loopback that verifies each signed message and records it.
type botGateway struct {
	srv      *httptest.Server
	mu       sync.Mutex
	messages []received
	bad      []string
	failing  map[string]int // external id -> answers 503 to its messages (count of refusals)
}

// failFor makes the gateway answer 503 to a subscriber's messages (or stop).
func (g *botGateway) failFor(externalID string, fail bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failing == nil {
		g.failing = map[string]int{}
	}
	if fail {
		g.failing[externalID] = 0
	} else {
		delete(g.failing, externalID)
	}
}

// refusals answers how many messages of a failing subscriber were refused.
func (g *botGateway) refusals(externalID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failing[externalID]
}

type received struct {
	Msg            connector.Message
	IdempotencyKey string
}

func newBotGateway() *botGateway {
	g := &botGateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := connector.Verify(connectorSecret, r.Header, body, time.Now(), time.Minute); err != nil {
			g.mu.Lock()
			g.bad = append(g.bad, err.Error())
			g.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var m connector.Message
		if err := json.Unmarshal(body, &m); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		if n, failing := g.failing[m.ExternalID]; failing {
			g.failing[m.ExternalID] = n + 1
			g.mu.Unlock()
			http.Error(w, "bot gateway is down", http.StatusServiceUnavailable)
			return
		}
		g.messages = append(g.messages, received{Msg: m, IdempotencyKey: r.Header.Get("Idempotency-Key")})
		g.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	return g
}

func (g *botGateway) Close()           { g.srv.Close() }
func (g *botGateway) URL() string      { return g.srv.URL + "/bot" }
func (g *botGateway) hostPort() string { return strings.TrimPrefix(g.srv.URL, "http://") }

// forSubscriber answers the messages delivered to one subscriber.
func (g *botGateway) forSubscriber(sub string) []received {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []received
	for _, m := range g.messages {
		if m.Msg.SubscriberID == sub {
			out = append(out, m)
		}
	}
	return out
}

// all answers every message delivered so far.
func (g *botGateway) all() []received {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]received(nil), g.messages...)
}

func (g *botGateway) rejected() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.bad...)
}
