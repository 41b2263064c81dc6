package httpreq

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/render"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// hostile is subscriber data that tries to break out of every context it lands in.
const hostile = "Ann \"x\", \\n}\n{&a=1#frag/../?q=é😀\t\\"

func testData() render.Data {
	return render.Data{
		Subscriber: map[string]string{
			"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
			"phone": "+15550001", "id": "sub-1",
		},
		Fields: map[string]string{
			"age": "42", "score": "-3.5", "vip": "true", "nick": "annie", "born": "1990-01-02",
		},
		Vars:     map[string]string{"token": "s3cr3t", "base": "v1"},
		TunnelID: "webinar",
	}
}

var testTypes = map[string]string{
	"age": "number", "score": "number", "vip": "boolean", "nick": "string", "born": "date",
	"empty_num": "number", "empty_bool": "boolean",
}

func TestRenderURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		query   []tunnel.NameValue
		data    func(*render.Data)
		want    string
		wantQ   []tunnel.NameValue
		wantErr string
	}{
		{name: "literal", url: "https://api.example.com/leads", want: "https://api.example.com/leads"},
		{name: "path value", url: "https://api.example.com/{{var.base}}/users/{{subscriber.id}}",
			want: "https://api.example.com/v1/users/sub-1"},
		{name: "path value escaped", url: "https://api.example.com/users/{{subscriber.first_name}}/x",
			data: func(d *render.Data) { d.Subscriber["first_name"] = "a/b?c#d e&é%" },
			want: "https://api.example.com/users/a%2Fb%3Fc%23d%20e&%C3%A9%25/x"},
		{name: "own query escaped", url: "https://api.example.com/leads?src={{tunnel.id}}&a=b",
			data: func(d *render.Data) { d.TunnelID = "t&x=1#f+g h" },
			want: "https://api.example.com/leads?src=t%26x%3D1%23f%2Bg+h&a=b"},
		{name: "query list appended", url: "https://api.example.com/leads?src={{tunnel.id}}",
			query: []tunnel.NameValue{{Name: "email", Value: "{{subscriber.email|none}}"}, {Name: "n m", Value: "x&y={{subscriber.first_name}}"}},
			want:  "https://api.example.com/leads?src=webinar&email=ann%40example.com&n+m=x%26y%3DAnn",
			wantQ: []tunnel.NameValue{{Name: "email", Value: "ann@example.com"}, {Name: "n m", Value: "x&y=Ann"}}},
		{name: "query list without own query", url: "https://api.example.com/leads",
			query: []tunnel.NameValue{{Name: "e", Value: "{{subscriber.email}}"}},
			want:  "https://api.example.com/leads?e=ann%40example.com",
			wantQ: []tunnel.NameValue{{Name: "e", Value: "ann@example.com"}}},
		{name: "query fallback for missing", url: "https://api.example.com/x",
			query: []tunnel.NameValue{{Name: "e", Value: "{{subscriber.email|none}}"}},
			data:  func(d *render.Data) { d.Subscriber["email"] = "" },
			want:  "https://api.example.com/x?e=none",
			wantQ: []tunnel.NameValue{{Name: "e", Value: "none"}}},
		{name: "missing without fallback is empty", url: "https://api.example.com/x?a={{var.nope}}",
			want: "https://api.example.com/x?a="},
		{name: "fallback with slash stays in its segment", url: "https://api.example.com/{{var.nope|a/b}}/c",
			want: "https://api.example.com/a%2Fb/c"},
		{name: "fallback with ? and # is not a delimiter", url: "https://api.example.com/p/{{var.nope|a?b#c}}?q={{var.nope|1&2}}",
			want: "https://api.example.com/p/a%3Fb%23c?q=1%262"},
		{name: "fragment dropped", url: "https://api.example.com/p?q=1#top",
			want: "https://api.example.com/p?q=1"},
		{name: "port kept", url: "http://127.0.0.1:8080/p/{{subscriber.id}}",
			want: "http://127.0.0.1:8080/p/sub-1"},
		{name: "upper-case scheme", url: "HTTPS://api.example.com/p",
			want: "HTTPS://api.example.com/p"},
		{name: "host only with query", url: "https://api.example.com?x={{subscriber.id}}",
			want: "https://api.example.com?x=sub-1"},

		{name: "placeholder host", url: "https://{{var.base}}/x", wantErr: "host must be literal"},
		{name: "placeholder in host part", url: "https://api.{{var.base}}.example.com/x", wantErr: "host must be literal"},
		{name: "placeholder port", url: "https://api.example.com:{{var.base}}/x", wantErr: "host must be literal"},
		{name: "placeholder url", url: "{{var.base}}", wantErr: "must start with a literal http:// or https://"},
		{name: "other scheme", url: "ftp://example.com/x", wantErr: "must start with a literal http:// or https://"},
		{name: "no host", url: "https:///x", wantErr: "no host"},
		{name: "dot-dot value", url: "https://api.example.com/users/{{subscriber.first_name}}/profile",
			data:    func(d *render.Data) { d.Subscriber["first_name"] = ".." },
			wantErr: `rendered path holds a ".." segment`},
		{name: "dot value", url: "https://api.example.com/users/{{subscriber.first_name}}",
			data:    func(d *render.Data) { d.Subscriber["first_name"] = "." },
			wantErr: `rendered path holds a "." segment`},
		{name: "syntax error", url: "https://api.example.com/{{var.x", wantErr: "url:"},
		{name: "empty query name", url: "https://api.example.com/x", query: []tunnel.NameValue{{Value: "v"}}, wantErr: "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := testData()
			if tt.data != nil {
				tt.data(&data)
			}
			r, err := Render(Definition{Method: "GET", URL: tt.url, Query: tt.query}, data, testTypes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Render url %q: got %q, %v; want error containing %q", tt.url, r.URL, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Render url %q: %v", tt.url, err)
			}
			if r.URL != tt.want {
				t.Fatalf("url = %q\nwant  %q", r.URL, tt.want)
			}
			if _, err := url.Parse(r.URL); err != nil {
				t.Fatalf("rendered url does not parse: %v", err)
			}
			wantQ := tt.wantQ
			if wantQ == nil {
				wantQ = []tunnel.NameValue{}
			}
			if !reflect.DeepEqual(r.Query, wantQ) {
				t.Fatalf("query = %#v, want %#v", r.Query, wantQ)
			}
		})
	}
}

