package amotest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/egress"
)

type exchange struct {
	status int
	header http.Header
	body   []byte
}

func (e exchange) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.body, &m); err != nil {
		t.Fatalf("body %q: %v", e.body, err)
	}
	return m
}

func newServer(t *testing.T, o Options) *Server {
	t.Helper()
	s := New(o)
	t.Cleanup(s.Close)
	return s
}

// call sends one request through the deployment's egress client.
func call(t *testing.T, s *Server, method, path, bearer, body string) exchange {
	t.Helper()
	hc := egress.NewClient(egress.Policy{Allow: []string{s.Addr()}}, egress.Options{})
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%s %s: no X-Request-Id", method, path)
	}
	return exchange{status: resp.StatusCode, header: resp.Header, body: b}
}

func wantType(t *testing.T, e exchange, status int, ct string) {
	t.Helper()
	if e.status != status || !strings.HasPrefix(e.header.Get("Content-Type"), ct) {
		t.Fatalf("answer %d %q (%s), want %d %q", e.status, e.header.Get("Content-Type"), e.body, status, ct)
	}
}

func (s *Server) creds(extra string) string {
	return fmt.Sprintf(`{"client_id":%q,"client_secret":%q,"redirect_uri":%q,%s}`, s.opts.ClientID, s.opts.ClientSecret, s.opts.RedirectURI, extra)
}

func TestBearerAuth(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1})
	tok := s.IssueTokens()
	for _, bearer := range []string{"", "wrong", tok.RefreshToken} {
		e := call(t, s, "GET", "/api/v4/leads/pipelines", bearer, "")
		wantType(t, e, 401, "application/problem+json")
		m := e.json(t)
		if m["title"] != "Unauthorized" || m["type"] != "https://httpstatus.es/401" || m["status"] != float64(401) || m["detail"] == "" {
			t.Fatalf("401 body = %v", m)
		}
	}
	wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 200, "application/hal+json")
	s.Expire()
	wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 401, "application/problem+json")
}

func TestOAuth(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1, AccessTTL: 3 * time.Hour})
	code := s.AuthCode()
	e := call(t, s, "POST", "/oauth2/access_token", "", s.creds(`"grant_type":"authorization_code","code":"`+code+`"`))
	wantType(t, e, 200, "application/json")
	m := e.json(t)
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(3*3600) || m["access_token"] == "" || m["refresh_token"] == "" {
		t.Fatalf("token answer = %v", m)
	}
	access, refresh := m["access_token"].(string), m["refresh_token"].(string)

	// The code is single use; a bad code exchange answers 400.
	wantType(t, call(t, s, "POST", "/oauth2/access_token", "", s.creds(`"grant_type":"authorization_code","code":"`+code+`"`)), 400, "application/problem+json")
	// Client credentials and redirect_uri are checked.
	bad := fmt.Sprintf(`{"client_id":%q,"client_secret":"nope","redirect_uri":%q,"grant_type":"refresh_token","refresh_token":%q}`, s.opts.ClientID, s.opts.RedirectURI, refresh)
	wantType(t, call(t, s, "POST", "/oauth2/access_token", "", bad), 401, "application/problem+json")
	badURI := fmt.Sprintf(`{"client_id":%q,"client_secret":%q,"redirect_uri":"https://elsewhere","grant_type":"refresh_token","refresh_token":%q}`, s.opts.ClientID, s.opts.ClientSecret, refresh)
	wantType(t, call(t, s, "POST", "/oauth2/access_token", "", badURI), 400, "application/problem+json")
	if s.RefreshCalls() != 0 {
		t.Fatal("refused requests counted as refreshes")
	}

	// Refresh rotates the pair and revokes the old access token.
	e = call(t, s, "POST", "/oauth2/access_token", "", s.creds(`"grant_type":"refresh_token","refresh_token":"`+refresh+`"`))
	wantType(t, e, 200, "application/json")
	if s.AccessValid(access) || !s.AccessValid(e.json(t)["access_token"].(string)) {
		t.Fatal("refresh did not rotate the access token")
	}
	// Reuse of the spent refresh token: the contract's 401.
	e = call(t, s, "POST", "/oauth2/access_token", "", s.creds(`"grant_type":"refresh_token","refresh_token":"`+refresh+`"`))
	wantType(t, e, 401, "application/problem+json")
	m = e.json(t)
	if m["hint"] != "Token has been revoked" || m["type"] != "https://developers.amocrm.ru/v3/errors/OAuthProblemJson" || m["status"] != float64(401) {
		t.Fatalf("reuse answer = %v", m)
	}
	if s.RefreshCalls() != 2 {
		t.Fatalf("RefreshCalls = %d, want 2", s.RefreshCalls())
	}
}

