package engine

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestDeriveID(t *testing.T) {
	shape := regexp.MustCompile(`^[a-z2-7]{32}$`) // 20 bytes of SHA-256, base32, no padding
	a := DeriveID("parent", "next", "a")
	if again := DeriveID("parent", "next", "a"); again != a {
		t.Fatalf("DeriveID is not deterministic: %q then %q", a, again)
	}
	if !shape.MatchString(a) {
		t.Fatalf("DeriveID(parent, next, a) = %q, want 32 lowercase base32 characters", a)
	}
	// Each of these differs from a in exactly one way and must give another id.
	others := map[string]string{
		"other block":          DeriveID("parent", "next", "b"),
		"other edge kind":      DeriveID("parent", "held", "a"),
		"other parent":         DeriveID("parent2", "next", "a"),
		"edges joined":         DeriveID("parent", "nexta"),
		"edge split otherwise": DeriveID("parent", "nex", "ta"),
		"parent absorbs edge":  DeriveID("parentnext", "a"),
		"no edge":              DeriveID("parent"),
	}
	seen := map[string]string{a: "base"}
	for name, id := range others {
		if !shape.MatchString(id) {
			t.Errorf("%s: id %q has the wrong shape", name, id)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("%s: id %q equals the id of %s", name, id, prev)
		}
		seen[id] = name
	}
	// The ids of steps already recorded and queued must not change.
	long := strings.Repeat("x", 300)
	for _, g := range []struct {
		in   []string
		want string
	}{
		{[]string{"parent", "next", "a"}, "zj4l2b66rb2dhg7ceskfyedwrpqwufth"},
		{[]string{"p"}, "csg6trnhurgrtzlm3gxbuvkl6z4epl5q"},
		{[]string{"p", ""}, "ravcbzrxt24dv3fzc32lt2tzyhtmbcqn"},
		{[]string{"01hx", "held", "m2"}, "jeaniztsapeu6ij6m6b4pchfcxtu5kap"},
		{[]string{long, "next", long}, "lnjkethuwis4qpprl2waiv3ejxigzuo2"},
		{[]string{"é", "start", "t", "b"}, "5567vejw2e4ty3avyydovwliqoe4h333"},
	} {
		if got := DeriveID(g.in[0], g.in[1:]...); got != g.want {
			t.Errorf("DeriveID(%.20q) = %q, want %q", g.in, got, g.want)
		}
	}
	if DeriveID("p") == DeriveID("p", "") {
		t.Error(`DeriveID("p") == DeriveID("p", ""): an empty edge must still count`)
	}
}

func BenchmarkDeriveID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		DeriveID("zj4l2b66rb2dhg7ceskfyedwrpqwufth", "next", "m2")
	}
}

