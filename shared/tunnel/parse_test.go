package tunnel

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseExample(t *testing.T) {
	tun := example(t)
	if tun.Name != "Webinar funnel" || tun.Entry != "hello" || len(tun.Blocks) != 5 {
		t.Fatalf("tunnel = %q %q %d blocks", tun.Name, tun.Entry, len(tun.Blocks))
	}
	hello := tun.Blocks[0]
	wantHello := Block{ID: "hello", Type: BlockMessage, Text: "Hi {{subscriber.first_name|friend}}!",
		Email: &EmailContent{Subject: "Welcome", HTML: "<p>Hi {{subscriber.first_name}}</p>"},
		Next:  []string{"act", "after"}}
	if !reflect.DeepEqual(hello, wantHello) {
		t.Errorf("hello = %+v\nwant %+v", hello, wantHello)
	}
	acts := tun.Blocks[1].Actions
	if len(acts) != 13 {
		t.Fatalf("act has %d actions", len(acts))
	}
	want := []Action{
		{Type: ActionAddTags, Tags: []string{"lead"}},
		{Type: ActionRemoveTags, Tags: []string{"cold"}},
		{Type: ActionSetField, Field: "source", Value: "webinar"},
		{Type: ActionAddToSalesPlan, Plan: "q4"},
		{Type: ActionMention, Operator: "anna", Comment: "New lead {{subscriber.first_name}}"},
		{Type: ActionMarkUnread},
		{Type: ActionCreateEmailSubscriber, EmailBot: "main", Tunnel: "nurture", LeadSource: "landing"},
		{Type: ActionSendEmail, EmailBot: "main", Subject: "Your link", HTML: `<a href="{{var.webinar_url}}">Join</a>`},
		{Type: ActionAmoContact, Integration: "amo"},
		{Type: ActionAmoDeal, Integration: "amo", PipelineID: 7001, StatusID: 142, Name: "Webinar: {{subscriber.first_name}}"},
		{Type: ActionExternalRequest, Method: "POST", URL: "https://api.example.com/leads?src={{tunnel.id}}",
			Description:     "Register in the LMS",
			Headers:         []NameValue{{Name: "X-Token", Value: "{{var.lms_token}}"}},
			Query:           []NameValue{{Name: "email", Value: "{{subscriber.email|none}}"}},
			Body:            json.RawMessage(`{"name":"{{subscriber.first_name}}","phone":"{{subscriber.phone|n/a}}"}`),
			ResponseMapping: []Mapping{{Path: "data.id", Field: "lms_id"}}},
		{Type: ActionStart, Tunnel: "nurture", Block: "day1"},
		{Type: ActionStop, Tunnel: "cold-leads"},
	}
	for i := range want {
		if !reflect.DeepEqual(acts[i], want[i]) {
			t.Errorf("action %d = %+v\nwant %+v", i, acts[i], want[i])
		}
	}
	if w := tun.Blocks[3]; w.ID != "wait" || w.Seconds != 86400 || !reflect.DeepEqual(w.Next, []string{"bye"}) {
		t.Errorf("wait = %+v", w)
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "malformed JSON: the body is empty"},
		{"spaces", " \n ", "malformed JSON: the body is empty"},
		{"trailing comma", `{"name": "x",}`, "malformed JSON at line 1, column 14 (byte offset 13): invalid character '}' looking for beginning of object key string"},
		{"second line", "{\n  \"name\" \"x\"}", "malformed JSON at line 2, column 10 (byte offset 11): invalid character '\"' after object key"},
		{"column counts characters", "{\"name\": \"ё\" x}", "malformed JSON at line 1, column 14 (byte offset 14)"},
		{"truncated", `{"name": "x"`, "malformed JSON at line 1, column 13 (byte offset 12): unexpected end of JSON input"},
		{"trailing data", `{"name": "x"} {}`, "malformed JSON at line 1, column 15 (byte offset 14): invalid character '{' after top-level value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun, errs := Parse([]byte(tt.data))
			if tun != nil {
				t.Errorf("tunnel = %+v, want nil", tun)
			}
			if len(errs) != 1 || errs[0].Pointer != "" || !strings.HasPrefix(errs[0].Detail, tt.want) {
				t.Fatalf("errors = %#v\nwant one at \"\" starting %q", errs, tt.want)
			}
		})
	}
}

