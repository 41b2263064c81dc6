// Package amotest is a local amoCRM server for tests. It follows the
// contract in amocrm-api.md (the public amoCRM API v4, the part Tunnels uses)
// rather than accepting anything: OAuth with single-use refresh tokens,
// Bearer auth on every /api/v4 call, the 7-requests-per-second limit with 429
// and the 403 block page, pipelines with their system statuses, contacts and
// leads with amoCRM's validation errors, 204 for empty lists, X-Request-Id on
// every answer. Hooks inject faults (FailNext, SetDelay, AfterCreate) and
// introspection (Leads, Contacts, Requests) lets a test assert, say, that
// exactly one lead was created.
//
// Where the vendor leaves a point open, Options picks the reading
// (KeepAccessOnRefresh, ComplexLinksByID, DuplicateControl).
package amotest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is a sensible account.
type Options struct {
	ClientID     string // default "tunnels-client"
	ClientSecret string // default "tunnels-secret"
	RedirectURI  string // default "https://tunnels.example/oauth/amocrm"

	AccessTTL  time.Duration // access token lifetime (expires_in); default 24h
	RefreshTTL time.Duration // refresh token lifetime; default 90 days

	// RateLimit: more than this many requests in any 1-second window answer
	// 429 (plain text, Retry-After: 1). 0 means 7; negative disables the limit.
	RateLimit int
	// BlockAfter: after this many 429s every request answers 403 with an HTML
	// page until Unblock. 0 never blocks.
	BlockAfter int
	// PageSize is the default page size of lists (limit may ask up to 250).
	// 0 means 50.
	PageSize int
	// Pipelines of the account; nil means DefaultPipelines(). Every pipeline
	// gets the system statuses (incoming, 142 won, 143 lost) if it lacks them.
	Pipelines []Pipeline

	// KeepAccessOnRefresh keeps the old access token valid (until it expires)
	// after a refresh. The vendor does not say; by default it is revoked.
	KeepAccessOnRefresh bool
	// ComplexLinksByID makes an embedded contact {"id": N} in /leads/complex
	// link that existing contact. The vendor does not say; by default the id
	// is ignored and a new contact is created from the other fields.
	ComplexLinksByID bool
	// DuplicateControl: /leads/complex answers merged: true with the existing
	// lead's id when the contact's phone or email matches a contact that has
	// an open lead in the same pipeline.
	DuplicateControl bool

	// Delay holds every request this long before handling it (see SetDelay).
	Delay time.Duration
	// AfterCreate is called once entities were created, before the answer is
	// written (see SetAfterCreate).
	AfterCreate func(Created) (drop bool)

	// Now is the server's clock (token expiry, timestamps, the rate-limit
	// window); nil means time.Now. A frozen clock makes rate-limit tests
	// independent of the machine's speed.
	Now func() time.Time

	// Listener, when set, is where the server listens instead of a new
	// 127.0.0.1 port: a port reserved in advance, e.g. one a deployment's
	// egress allow list names. The server owns it from then on (Close closes it).
	Listener net.Listener
}

// Pipeline is a pipeline of the account.
type Pipeline struct {
	ID       int64
	Name     string
	Sort     int
	IsMain   bool
	Statuses []Status
}

// Status is a stage; Type 1 is the system "Incoming leads" stage.
type Status struct {
	ID   int64
	Name string
	Sort int
	Type int
}

// DefaultPipelines: "Sales" (7001, main) and "Partners" (7101).
func DefaultPipelines() []Pipeline {
	return []Pipeline{
		{ID: 7001, Name: "Sales", Sort: 1, IsMain: true, Statuses: []Status{
			{ID: 7000, Name: "Incoming leads", Sort: 10, Type: 1},
			{ID: 7002, Name: "New", Sort: 20},
			{ID: 7003, Name: "Negotiation", Sort: 30},
			{ID: 142, Name: "Won", Sort: 10000},
			{ID: 143, Name: "Lost", Sort: 11000},
		}},
		{ID: 7101, Name: "Partners", Sort: 2, Statuses: []Status{
			{ID: 7100, Name: "Incoming leads", Sort: 10, Type: 1},
			{ID: 7102, Name: "New", Sort: 20},
			{ID: 142, Name: "Won", Sort: 10000},
			{ID: 143, Name: "Lost", Sort: 11000},
		}},
	}
}

