package amocrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func ans(status int, ct, body string, hdr ...string) *answer {
	h := http.Header{}
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	return &answer{status: status, header: h, body: []byte(body), requestID: h.Get("X-Request-Id")}
}

const contractValidation = `{"title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400,
 "detail": "Request validation failed",
 "validation-errors": [{"request_id": "0", "errors": [
   {"code": "NotSupportedChoice", "path": "custom_fields_values.0.field_id",
    "detail": "The value you selected is not a valid choice."}]}]}`

func TestClassify(t *testing.T) {
	tests := []struct {
		name       string
		a          *answer
		kind       error
		retry      time.Duration
		msgHas     []string
		fieldPaths []string
	}{
		{"429 plain text with Retry-After", ans(429, "text/html", "<html>Too Many Requests</html>", "Retry-After", "1", "X-Request-Id", "r-1"),
			ErrRateLimited, time.Second, []string{"rate limit", "r-1"}, nil},
		{"429 without Retry-After", ans(429, "", ""), ErrRateLimited, 0, nil, nil},
		{"403 HTML block page", ans(403, "text/html", "<html>blocked</html>"), ErrTransient, 0, []string{"blocked"}, nil},
		{"403 problem: missing rights", ans(403, "application/problem+json", `{"title":"Forbidden","status":403,"detail":"Access denied"}`), ErrAccount, 0, []string{"Access denied"}, nil},
		{"500 problem", ans(500, "application/problem+json", `{"title":"Internal Server Error","status":500}`), ErrTransient, 0, nil, nil},
		{"502 nginx page", ans(502, "text/html", "<html>Bad Gateway</html>"), ErrTransient, 0, nil, nil},
		{"400 contract validation", ans(400, "application/problem+json", contractValidation), ErrValidation, 0,
			[]string{"Request validation failed", "custom_fields_values.0.field_id", "not a valid choice", "NotSupportedChoice"},
			[]string{"custom_fields_values.0.field_id"}},
		{"400 flat validation list, numeric request id", ans(400, "application/problem+json",
			`{"status":"400","detail":"Request validation failed","validation-errors":[{"request_id":1,"code":"NotBlank","path":"name","detail":"blank"}]}`),
			ErrValidation, 0, []string{"name", "blank", "[item 1]"}, []string{"name"}},
		{"400 account code", ans(400, "application/problem+json", `{"title":"Bad Request","status":400,"detail":"Account error code 402: subscription has ended"}`),
			ErrAccount, 0, []string{"402"}, nil},
		{"400 other problem", ans(400, "application/problem+json", `{"title":"Bad Request","status":400,"detail":"Request body must be a JSON array"}`),
			ErrValidation, 0, []string{"JSON array"}, nil},
		{"402", ans(402, "application/problem+json", `{"title":"Payment Required","status":402}`), ErrAccount, 0, nil, nil},
		{"404", ans(404, "application/problem+json", `{"title":"Not Found","status":404,"detail":"Entity not found"}`), ErrNotFound, 0, nil, nil},
		{"401", ans(401, "application/problem+json", `{"title":"Unauthorized","type":"https://httpstatus.es/401","status":401,"detail":"x"}`), ErrReconnect, 0, nil, nil},
		{"json body but HTML type is not a problem", ans(403, "text/html", `{"detail":"x"}`), ErrTransient, 0, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := classify("POST /api/v4/leads", tc.a)
			if !errors.Is(e, tc.kind) {
				t.Fatalf("kind = %v, want %v (%v)", e.Kind, tc.kind, e)
			}
			for _, other := range []error{ErrRateLimited, ErrTransient, ErrValidation, ErrAccount, ErrReconnect, ErrNotFound} {
				if other != tc.kind && errors.Is(e, other) {
					t.Fatalf("error is also %v", other)
				}
			}
			if e.RetryAfter() != tc.retry {
				t.Fatalf("RetryAfter = %v, want %v", e.RetryAfter(), tc.retry)
			}
			for _, s := range tc.msgHas {
				if !strings.Contains(e.Error(), s) {
					t.Fatalf("message %q lacks %q", e.Error(), s)
				}
			}
			var paths []string
			for _, f := range e.Fields {
				paths = append(paths, f.Path)
			}
			if fmt.Sprint(paths) != fmt.Sprint(tc.fieldPaths) {
				t.Fatalf("field paths = %v, want %v", paths, tc.fieldPaths)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"1", time.Second}, {" 30 ", 30 * time.Second}, {"-5", 0}, {"soon", 0},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The contact body is exactly the contract's example.
func TestContactWireMatchesContract(t *testing.T) {
	in := ContactInput{FirstName: "Ann", LastName: "Lee", Phone: "+15550001", Email: "ann@example.com", Tags: []string{"lead", " lead ", "LEAD", ""}}
	got, err := json.Marshal(in.wire(true))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name": "Ann Lee", "first_name": "Ann", "last_name": "Lee",
 "custom_fields_values": [
   {"field_code": "PHONE", "values": [{"value": "+15550001", "enum_code": "WORK"}]},
   {"field_code": "EMAIL", "values": [{"value": "ann@example.com", "enum_code": "WORK"}]}],
 "_embedded": {"tags": [{"name": "lead"}]}}`
	if !jsonEqual(t, got, []byte(want)) {
		t.Fatalf("body = %s\nwant %s", got, want)
	}
}

func TestContactWireTags(t *testing.T) {
	tests := []struct {
		name   string
		in     ContactInput
		update bool
		want   string
	}{
		{"nil tags on update: untouched", ContactInput{Name: "A"}, true, `{"name":"A"}`},
		{"empty tags on update: null clears", ContactInput{Name: "A", Tags: []string{}}, true, `{"name":"A","_embedded":{"tags":null}}`},
		{"empty tags on create: nothing", ContactInput{Name: "A", Tags: []string{}}, false, `{"name":"A"}`},
		{"no phone, no email: no fields", ContactInput{FirstName: "B"}, false, `{"name":"B","first_name":"B"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := json.Marshal(tc.in.wire(tc.update))
			if !jsonEqual(t, got, []byte(tc.want)) {
				t.Fatalf("body = %s, want %s", got, tc.want)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestSamePhoneAndEmail(t *testing.T) {
	phones := []struct {
		a, b string
		want bool
	}{
		{"+15550001", "1 (555) 0001", true},
		{"+15550001", "+155500012", false},
		{"+7 916 123-45-67", "8 916 123 45 67", true},
		{"+7 916 123-45-67", "+6 916 123 45 67", false},
		{"", "", false},
		{"abc", "abc", false},
	}
	for _, tc := range phones {
		if got := samePhone(tc.a, tc.b); got != tc.want {
			t.Errorf("samePhone(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
	emails := []struct {
		a, b string
		want bool
	}{
		{"Ann@Example.com", " ann@example.com", true},
		{"ann@example.com", "ann@example.com.au", false},
		{"", "", false},
	}
	for _, tc := range emails {
		if got := sameEmail(tc.a, tc.b); got != tc.want {
			t.Errorf("sameEmail(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestNextPage(t *testing.T) {
	tests := []struct {
		href, path, query string
		ok                bool
	}{
		{"https://x.amocrm.ru/api/v4/contacts?page=2&limit=50", "/api/v4/contacts", "page=2&limit=50", true},
		{"https://evil.example/api/v4/contacts?page=2", "/api/v4/contacts", "page=2", true}, // host is ignored: BaseURL is used
		{"/api/v4/leads?page=3", "/api/v4/leads", "page=3", true},
		{"https://x.amocrm.ru/oauth2/access_token", "", "", false},
		{"https://x.amocrm.ru/api/v4/../../etc", "", "", false},
	}
	for _, tc := range tests {
		p, q, ok := nextPage(tc.href)
		if ok != tc.ok || (ok && (p != tc.path || q != tc.query)) {
			t.Errorf("nextPage(%q) = %q, %q, %v", tc.href, p, q, ok)
		}
	}
}

func TestMemoryTokenStore(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewMemoryTokenStore(Tokens{AccessToken: "a1", RefreshToken: "r1"})
	s.Now = func() time.Time { return clock }

	_, v1, err := s.Load(ctx)
	if err != nil || v1 != "1" {
		t.Fatalf("Load = %q, %v", v1, err)
	}
	if _, err := s.SaveRefreshed(ctx, v1, Tokens{AccessToken: "x"}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("save without lease: %v, want ErrLeaseLost", err)
	}
	if ok, _ := s.BeginRefresh(ctx, v1, 30*time.Second); !ok {
		t.Fatal("first BeginRefresh refused")
	}
	if ok, _ := s.BeginRefresh(ctx, v1, 30*time.Second); ok {
		t.Fatal("second BeginRefresh granted during a live lease")
	}
	clock = clock.Add(31 * time.Second)
	if ok, _ := s.BeginRefresh(ctx, v1, 30*time.Second); !ok {
		t.Fatal("BeginRefresh refused after the lease ran out")
	}
	v2, err := s.SaveRefreshed(ctx, v1, Tokens{AccessToken: "a2", RefreshToken: "r2"})
	if err != nil || v2 == v1 {
		t.Fatalf("SaveRefreshed = %q, %v", v2, err)
	}
	if ok, _ := s.BeginRefresh(ctx, v1, 30*time.Second); ok {
		t.Fatal("BeginRefresh granted for a stale version")
	}
	if _, err := s.SaveRefreshed(ctx, v1, Tokens{AccessToken: "late"}); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale save: %v, want ErrLeaseLost", err)
	}
	tok, v, _ := s.Load(ctx)
	if tok.AccessToken != "a2" || v != v2 {
		t.Fatalf("Load = %v %q", tok, v)
	}
	if err := s.MarkRevoked(ctx, "refused"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx); !errors.Is(err, ErrReconnect) {
		t.Fatalf("Load after MarkRevoked = %v, want ErrReconnect", err)
	}
	if ok, _ := s.BeginRefresh(ctx, v2, time.Second); ok {
		t.Fatal("BeginRefresh granted on a revoked store")
	}
	v3 := s.Replace(Tokens{AccessToken: "a3", RefreshToken: "r3"})
	if tok, v, err := s.Load(ctx); err != nil || tok.AccessToken != "a3" || v != v3 {
		t.Fatalf("Load after Replace = %v %q %v", tok, v, err)
	}
	if s.Saves() != 1 {
		t.Fatalf("Saves = %d, want 1", s.Saves())
	}
}

func TestSecretsNotPrinted(t *testing.T) {
	tok := Tokens{AccessToken: "secret-access", RefreshToken: "secret-refresh"}
	cr := Credentials{ClientID: "id", ClientSecret: "secret-client"}
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), fmt.Sprint(cr), fmt.Sprintf("%#v", cr)} {
		if strings.Contains(s, "secret") {
			t.Fatalf("printed a secret: %s", s)
		}
	}
}
