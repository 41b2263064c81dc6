package render

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []Placeholder
	}{
		{"empty", "", nil},
		{"literal only", "Hello there", nil},
		{"lone braces are literal", "a { b } c }} d", nil},
		{"single brace before placeholder", "{ {{var.x}}",
			[]Placeholder{{Name: "var.x", Namespace: "var", Key: "x", Start: 2, End: 11}}},
		{"subscriber", "Hi {{subscriber.first_name}}!",
			[]Placeholder{{Name: "subscriber.first_name", Namespace: "subscriber", Key: "first_name", Start: 3, End: 28}}},
		{"fallback trimmed", "Hi {{subscriber.first_name| dear friend }}!",
			[]Placeholder{{Name: "subscriber.first_name", Namespace: "subscriber", Key: "first_name", Fallback: "dear friend", HasFallback: true, Start: 3, End: 42}}},
		{"empty fallback", "{{var.a|}}",
			[]Placeholder{{Name: "var.a", Namespace: "var", Key: "a", HasFallback: true, Start: 0, End: 10}}},
		{"spaces around name", "{{ subscriber.first_name }}",
			[]Placeholder{{Name: "subscriber.first_name", Namespace: "subscriber", Key: "first_name", Start: 0, End: 27}}},
		{"spaces around bar", "{{ field.age | 18 }}",
			[]Placeholder{{Name: "field.age", Namespace: "field", Key: "age", Fallback: "18", HasFallback: true, Start: 0, End: 20}}},
		{"fallback with bar and brace", "{{var.a|x|y}z}}",
			[]Placeholder{{Name: "var.a", Namespace: "var", Key: "a", Fallback: "x|y}z", HasFallback: true, Start: 0, End: 15}}},
		{"several", "{{tunnel.id}}-{{field.lms_id}}{{var.k-1}}",
			[]Placeholder{
				{Name: "tunnel.id", Namespace: "tunnel", Key: "id", Start: 0, End: 13},
				{Name: "field.lms_id", Namespace: "field", Key: "lms_id", Start: 14, End: 30},
				{Name: "var.k-1", Namespace: "var", Key: "k-1", Start: 30, End: 41},
			}},
		{"trailing brace literal", "{{var.a}}}",
			[]Placeholder{{Name: "var.a", Namespace: "var", Key: "a", Start: 0, End: 9}}},
		{"unknown namespace parses", "{{foo.bar}}",
			[]Placeholder{{Name: "foo.bar", Namespace: "foo", Key: "bar", Start: 0, End: 11}}},
		{"multibyte offsets", "Привет {{subscriber.first_name}}",
			[]Placeholder{{Name: "subscriber.first_name", Namespace: "subscriber", Key: "first_name", Start: 13, End: 38}}},
		{"64-char key", "{{field." + strings.Repeat("a", 64) + "}}",
			[]Placeholder{{Name: "field." + strings.Repeat("a", 64), Namespace: "field", Key: strings.Repeat("a", 64), Start: 0, End: 74}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.text)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.text, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q)\n got %#v\nwant %#v", tt.text, got, tt.want)
			}
			for _, p := range got {
				if tt.text[p.Start:p.Start+2] != "{{" || tt.text[p.End-2:p.End] != "}}" {
					t.Errorf("offsets %d..%d do not frame a placeholder in %q", p.Start, p.End, tt.text)
				}
			}
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		offset  int
		msgPart string
	}{
		{"unclosed", "Hi {{subscriber.first_name", 3, `"{{" is not closed`},
		{"unclosed single brace", "Hi {{subscriber.first_name}", 3, `"{{" is not closed`},
		{"empty", "x {{}} y", 2, "has no name"},
		{"blank", "{{   }}", 0, "has no name"},
		{"only fallback", "{{|friend}}", 0, "has no name"},
		{"no dot", "{{first_name}}", 0, "must be namespace.key"},
		{"no key", "{{field.}}", 0, "has no key"},
		{"no namespace", "{{.age}}", 0, "namespace"},
		{"space in name", "{{subscriber. first_name}}", 0, `key " first_name"`},
		{"two dots", "{{field.a.b}}", 0, `key "a.b"`},
		{"bad key char", "{{var.a$b}}", 0, `key "a$b"`},
		{"key too long", "{{var." + strings.Repeat("k", 65) + "}}", 0, "1 to 64"},
		{"bad namespace char", "{{sub scriber.id}}", 0, `namespace "sub scriber"`},
		{"nested", "{{var.a{{var.b}}}}", 7, "cannot be nested"},
		{"triple braces", "{{{var.a}}}", 2, "cannot be nested"},
		{"error after good one", "{{var.a}} {{oops}}", 10, "must be namespace.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.text)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want a syntax error", tt.text, got)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *SyntaxError", err, err)
			}
			if se.Offset != tt.offset {
				t.Errorf("offset = %d, want %d (%v)", se.Offset, tt.offset, err)
			}
			if !strings.Contains(se.Msg, tt.msgPart) {
				t.Errorf("message %q does not contain %q", se.Msg, tt.msgPart)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("Error() %q does not say where", err.Error())
			}
		})
	}
}

