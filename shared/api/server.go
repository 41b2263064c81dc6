// Package api is the whole HTTP API of SPEC section 6 as two net/http
// handlers: Handler (the api function) and EditorHandler (the editor's
// routes); in Lambda behind API Gateway (see apigw), locally behind the local
// stack's router.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/apidoc"
	"github.com/tunnels/tunnels/shared/console"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// MaxBody is the largest request body the API reads.
const MaxBody = 256 << 10

// Server holds what the handlers need. Build them with Handler and
// EditorHandler.
type Server struct {
	Store *store.Store
	Queue engine.Queue
	// AdminToken authorizes POST /v1/workspaces.
	AdminToken string
	// Egress decides which addresses a workspace may configure.
	Egress egress.Policy
	// DLQ removes re-driven steps' copies from the dead-letter queues.
	DLQ interface {
		Remove(ctx context.Context, kind engine.Kind, stepIDs map[string]bool) (int, error)
	}
	// External sends check requests (POST /v1/external-requests/check): an egress client
	// with the Egress policy (the editor's wiring builds it once). Nil: one is built for
	// each check.
	External *http.Client
	// Messenger sends operators' messages through the subscriber's channel.
	Messenger engine.Messenger
	// Console serves the browser console at GET / (nil: not served).
	Console *console.Console
	// PublicURL is the API's address from the internet (TUNNELS_PUBLIC_URL);
	// empty: the address of the request that saves a Telegram channel.
	PublicURL string
	// TelegramAPI is the Bot API's address ("" for Telegram's own), and
	// TelegramHTTP the egress client that calls it.
	TelegramAPI  string
	TelegramHTTP *http.Client
	Log          *slog.Logger
	Now          func() time.Time
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// handlerFunc is a handler of a workspace: it answers a response or a problem.
type handlerFunc func(r *http.Request, ws string) response

// response is what a handler answers.
type response struct {
	status int
	body   any
	header http.Header
}

func ok(body any) response               { return response{status: http.StatusOK, body: body} }
func status(code int, body any) response { return response{status: code, body: body} }

// Handler is the API function's handler: every route but the editor's
// (EditorHandler).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/openapi.json", serveDocument)
	mux.HandleFunc("POST /v1/workspaces", s.createWorkspace)
	if s.Console != nil {
		mux.HandleFunc("GET /{$}", s.Console.Index)
		mux.HandleFunc("GET "+console.AssetPrefix, s.Console.Asset)
	}
	for _, pr := range s.publicRoutes() {
		mux.Handle(pr.pattern, pr.h)
	}
	return s.serve(mux, s.routes())
}

// EditorHandler is the editor function's handler: saving a tunnel, which
// validates the whole funnel (every block, action and external request), and
// previewing or sending an external request, which renders it and, for a
// check, calls the user's server. They link the API's heaviest code (the
// validator, the external-request client); apart, they cost neither size nor
// cold start to every other route.
func (s *Server) EditorHandler() http.Handler {
	return s.serve(http.NewServeMux(), s.editorRoutes())
}

// serve adds the workspace routes and the problem answer to any other path.
func (s *Server) serve(mux *http.ServeMux, routes []route) http.Handler {
	for _, route := range routes {
		mux.Handle(route.pattern, s.keyed(route.h))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problem{Status: http.StatusNotFound, Code: "not_found", Detail: "no such path: " + r.Method + " " + r.URL.Path})
	})
	return s.recoverer(mux)
}

type route struct {
	pattern string
	h       handlerFunc
}

// EditorRoutes are the patterns EditorHandler serves ("PUT /v1/tunnels/{id}"):
// the routes template.yaml sends to the editor function.
func EditorRoutes() []string {
	var ps []string
	for _, r := range (&Server{}).editorRoutes() {
		ps = append(ps, r.pattern)
	}
	return ps
}

// editorRoutes are EditorHandler's.
func (s *Server) editorRoutes() []route {
	return []route{
		{"PUT /v1/tunnels/{id}", s.putTunnel},
		{"POST /v1/external-requests/preview", s.previewExternalRequest},
		{"POST /v1/external-requests/check", s.checkExternalRequest},
	}
}