func TestOAuthFormBodyAndKeepAccess(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1, KeepAccessOnRefresh: true})
	tok := s.IssueTokens()
	form := url.Values{"client_id": {s.opts.ClientID}, "client_secret": {s.opts.ClientSecret}, "redirect_uri": {s.opts.RedirectURI},
		"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	hc := egress.NewClient(egress.Policy{Allow: []string{s.Addr()}}, egress.Options{})
	resp, err := hc.PostForm(s.URL+"/oauth2/access_token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !s.AccessValid(tok.AccessToken) {
		t.Fatalf("form refresh: %d, old access valid %v; want 200 and true", resp.StatusCode, s.AccessValid(tok.AccessToken))
	}
}

// The validation answer has the contract's shape, to the letter.
func TestValidationProblemShape(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1})
	tok := s.IssueTokens()
	e := call(t, s, "POST", "/api/v4/contacts", tok.AccessToken, `[{"name":"Ann","custom_fields_values":[{"field_id":999,"values":[{"value":"x"}]}]}]`)
	wantType(t, e, 400, "application/problem+json")
	var got, want any
	_ = json.Unmarshal(e.body, &got)
	_ = json.Unmarshal([]byte(`{"title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
 "detail": "Request validation failed",
 "validation-errors": [{"request_id": "0", "errors": [
   {"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id",
    "detail": "The value you selected is not a valid choice."}]}]}`), &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("problem = %s", e.body)
	}
	if len(s.Contacts()) != 0 {
		t.Fatal("a refused batch created contacts")
	}
}

func TestValidationCases(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1})
	tok := s.IssueTokens()
	many := "[" + strings.Repeat(`{"name":"x"},`, 50) + `{"name":"x"}]`
	tests := []struct {
		name, path, body, wantPath string
	}{
		{"unknown pipeline", "/api/v4/leads", `[{"name":"x","pipeline_id":1}]`, "pipeline_id"},
		{"status of another pipeline", "/api/v4/leads", `[{"pipeline_id":7001,"status_id":7102}]`, "status_id"},
		{"name too long", "/api/v4/leads", `[{"name":"` + strings.Repeat("я", 256) + `"}]`, "name"},
		{"unknown enum", "/api/v4/contacts", `[{"custom_fields_values":[{"field_code":"PHONE","values":[{"value":"1","enum_code":"CAR"}]}]}]`, "custom_fields_values.0.values.0.enum_code"},
		{"unknown linked contact", "/api/v4/leads", `[{"_embedded":{"contacts":[{"id":5}]}}]`, "_embedded.contacts.0.id"},
		{"complex: two contacts", "/api/v4/leads/complex", `[{"_embedded":{"contacts":[{"name":"a"},{"name":"b"}]}}]`, "_embedded.contacts"},
		{"complex: contact field", "/api/v4/leads/complex", `[{"_embedded":{"contacts":[{"custom_fields_values":[{"field_code":"FAX"}]}]}}]`, "_embedded.contacts.0.custom_fields_values.0.field_code"},
		{"complex: more than 50", "/api/v4/leads/complex", many, ""},
		{"not an array", "/api/v4/leads", `{"name":"x"}`, ""},
		{"empty array", "/api/v4/contacts", `[]`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := call(t, s, "POST", tc.path, tok.AccessToken, tc.body)
			wantType(t, e, 400, "application/problem+json")
			var p struct {
				Detail string `json:"detail"`
				VE     []struct {
					Errors []struct{ Code, Path string } `json:"errors"`
				} `json:"validation-errors"`
			}
			_ = json.Unmarshal(e.body, &p)
			if tc.wantPath == "" {
				if p.Detail == "" || len(p.VE) != 0 {
					t.Fatalf("body = %s", e.body)
				}
				return
			}
			if len(p.VE) != 1 || len(p.VE[0].Errors) == 0 || p.VE[0].Errors[0].Path != tc.wantPath {
				t.Fatalf("body = %s, want path %s", e.body, tc.wantPath)
			}
		})
	}
	if len(s.Leads())+len(s.Contacts()) != 0 {
		t.Fatal("refused requests created entities")
	}
}

