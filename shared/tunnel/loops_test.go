package tunnel

import (
	"reflect"
	"strings"
	"testing"
)

func starts(target string, next ...string) Block {
	return Block{ID: "go", Type: BlockAction, Actions: []Action{{Type: ActionStart, Tunnel: target}}, Next: next}
}

func TestStartLoops(t *testing.T) {
	delay := func(seconds int) *Tunnel {
		return &Tunnel{Name: "B", Entry: "wait", Blocks: []Block{
			{ID: "wait", Type: BlockDelay, Seconds: seconds, Next: []string{"go"}},
			starts("a"),
		}}
	}
	// a: hello -> go (START b); START a lands on the entry, hello.
	cases := []struct {
		name  string
		saved map[string]*Tunnel
		want  []string // details' loops, in order of the errors
	}{
		{"two tunnels starting each other", map[string]*Tunnel{
			"b": {Name: "B", Entry: "go", Blocks: []Block{starts("a")}},
		}, []string{`"a"/"go" -> "b"/"go" -> "a"/"hello" -> "a"/"go"`}},
		{"three tunnels", map[string]*Tunnel{
			"b": {Name: "B", Entry: "go", Blocks: []Block{starts("c")}},
			"c": {Name: "C", Entry: "m", Blocks: []Block{{ID: "m", Type: BlockMessage, Text: "hi", Next: []string{"go"}}, starts("a")}},
		}, []string{`"a"/"go" -> "b"/"go" -> "c"/"m" -> "c"/"go" -> "a"/"hello" -> "a"/"go"`}},
		{"a minute's delay on the way is a drip", map[string]*Tunnel{"b": delay(60)}, nil},
		{"a shorter delay is not a wait", map[string]*Tunnel{"b": delay(59)},
			[]string{`"a"/"go" -> "b"/"wait" -> "b"/"go" -> "a"/"hello" -> "a"/"go"`}},
		{"a START that does not come back", map[string]*Tunnel{
			"b": {Name: "B", Entry: "m", Blocks: []Block{{ID: "m", Type: BlockMessage, Text: "hi"}}},
		}, nil},
		{"an unknown target is Validate's to report", map[string]*Tunnel{}, nil},
		{"coming back to another block of the tunnel that leads here", map[string]*Tunnel{
			"b": {Name: "B", Entry: "go", Blocks: []Block{{ID: "go", Type: BlockAction,
				Actions: []Action{{Type: ActionStart, Tunnel: "a", Block: "hello"}}}}},
		}, []string{`"a"/"go" -> "b"/"go" -> "a"/"hello" -> "a"/"go"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := &Tunnel{Name: "A", Entry: "hello", Blocks: []Block{
				{ID: "hello", Type: BlockMessage, Text: "Hi", Next: []string{"go"}},
				starts("b"),
			}}
			if tc.name == "an unknown target is Validate's to report" {
				a.Blocks[1].Actions[0].Tunnel = "nowhere"
			}
			// The stored version of a itself is ignored: a is being saved.
			tc.saved["a"] = &Tunnel{Name: "old", Entry: "x", Blocks: []Block{{ID: "x", Type: BlockMessage, Text: "old"}}}
			errs := StartLoops("a", a, func(id string) *Tunnel { return tc.saved[id] })
			var got []string
			for _, e := range errs {
				if e.Pointer != "/blocks/1/actions/0/tunnel" {
					t.Errorf("pointer = %q", e.Pointer)
				}
				i, j := strings.Index(e.Detail, "("), strings.Index(e.Detail, ")")
				got = append(got, e.Detail[i+1:j])
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("loops = %q, want %q\n%v", got, tc.want, errs)
			}
		})
	}
}

func TestValidateReportsStartLoopsWithSavedTunnels(t *testing.T) {
	a := &Tunnel{Name: "A", Entry: "go", Blocks: []Block{starts("b")}}
	b := &Tunnel{Name: "B", Entry: "go", Blocks: []Block{starts("a")}}
	cat := Catalog{Tunnels: map[string][]string{"a": {"go"}, "b": {"go"}}}
	if errs := Validate("a", a, cat); len(errs) != 0 {
		t.Fatalf("without saved definitions the check is skipped: %v", errs)
	}
	cat.Saved = map[string]*Tunnel{"b": b}
	errs := Validate("a", a, cat)
	if len(errs) != 1 || !strings.Contains(errs[0].Detail, "at least 60 seconds") {
		t.Fatalf("errs = %v", errs)
	}
}

func TestLoopThrough(t *testing.T) {
	tunnels := map[string]*Tunnel{
		"a": {Name: "A", Entry: "go", Blocks: []Block{starts("b")}},
		"b": {Name: "B", Entry: "go", Blocks: []Block{starts("a")}},
		"c": {Name: "C", Entry: "go", Blocks: []Block{starts("a")}},
	}
	load := func(id string) *Tunnel { return tunnels[id] }
	if got := FormatLoop(LoopThrough(Node{"b", "go"}, load)); got != `"b"/"go" -> "a"/"go" -> "b"/"go"` {
		t.Errorf("loop through b = %s", got)
	}
	if got := LoopThrough(Node{"c", "go"}, load); got != nil {
		t.Errorf("c leads into a loop but is not on it: %v", got)
	}
	if got := LoopThrough(Node{"gone", "go"}, load); got != nil {
		t.Errorf("an unknown tunnel: %v", got)
	}
}