// Whatever the data, the host of the rendered url is the literal one and every value
// comes back out of the url exactly.
func TestRenderURLHostileValuesRoundTrip(t *testing.T) {
	values := []string{
		hostile, "@evil.example.com", "//evil.example.com", "a b", "%2F", "%", "?", "#", "&", "=",
		"\\", "\x00\x01", "😀", "..%2F", "../..", "x:y", ";", "+",
	}
	for _, v := range values {
		data := testData()
		data.Subscriber["first_name"] = v
		r, err := Render(Definition{
			Method: "GET",
			URL:    "https://api.example.com/u/{{subscriber.first_name}}/x?own={{subscriber.first_name}}",
			Query:  []tunnel.NameValue{{Name: "q", Value: "{{subscriber.first_name}}"}},
		}, data, nil)
		if err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatalf("value %q: url %q does not parse: %v", v, r.URL, err)
		}
		if u.Host != "api.example.com" || u.User != nil || u.Fragment != "" {
			t.Fatalf("value %q: url %q: host %q user %v fragment %q", v, r.URL, u.Host, u.User, u.Fragment)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 4 {
			t.Fatalf("value %q: path %q has %d segments, want 4", v, u.EscapedPath(), len(segs))
		}
		if got, _ := url.PathUnescape(segs[2]); got != v {
			t.Fatalf("value %q: path segment decodes to %q", v, got)
		}
		q := u.Query()
		if len(q) != 2 || q.Get("own") != v || q.Get("q") != v {
			t.Fatalf("value %q: query %q decodes to %v", v, u.RawQuery, q)
		}
	}
}

func TestRenderHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers []tunnel.NameValue
		first   string
		want    []tunnel.NameValue
		wantErr string
	}{
		{name: "rendered", headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{var.token}}"}, {Name: "X-Who", Value: "{{subscriber.first_name}} {{subscriber.last_name}}"}},
			want: []tunnel.NameValue{{Name: "X-Token", Value: "s3cr3t"}, {Name: "X-Who", Value: "Ann Lee"}}},
		{name: "fallback", headers: []tunnel.NameValue{{Name: "X-Mail", Value: "{{subscriber.email|none}}"}}, first: "",
			want: []tunnel.NameValue{{Name: "X-Mail", Value: "ann@example.com"}}},
		{name: "tab allowed and spaces trimmed", headers: []tunnel.NameValue{{Name: "X-A", Value: " {{subscriber.first_name}} "}}, first: "a\tb",
			want: []tunnel.NameValue{{Name: "X-A", Value: "a\tb"}}},
		{name: "unicode kept", headers: []tunnel.NameValue{{Name: "X-A", Value: "{{subscriber.first_name}}"}}, first: "Анна",
			want: []tunnel.NameValue{{Name: "X-A", Value: "Анна"}}},
		{name: "CRLF refused", headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{subscriber.first_name}}"}}, first: "a\r\nX-Evil: 1",
			wantErr: "header X-Token: value contains a line break"},
		{name: "LF refused", headers: []tunnel.NameValue{{Name: "X-Token", Value: "{{subscriber.first_name}}"}}, first: "a\nb",
			wantErr: "header X-Token: value contains a line break"},
		{name: "CR in fallback refused", headers: []tunnel.NameValue{{Name: "X-F", Value: "{{var.nope|a\rb}}"}},
			wantErr: "header X-F: value contains a line break"},
		{name: "NUL refused", headers: []tunnel.NameValue{{Name: "X-N", Value: "{{subscriber.first_name}}"}}, first: "a\x00b",
			wantErr: "header X-N: value contains a control character"},
		{name: "DEL refused", headers: []tunnel.NameValue{{Name: "X-N", Value: "{{subscriber.first_name}}"}}, first: "a\x7fb",
			wantErr: "header X-N: value contains a control character"},
		{name: "bad name", headers: []tunnel.NameValue{{Name: "X Bad", Value: "1"}}, wantErr: `header "X Bad": not a valid header name`},
		{name: "empty name", headers: []tunnel.NameValue{{Name: "", Value: "1"}}, wantErr: `header "": not a valid header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := testData()
			if tt.first != "" {
				data.Subscriber["first_name"] = tt.first
			}
			r, err := Render(Definition{Method: "GET", URL: "https://api.example.com/", Headers: tt.headers}, data, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != "invalid request: "+tt.wantErr {
					t.Fatalf("got %v, %v; want error %q", r.Headers, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Headers, tt.want) {
				t.Fatalf("headers = %#v, want %#v", r.Headers, tt.want)
			}
		})
	}
}

func TestRenderJSONBodyHostileData(t *testing.T) {
	names := []string{
		`Ann "x", \n}`,
		hostile,
		`"}]}`,
		`\`,
		`\u0000`,
		"\u2028\u2029",
		"tab\there\r\nnext",
		"<script>&amp;</script>",
		"\x00\x1f\x7f",
		"invalid \xff utf8",
		"{{subscriber.first_name}}", // data that looks like a placeholder is not rendered again
	}
	for _, name := range names {
		data := testData()
		data.Subscriber["first_name"] = name
		body := json.RawMessage(`{"name": "{{subscriber.first_name}}", "greeting": "Hi {{subscriber.first_name}}!", "list": ["{{subscriber.first_name}}", 1], "n": {"deep": "{{subscriber.first_name}}"}}`)
		r, err := Render(Definition{Method: "POST", URL: "https://api.example.com/", Body: body}, data, testTypes)
		if err != nil {
			t.Fatalf("name %q: %v", name, err)
		}
		if !r.BodyIsJSON || !json.Valid([]byte(r.Body)) {
			t.Fatalf("name %q: body is not valid JSON: %s", name, r.Body)
		}
		var got struct {
			Name     string `json:"name"`
			Greeting string `json:"greeting"`
			List     []any  `json:"list"`
			N        struct {
				Deep string `json:"deep"`
			} `json:"n"`
		}
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
			t.Fatalf("name %q: %v", name, err)
		}
		want := strings.ToValidUTF8(name, "\uFFFD")
		if got.Name != want || got.Greeting != "Hi "+want+"!" || got.N.Deep != want || len(got.List) != 2 || got.List[0] != want || got.List[1] != 1.0 {
			t.Fatalf("name %q: round trip gave %+v", name, got)
		}
	}
}

func TestRenderJSONBodyKeepsShape(t *testing.T) {
	body := json.RawMessage(`{
		"z": 1, "a": 1.50, "big": 12345678901234567890, "neg": -0.0, "exp": 1E+2,
		"t": true, "f": false, "nil": null, "empty": {}, "arr": [], "{{subscriber.first_name}}": "k",
		"html": "<b>&</b>", "esc": "line\nbreak \"q\" \u00e9"
	}`)
	r, err := Render(Definition{Method: "PUT", URL: "https://api.example.com/", Body: body}, testData(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"z":1,"a":1.50,"big":12345678901234567890,"neg":-0.0,"exp":1E+2,"t":true,"f":false,"nil":null,"empty":{},"arr":[],"{{subscriber.first_name}}":"k","html":"<b>&</b>","esc":"line\nbreak \"q\" é"}`
	if r.Body != want {
		t.Fatalf("body =\n%s\nwant\n%s", r.Body, want)
	}
}