// routes are Handler's workspace routes.
func (s *Server) routes() []route {
	rs := []route{
		{"GET /v1/tunnels/{id}", s.getTunnel},
		{"DELETE /v1/tunnels/{id}", s.deleteTunnel},
		{"GET /v1/tunnels", s.listTunnels},
		{"POST /v1/events", s.postEvent},
		{"GET /v1/subscribers", s.listSubscribers},
		{"GET /v1/subscribers/{id}", s.getSubscriber},
		{"GET /v1/subscribers/{id}/journey", s.getJourney},
		{"GET /v1/subscribers/{id}/chat", s.getChat},
		{"PATCH /v1/subscribers/{id}/chat", s.patchChat},
		{"GET /v1/chats", s.listChats},
		{"GET /v1/operators/{id}/mentions", s.listMentions},
	}
	// Routes of later issues, each in its own file.
	rs = append(rs, s.planRoutes()...)
	rs = append(rs, s.crmRoutes()...)
	rs = append(rs, s.deadLetterRoutes()...)
	rs = append(rs, s.conversationRoutes()...)
	rs = append(rs, s.channelRoutes()...)
	rs = append(rs, s.tunnelRoutes()...)
	for _, c := range catalogKinds {
		if c.singleton {
			rs = append(rs,
				route{"PUT " + c.path, func(r *http.Request, ws string) response { return s.putEntity(r, ws, c, "default") }},
				route{"GET " + c.path, func(r *http.Request, ws string) response { return s.getEntity(r, ws, c, "default") }},
				route{"DELETE " + c.path, func(r *http.Request, ws string) response { return s.deleteEntity(r, ws, c, "default") }},
			)
			continue
		}
		item := c.path + "/{" + c.param + "}"
		rs = append(rs,
			route{"PUT " + item, func(r *http.Request, ws string) response { return s.putEntity(r, ws, c, r.PathValue(c.param)) }},
			route{"GET " + item, func(r *http.Request, ws string) response { return s.getEntity(r, ws, c, r.PathValue(c.param)) }},
			route{"DELETE " + item, func(r *http.Request, ws string) response { return s.deleteEntity(r, ws, c, r.PathValue(c.param)) }},
			route{"GET " + c.path, func(r *http.Request, ws string) response { return s.listEntities(r, ws, c) }},
		)
	}
	return rs
}