func validStep() Step {
	due := time.Date(2026, 11, 24, 11, 0, 0, 0, time.UTC)
	return Step{
		V: MessageVersion, ID: "s1", WS: "ws", Sub: "sub", Tunnel: "webinar", Channel: ChannelChat,
		Gen: 2, Block: "act", Action: 3, At: time.Date(2026, 11, 24, 10, 0, 0, 123000000, time.UTC), Due: &due,
		Hold: &Hold{Join: "p", Actions: []string{"a1", "a2"}, Then: []string{"m"}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	s := validStep()
	got, err := Decode(s.Encode())
	if err != nil {
		t.Fatalf("Decode(Encode(s)): %v", err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip changed the step:\n got %+v\nwant %+v", got, s)
	}
	// The wire names are the contract between functions.
	wire := string(s.Encode())
	for _, k := range []string{`"v":1`, `"id":"s1"`, `"ws":"ws"`, `"sub":"sub"`, `"tunnel":"webinar"`,
		`"channel":"chat"`, `"gen":2`, `"block":"act"`, `"action":3`, `"at":"2026-11-24T10:00:00.123Z"`,
		`"due":"2026-11-24T11:00:00Z"`, `"hold":{"join":"p","actions":["a1","a2"],"then":["m"]}`} {
		if !strings.Contains(wire, k) {
			t.Errorf("wire form %s lacks %s", wire, k)
		}
	}
	plain := s
	plain.Due, plain.Hold = nil, nil
	if w := string(plain.Encode()); strings.Contains(w, "due") || strings.Contains(w, "hold") {
		t.Errorf("a step without due or hold must omit them: %s", w)
	}
	email := s
	email.Channel = ChannelEmail
	if got, err := Decode(email.Encode()); err != nil || got.Channel != ChannelEmail {
		t.Errorf("email step: got %+v, %v", got, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	mut := func(f func(*Step)) []byte {
		s := validStep()
		f(&s)
		return s.Encode()
	}
	tests := []struct {
		name string
		body []byte
		want string // part of the error
	}{
		{"not json", []byte(`{"v":1,`), "step message:"},
		{"not an object", []byte(`[1]`), "step message:"},
		{"empty object", []byte(`{}`), "version 0 is not supported (want 1)"},
		{"version 0", mut(func(s *Step) { s.V = 0 }), "version 0 is not supported (want 1)"},
		{"version 2", mut(func(s *Step) { s.V = 2 }), "version 2 is not supported (want 1)"},
		{"no id", mut(func(s *Step) { s.ID = "" }), "id, ws, sub, tunnel and block are required"},
		{"no ws", mut(func(s *Step) { s.WS = "" }), "id, ws, sub, tunnel and block are required"},
		{"no sub", mut(func(s *Step) { s.Sub = "" }), "id, ws, sub, tunnel and block are required"},
		{"no tunnel", mut(func(s *Step) { s.Tunnel = "" }), "id, ws, sub, tunnel and block are required"},
		{"no block", mut(func(s *Step) { s.Block = "" }), "id, ws, sub, tunnel and block are required"},
		{"no channel", mut(func(s *Step) { s.Channel = "" }), `unknown channel ""`},
		{"unknown channel", mut(func(s *Step) { s.Channel = "sms" }), `unknown channel "sms"`},
		{"channel case", mut(func(s *Step) { s.Channel = "Chat" }), `unknown channel "Chat"`},
		{"generation 0", mut(func(s *Step) { s.Gen = 0 }), "generation must be at least 1"},
		{"negative generation", mut(func(s *Step) { s.Gen = -1 }), "generation must be at least 1"},
		{"wrong type", []byte(`{"v":"1"}`), "step message:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.body)
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want an error", tc.body, got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode(%s) error %q, want it to contain %q", tc.body, err, tc.want)
			}
			if !reflect.DeepEqual(got, Step{}) {
				t.Fatalf("Decode returned %+v with its error, want the zero step", got)
			}
		})
	}
}

func TestActionKind(t *testing.T) {
	want := map[string]Kind{
		"add_tags": KindTags, "remove_tags": KindTags, "set_field": KindTags,
		"add_to_sales_plan": KindTags, "mention": KindTags, "mark_unread": KindTags,
		"send_email": KindEmail, "create_email_subscriber": KindEmail,
		"amo_deal": KindCRM, "amo_contact": KindCRM,
		"external_request": KindWebhook,
		"start":            KindFlow, "stop": KindFlow,
	}
	// Every action type the tunnel package knows is routed on purpose.
	for _, at := range tunnel.ActionTypes {
		if _, ok := want[at]; !ok {
			t.Errorf("action type %q has no expected kind in this test", at)
		}
	}
	if len(want) != len(tunnel.ActionTypes) {
		t.Errorf("the test lists %d action types, the tunnel package %d", len(want), len(tunnel.ActionTypes))
	}
	for at, k := range want {
		if got := ActionKind(at); got != k {
			t.Errorf("ActionKind(%q) = %q, want %q", at, got, k)
		}
	}
	for _, at := range []string{"", "bogus", "ADD_TAGS"} {
		if got := ActionKind(at); got != KindFlow {
			t.Errorf("ActionKind(%q) = %q, want flow (it records the step)", at, got)
		}
	}
}

// kindsTunnel holds one block of each type and an action block with every
// action type, in the order of tunnel.ActionTypes.
func kindsTunnel() *tunnel.Tunnel {
	var acts []tunnel.Action
	for _, at := range tunnel.ActionTypes {
		acts = append(acts, tunnel.Action{Type: at})
	}
	return &tunnel.Tunnel{Entry: "m", Blocks: []tunnel.Block{
		{ID: "m", Type: "message", Text: "hi", Next: []string{"all"}},
		{ID: "all", Type: "action", Actions: acts, Next: []string{"d"}},
		{ID: "d", Type: "delay", Seconds: 60},
		{ID: "odd", Type: "mystery"},
	}}
}

func TestStepKind(t *testing.T) {
	tn := kindsTunnel()
	step := func(block, channel string, action int) Step {
		return Step{V: 1, ID: "x", WS: "w", Sub: "s", Tunnel: "t", Channel: channel, Gen: 1, Block: block, Action: action}
	}
	tests := []struct {
		name string
		t    *tunnel.Tunnel
		s    Step
		want Kind
	}{
		{"message on chat", tn, step("m", ChannelChat, 0), KindFlow},
		{"message on email", tn, step("m", ChannelEmail, 0), KindEmail},
		{"delay on chat", tn, step("d", ChannelChat, 0), KindFlow},
		{"delay on email", tn, step("d", ChannelEmail, 0), KindFlow},
		{"action past the end", tn, step("all", ChannelChat, len(tunnel.ActionTypes)), KindFlow},
		{"negative action", tn, step("all", ChannelChat, -1), KindFlow},
		{"removed block", tn, step("gone", ChannelChat, 0), KindFlow},
		{"removed block on email", tn, step("gone", ChannelEmail, 0), KindFlow},
		{"unknown block type", tn, step("odd", ChannelChat, 0), KindFlow},
		{"deleted tunnel", nil, step("m", ChannelEmail, 0), KindFlow},
	}
	wantAction := map[string]Kind{
		"start": KindFlow, "stop": KindFlow, "amo_deal": KindCRM, "amo_contact": KindCRM,
		"add_tags": KindTags, "remove_tags": KindTags, "mention": KindTags,
		"create_email_subscriber": KindEmail, "mark_unread": KindTags, "send_email": KindEmail,
		"set_field": KindTags, "add_to_sales_plan": KindTags, "external_request": KindWebhook,
	}
	for i, at := range tunnel.ActionTypes {
		for _, ch := range []string{ChannelChat, ChannelEmail} {
			tests = append(tests, struct {
				name string
				t    *tunnel.Tunnel
				s    Step
				want Kind
			}{"action " + at + " on " + ch, tn, step("all", ch, i), wantAction[at]})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := StepKind(tc.t, tc.s); got != tc.want {
				t.Fatalf("StepKind = %q, want %q", got, tc.want)
			}
		})
	}
}