// Value is one value of a multi-value field (PHONE, EMAIL).
type Value struct {
	Value    string
	EnumCode string
}

// Contact is a stored contact.
type Contact struct {
	ID        int64
	Name      string
	FirstName string
	LastName  string
	Phones    []Value
	Emails    []Value
	Tags      []string
	CreatedAt int64
	UpdatedAt int64
}

// Lead is a stored lead (deal).
type Lead struct {
	ID         int64
	Name       string
	PipelineID int64
	StatusID   int64
	ContactIDs []int64
	Tags       []string
	CreatedAt  int64
	UpdatedAt  int64
}

// Request is one request the server received.
type Request struct {
	Method    string
	Path      string
	Query     string
	Time      time.Time
	Status    int // 0 when the connection was dropped or abandoned
	RequestID string
}

// Created tells AfterCreate what one request created.
type Created struct {
	Method, Path string
	Leads        []int64
	Contacts     []int64
}

// Server is a running local amoCRM account.
type Server struct {
	// URL is the account's base URL, "http://127.0.0.1:PORT".
	URL string

	opts Options
	hs   *httptest.Server
	mux  *http.ServeMux

	mu           sync.Mutex
	access       map[string]*accessToken
	refresh      map[string]*refreshToken
	codes        map[string]time.Time
	refreshCalls int
	pipelines    []Pipeline
	contacts     map[int64]*Contact
	leads        map[int64]*Lead
	tags         map[string]map[string]int64 // entity type → lower(name) → id
	tagNames     map[int64]string
	nextID       map[string]int64
	requests     []Request
	window       []time.Time
	violations   int
	blocked      bool
	failStatus   int
	failN        int
	delay        time.Duration
	afterCreate  func(Created) bool
	accountError string
}

type accessToken struct {
	expires time.Time
	revoked bool
}

type refreshToken struct {
	expires time.Time
	used    bool
	access  string // the access token issued with it
}

// New starts a server on 127.0.0.1 (or on Options.Listener). Close it when
// done.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "tunnels-client"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "tunnels-secret"
	}
	if opts.RedirectURI == "" {
		opts.RedirectURI = "https://tunnels.example/oauth/amocrm"
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = 24 * time.Hour
	}
	if opts.RefreshTTL <= 0 {
		opts.RefreshTTL = 90 * 24 * time.Hour
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 7
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	if opts.PageSize > 250 {
		opts.PageSize = 250
	}
	if opts.Pipelines == nil {
		opts.Pipelines = DefaultPipelines()
	}
	s := &Server{
		opts:        opts,
		access:      map[string]*accessToken{},
		refresh:     map[string]*refreshToken{},
		codes:       map[string]time.Time{},
		pipelines:   withSystemStatuses(opts.Pipelines),
		contacts:    map[int64]*Contact{},
		leads:       map[int64]*Lead{},
		tags:        map[string]map[string]int64{"contacts": {}, "leads": {}},
		tagNames:    map[int64]string{},
		nextID:      map[string]int64{"contacts": 1001, "leads": 2001, "tags": 501},
		delay:       opts.Delay,
		afterCreate: opts.AfterCreate,
	}
	s.routes()
	if opts.Listener != nil {
		s.hs = httptest.NewUnstartedServer(s)
		_ = s.hs.Listener.Close()
		s.hs.Listener = opts.Listener
		s.hs.Start()
	} else {
		s.hs = httptest.NewServer(s)
	}
	s.URL = s.hs.URL
	return s
}

// withSystemStatuses copies the pipelines, adding the incoming (type 1), won
// (142) and lost (143) statuses where missing and making one pipeline main.
func withSystemStatuses(in []Pipeline) []Pipeline {
	out := make([]Pipeline, len(in))
	hasMain := false
	for i, p := range in {
		p.Statuses = append([]Status(nil), p.Statuses...)
		var incoming, won, lost bool
		for _, st := range p.Statuses {
			incoming = incoming || st.Type == 1
			won = won || st.ID == 142
			lost = lost || st.ID == 143
		}
		if !incoming {
			p.Statuses = append(p.Statuses, Status{ID: 900000 + p.ID, Name: "Incoming leads", Sort: 10, Type: 1})
		}
		if !won {
			p.Statuses = append(p.Statuses, Status{ID: 142, Name: "Won", Sort: 10000})
		}
		if !lost {
			p.Statuses = append(p.Statuses, Status{ID: 143, Name: "Lost", Sort: 11000})
		}
		sort.SliceStable(p.Statuses, func(a, b int) bool { return p.Statuses[a].Sort < p.Statuses[b].Sort })
		hasMain = hasMain || p.IsMain
		out[i] = p
	}
	if !hasMain && len(out) > 0 {
		out[0].IsMain = true
	}
	return out
}

