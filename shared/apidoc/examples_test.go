package apidoc

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
)

// The wire shapes of SPEC section 8, checked against the document's schemas
// with libopenapi-validator, plus near misses that must be refused: the
// schemas say what the contract says, not merely something valid.

const specTunnel = `{
  "name": "Webinar funnel",
  "entry": "hello",
  "blocks": [
    {"id": "hello", "type": "message", "text": "Hi {{subscriber.first_name|friend}}!",
     "email": {"subject": "Welcome", "html": "<p>Hi {{subscriber.first_name}}</p>"},
     "next": ["act", "after"]},
    {"id": "act", "type": "action", "actions": [
      {"type": "add_tags", "tags": ["lead"]},
      {"type": "remove_tags", "tags": ["cold"]},
      {"type": "set_field", "field": "source", "value": "webinar"},
      {"type": "add_to_sales_plan", "plan": "q4"},
      {"type": "mention", "operator": "anna", "comment": "New lead {{subscriber.first_name}}"},
      {"type": "mark_unread"},
      {"type": "create_email_subscriber", "email_bot": "main", "tunnel": "nurture", "lead_source": "landing"},
      {"type": "send_email", "email_bot": "main", "subject": "Your link", "html": "<a href=\"{{var.webinar_url}}\">Join</a>", "create_subscriber": false},
      {"type": "amo_contact", "integration": "amo"},
      {"type": "amo_deal", "integration": "amo", "pipeline_id": 7001, "status_id": 142, "name": "Webinar: {{subscriber.first_name}}"},
      {"type": "external_request", "method": "POST", "url": "https://api.example.com/leads?src={{tunnel.id}}",
       "description": "Register in the LMS",
       "headers": [{"name": "X-Token", "value": "{{var.lms_token}}"}],
       "query": [{"name": "email", "value": "{{subscriber.email|none}}"}],
       "body": {"name": "{{subscriber.first_name}}", "phone": "{{subscriber.phone|n/a}}"},
       "response_mapping": [{"path": "data.id", "field": "lms_id"}]},
      {"type": "start", "tunnel": "nurture", "block": "day1"},
      {"type": "stop", "tunnel": "cold-leads"}
    ], "next": ["wait"]},
    {"id": "after", "type": "message", "text": "Thanks!", "next": []},
    {"id": "wait", "type": "delay", "seconds": 86400, "next": ["bye"]},
    {"id": "bye", "type": "message", "text": "See you", "next": []}
  ]
}`

const specEvent = `{"event_id": "tg-7781", "type": "subscribe", "tunnel": "webinar", "lead_source": "landing",
 "subscriber": {"channel": "telegram", "external_id": "123456", "first_name": "Ann",
                "last_name": "Lee", "email": "ann@example.com", "phone": "+15550001"}}`

const specCard = `{"id": "sub_01", "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
 "phone": "+15550001", "channels": [{"channel": "telegram", "external_id": "123456"}],
 "tags": ["lead"], "fields": {"source": "webinar", "lms_id": "LMS-42"},
 "email_account": {"email": "ann@example.com", "email_bot": "main", "lead_source": "landing",
                   "tunnel": "nurture", "unsubscribed": false, "created_at": "2026-11-24T10:00:00.123Z"},
 "sales_plans": [{"plan": "q4", "status": "new", "operator": "anna"}],
 "crm": {"amo_contact_id": 31, "amo_lead_ids": [21]},
 "runs": [{"tunnel": "webinar", "channel": "chat", "generation": 1, "recorded": true, "status": "active"},
          {"tunnel": "nurture", "channel": "chat", "generation": 1, "recorded": false, "status": "active"},
          {"tunnel": "nurture", "channel": "email", "generation": 1, "recorded": true, "status": "done"}]}`

const specStep = `{"steps": [{"step_id": "s1", "tunnel": "webinar", "channel": "chat", "generation": 1,
 "block": "act", "action": 0, "type": "add_tags",
 "status": "done", "reason": "", "attempts": 1,
 "started_at": "2026-11-24T10:00:00.123Z", "finished_at": "2026-11-24T10:00:00.140Z",
 "detail": {}}], "next_cursor": null}`

const checkAnswer = `{"request": {"method": "POST", "url": "https://api.example.com/leads?src=webinar&email=ann%40example.com",
  "headers": [{"name": "X-Token", "value": "t"}], "body": {"name": "Ann"}},
 "response": {"status": 500, "headers": [{"name": "Content-Type", "value": "application/json"}], "body": "{\"data\":{}}", "truncated": false},
 "mapping": [{"path": "data.id", "field": "lms_id", "error": "no value at data.id"},
             {"path": "data.n", "field": "n", "value": 3}],
 "duration_ms": 41}`