func TestRenderTypedLeaves(t *testing.T) {
	tests := []struct {
		name    string
		leaf    string
		fields  map[string]string // overrides of the data's fields ("" deletes)
		want    string            // the JSON of the "v" member
		wantErr string
	}{
		{"number field", "{{field.age}}", nil, `42`, ""},
		{"negative number field", "{{field.score}}", nil, `-3.5`, ""},
		{"boolean field", "{{field.vip}}", nil, `true`, ""},
		{"boolean stored as yes", "{{field.vip}}", map[string]string{"vip": "no"}, `false`, ""},
		{"number missing uses fallback", "{{field.age|18}}", map[string]string{"age": ""}, `18`, ""},
		{"number missing no fallback is null", "{{field.age}}", map[string]string{"age": ""}, `null`, ""},
		{"number empty fallback is null", "{{field.age|}}", map[string]string{"age": ""}, `null`, ""},
		{"boolean missing uses fallback", "{{field.vip|false}}", map[string]string{"vip": ""}, `false`, ""},
		{"boolean missing no fallback is null", "{{field.vip}}", map[string]string{"vip": ""}, `null`, ""},
		{"present value wins over fallback", "{{field.age|18}}", nil, `42`, ""},
		{"bad fallback", "{{field.age|many}}", map[string]string{"age": ""}, "", `the fallback of {{field.age|many}}: "many" is not a number`},
		{"bad stored value", "{{field.age}}", map[string]string{"age": "old"}, "", `the value of {{field.age}}: "old" is not a number`},
		{"string field stays string", "{{field.nick}}", nil, `"annie"`, ""},
		{"date field stays string", "{{field.born}}", nil, `"1990-01-02"`, ""},
		{"unknown field type stays string", "{{field.other|7}}", nil, `"7"`, ""},
		{"not alone: string", "{{field.age}} years", nil, `"42 years"`, ""},
		{"space around: string", " {{field.age}}", nil, `" 42"`, ""},
		{"two placeholders: string", "{{field.age}}{{field.age}}", nil, `"4242"`, ""},
		{"subscriber placeholder stays string", "{{subscriber.phone}}", nil, `"+15550001"`, ""},
		{"var placeholder stays string", "{{var.base}}", nil, `"v1"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := testData()
			for k, v := range tt.fields {
				if v == "" {
					delete(data.Fields, k)
				} else {
					data.Fields[k] = v
				}
			}
			leaf, _ := json.Marshal(tt.leaf)
			body := json.RawMessage(`{"v":` + string(leaf) + `}`)
			r, err := Render(Definition{Method: "POST", URL: "https://api.example.com/", Body: body}, data, testTypes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %s, %v; want error containing %q", r.Body, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"v":` + tt.want + `}`; r.Body != want {
				t.Fatalf("body = %s, want %s", r.Body, want)
			}
		})
	}
}

func TestRenderTopLevelTypedLeafAndArray(t *testing.T) {
	r, err := Render(Definition{Method: "POST", URL: "https://api.example.com/", Body: json.RawMessage(`["{{field.age}}", "{{field.vip}}", "{{field.nick}}"]`)}, testData(), testTypes)
	if err != nil {
		t.Fatal(err)
	}
	if r.Body != `[42,true,"annie"]` {
		t.Fatalf("body = %s", r.Body)
	}
	// A body that is a bare JSON number stays as written.
	r, err = Render(Definition{Method: "POST", URL: "https://api.example.com/", Body: json.RawMessage(` 7 `)}, testData(), testTypes)
	if err != nil || r.Body != "7" || !r.BodyIsJSON {
		t.Fatalf("bare number: %q %v %v", r.Body, r.BodyIsJSON, err)
	}
}

func TestRenderTextBody(t *testing.T) {
	data := testData()
	data.Subscriber["first_name"] = `Ann "x", \n}`
	r, err := Render(Definition{Method: "POST", URL: "https://api.example.com/",
		Body: json.RawMessage(`"Hello {{subscriber.first_name}}\nphone: {{subscriber.phone|n/a}} {\"raw\": 1}"`)}, data, testTypes)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hello Ann \"x\", \\n}\nphone: +15550001 {\"raw\": 1}"; r.Body != want || r.BodyIsJSON {
		t.Fatalf("body = %q (json %v), want %q", r.Body, r.BodyIsJSON, want)
	}
	if !reflect.DeepEqual(r.Headers, []tunnel.NameValue{{Name: "Content-Type", Value: ContentTypeText}}) {
		t.Fatalf("headers = %v", r.Headers)
	}
}