// keyed authenticates the workspace API key, limits the body and writes the
// handler's answer.
func (s *Server) keyed(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := bearer(r)
		if !ok {
			writeProblem(w, problem{Status: http.StatusUnauthorized, Code: "unauthorized", Detail: "an Authorization: Bearer <API key> header is required"})
			return
		}
		ws, err := s.Store.WorkspaceForKey(r.Context(), key)
		if errors.Is(err, engine.ErrNotFound) {
			writeProblem(w, problem{Status: http.StatusUnauthorized, Code: "unauthorized", Detail: "the API key is not valid"})
			return
		}
		if err != nil {
			s.internal(w, r, err)
			return
		}
		s.notePublicURL(r) // for unsubscribe links (email.go)
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		res := h(r, ws)
		if p, isProblem := res.body.(problem); isProblem {
			if p.Status >= 500 {
				s.log().Error("request failed", "method", r.Method, "path", r.URL.Path, "error", p.cause)
			}
			writeProblem(w, p)
			return
		}
		for k, vs := range res.header {
			w.Header()[k] = vs
		}
		if res.status == http.StatusNoContent {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, res.status, res.body)
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				s.log().Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", p)
				writeProblem(w, problem{Status: http.StatusInternalServerError, Code: "internal", Detail: "an internal error occurred"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *Server) internal(w http.ResponseWriter, r *http.Request, err error) {
	s.log().Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeProblem(w, problem{Status: http.StatusInternalServerError, Code: "internal", Detail: "an internal error occurred"})
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Code   string       `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
	cause  error
}

func writeProblem(w http.ResponseWriter, p problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if p.Type == "" {
		p.Type = "https://tunnels.dev/problems/" + strings.ReplaceAll(p.Code, "_", "-")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// Problems handlers answer.
func fail(code int, c, detail string) response {
	return response{status: code, body: problem{Status: code, Code: c, Detail: detail}}
}

func notFound(what string) response {
	return fail(http.StatusNotFound, "not_found", what+" does not exist")
}

func invalid(detail string, errs ...FieldError) response {
	return response{status: http.StatusBadRequest, body: problem{Status: http.StatusBadRequest, Code: "validation_failed", Detail: detail, Errors: errs}}
}

func internalErr(err error) response {
	return response{status: 500, body: problem{Status: 500, Code: "internal", Detail: "an internal error occurred", cause: err}}
}

// readBody reads and strictly decodes a JSON body into v.
func readBody(r *http.Request, v any) (response, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fail(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than 256 KiB"), false
		}
		return fail(http.StatusBadRequest, "invalid_json", "the request body could not be read"), false
	}
	if bad, errs := decodeStrict(body, v); bad != nil {
		return fail(http.StatusBadRequest, "invalid_json", bad.Error()), false
	} else if len(errs) > 0 {
		return invalid(summary(errs), errs...), false
	}
	return response{}, true
}

// rawBody reads a body without decoding it.
func rawBody(r *http.Request) ([]byte, response, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fail(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than 256 KiB"), false
		}
		return nil, fail(http.StatusBadRequest, "invalid_json", "the request body could not be read"), false
	}
	return body, response{}, true
}

func summary(errs []FieldError) string {
	if len(errs) == 1 {
		where := errs[0].Pointer
		if where == "" {
			where = "the body"
		}
		return where + ": " + errs[0].Detail
	}
	return strconv.Itoa(len(errs)) + " problems in the request body; see errors"
}

// page reads ?limit= and ?cursor=.
func page(r *http.Request) (store.Page, response, bool) {
	p := store.Page{Limit: 100, Cursor: r.URL.Query().Get("cursor")}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return p, invalid("limit must be a whole number from 1 to 500", FieldError{Pointer: "", Detail: "query parameter limit=" + v + " is out of range 1..500"}), false
		}
		p.Limit = n
	}
	return p, response{}, true
}

// listErr maps a list error: a bad cursor is the client's.
func listErr(err error) response {
	if errors.Is(err, store.ErrBadCursor) {
		return invalid("cursor is not one this API gave out", FieldError{Pointer: "", Detail: "query parameter cursor is not valid"})
	}
	return internalErr(err)
}

// Time is the API's timestamp: RFC 3339 UTC with milliseconds.
type Time time.Time

// MarshalJSON writes 2026-11-24T10:00:00.123Z.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

func validID(id string) bool { return tunnel.ValidID(id) }

func badID(name, id string) response {
	return invalid(name+" must match [A-Za-z0-9_-]{1,64}", FieldError{Pointer: "", Detail: name + " " + strconv.Quote(id) + " is not a valid id"})
}

// createWorkspace is POST /v1/workspaces, authorized by the admin token.
func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	token, ok := bearer(r)
	if !ok || s.AdminToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.AdminToken)) != 1 {
		writeProblem(w, problem{Status: http.StatusUnauthorized, Code: "unauthorized", Detail: "the deployment's admin token is required"})
		return
	}
	s.notePublicURL(r)
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	var in struct {
		Name string `json:"name"`
	}
	if res, ok := readBody(r, &in); !ok {
		writeProblem(w, res.body.(problem))
		return
	}
	if strings.TrimSpace(in.Name) == "" || len(in.Name) > 200 {
		writeProblem(w, problem{Status: 400, Code: "validation_failed", Detail: "/name: a name of 1 to 200 characters is required",
			Errors: []FieldError{{Pointer: "/name", Detail: "a name of 1 to 200 characters is required"}}})
		return
	}
	ws := store.NewID(s.now())
	key := NewAPIKey()
	if err := s.Store.CreateWorkspace(r.Context(), ws, in.Name, key); err != nil {
		s.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"workspace_id": ws, "api_key": key})
}

// serveDocument answers the OpenAPI document: as embedded, gzip-compressed (a
// seventh of its size), to a client that accepts gzip, and plain otherwise.
func serveDocument(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Values("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		_, _ = w.Write(apidoc.Gzip)
		return
	}
	_, _ = w.Write(apidoc.JSON())
}

// acceptsGzip reads Accept-Encoding (RFC 9110, 12.5.3): gzip with a weight
// above zero, or, when gzip is not named, * with one. An item whose weight
// is not a qvalue (0 to 1, three decimals at most) is ignored.
func acceptsGzip(values []string) bool {
	named, star := -1.0, -1.0
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			weight, ok := qvalue(params)
			if !ok {
				continue
			}
			switch coding = strings.TrimSpace(coding); {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				named = max(named, weight)
			case coding == "*":
				star = max(star, weight)
			}
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}

// qvalue reads an item's weight parameter ("q=0.5"; none is 1).
func qvalue(params string) (float64, bool) {
	params = strings.TrimSpace(params)
	if params == "" {
		return 1, true
	}
	name, value, found := strings.Cut(params, "=")
	if !found || !strings.EqualFold(strings.TrimSpace(name), "q") {
		return 0, false
	}
	value = strings.TrimSpace(value)
	whole, frac, _ := strings.Cut(value, ".")
	if (whole != "0" && whole != "1") || len(frac) > 3 || strings.Trim(frac, "0123456789") != "" || (whole == "1" && strings.Trim(frac, "0") != "") {
		return 0, false
	}
	w, err := strconv.ParseFloat(value, 64)
	return w, err == nil
}
