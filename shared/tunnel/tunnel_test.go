package tunnel

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// example parses SPEC section 8's tunnel afresh, so each test may change its copy.
func example(t *testing.T) *Tunnel {
	t.Helper()
	data, err := os.ReadFile("testdata/example.json")
	if err != nil {
		t.Fatal(err)
	}
	tun, errs := Parse(data)
	if len(errs) != 0 {
		t.Fatalf("Parse(example) errors: %v", errs)
	}
	return tun
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"hello", true},
		{"a", true},
		{"Block_1-x", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{"héllo", false},
		{"{{x}}", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestBlock(t *testing.T) {
	tun := example(t)
	b, ok := tun.Block("wait")
	if !ok || b.Type != BlockDelay || b.Seconds != 86400 {
		t.Fatalf("Block(wait) = %+v, %v", b, ok)
	}
	b.Seconds = 60 // the pointer is into the tunnel
	if tun.Blocks[3].Seconds != 60 {
		t.Fatalf("Block returned a copy, not the tunnel's block")
	}
	if b, ok := tun.Block("nope"); ok || b != nil {
		t.Fatalf("Block(nope) = %+v, %v", b, ok)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func TestReachable(t *testing.T) {
	tun := &Tunnel{Entry: "a", Blocks: []Block{
		{ID: "a", Type: BlockMessage, Text: "x", Next: []string{"b"}},
		{ID: "b", Type: BlockAction, Actions: []Action{
			{Type: ActionExternalRequest, OnError: []string{"err"}},
			{Type: ActionStart, Tunnel: "self", Block: "jump"}, // start is a new run, not an edge
		}, Next: []string{"c", "ghost"}},
		{ID: "c", Type: BlockDelay, Seconds: 5, Next: []string{"a"}}, // cycle back
		{ID: "err", Type: BlockMessage, Text: "sorry"},
		{ID: "jump", Type: BlockMessage, Text: "jumped"},
		{ID: "island", Type: BlockMessage, Text: "alone", Next: []string{"err"}},
	}}
	tests := []struct {
		from string
		want []string
	}{
		{"a", []string{"a", "b", "c", "err"}},
		{"b", []string{"a", "b", "c", "err"}},
		{"err", []string{"err"}},
		{"island", []string{"err", "island"}},
		{"jump", []string{"jump"}},
		{"ghost", []string{}},
		{"", []string{}},
	}
	for _, tt := range tests {
		if got := keys(tun.Reachable(tt.from)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Reachable(%q) = %v, want %v", tt.from, got, tt.want)
		}
	}
}

func TestSuccessors(t *testing.T) {
	b := Block{Next: []string{"x", "y", "x"}, Actions: []Action{
		{Type: ActionExternalRequest, OnError: []string{"y", "z"}},
		{Type: ActionExternalRequest, OnError: []string{"w"}},
	}}
	if got, want := b.Successors(), []string{"x", "y", "z", "w"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Successors = %v, want %v", got, want)
	}
}

func TestParams(t *testing.T) {
	for _, typ := range ActionTypes {
		ps, ok := Params(typ)
		if !ok {
			t.Errorf("Params(%q) unknown", typ)
		}
		for _, p := range ps {
			if _, ok := actionParams[p]; !ok {
				t.Errorf("%s lists parameter %q with no decoder", typ, p)
			}
		}
	}
	if _, ok := Params("nope"); ok {
		t.Errorf("Params(nope) known")
	}
	if len(paramOrder) != len(actionParams) {
		t.Errorf("paramOrder has %d names, actionParams %d", len(paramOrder), len(actionParams))
	}
	for _, p := range paramOrder {
		if _, ok := actionParams[p]; !ok {
			t.Errorf("paramOrder names %q with no decoder", p)
		}
	}
	// Every wire name of Action (but type) is a parameter, so Parse and Validate cover it.
	rt := reflect.TypeOf(Action{})
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if _, ok := actionParams[name]; !ok && name != "type" {
			t.Errorf("Action field %s (%q) is not in actionParams", rt.Field(i).Name, name)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	tun := example(t)
	data, err := json.Marshal(tun)
	if err != nil {
		t.Fatal(err)
	}
	again, errs := Parse(data)
	if len(errs) != 0 {
		t.Fatalf("Parse(Marshal(example)) errors: %v\n%s", errs, data)
	}
	if !reflect.DeepEqual(tun, again) {
		t.Fatalf("round trip changed the tunnel:\n%+v\n%+v", tun, again)
	}
	// omitempty keeps parameters of other action types out of the wire form.
	s := string(data)
	for _, want := range []string{
		`{"type":"mark_unread"}`,
		`{"type":"add_tags","tags":["lead"]}`,
		`{"id":"wait","type":"delay","seconds":86400,"next":["bye"]}`,
		`"body":{"name":"{{subscriber.first_name}}","phone":"{{subscriber.phone|n/a}}"}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("marshalled tunnel lacks %s:\n%s", want, s)
		}
	}
}

func TestFieldErrorJSON(t *testing.T) {
	data, err := json.Marshal(FieldError{Pointer: "/blocks/0/id", Detail: "id is required"})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"pointer":"/blocks/0/id","detail":"id is required"}` {
		t.Fatalf("FieldError JSON = %s", data)
	}
	if got := (FieldError{Pointer: "/name", Detail: "name is required"}).Error(); got != "/name: name is required" {
		t.Fatalf("Error() = %q", got)
	}
	if got := (FieldError{Detail: "malformed"}).Error(); got != "malformed" {
		t.Fatalf("Error() = %q", got)
	}
}