func TestRenderContentType(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		headers []tunnel.NameValue
		want    []tunnel.NameValue
	}{
		{"json default", `{"a":1}`, nil, []tunnel.NameValue{{Name: "Content-Type", Value: ContentTypeJSON}}},
		{"text default", `"hi"`, nil, []tunnel.NameValue{{Name: "Content-Type", Value: ContentTypeText}}},
		{"user's kept", `{"a":1}`, []tunnel.NameValue{{Name: "content-type", Value: "application/vnd.api+json"}},
			[]tunnel.NameValue{{Name: "content-type", Value: "application/vnd.api+json"}}},
		{"no body no content type", ``, nil, []tunnel.NameValue{}},
		{"null body is no body", `null`, nil, []tunnel.NameValue{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Render(Definition{Method: "POST", URL: "https://api.example.com/", Headers: tt.headers, Body: json.RawMessage(tt.body)}, testData(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Headers, tt.want) {
				t.Fatalf("headers = %#v, want %#v", r.Headers, tt.want)
			}
		})
	}
}

func TestRenderRefusals(t *testing.T) {
	tests := []struct {
		name string
		def  Definition
		want string
	}{
		{"method", Definition{Method: "DELETE", URL: "https://api.example.com/"}, `method must be GET, POST or PUT, not "DELETE"`},
		{"lower-case method", Definition{Method: "get", URL: "https://api.example.com/"}, `method must be GET, POST or PUT`},
		{"GET with body", Definition{Method: "GET", URL: "https://api.example.com/", Body: json.RawMessage(`{"a":1}`)}, "a GET request has no body"},
		{"invalid JSON body", Definition{Method: "POST", URL: "https://api.example.com/", Body: json.RawMessage(`{"a":`)}, "body: not a JSON value"},
		{"two JSON values", Definition{Method: "POST", URL: "https://api.example.com/", Body: json.RawMessage(`{} {}`)}, "body: not a JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.def, testData(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRenderedMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		r    Rendered
		want string
	}{
		{"json body is a value", Rendered{Method: "POST", URL: "https://h/x?a=1&b=2", Headers: []tunnel.NameValue{{Name: "A", Value: "b"}}, Body: `{"a":1}`, BodyIsJSON: true, Query: []tunnel.NameValue{{Name: "b", Value: "2"}}},
			`{"method":"POST","url":"https://h/x?a=1\u0026b=2","headers":[{"name":"A","value":"b"}],"body":{"a":1}}`},
		{"text body is a string", Rendered{Method: "PUT", URL: "https://h/", Body: `{"a":1}`},
			`{"method":"PUT","url":"https://h/","headers":[],"body":"{\"a\":1}"}`},
		{"no body is null", Rendered{Method: "GET", URL: "https://h/"},
			`{"method":"GET","url":"https://h/","headers":[],"body":null}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestFromActionAndTimeout(t *testing.T) {
	a := tunnel.Action{
		Type: tunnel.ActionExternalRequest, Method: "POST", URL: "https://api.example.com/",
		Description: "d", Headers: []tunnel.NameValue{{Name: "A", Value: "b"}},
		Query: []tunnel.NameValue{{Name: "q", Value: "1"}}, Body: json.RawMessage(`{"a":1}`),
		ResponseMapping: []tunnel.Mapping{{Path: "data.id", Field: "lms_id"}},
		OnError:         []string{"x"}, TimeoutMS: 2500,
	}
	d := FromAction(a)
	want := Definition{Method: "POST", URL: "https://api.example.com/", Description: "d",
		Headers: a.Headers, Query: a.Query, Body: a.Body, ResponseMapping: a.ResponseMapping, TimeoutMS: 2500}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("FromAction = %#v", d)
	}
	for _, tt := range []struct {
		ms   int
		want string
	}{{0, "10s"}, {-5, "10s"}, {100, "100ms"}, {2500, "2.5s"}, {30000, "30s"}, {90000, "30s"}} {
		if got := (Definition{TimeoutMS: tt.ms}).Timeout().String(); got != tt.want {
			t.Errorf("Timeout(%d) = %s, want %s", tt.ms, got, tt.want)
		}
	}
}