const integrationAnswer = `{"id": "amo", "kind": "amocrm", "name": "Sales", "base_url": "https://example.amocrm.ru",
 "client_id": "c", "redirect_uri": "https://app.example.com/cb", "connected": true,
 "expires_at": "2026-11-25T10:00:00.000Z", "created_at": "2026-11-24T10:00:00.123Z", "updated_at": "2026-11-24T10:00:00.123Z"}`

func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	doc, err := libopenapi.NewDocument(JSON())
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("NewValidator: %v", errs)
	}
	return v
}

func describe(errs []*liberrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  " + e.Message + ": " + e.Reason)
		for _, f := range e.SchemaValidationErrors {
			b.WriteString("\n    " + f.KeywordLocation + ": " + f.Reason)
		}
	}
	return b.String()
}

// logicTunnel has a block of each funnel-logic kind.
const logicTunnel = `{"name": "Logic", "entry": "check", "blocks": [
  {"id": "check", "type": "condition", "ui": {"x": 10, "y": 20.5}, "branches": [
    {"name": "vip", "when": {"has_tag": "vip"}, "next": ["ask"]},
    {"when": {"all": [{"field": "age", "op": "gt", "value": 18}, {"not": {"subscriber": "email", "op": "is_set"}},
      {"any": [{"plan": "q4", "op": "eq", "value": "won"}, {"channel": "telegram"}, {"last_request": "http_status", "op": "lt", "value": 400}]}]},
     "next": ["ab"]}],
   "else": ["wait"]},
  {"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 50, "next": ["ask"]}, {"name": "B", "weight": 50, "next": ["wait"]}]},
  {"id": "ask", "type": "message", "text": "Email?", "buttons": [{"id": "later", "text": "Later", "next": ["wait"]}],
   "reply": {"field": "email_answer", "validate": "email", "timeout_seconds": 3600, "on_timeout": ["wait"], "next": ["wait"]}},
  {"id": "wait", "type": "delay", "seconds": 60, "window": {"timezone": "subscriber", "hours": ["09:00", "21:00"], "weekdays": ["mon", "tue"]}}
]}`