// Close stops the server.
func (s *Server) Close() { s.hs.Close() }

// Addr is the server's "127.0.0.1:PORT", for an egress allow list.
func (s *Server) Addr() string { return s.hs.Listener.Addr().String() }

// Credentials the server expects.
func (s *Server) ClientID() string     { return s.opts.ClientID }
func (s *Server) ClientSecret() string { return s.opts.ClientSecret }
func (s *Server) RedirectURI() string  { return s.opts.RedirectURI }

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// FailNext makes the next n requests (any path) answer status: a problem
// body for 500, an HTML page for other 5xx and 403, plain text with
// Retry-After: 1 for 429.
func (s *Server) FailNext(status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failStatus, s.failN = status, n
}

// SetDelay holds every following request d before handling it. A client that
// gives up meanwhile abandons the request: it is not handled.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetAfterCreate installs the hook called after a request created entities
// and before its answer is written. Returning true drops the connection
// without an answer: amoCRM did the work, the client never hears of it (a
// crash or timeout after the side effect).
func (s *Server) SetAfterCreate(f func(Created) (drop bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterCreate = f
}

// SetAccountError makes every /api/v4 call answer 400 with a problem whose
// detail is detail (a lapsed subscription, missing rights). "" clears it.
func (s *Server) SetAccountError(detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accountError = detail
}

// Block makes every request answer the 403 HTML block page; Unblock ends it.
func (s *Server) Block() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked = true
}

// Unblock ends a block and forgets past rate-limit violations.
func (s *Server) Unblock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked, s.violations = false, 0
}

// Requests answers every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count counts received requests with that method and path.
func (s *Server) Count(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// Contacts answers the stored contacts by id.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, c.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Leads answers the stored leads by id.
func (s *Server) Leads() []Lead {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Lead, 0, len(s.leads))
	for _, l := range s.leads {
		out = append(out, l.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Contact answers one stored contact.
func (s *Server) Contact(id int64) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contacts[id]
	if !ok {
		return Contact{}, false
	}
	return c.clone(), true
}

// AddContact stores a contact directly (test setup) and answers its id.
func (s *Server) AddContact(c Contact) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	c = c.clone()
	c.ID = s.newID("contacts")
	c.CreatedAt, c.UpdatedAt = s.now().Unix(), s.now().Unix()
	for _, t := range c.Tags {
		s.tagID("contacts", t)
	}
	s.contacts[c.ID] = &c
	return c.ID
}

func (c *Contact) clone() Contact {
	out := *c
	out.Phones = append([]Value(nil), c.Phones...)
	out.Emails = append([]Value(nil), c.Emails...)
	out.Tags = append([]string(nil), c.Tags...)
	return out
}

func (l *Lead) clone() Lead {
	out := *l
	out.ContactIDs = append([]int64(nil), l.ContactIDs...)
	out.Tags = append([]string(nil), l.Tags...)
	return out
}

func (s *Server) newID(kind string) int64 {
	id := s.nextID[kind]
	s.nextID[kind] = id + 1
	return id
}

// tagID answers the id of the entity type's tag, creating it. Caller holds mu.
func (s *Server) tagID(entity, name string) int64 {
	k := strings.ToLower(name)
	if id, ok := s.tags[entity][k]; ok {
		return id
	}
	id := s.newID("tags")
	s.tags[entity][k] = id
	s.tagNames[id] = name
	return id
}

// ServeHTTP is the front door: request id, log, block, rate limit, delay,
// injected faults, then the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := randomHex(8)
	w.Header().Set("X-Request-Id", rid)
	rec := &recorder{ResponseWriter: w}
	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Time: time.Now(), RequestID: rid})
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.requests[idx].Status = rec.status
		s.mu.Unlock()
	}()
	if s.gate(rec, r) {
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// gate answers for the block, the rate limit, the delay and injected faults;
// true when it answered (or abandoned) the request.
func (s *Server) gate(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	if s.blocked {
		s.mu.Unlock()
		writeBlockPage(w)
		return true
	}
	if s.opts.RateLimit > 0 {
		now := s.now()
		cut := now.Add(-time.Second)
		i := 0
		for i < len(s.window) && !s.window[i].After(cut) {
			i++
		}
		s.window = s.window[i:]
		if len(s.window) >= s.opts.RateLimit {
			s.violations++
			if s.opts.BlockAfter > 0 && s.violations >= s.opts.BlockAfter {
				s.blocked = true
			}
			s.mu.Unlock()
			writeTooMany(w)
			return true
		}
		s.window = append(s.window, now)
	}
	delay := s.delay
	fail := 0
	if s.failN > 0 {
		s.failN--
		fail = s.failStatus
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true // the client gave up: nothing is done
		}
	}
	switch {
	case fail == 0:
		return false
	case fail == http.StatusTooManyRequests:
		writeTooMany(w)
	case fail == http.StatusForbidden:
		writeBlockPage(w)
	case fail >= 500 && fail != http.StatusInternalServerError:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(fail)
		_, _ = w.Write([]byte("<html><head><title>" + strconv.Itoa(fail) + "</title></head><body><center><h1>" +
			strconv.Itoa(fail) + " " + http.StatusText(fail) + "</h1></center><hr><center>nginx</center></body></html>\n"))
	default:
		writeProblem(w, fail, http.StatusText(fail), "Injected failure", nil)
	}
	return true
}