func TestComplexAnswerAndLinking(t *testing.T) {
	for _, byID := range []bool{false, true} {
		s := newServer(t, Options{RateLimit: -1, ComplexLinksByID: byID})
		tok := s.IssueTokens()
		existing := s.AddContact(Contact{Name: "Ann"})
		e := call(t, s, "POST", "/api/v4/leads/complex", tok.AccessToken,
			fmt.Sprintf(`[{"name":"Deal","request_id":"r1","_embedded":{"contacts":[{"id":%d,"first_name":"Ann"}]}}]`, existing))
		wantType(t, e, 200, "application/hal+json")
		var items []map[string]any
		if err := json.Unmarshal(e.body, &items); err != nil || len(items) != 1 {
			t.Fatalf("answer %s is not a bare array of one", e.body)
		}
		it := items[0]
		if it["company_id"] != nil || it["merged"] != false || fmt.Sprint(it["request_id"]) != "[r1]" {
			t.Fatalf("item = %v", it)
		}
		linked := int64(it["contact_id"].(float64))
		if byID != (linked == existing) || len(s.Contacts()) != map[bool]int{false: 2, true: 1}[byID] {
			t.Fatalf("ComplexLinksByID=%v: contact %d (existing %d), %d contacts", byID, linked, existing, len(s.Contacts()))
		}
		if l := s.Leads(); len(l) != 1 || len(l[0].ContactIDs) != 1 || l[0].ContactIDs[0] != linked || l[0].PipelineID != 7001 || l[0].StatusID != 7002 {
			t.Fatalf("leads = %+v", l)
		}
	}
}

func TestContactsPatchTagsAndSearch(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1, PageSize: 2})
	tok := s.IssueTokens()
	e := call(t, s, "POST", "/api/v4/contacts", tok.AccessToken,
		`[{"name":"Ann","_embedded":{"tags":[{"name":"a"}]}},{"name":"Anna"},{"name":"Annette","custom_fields_values":[{"field_id":501,"values":[{"value":"+1 (555) 0001","enum_id":1003}]}]}]`)
	wantType(t, e, 200, "application/hal+json")
	cs := s.Contacts()
	if len(cs) != 3 || cs[2].Phones[0] != (Value{Value: "+1 (555) 0001", EnumCode: "MOB"}) {
		t.Fatalf("contacts = %+v", cs)
	}
	// tags_to_add is ignored when _embedded.tags is sent too.
	e = call(t, s, "PATCH", fmt.Sprintf("/api/v4/contacts/%d", cs[0].ID), tok.AccessToken,
		`{"tags_to_add":[{"name":"x"}],"_embedded":{"tags":[{"name":"b"}]}}`)
	wantType(t, e, 200, "application/hal+json")
	if m := e.json(t); m["id"] != float64(cs[0].ID) || m["updated_at"] == nil {
		t.Fatalf("patch answer = %v", m)
	}
	if c, _ := s.Contact(cs[0].ID); strings.Join(c.Tags, ",") != "b" {
		t.Fatalf("tags = %v", c.Tags)
	}
	e = call(t, s, "PATCH", "/api/v4/contacts", tok.AccessToken, fmt.Sprintf(`[{"id":%d,"tags_to_add":[{"name":"c"}]},{"id":%d,"name":"Anya"}]`, cs[0].ID, cs[1].ID))
	wantType(t, e, 200, "application/hal+json")
	if c, _ := s.Contact(cs[0].ID); strings.Join(c.Tags, ",") != "b,c" {
		t.Fatalf("tags = %v", c.Tags)
	}
	if c, _ := s.Contact(cs[1].ID); c.Name != "Anya" {
		t.Fatalf("name = %q", c.Name)
	}
	wantType(t, call(t, s, "PATCH", "/api/v4/contacts", tok.AccessToken, `[{"id":1,"name":"x"}]`), 400, "application/problem+json")
	wantType(t, call(t, s, "PATCH", "/api/v4/contacts/1", tok.AccessToken, `{"name":"x"}`), 404, "application/problem+json")

	// Search pages two at a time and links the next page.
	e = call(t, s, "GET", "/api/v4/contacts?query=an", tok.AccessToken, "")
	wantType(t, e, 200, "application/hal+json")
	var page struct {
		Links struct {
			Next struct{ Href string } `json:"next"`
		} `json:"_links"`
		Embedded struct {
			Contacts []struct{ ID int64 } `json:"contacts"`
		} `json:"_embedded"`
	}
	_ = json.Unmarshal(e.body, &page)
	if len(page.Embedded.Contacts) != 2 || !strings.Contains(page.Links.Next.Href, "page=2") {
		t.Fatalf("page 1 = %s", e.body)
	}
	u, _ := url.Parse(page.Links.Next.Href)
	e = call(t, s, "GET", u.RequestURI(), tok.AccessToken, "")
	_ = json.Unmarshal(e.body, &page)
	if e.status != 200 || len(page.Embedded.Contacts) != 1 || strings.Contains(string(e.body), `"next"`) {
		t.Fatalf("page 2 = %s", e.body)
	}
	// A phone query matches the digits however the phone is written.
	e = call(t, s, "GET", "/api/v4/contacts?query=15550001", tok.AccessToken, "")
	if e.status != 200 || !strings.Contains(string(e.body), "Annette") {
		t.Fatalf("phone search = %d %s", e.status, e.body)
	}
	e = call(t, s, "GET", "/api/v4/contacts?query=nobody", tok.AccessToken, "")
	if e.status != 204 || len(e.body) != 0 {
		t.Fatalf("empty search = %d %q, want 204 and no body", e.status, e.body)
	}
	wantType(t, call(t, s, "GET", "/api/v4/contacts?limit=251", tok.AccessToken, ""), 400, "application/problem+json")
}

