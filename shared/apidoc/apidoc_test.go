package apidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	"github.com/pb33f/libopenapi-validator/schema_validation"
)

// decoded is the document as plain JSON values, for structural checks.
func decoded(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(JSON(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

func TestDocumentIsJSON(t *testing.T) {
	if !json.Valid(JSON()) {
		t.Fatal("openapi.json is not valid JSON")
	}
	doc := decoded(t)
	if got := doc["openapi"]; got != "3.1.0" {
		t.Fatalf("openapi = %v, want 3.1.0", got)
	}
	// A duplicate key is valid JSON but one of the two silently wins; a
	// hand-written document must not have any.
	if dup := duplicateKey(JSON()); dup != "" {
		t.Fatalf("duplicate key %s", dup)
	}
}

// duplicateKey reports the first object key that appears twice in one object.
func duplicateKey(data []byte) string {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	type frame struct {
		keys  map[string]bool
		isObj bool
		want  bool // next string token in this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.isObj {
					top.want = true
				}
				stack = append(stack, &frame{keys: map[string]bool{}, isObj: v == '{', want: v == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.isObj && top.want {
				if top.keys[v] {
					return fmt.Sprintf("%q", v)
				}
				top.keys[v] = true
				top.want = false
				continue
			}
			if top != nil && top.isObj {
				top.want = true
			}
		default:
			if top != nil && top.isObj {
				top.want = true
			}
		}
	}
}

func TestDuplicateKeyDetector(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{"a": 1, "b": {"a": 2}}`, ""},
		{`{"a": 1, "a": 2}`, `"a"`},
		{`{"a": [{"x": 1}, {"x": 2}], "b": {"c": "d", "c": "e"}}`, `"c"`},
		{`{"a": {"k": 1}, "b": 2, "b": 3}`, `"b"`},
	}
	for _, tt := range tests {
		if got := duplicateKey([]byte(tt.in)); got != tt.want {
			t.Errorf("duplicateKey(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestValidOpenAPI31 checks the document against the OpenAPI 3.1 JSON schema
// and builds libopenapi's model, which resolves every reference.
func TestValidOpenAPI31(t *testing.T) {
	doc, err := libopenapi.NewDocument(JSON())
	if err != nil {
		t.Fatalf("libopenapi.NewDocument: %v", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Fatalf("version = %q, want 3.1.0", v)
	}
	ok, errs := schema_validation.ValidateOpenAPIDocument(doc)
	for _, e := range errs {
		t.Errorf("OpenAPI 3.1 schema: %v", e)
		for _, f := range e.SchemaValidationErrors {
			t.Errorf("  at %s: %s", f.KeywordLocation, f.Reason)
		}
	}
	if !ok {
		t.Fatal("document does not validate against the OpenAPI 3.1 schema")
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("BuildV3Model: %v", err)
	}
	if n := model.Model.Paths.PathItems.Len(); n != 42 {
		t.Errorf("model has %d paths, want 42", n)
	}
	if n := model.Model.Components.Schemas.Len(); n < 60 {
		t.Errorf("model has %d schemas, want the whole set", n)
	}
}

// resolve follows a local JSON pointer reference ("#/a/b") in doc.
func resolve(doc any, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	cur := doc
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q: %q is not inside an object", ref, part)
		}
		if cur, ok = obj[part]; !ok {
			return nil, fmt.Errorf("%q: no %q", ref, part)
		}
	}
	return cur, nil
}

func TestResolve(t *testing.T) {
	doc := map[string]any{"a": map[string]any{"b/c": 1, "d~e": 2, "f": "x"}}
	tests := []struct {
		ref  string
		want any
		ok   bool
	}{
		{"#/a/b~1c", 1, true},
		{"#/a/d~0e", 2, true},
		{"#/a/missing", nil, false},
		{"#/a/f/g", nil, false},
		{"other.json#/a", nil, false},
	}
	for _, tt := range tests {
		got, err := resolve(doc, tt.ref)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("resolve(%q) = %v, %v; want %v (ok %v)", tt.ref, got, err, tt.want, tt.ok)
		}
	}
}

// refs collects every "$ref" value and every discriminator mapping target.
func refs(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				*out = append(*out, s)
			}
			if k == "discriminator" {
				if m, ok := x.(map[string]any)["mapping"].(map[string]any); ok {
					for _, target := range m {
						*out = append(*out, target.(string))
					}
				}
			}
			refs(x, out)
		}
	case []any:
		for _, x := range v {
			refs(x, out)
		}
	}
}

func TestEveryRefResolves(t *testing.T) {
	doc := decoded(t)
	var all []string
	refs(doc, &all)
	if len(all) < 300 {
		t.Fatalf("found %d references; the walk is broken", len(all))
	}
	used := map[string]bool{}
	for _, ref := range all {
		if _, err := resolve(doc, ref); err != nil {
			t.Error(err)
		}
		used[ref] = true
	}
	// Every component is used somewhere: a dead schema is usually a typo in a $ref.
	for _, kind := range []string{"schemas", "responses", "parameters"} {
		for name := range doc["components"].(map[string]any)[kind].(map[string]any) {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				t.Errorf("%s is never referenced", ref)
			}
		}
	}
}

// operation is one operation of the decoded document.
type operation struct {
	method, path string
	op           map[string]any
	pathParams   []any
}

func operations(t *testing.T, doc map[string]any) []operation {
	t.Helper()
	var ops []operation
	for path, item := range doc["paths"].(map[string]any) {
		item := item.(map[string]any)
		params, _ := item["parameters"].([]any)
		for _, m := range methods {
			if op, ok := item[m].(map[string]any); ok {
				ops = append(ops, operation{strings.ToUpper(m), path, op, params})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// deref follows $ref until it reaches a value that is not a reference.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	for {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is not an object", v)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		var err error
		if v, err = resolve(doc, ref); err != nil {
			t.Fatal(err)
		}
	}
}

var publicRoutes = map[Route]bool{
	{"GET", "/v1/openapi.json"}:                true,
	{"GET", "/v1/health"}:                      true,
	{"GET", "/v1/email-accounts/unsubscribe"}:  true,
	{"POST", "/v1/email-accounts/unsubscribe"}: true,
	{"POST", "/v1/channels/{id}/telegram"}:     true,
}

func TestOperationsAreDocumented(t *testing.T) {
	doc := decoded(t)
	seenIDs := map[string]string{}
	for _, o := range operations(t, doc) {
		name := o.method + " " + o.path
		route := Route{o.method, o.path}
		id, _ := o.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", name)
		} else if prev, dup := seenIDs[id]; dup {
			t.Errorf("%s: operationId %q also used by %s", name, id, prev)
		}
		seenIDs[id] = name
		if s, _ := o.op["summary"].(string); strings.TrimSpace(s) == "" {
			t.Errorf("%s: no summary", name)
		}
		if tags, _ := o.op["tags"].([]any); len(tags) == 0 {
			t.Errorf("%s: no tags", name)
		}

		responses := o.op["responses"].(map[string]any)
		has := func(code string) bool { _, ok := responses[code]; return ok }
		var success, failures []string
		for code, r := range responses {
			if code[0] == '2' {
				success = append(success, code)
				continue
			}
			failures = append(failures, code)
			// Every error answer is a problem+json Problem.
			content, _ := deref(t, doc, r)["content"].(map[string]any)
			media, ok := content["application/problem+json"].(map[string]any)
			if !ok || len(content) != 1 {
				t.Errorf("%s %s: error answer is not only application/problem+json", name, code)
				continue
			}
			raw, _ := json.Marshal(media["schema"])
			if !strings.Contains(string(raw), `"#/components/schemas/Problem"`) {
				t.Errorf("%s %s: error answer is not a Problem: %s", name, code, raw)
			}
		}
		if len(success) != 1 {
			t.Errorf("%s: success answers %v, want exactly one", name, success)
		}
		if len(failures) == 0 {
			t.Errorf("%s: no error answers", name)
		}
		if !has("500") {
			t.Errorf("%s: no 500", name)
		}

		// Security: public routes say so; POST /v1/workspaces takes the admin token; the rest the workspace key.
		sec, explicit := o.op["security"].([]any)
		switch {
		case publicRoutes[route]:
			if !explicit || len(sec) != 0 {
				t.Errorf("%s: public route must have security: []", name)
			}
			// Telegram's webhook is public but proven by its secret token header.
			if has("401") && route != (Route{"POST", "/v1/channels/{id}/telegram"}) {
				t.Errorf("%s: public route documents 401", name)
			}
		case route == Route{"POST", "/v1/workspaces"}:
			raw, _ := json.Marshal(sec)
			if string(raw) != `[{"adminToken":[]}]` {
				t.Errorf("%s: security %s, want the admin token", name, raw)
			}
		default:
			if explicit {
				t.Errorf("%s: overrides the workspace key security", name)
			}
		}
		if !publicRoutes[route] && !has("401") {
			t.Errorf("%s: no 401", name)
		}

		// Keyed operations (an id in the path, or the channel singleton) answer
		// 404, except PUT: it creates what is missing, and a malformed id is 400.
		// Telegram's webhook answers 401 to an unknown channel, as to a forged update.
		keyed := (strings.Contains(o.path, "{") || o.path == "/v1/channel") && route != Route{"POST", "/v1/channels/{id}/telegram"}
		switch {
		case keyed && o.method != "PUT" && !has("404"):
			t.Errorf("%s: keyed operation without 404", name)
		case o.method == "PUT" && has("404"):
			t.Errorf("%s: PUT documents a 404 it cannot answer", name)
		}
		if _, ok := o.op["requestBody"]; ok && (!has("400") || !has("413")) {
			t.Errorf("%s: has a body but not 400 and 413", name)
		}
		// Every {param} of the path is declared on the path item.
		for _, seg := range strings.Split(o.path, "/") {
			if !strings.HasPrefix(seg, "{") {
				continue
			}
			want := strings.Trim(seg, "{}")
			found := false
			for _, p := range o.pathParams {
				p := deref(t, doc, p)
				if p["name"] == want && p["in"] == "path" && p["required"] == true {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: path parameter %q not declared", name, want)
			}
		}

		var wantSuccess string
		switch {
		case o.method == "PUT":
			wantSuccess = "200"
		case o.method == "DELETE":
			wantSuccess = "204"
		case route == Route{"POST", "/v1/events"}:
			wantSuccess = "202"
		case route == Route{"POST", "/v1/workspaces"}, route == Route{"POST", "/v1/subscribers/{id}/chat"}:
			wantSuccess = "201"
		default:
			wantSuccess = "200"
		}
		if !slices.Equal(success, []string{wantSuccess}) {
			t.Errorf("%s: success %v, want %s", name, success, wantSuccess)
		}
	}
	if len(seenIDs) != 68 {
		t.Errorf("%d operations, want 68", len(seenIDs))
	}
}

func TestConflictOnlyWhereDocumented(t *testing.T) {
	doc := decoded(t)
	var got []string
	for _, o := range operations(t, doc) {
		if _, ok := o.op["responses"].(map[string]any)["409"]; ok {
			got = append(got, o.method+" "+o.path)
		}
	}
	// An operator cannot answer a subscriber no channel reaches.
	if want := []string{"PUT /v1/channels/{id}", "POST /v1/subscribers/{id}/chat", "DELETE /v1/tunnels/{id}"}; !slices.Equal(got, want) {
		t.Errorf("409 on %v, want %v", got, want)
	}
}

// TestListsArePaged checks the list shape: one array named for its items plus
// next_cursor (string or null), paged by limit (1..500, default 100) and cursor.
func TestListsArePaged(t *testing.T) {
	doc := decoded(t)
	lists := map[string]string{}
	for _, o := range operations(t, doc) {
		if o.method != "GET" {
			continue
		}
		ok := o.op["responses"].(map[string]any)["200"].(map[string]any)
		content, _ := ok["content"].(map[string]any)
		media, _ := content["application/json"].(map[string]any)
		if media == nil {
			continue
		}
		schema := deref(t, doc, media["schema"])
		props, _ := schema["properties"].(map[string]any)
		if _, paged := props["next_cursor"]; !paged {
			continue
		}
		name := o.path
		var arrays []string
		for k, p := range props {
			if k == "next_cursor" {
				continue
			}
			if deref(t, doc, p)["type"] == "array" {
				arrays = append(arrays, k)
			}
		}
		if len(props) != 2 || len(arrays) != 1 {
			t.Errorf("%s: list properties %v, want one array and next_cursor", name, keys(props))
			continue
		}
		lists[name] = arrays[0]
		req, _ := json.Marshal(schema["required"])
		if !strings.Contains(string(req), `"next_cursor"`) || !strings.Contains(string(req), `"`+arrays[0]+`"`) {
			t.Errorf("%s: required %s", name, req)
		}
		if schema["additionalProperties"] != false {
			t.Errorf("%s: list object is not closed", name)
		}
		var params []string
		for _, p := range o.op["parameters"].([]any) {
			params = append(params, deref(t, doc, p)["name"].(string))
		}
		if !slices.Contains(params, "limit") || !slices.Contains(params, "cursor") {
			t.Errorf("%s: parameters %v, want limit and cursor", name, params)
		}
		if _, ok := o.op["responses"].(map[string]any)["400"]; !ok {
			t.Errorf("%s: no 400 for a bad limit or cursor", name)
		}
	}
	want := map[string]string{
		"/v1/tags": "tags", "/v1/fields": "fields", "/v1/variables": "variables",
		"/v1/sales-plans": "sales_plans", "/v1/operators": "operators", "/v1/email-bots": "email_bots",
		"/v1/lead-sources": "lead_sources", "/v1/integrations": "integrations", "/v1/tunnels": "tunnels",
		"/v1/subscribers/{id}/journey": "steps", "/v1/subscribers/{id}/chat": "messages",
		"/v1/chats": "chats", "/v1/operators/{id}/mentions": "mentions", "/v1/channels": "channels", "/v1/subscribers": "subscribers",
		"/v1/sales-plans/{id}/deals": "deals", "/v1/dead-letters": "dead_letters",
	}
	if fmt.Sprint(lists) != fmt.Sprint(want) {
		t.Errorf("lists = %v\nwant    %v", lists, want)
	}

	limit := deref(t, doc, map[string]any{"$ref": "#/components/parameters/Limit"})["schema"].(map[string]any)
	if limit["minimum"] != 1.0 || limit["maximum"] != 500.0 || limit["default"] != 100.0 {
		t.Errorf("limit schema = %v, want 1..500 default 100", limit)
	}
	cursor := deref(t, doc, map[string]any{"$ref": "#/components/schemas/NextCursor"})
	if fmt.Sprint(cursor["type"]) != "[string null]" {
		t.Errorf("next_cursor type = %v, want [string null]", cursor["type"])
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRoutes(t *testing.T) {
	want := []string{
		"POST /v1/workspaces",
		"GET /v1/tags", "PUT /v1/tags/{id}", "GET /v1/tags/{id}", "DELETE /v1/tags/{id}",
		"GET /v1/fields", "PUT /v1/fields/{id}", "GET /v1/fields/{id}", "DELETE /v1/fields/{id}",
		"GET /v1/variables", "PUT /v1/variables/{key}", "GET /v1/variables/{key}", "DELETE /v1/variables/{key}",
		"GET /v1/sales-plans", "PUT /v1/sales-plans/{id}", "GET /v1/sales-plans/{id}", "DELETE /v1/sales-plans/{id}",
		"GET /v1/operators", "PUT /v1/operators/{id}", "GET /v1/operators/{id}", "DELETE /v1/operators/{id}",
		"GET /v1/email-bots", "PUT /v1/email-bots/{id}", "GET /v1/email-bots/{id}", "DELETE /v1/email-bots/{id}",
		"GET /v1/lead-sources", "PUT /v1/lead-sources/{id}", "GET /v1/lead-sources/{id}", "DELETE /v1/lead-sources/{id}",
		"GET /v1/integrations", "PUT /v1/integrations/{id}", "GET /v1/integrations/{id}", "DELETE /v1/integrations/{id}",
		"PUT /v1/channel", "GET /v1/channel", "DELETE /v1/channel",
		"GET /v1/channels", "PUT /v1/channels/{id}", "GET /v1/channels/{id}", "DELETE /v1/channels/{id}",
		"POST /v1/channels/{id}/telegram",
		"GET /v1/tunnels", "PUT /v1/tunnels/{id}", "GET /v1/tunnels/{id}", "DELETE /v1/tunnels/{id}", "GET /v1/tunnels/{id}/stats",
		"POST /v1/events",
		"GET /v1/subscribers", "GET /v1/subscribers/{id}",
		"GET /v1/subscribers/{id}/journey",
		"GET /v1/subscribers/{id}/chat", "PATCH /v1/subscribers/{id}/chat", "POST /v1/subscribers/{id}/chat",
		"POST /v1/subscribers/{id}/pause", "DELETE /v1/subscribers/{id}/pause",
		"GET /v1/chats",
		"GET /v1/operators/{id}/mentions",
		"GET /v1/sales-plans/{id}/deals", "PATCH /v1/sales-plans/{id}/deals/{subscriber_id}",
		"GET /v1/integrations/{id}/pipelines",
		"POST /v1/external-requests/preview", "POST /v1/external-requests/check",
		"GET /v1/dead-letters", "POST /v1/dead-letters/redrive",
		"GET /v1/email-accounts/unsubscribe", "POST /v1/email-accounts/unsubscribe",
		"GET /v1/openapi.json", "GET /v1/health",
	}
	routes, err := Routes()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range routes {
		got = append(got, r.String())
	}
	if !sort.SliceIsSorted(routes, func(i, j int) bool {
		return routes[i].Path < routes[j].Path || routes[i].Path == routes[j].Path && routes[i].Method < routes[j].Method
	}) {
		t.Error("Routes() is not sorted by path then method")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		for _, r := range got {
			if !slices.Contains(want, r) {
				t.Errorf("unexpected route %s", r)
			}
		}
		for _, r := range want {
			if !slices.Contains(got, r) {
				t.Errorf("missing route %s", r)
			}
		}
	}
	if r := (Route{"GET", "/v1/tags/{id}"}); r.String() != "GET /v1/tags/{id}" {
		t.Errorf("Route.String() = %q", r.String())
	}
}

func TestProblemSchema(t *testing.T) {
	doc := decoded(t)
	p := deref(t, doc, map[string]any{"$ref": "#/components/schemas/Problem"})
	props := p["properties"].(map[string]any)
	if got := keys(props); !slices.Equal(got, []string{"code", "detail", "errors", "instance", "status", "title", "type"}) {
		t.Errorf("Problem properties = %v", got)
	}
	var codes []string
	for _, c := range props["code"].(map[string]any)["enum"].([]any) {
		codes = append(codes, c.(string))
	}
	want := []string{"unauthorized", "not_found", "invalid_json", "validation_failed", "body_too_large",
		"conflict", "destination_refused", "request_failed", "internal"}
	if !slices.Equal(codes, want) {
		t.Errorf("Problem codes = %v, want %v", codes, want)
	}
	pe := deref(t, doc, map[string]any{"$ref": "#/components/schemas/ProblemError"})
	if got := keys(pe["properties"].(map[string]any)); !slices.Equal(got, []string{"detail", "pointer"}) {
		t.Errorf("ProblemError properties = %v", got)
	}
}

// TestActionsAreExact checks the 13 action types, each with exactly its
// parameters (SPEC section 4 and 8), closed and discriminated by type.
func TestActionsAreExact(t *testing.T) {
	want := map[string][]string{
		"amo_deal":                {"integration", "name", "pipeline_id", "status_id"},
		"amo_contact":             {"integration"},
		"add_tags":                {"tags"},
		"remove_tags":             {"tags"},
		"mention":                 {"comment", "operator"},
		"create_email_subscriber": {"email_bot", "lead_source", "tunnel"},
		"mark_unread":             {},
		"send_email":              {"create_subscriber", "email_bot", "html", "lead_source", "subject", "text", "tunnel"},
		"set_field":               {"field", "value"},
		"add_to_sales_plan":       {"plan"},
		"external_request": {"body", "description", "headers", "method", "on_error", "query",
			"response_mapping", "timeout_ms", "url"},
		"start": {"block", "tunnel"},
		"stop":  {"block", "tunnel"},
	}
	checkUnion(t, "Action", want)
	checkUnion(t, "Block", map[string][]string{
		"message":   {"buttons", "email", "id", "next", "reply", "text", "ui"},
		"action":    {"actions", "id", "next", "ui"},
		"delay":     {"id", "next", "seconds", "ui", "until", "window"},
		"condition": {"branches", "else", "id", "ui"},
		"split":     {"branches", "id", "ui"},
	})
	checkUnion(t, "Event", map[string][]string{
		"subscribe": {"event_id", "lead_source", "subscriber", "tunnel"},
		"message":   {"event_id", "subscriber", "text"},
		"start":     {"block", "event_id", "subscriber", "tunnel"},
		"button":    {"block", "button", "event_id", "subscriber", "tunnel"},
	})
}

// checkUnion checks a oneOf schema discriminated by "type": its mapping has
// exactly the given types, each member is closed, has type as a required
// const equal to its key, and exactly the given other properties.
func checkUnion(t *testing.T, name string, want map[string][]string) {
	t.Helper()
	doc := decoded(t)
	u := deref(t, doc, map[string]any{"$ref": "#/components/schemas/" + name})
	d := u["discriminator"].(map[string]any)
	if d["propertyName"] != "type" {
		t.Errorf("%s: discriminator on %v", name, d["propertyName"])
	}
	mapping := d["mapping"].(map[string]any)
	if len(mapping) != len(want) || len(u["oneOf"].([]any)) != len(want) {
		t.Errorf("%s: %d mapped, %d in oneOf, want %d", name, len(mapping), len(u["oneOf"].([]any)), len(want))
	}
	var members []string
	for _, m := range u["oneOf"].([]any) {
		members = append(members, m.(map[string]any)["$ref"].(string))
	}
	for typ, params := range want {
		ref, ok := mapping[typ].(string)
		if !ok {
			t.Errorf("%s: no %q in the mapping", name, typ)
			continue
		}
		if !slices.Contains(members, ref) {
			t.Errorf("%s: %s mapped but not in oneOf", name, ref)
		}
		s := deref(t, doc, map[string]any{"$ref": ref})
		if s["additionalProperties"] != false {
			t.Errorf("%s: %s is not closed", name, typ)
		}
		props := s["properties"].(map[string]any)
		if c := props["type"].(map[string]any)["const"]; c != typ {
			t.Errorf("%s: %s has type const %v", name, typ, c)
		}
		req, _ := json.Marshal(s["required"])
		if !strings.Contains(string(req), `"type"`) {
			t.Errorf("%s: %s does not require type", name, typ)
		}
		got := slices.DeleteFunc(keys(props), func(k string) bool { return k == "type" })
		if !slices.Equal(got, params) {
			t.Errorf("%s: %s has %v, want %v", name, typ, got, params)
		}
	}
}

func TestSecretsAreWriteOnly(t *testing.T) {
	doc := decoded(t)
	tests := []struct {
		input, output string
		secrets       []string
		flag          string
	}{
		{"IntegrationInput", "Integration", []string{"client_secret", "access_token", "refresh_token"}, "connected"},
		{"ChannelInput", "Channel", []string{"secret"}, "has_secret"},
	}
	for _, tt := range tests {
		in := deref(t, doc, map[string]any{"$ref": "#/components/schemas/" + tt.input})["properties"].(map[string]any)
		out := deref(t, doc, map[string]any{"$ref": "#/components/schemas/" + tt.output})
		outProps := out["properties"].(map[string]any)
		if out["additionalProperties"] != false {
			t.Errorf("%s is not closed, so a secret could pass", tt.output)
		}
		for _, s := range tt.secrets {
			if in[s].(map[string]any)["writeOnly"] != true {
				t.Errorf("%s.%s is not writeOnly", tt.input, s)
			}
			if _, ok := outProps[s]; ok {
				t.Errorf("%s answers %s", tt.output, s)
			}
		}
		if outProps[tt.flag].(map[string]any)["type"] != "boolean" {
			t.Errorf("%s.%s is not a boolean", tt.output, tt.flag)
		}
	}
}

// The embedded document is openapi.json as the repository holds it: an edit
// fails here until go generate is run.
func TestGzipIsTheDocument(t *testing.T) {
	src, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(JSON(), src) {
		t.Fatal("openapi.json.gz is not openapi.json: run go generate ./shared/apidoc")
	}
	if len(Gzip) > len(src)/4 {
		t.Errorf("the compressed document is %d bytes of %d", len(Gzip), len(src))
	}
}