// recorder remembers the status; Unwrap lets http.ResponseController hijack.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	_ = conn.Close()
}

func writeTooMany(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("<html><body><h1>429 Too Many Requests</h1></body></html>\n"))
}

func writeBlockPage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Access denied</title></head><body>" +
		"<h1>403 Forbidden</h1><p>Your IP address has been blocked for exceeding the request limit.</p></body></html>\n"))
}

// writeJSON answers a success body as application/hal+json.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "Internal Server Error", err.Error(), nil)
		return
	}
	w.Header().Set("Content-Type", "application/hal+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// fieldErr is one entry of validation-errors[].errors.
type fieldErr struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// itemErrs groups a batch item's errors.
type itemErrs struct {
	RequestID string     `json:"request_id"`
	Errors    []fieldErr `json:"errors"`
}

// writeProblem answers application/problem+json; a non-nil v adds
// validation-errors.
func writeProblem(w http.ResponseWriter, status int, title, detail string, v []itemErrs) {
	body := map[string]any{
		"title":  title,
		"type":   "https://httpstatus.es/" + strconv.Itoa(status),
		"status": status,
		"detail": detail,
	}
	if v != nil {
		body["validation-errors"] = v
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeValidation(w http.ResponseWriter, v []itemErrs) {
	writeProblem(w, http.StatusBadRequest, "Bad Request", "Request validation failed", v)
}

func writeBadRequest(w http.ResponseWriter, detail string) {
	writeProblem(w, http.StatusBadRequest, "Bad Request", detail, nil)
}

func writeNotFound(w http.ResponseWriter) {
	writeProblem(w, http.StatusNotFound, "Not Found", "Entity not found", nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// base is the absolute address links are built on.
func base(r *http.Request) string { return "http://" + r.Host }

func link(href string) map[string]any { return map[string]any{"href": href} }

// pageParams reads page and limit; a bad limit answers 400.
func (s *Server) pageParams(w http.ResponseWriter, q url.Values) (page, limit int, ok bool) {
	page, limit = 1, s.opts.PageSize
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeValidation(w, []itemErrs{{RequestID: "0", Errors: []fieldErr{{Code: "InvalidType", Path: "page", Detail: "This value should be a positive integer."}}}})
			return 0, 0, false
		}
		page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 250 {
			writeValidation(w, []itemErrs{{RequestID: "0", Errors: []fieldErr{{Code: "LessThanOrEqual", Path: "limit", Detail: "This value should be between 1 and 250."}}}})
			return 0, 0, false
		}
		limit = n
	}
	return page, limit, true
}

// pageLinks answers the _links of a page: self, and next when more follow.
func pageLinks(r *http.Request, page, limit int, more bool) map[string]any {
	at := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("limit", strconv.Itoa(limit))
		return base(r) + r.URL.Path + "?" + q.Encode()
	}
	links := map[string]any{"self": link(at(page))}
	if more {
		links["next"] = link(at(page + 1))
	}
	return links
}