type known struct {
	fields map[string]string
	vars   map[string]bool
}

func (k known) Field(id string) (string, bool) { t, ok := k.fields[id]; return t, ok }
func (k known) Variable(key string) bool       { return k.vars[key] }

var testKnown = known{
	fields: map[string]string{"age": "number", "source": "string"},
	vars:   map[string]bool{"webinar_url": true},
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // substrings, one per expected error, in order
	}{
		{"clean", "Hi {{subscriber.first_name|friend}}, {{field.age}} {{var.webinar_url}} {{tunnel.id}}", nil},
		{"all subscriber keys", "{{subscriber.first_name}}{{subscriber.last_name}}{{subscriber.email}}{{subscriber.phone}}{{subscriber.id}}", nil},
		{"literal", "no placeholders { here }", nil},
		{"unknown field", "{{field.height}}", []string{`unknown field "height" in placeholder {{field.height}}`}},
		{"unknown variable", "{{var.secret}}", []string{`unknown variable "secret" in placeholder {{var.secret}}`}},
		{"unknown subscriber key", "{{subscriber.age}}", []string{`unknown placeholder {{subscriber.age}}`}},
		{"unknown tunnel key", "{{tunnel.name}}", []string{`unknown placeholder {{tunnel.name}}: the tunnel namespace has only id`}},
		{"unknown namespace", "{{user.name}}", []string{`namespace "user" is not one of`}},
		{"namespace is case-sensitive", "{{Subscriber.id}}", []string{`namespace "Subscriber"`}},
		{"every problem at once", "{{field.x}} {{oops}} {{var.y}} {{a.b",
			[]string{`unknown field "x"`, "must be namespace.key", `unknown variable "y"`, "not closed"}},
		{"nested then valid inner", "{{var.a {{var.nope}}", []string{"cannot be nested", `unknown variable "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := Check(tt.text, testKnown)
			if len(errs) != len(tt.want) {
				t.Fatalf("Check(%q) = %v, want %d errors", tt.text, errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

func TestCheckNilKnownSkipsCatalog(t *testing.T) {
	if errs := Check("{{field.any}} {{var.any}}", nil); len(errs) != 0 {
		t.Fatalf("Check with nil Known = %v, want none", errs)
	}
	if errs := Check("{{nope.x}}", nil); len(errs) != 1 {
		t.Fatalf("Check with nil Known still checks namespaces; got %v", errs)
	}
}

func TestCheckErrorTypes(t *testing.T) {
	errs := Check("{{field.x}} {{}}", testKnown)
	if len(errs) != 2 {
		t.Fatalf("got %v", errs)
	}
	var re *RefError
	if !errors.As(errs[0], &re) || re.Placeholder.Key != "x" {
		t.Errorf("first error %#v is not a *RefError for key x", errs[0])
	}
	var se *SyntaxError
	if !errors.As(errs[1], &se) || se.Offset != 12 {
		t.Errorf("second error %#v is not a *SyntaxError at 12", errs[1])
	}
}

var testData = Data{
	Subscriber: map[string]string{"first_name": "Ann", "last_name": "", "email": "ann@example.com", "id": "s-1"},
	Fields:     map[string]string{"age": "42", "note": "a&b c"},
	Vars:       map[string]string{"webinar_url": "https://w.example/x"},
	TunnelID:   "webinar",
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name   string
		p      Placeholder
		want   string
		wantOK bool
	}{
		{"subscriber", Placeholder{Namespace: "subscriber", Key: "first_name"}, "Ann", true},
		{"subscriber empty", Placeholder{Namespace: "subscriber", Key: "last_name"}, "", false},
		{"subscriber missing", Placeholder{Namespace: "subscriber", Key: "phone"}, "", false},
		{"field", Placeholder{Namespace: "field", Key: "age"}, "42", true},
		{"field missing", Placeholder{Namespace: "field", Key: "x"}, "", false},
		{"var", Placeholder{Namespace: "var", Key: "webinar_url"}, "https://w.example/x", true},
		{"tunnel", Placeholder{Namespace: "tunnel", Key: "id"}, "webinar", true},
		{"tunnel other key", Placeholder{Namespace: "tunnel", Key: "name"}, "", false},
		{"unknown namespace", Placeholder{Namespace: "x", Key: "id"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := testData.Lookup(tt.p)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("Lookup = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
	if got, ok := (Data{}).Lookup(Placeholder{Namespace: "field", Key: "age"}); got != "" || ok {
		t.Fatalf("zero Data Lookup = %q, %v", got, ok)
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"literal", "Hello { world }", "Hello { world }"},
		{"value", "Hi {{subscriber.first_name}}!", "Hi Ann!"},
		{"value beats fallback", "Hi {{subscriber.first_name|friend}}!", "Hi Ann!"},
		{"fallback on missing", "Call {{subscriber.phone|n/a}}", "Call n/a"},
		{"fallback on empty", "Dear {{subscriber.last_name|customer}}", "Dear customer"},
		{"missing without fallback", "[{{subscriber.phone}}]", "[]"},
		{"empty fallback", "[{{subscriber.phone|}}]", "[]"},
		{"spaces inside", "{{ subscriber.first_name }}", "Ann"},
		{"field, var, tunnel", "{{field.age}} {{var.webinar_url}} {{tunnel.id}}", "42 https://w.example/x webinar"},
		{"adjacent", "{{field.age}}{{field.age}}", "4242"},
		{"unknown namespace renders empty", "a{{foo.bar}}b", "ab"},
		{"unclosed stays literal", "Hi {{subscriber.first_name", "Hi {{subscriber.first_name"},
		{"malformed stays literal, rest renders", "{{oops}} {{subscriber.first_name}}", "{{oops}} Ann"},
		{"nested keeps outer literal", "{{var.a {{tunnel.id}}", "{{var.a webinar"},
		{"json-ish text keeps braces", `{"a":{"b":"{{tunnel.id}}"}}`, `{"a":{"b":"webinar"}}`},
		{"unicode", "Привет, {{subscriber.first_name}}", "Привет, Ann"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Render(tt.text, testData); got != tt.want {
				t.Fatalf("Render(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestRenderEscaped(t *testing.T) {
	upper := func(s string) string { return "<" + strings.ToUpper(s) + ">" }
	tests := []struct {
		name   string
		text   string
		escape func(string) string
		want   string
	}{
		{"only values escaped", "a&b {{field.note}} c&d", url.QueryEscape, "a&b a%26b+c c&d"},
		{"fallback escaped too", "x={{subscriber.phone|1 2}}", url.QueryEscape, "x=1+2"},
		{"missing value is escaped empty", "x={{subscriber.phone}}", upper, "x=<>"},
		{"literal untouched", "no placeholders", upper, "no placeholders"},
		{"malformed untouched", "{{bad}} {{tunnel.id}}", upper, "{{bad}} <WEBINAR>"},
		{"nil escape", "{{field.note}}", nil, "a&b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenderEscaped(tt.text, testData, tt.escape); got != tt.want {
				t.Fatalf("RenderEscaped(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestSingle(t *testing.T) {
	tests := []struct {
		text   string
		wantOK bool
		key    string
	}{
		{"{{field.age}}", true, "age"},
		{"{{ field.age | 0 }}", true, "age"},
		{" {{field.age}}", false, ""},
		{"{{field.age}} ", false, ""},
		{"{{field.age}}{{field.age}}", false, ""},
		{"{{field.age}}x{{var.a}}", false, ""},
		{"age", false, ""},
		{"{{field.age", false, ""},
		{"{{oops}}", false, ""},
		{"", false, ""},
	}
	for _, tt := range tests {
		p, ok := Single(tt.text)
		if ok != tt.wantOK || p.Key != tt.key {
			t.Errorf("Single(%q) = %+v, %v; want key %q, %v", tt.text, p, ok, tt.key, tt.wantOK)
		}
	}
}

func TestLiteral(t *testing.T) {
	tests := []struct{ text, want string }{
		{"plain", "plain"},
		{"Bearer {{var.token}}", "Bearer "},
		{"a{{var.x|fb}}b{{field.y}}c", "abc"},
		{"{{bad}}x", "{{bad}}x"},
	}
	for _, tt := range tests {
		if got := Literal(tt.text); got != tt.want {
			t.Errorf("Literal(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestPlaceholderString(t *testing.T) {
	p, _ := Single("{{ subscriber.first_name | friend }}")
	if got := p.String(); got != "{{subscriber.first_name|friend}}" {
		t.Fatalf("String() = %q", got)
	}
	p, _ = Single("{{tunnel.id}}")
	if got := p.String(); got != "{{tunnel.id}}" {
		t.Fatalf("String() = %q", got)
	}
}

func BenchmarkRender(b *testing.B) {
	text := "Hi {{subscriber.first_name|friend}}, your code is {{field.age}}. " +
		"Join at {{var.webinar_url}} ({{tunnel.id}}) — reply to {{subscriber.email|us}}."
	b.ReportAllocs()
	for b.Loop() {
		_ = Render(text, testData)
	}
}

func BenchmarkRenderLiteral(b *testing.B) {
	text := strings.Repeat("no placeholders here { } ", 20)
	b.ReportAllocs()
	for b.Loop() {
		_ = Render(text, testData)
	}
}