func TestRequestBodies(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name, method, path, body string
		valid                    bool
	}{
		{"spec tunnel", "PUT", "/v1/tunnels/webinar", specTunnel, true},
		{"spec event", "POST", "/v1/events", specEvent, true},
		{"message event", "POST", "/v1/events", `{"event_id": "m1", "type": "message", "text": "hi", "subscriber": {"channel": "telegram", "external_id": "1"}}`, true},
		{"start event", "POST", "/v1/events", `{"event_id": "s1", "type": "start", "tunnel": "nurture", "block": "day1", "subscriber": {"channel": "telegram", "external_id": "1"}}`, true},
		{"workspace", "POST", "/v1/workspaces", `{"name": "Acme"}`, true},
		{"sales plan", "PUT", "/v1/sales-plans/q4", `{"name": "Q4", "statuses": ["new", "won"], "operators": ["anna"], "distribution": "evenly"}`, true},
		{"integration", "PUT", "/v1/integrations/amo", `{"kind": "amocrm", "name": "Sales", "base_url": "https://example.amocrm.ru", "client_id": "c", "client_secret": "s", "redirect_uri": "https://app.example.com/cb", "access_token": "a", "refresh_token": "r", "expires_at": "2026-11-25T10:00:00Z"}`, true},
		{"channel", "PUT", "/v1/channel", `{"url": "https://bots.example.com/hook", "secret": "0123456789abcdef"}`, true},
		{"channel keeping its secret", "PUT", "/v1/channel", `{"url": "https://bots.example.com/hook"}`, true},
		{"external request with a timeout", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"description": "Register in the LMS",`, `"description": "Register in the LMS", "timeout_ms": 5000,`, 1), true},
		{"variable", "PUT", "/v1/variables/webinar_url", `{"value": "https://example.com/w"}`, true},
		{"preview", "POST", "/v1/external-requests/preview", `{"subscriber_id": "sub_01", "request": {"method": "GET", "url": "https://api.example.com/x", "query": [{"name": "q", "value": "{{subscriber.id}}"}]}}`, true},
		{"redrive some", "POST", "/v1/dead-letters/redrive", `{"ids": ["d1", "d2"]}`, true},
		{"deal status", "PATCH", "/v1/sales-plans/q4/deals/sub_01", `{"status": "won"}`, true},
		{"chat read", "PATCH", "/v1/subscribers/sub_01/chat", `{"unread": false}`, true},

		{"action with a foreign parameter", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `{"type": "add_tags", "tags": ["lead"]}`, `{"type": "add_tags", "tags": ["lead"], "field": "x"}`, 1), false},
		{"unknown action type", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `{"type": "mark_unread"}`, `{"type": "mark_read"}`, 1), false},
		{"amo_deal without its stage", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"status_id": 142, `, ``, 1), false},
		{"delay past 365 days", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"seconds": 86400`, `"seconds": 31536001`, 1), false},
		{"delay of 200 days in a window", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"seconds": 86400`, `"seconds": 17280000, "window": {"timezone": "Europe/Moscow", "hours": ["09:00", "21:00"], "weekdays": ["mon", "fri"]}`, 1), true},
		{"delay until a date field", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"seconds": 86400`, `"until": {"field": "webinar_at", "offset_seconds": -3600}`, 1), true},
		{"delay window in a made-up format", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"seconds": 86400`, `"seconds": 60, "window": {"timezone": "Europe/Moscow", "hours": ["9am", "9pm"]}`, 1), false},
		{"logic blocks", "PUT", "/v1/tunnels/logic", logicTunnel, true},
		{"condition without a rule", "PUT", "/v1/tunnels/logic",
			strings.Replace(logicTunnel, `"when": {"has_tag": "vip"}, `, ``, 1), false},
		{"rule with two forms", "PUT", "/v1/tunnels/logic",
			strings.Replace(logicTunnel, `{"has_tag": "vip"}`, `{"has_tag": "vip", "lacks_tag": "x"}`, 1), false},
		{"split with a rule", "PUT", "/v1/tunnels/logic",
			strings.Replace(logicTunnel, `{"name": "A", "weight": 50`, `{"name": "A", "when": {"has_tag": "vip"}, "weight": 50`, 1), false},
		{"button event", "POST", "/v1/events", `{"event_id": "b1", "type": "button", "button": "yes", "block": "ask", "subscriber": {"channel": "telegram", "external_id": "1"}}`, true},
		{"button event without its block", "POST", "/v1/events", `{"event_id": "b1", "type": "button", "button": "yes", "subscriber": {"channel": "telegram", "external_id": "1"}}`, false},
		{"bad block id", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"id": "bye"`, `"id": "bye bye"`, 1), false},
		{"external request method", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"method": "POST"`, `"method": "DELETE"`, 1), false},
		{"event without identity", "POST", "/v1/events", `{"event_id": "x", "type": "subscribe", "subscriber": {"channel": "telegram"}}`, false},
		{"message event without text", "POST", "/v1/events", `{"event_id": "m1", "type": "message", "subscriber": {"channel": "telegram", "external_id": "1"}}`, false},
		{"field of unknown type", "PUT", "/v1/fields/age", `{"name": "Age", "type": "integer"}`, false},
		{"integration of another kind", "PUT", "/v1/integrations/amo", `{"kind": "bitrix", "name": "S", "base_url": "https://x.ru", "client_id": "c", "client_secret": "s", "redirect_uri": "https://a/cb"}`, false},
		{"channel with a short secret", "PUT", "/v1/channel", `{"url": "https://bots.example.com/hook", "secret": "short"}`, false},
		{"blank message event", "POST", "/v1/events", `{"event_id": "m1", "type": "message", "text": "  ", "subscriber": {"channel": "telegram", "external_id": "1"}}`, false},
		{"subscribe at a block", "POST", "/v1/events", `{"event_id": "x", "type": "subscribe", "block": "b", "subscriber": {"channel": "telegram", "external_id": "1"}}`, false},
		{"set_field with a number", "PUT", "/v1/tunnels/webinar",
			strings.Replace(specTunnel, `"value": "webinar"`, `"value": 3`, 1), false},
		{"chat marked unread", "PATCH", "/v1/subscribers/sub_01/chat", `{"unread": true}`, false},
		{"redrive nothing", "POST", "/v1/dead-letters/redrive", `{"ids": []}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://127.0.0.1:3000"+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer dev-key")
			ok, errs := v.ValidateHttpRequestSync(req)
			if ok != tt.valid {
				t.Errorf("valid = %v, want %v%s", ok, tt.valid, describe(errs))
			}
		})
	}
}

func TestResponseBodies(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name, method, path, reqBody string
		status                      int
		contentType, body           string
		valid                       bool
	}{
		{"spec card", "GET", "/v1/subscribers/sub_01", "", 200, "application/json", specCard, true},
		{"spec journey", "GET", "/v1/subscribers/sub_01/journey", "", 200, "application/json", specStep, true},
		{"event accepted", "POST", "/v1/events", specEvent, 202, "application/json",
			`{"subscriber_id": "sub_01", "run": {"tunnel": "webinar", "channel": "chat", "generation": 1}}`, true},
		{"message accepted", "POST", "/v1/events", specEvent, 202, "application/json", `{"subscriber_id": "sub_01", "run": null}`, true},
		{"check answer", "POST", "/v1/external-requests/check", `{"subscriber_id": "s", "request": {"method": "GET", "url": "https://x.example"}}`, 200, "application/json", checkAnswer, true},
		{"integration", "GET", "/v1/integrations/amo", "", 200, "application/json", integrationAnswer, true},
		{"tags page", "GET", "/v1/tags", "", 200, "application/json",
			`{"tags": [{"id": "lead", "name": "Lead", "created_at": "2026-11-24T10:00:00.123Z", "updated_at": "2026-11-24T10:00:00.123Z"}], "next_cursor": "abc"}`, true},
		{"last page", "GET", "/v1/chats?filter=unread", "", 200, "application/json", `{"chats": [], "next_cursor": null}`, true},
		{"not found", "GET", "/v1/tags/nope", "", 404, "application/problem+json",
			`{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no tag \"nope\"", "code": "not_found"}`, true},
		{"validation problem", "PUT", "/v1/tunnels/t", specTunnel, 400, "application/problem+json",
			`{"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "2 errors", "code": "validation_failed", "errors": [{"pointer": "/blocks/0/next/0", "detail": "unknown block"}]}`, true},
		{"tunnels page", "GET", "/v1/tunnels", "", 200, "application/json",
			`{"tunnels": [{"id": "default", "name": "Default", "entry": "", "blocks": [], "version": 0, "subscribers": 2,
			  "created_at": "2026-11-24T10:00:00.123Z", "updated_at": "2026-11-24T10:00:00.123Z"}], "next_cursor": null}`, true},
		{"chat read", "PATCH", "/v1/subscribers/sub_01/chat", `{"unread": false}`, 200, "application/json",
			`{"messages": [{"id": "m1", "direction": "outbound", "text": "Hi Ann!", "tunnel": "webinar", "block": "hello", "step_id": "s1",
			  "delivery": "delivered", "unread": false, "created_at": "2026-11-24T10:00:00.123Z"}], "next_cursor": null}`, true},
		{"redriven", "POST", "/v1/dead-letters/redrive", "", 200, "application/json", `{"redriven": 3}`, true},

		{"integration leaking its secret", "GET", "/v1/integrations/amo", "", 200, "application/json",
			strings.Replace(integrationAnswer, `"client_id": "c"`, `"client_id": "c", "client_secret": "s"`, 1), false},
		{"channel leaking its secret", "GET", "/v1/channel", "", 200, "application/json",
			`{"url": "https://b.example/h", "secret": "k", "has_secret": true, "created_at": "2026-11-24T10:00:00.123Z", "updated_at": "2026-11-24T10:00:00.123Z"}`, false},
		{"timestamp without milliseconds", "GET", "/v1/tags/lead", "", 200, "application/json",
			`{"id": "lead", "name": "Lead", "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00.123Z"}`, false},
		{"list without next_cursor", "GET", "/v1/tags", "", 200, "application/json", `{"tags": []}`, false},
		{"problem with an unknown code", "GET", "/v1/tags/nope", "", 404, "application/problem+json",
			`{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "x", "code": "missing"}`, false},
		{"404 saying validation_failed", "GET", "/v1/tags/nope", "", 404, "application/problem+json",
			`{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "x", "code": "validation_failed"}`, false},
		{"run of unknown status", "GET", "/v1/subscribers/sub_01", "", 200, "application/json",
			strings.Replace(specCard, `"status": "done"`, `"status": "finished"`, 1), false},
		{"journey step of unknown status", "GET", "/v1/subscribers/s/journey", "", 200, "application/json",
			strings.Replace(specStep, `"status": "done"`, `"status": "ok"`, 1), false},
		{"mapping entry with value and error", "POST", "/v1/external-requests/check", `{"subscriber_id": "s", "request": {"method": "GET", "url": "https://x.example"}}`, 200, "application/json",
			strings.Replace(checkAnswer, `"value": 3}`, `"value": 3, "error": "x"}`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://127.0.0.1:3000"+tt.path, strings.NewReader(tt.reqBody))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer dev-key")
			if tt.reqBody != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp := &http.Response{
				StatusCode: tt.status,
				Header:     http.Header{"Content-Type": {tt.contentType}},
				Body:       io.NopCloser(strings.NewReader(tt.body)),
				Request:    req,
			}
			ok, errs := v.ValidateHttpResponse(req, resp)
			if ok != tt.valid {
				t.Errorf("valid = %v, want %v%s", ok, tt.valid, describe(errs))
			}
		})
	}
}