func TestParseNotAnObject(t *testing.T) {
	for data, want := range map[string]string{
		`[]`:     "a tunnel must be a JSON object, not an array",
		`"x"`:    "a tunnel must be a JSON object, not a string",
		`null`:   "a tunnel must be a JSON object, not null",
		`42`:     "a tunnel must be a JSON object, not a number",
		` true `: "a tunnel must be a JSON object, not a boolean",
	} {
		tun, errs := Parse([]byte(data))
		if tun != nil || !reflect.DeepEqual(errs, []FieldError{{Pointer: "", Detail: want}}) {
			t.Errorf("Parse(%s) = %v, %#v", data, tun, errs)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []FieldError
	}{
		{"clean minimal", `{"name":"n","entry":"a","blocks":[{"id":"a","type":"message","text":"hi"}]}`, nil},
		{"nulls mean absent", `{"name":"n","entry":null,"blocks":[{"id":"a","type":"message","text":null,"email":null,"next":null,"actions":null,"seconds":null}]}`, nil},
		{"unknown top-level field", `{"name":"n","entry":"a","blocks":[],"nam":"x","version":2}`, []FieldError{
			{"/nam", `unknown field "nam"`},
			{"/version", `unknown field "version"`},
		}},
		{"pointer escaping", `{"a/b~c":1}`, []FieldError{{"/a~1b~0c", `unknown field "a/b~c"`}}},
		{"duplicate field", `{"name":"a","name":"b"}`, []FieldError{{"/name", `duplicate field "name"`}}},
		{"unknown block and email fields", `{"blocks":[{"id":"a","type":"message","colour":"red","email":{"subject":"s","html":"h","from":"x"}}]}`, []FieldError{
			{"/blocks/0/colour", `unknown field "colour"`},
			{"/blocks/0/email/from", `unknown field "from"`},
		}},
		{"unknown field for the action type", `{"blocks":[{"id":"a","type":"action","actions":[
			{"type":"add_tags","tags":["x"],"plan":"q4"},
			{"type":"mark_unread","comment":"hi"},
			{"plan":"q4","type":"add_to_sales_plan","tags":[]},
			{"type":"set_field","field":"f","value":"v","foo":1}]}]}`, []FieldError{
			{"/blocks/0/actions/0/plan", `unknown field "plan" for action type add_tags (add_tags takes tags)`},
			{"/blocks/0/actions/1/comment", `unknown field "comment" for action type mark_unread (mark_unread takes no parameters)`},
			{"/blocks/0/actions/2/tags", `unknown field "tags" for action type add_to_sales_plan (add_to_sales_plan takes plan)`},
			{"/blocks/0/actions/3/foo", `unknown field "foo"`},
		}},
		{"unknown action type accepts any parameter", `{"blocks":[{"actions":[{"type":"teleport","plan":"q4"}]}]}`, nil},
		{"unknown fields in headers and mappings", `{"blocks":[{"actions":[{"type":"external_request",
			"headers":[{"name":"a","val":"b"}],"query":[{"name":"q","value":"v","x":1}],
			"response_mapping":[{"path":"a","field":"f","to":"x"}]}]}]}`, []FieldError{
			{"/blocks/0/actions/0/headers/0/val", `unknown field "val"`},
			{"/blocks/0/actions/0/query/0/x", `unknown field "x"`},
			{"/blocks/0/actions/0/response_mapping/0/to", `unknown field "to"`},
		}},
		{"wrong types at the top", `{"name":5,"entry":["a"],"blocks":{}}`, []FieldError{
			{"/name", "must be a string, not a number"},
			{"/entry", "must be a string, not an array"},
			{"/blocks", "must be an array, not an object"},
		}},
		{"wrong types in several blocks", `{"name":"n","entry":"a","blocks":[
			{"id":1,"type":"message","text":true},
			"oops",
			{"id":"d","type":"delay","seconds":"10","next":"a"},
			{"id":"e","type":"delay","seconds":1.5,"next":["a",null,3]},
			{"id":"f","type":"delay","seconds":1e3,"email":"x"},
			{"id":"g","type":"action","actions":{"type":"mark_unread"}},
			{"id":"h","type":"action","actions":[["mark_unread"]]}]}`, []FieldError{
			{"/blocks/0/id", "must be a string, not a number"},
			{"/blocks/0/text", "must be a string, not a boolean"},
			{"/blocks/1", "a block must be a JSON object, not a string"},
			{"/blocks/2/seconds", "must be a whole number, not a string"},
			{"/blocks/2/next", "must be an array, not a string"},
			{"/blocks/3/seconds", "must be a whole number, not 1.5"},
			{"/blocks/3/next/1", "must be a string, not null"},
			{"/blocks/3/next/2", "must be a string, not a number"},
			{"/blocks/4/seconds", "must be a whole number, not 1e3"},
			{"/blocks/4/email", "email must be a JSON object, not a string"},
			{"/blocks/5/actions", "must be an array, not an object"},
			{"/blocks/6/actions/0", "an action must be a JSON object, not an array"},
		}},
		{"wrong types in actions", `{"blocks":[{"type":"action","actions":[
			{"type":"add_tags","tags":"lead"},
			{"type":"remove_tags","tags":["a",1]},
			{"type":"amo_deal","integration":"amo","pipeline_id":"7001","status_id":99999999999999999999},
			{"type":"send_email","create_subscriber":"yes","subject":{}},
			{"type":"external_request","headers":{},"query":["q"],"response_mapping":[1],"on_error":"b","timeout_ms":"5"},
			{"type":7}]}]}`, []FieldError{
			{"/blocks/0/actions/0/tags", "must be an array, not a string"},
			{"/blocks/0/actions/1/tags/1", "must be a string, not a number"},
			{"/blocks/0/actions/2/pipeline_id", "must be a whole number, not a string"},
			{"/blocks/0/actions/2/status_id", "99999999999999999999 is out of range"},
			{"/blocks/0/actions/3/create_subscriber", "must be true or false, not a string"},
			{"/blocks/0/actions/3/subject", "must be a string, not an object"},
			{"/blocks/0/actions/4/headers", "must be an array, not an object"},
			{"/blocks/0/actions/4/query/0", "a name/value pair must be a JSON object, not a string"},
			{"/blocks/0/actions/4/response_mapping/0", "a response mapping must be a JSON object, not a number"},
			{"/blocks/0/actions/4/on_error", "must be an array, not a string"},
			{"/blocks/0/actions/4/timeout_ms", "must be a whole number, not a string"},
			{"/blocks/0/actions/5/type", "must be a string, not a number"},
		}},
		{"body may be any JSON value", `{"blocks":[{"actions":[
			{"type":"external_request","body":"plain text {{subscriber.id}}"},
			{"type":"external_request","body":[1, {"a": true}]},
			{"type":"external_request","body":3.5},
			{"type":"external_request","body":null}]}]}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun, errs := Parse([]byte(tt.data))
			if tun == nil {
				t.Fatalf("tunnel is nil")
			}
			if !reflect.DeepEqual(errs, tt.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", list(errs), list(tt.want))
			}
		})
	}
}

func TestParseKeepsBlockIndexes(t *testing.T) {
	tun, errs := Parse([]byte(`{"blocks":[{"id":"a"}, 5, {"id":"c","seconds":"x"}]}`))
	if len(errs) != 2 {
		t.Fatalf("errors: %v", errs)
	}
	if len(tun.Blocks) != 3 || tun.Blocks[0].ID != "a" || tun.Blocks[2].ID != "c" {
		t.Fatalf("blocks = %+v", tun.Blocks)
	}
}

func TestParseBody(t *testing.T) {
	tun, errs := Parse([]byte(`{"blocks":[{"actions":[
		{"type":"external_request","body":{ "a" : [ 1 , 2 ] }},
		{"type":"external_request","body":"text  body"},
		{"type":"external_request","body":null},
		{"type":"external_request","body":false}]}]}`))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	got := []string{}
	for _, a := range tun.Blocks[0].Actions {
		got = append(got, string(a.Body))
	}
	want := []string{`{"a":[1,2]}`, `"text  body"`, ``, `false`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("bodies = %q, want %q", got, want)
	}
	if tun.Blocks[0].Actions[2].Body != nil {
		t.Fatalf("null body = %#v, want nil", tun.Blocks[0].Actions[2].Body)
	}
}

func TestParseEmail(t *testing.T) {
	tun, errs := Parse([]byte(`{"blocks":[{"email":{"subject":"S","html":"<b>H</b>","text":"T"}}]}`))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if got, want := tun.Blocks[0].Email, (&EmailContent{Subject: "S", HTML: "<b>H</b>", Text: "T"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("email = %+v, want %+v", got, want)
	}
}

func TestParseBoolean(t *testing.T) {
	tun, errs := Parse([]byte(`{"blocks":[{"actions":[{"type":"send_email","create_subscriber":true},{"type":"send_email","create_subscriber":false}]}]}`))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if !tun.Blocks[0].Actions[0].CreateSubscriber || tun.Blocks[0].Actions[1].CreateSubscriber {
		t.Fatalf("create_subscriber decoded as %v, %v", tun.Blocks[0].Actions[0].CreateSubscriber, tun.Blocks[0].Actions[1].CreateSubscriber)
	}
}

func list(errs []FieldError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  {")
		b.WriteString(`"` + e.Pointer + `", `)
		b.WriteString("`" + e.Detail + "`")
		b.WriteString("},\n")
	}
	return b.String()
}