func TestRateLimitAndBlock(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	s := newServer(t, Options{RateLimit: 3, BlockAfter: 2, Now: now})
	tok := s.IssueTokens()
	var statuses []int
	for i := 0; i < 10; i++ {
		e := call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, "")
		statuses = append(statuses, e.status)
		switch e.status {
		case 429:
			if e.header.Get("Retry-After") != "1" || json.Valid(e.body) {
				t.Fatalf("429 with Retry-After %q and body %q; want 1 and no JSON", e.header.Get("Retry-After"), e.body)
			}
		case 403:
			if !strings.HasPrefix(e.header.Get("Content-Type"), "text/html") || !strings.Contains(string(e.body), "<html") {
				t.Fatalf("403 is not an HTML page: %s", e.body)
			}
		}
	}
	// The clock stands still: 3 pass, 2 get 429, then the block.
	if fmt.Sprint(statuses) != "[200 200 200 429 429 403 403 403 403 403]" {
		t.Fatalf("statuses = %v", statuses)
	}
	s.Unblock()
	wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 429, "text/html")
	mu.Lock()
	clock = clock.Add(time.Second) // the window has passed
	mu.Unlock()
	for i := 0; i < 3; i++ {
		wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 200, "application/hal+json")
	}
	wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 429, "text/html")
}

func TestFaultInjection(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1})
	tok := s.IssueTokens()
	s.FailNext(500, 2)
	for i := 0; i < 2; i++ {
		wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 500, "application/problem+json")
	}
	wantType(t, call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, ""), 200, "application/hal+json")
	s.SetAccountError("Account error code 402")
	e := call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, "")
	wantType(t, e, 400, "application/problem+json")
	if e.json(t)["detail"] != "Account error code 402" {
		t.Fatalf("body = %s", e.body)
	}
	reqs := s.Requests()
	if len(reqs) != 4 || reqs[0].Status != 500 || reqs[2].Status != 200 || reqs[3].Status != 400 || reqs[3].Path != "/api/v4/leads/pipelines" {
		t.Fatalf("requests = %+v", reqs)
	}
}

func TestPipelinesGetSystemStatuses(t *testing.T) {
	s := newServer(t, Options{RateLimit: -1, Pipelines: []Pipeline{{ID: 9, Name: "Only", Statuses: []Status{{ID: 91, Name: "Step", Sort: 20}}}}})
	tok := s.IssueTokens()
	e := call(t, s, "GET", "/api/v4/leads/pipelines", tok.AccessToken, "")
	var body struct {
		Embedded struct {
			Pipelines []struct {
				ID       int64 `json:"id"`
				IsMain   bool  `json:"is_main"`
				Embedded struct {
					Statuses []struct {
						ID   int64 `json:"id"`
						Type int   `json:"type"`
					} `json:"statuses"`
				} `json:"_embedded"`
			} `json:"pipelines"`
		} `json:"_embedded"`
	}
	if err := json.Unmarshal(e.body, &body); err != nil || len(body.Embedded.Pipelines) != 1 {
		t.Fatalf("body = %s", e.body)
	}
	p := body.Embedded.Pipelines[0]
	if !p.IsMain || fmt.Sprint(p.Embedded.Statuses) != "[{900009 1} {91 0} {142 0} {143 0}]" {
		t.Fatalf("pipeline = %+v", p)
	}
}

// A server on a listener reserved in advance answers there, and its URL and
// Addr name that port.
func TestListenerOption(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	want := ln.Addr().String()
	s := newServer(t, Options{Listener: ln})
	if s.Addr() != want || s.URL != "http://"+want {
		t.Fatalf("Addr %q URL %q, want %q", s.Addr(), s.URL, want)
	}
	e := call(t, s, http.MethodGet, "/api/v4/leads/pipelines", s.IssueTokens().AccessToken, "")
	wantType(t, e, http.StatusOK, "application/hal+json")
}
