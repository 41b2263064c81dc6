package engine

import (
	"reflect"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// prioTunnel has action blocks a, a1, a2 (tags, email, crm), message blocks
// m, m2 and a delay block d.
func prioTunnel() *tunnel.Tunnel {
	return &tunnel.Tunnel{Entry: "p", Blocks: []tunnel.Block{
		{ID: "p", Type: "message", Text: "hi"},
		{ID: "a", Type: "action", Actions: []tunnel.Action{{Type: "add_tags", Tags: []string{"x"}}, {Type: "stop"}}},
		{ID: "a1", Type: "action", Actions: []tunnel.Action{{Type: "send_email"}}},
		{ID: "a2", Type: "action", Actions: []tunnel.Action{{Type: "amo_deal"}}},
		{ID: "m", Type: "message", Text: "m"},
		{ID: "m2", Type: "message", Text: "m2"},
		{ID: "d", Type: "delay", Seconds: 60},
	}}
}

func parentStep() Step {
	return Step{V: 1, ID: "parent-id", WS: "ws", Sub: "sub", Tunnel: "tun", Channel: ChannelChat, Gen: 3,
		Block: "p", Action: 0, At: t0.Add(-time.Hour)}
}

// child is the step Advance or Release is expected to make.
func child(parent Step, id, block string, at time.Time, due *time.Time, hold *Hold) Step {
	return Step{V: MessageVersion, ID: id, WS: parent.WS, Sub: parent.Sub, Tunnel: parent.Tunnel,
		Channel: parent.Channel, Gen: parent.Gen, Block: block, Action: 0, At: at, Due: due, Hold: hold, Spin: parent.Spin + 1}
}

func TestAdvancePriorityRule(t *testing.T) {
	tn := prioTunnel()
	p := parentStep()
	at := t0
	due := t0.Add(time.Minute)
	nid := func(block string) string { return DeriveID(p.ID, "next", block) }
	tests := []struct {
		name string
		p    Step
		next []string
		due  *time.Time
		want []Outgoing
	}{
		{
			name: "action and message: only the action starts, holding the message",
			p:    p, next: []string{"a", "m"},
			want: []Outgoing{{Kind: KindTags, Step: child(p, nid("a"), "a", at, nil,
				&Hold{Join: p.ID, Actions: []string{"a"}, Then: []string{"m"}})}},
		},
		{
			name: "message first in next: the same",
			p:    p, next: []string{"m", "a"},
			want: []Outgoing{{Kind: KindTags, Step: child(p, nid("a"), "a", at, nil,
				&Hold{Join: p.ID, Actions: []string{"a"}, Then: []string{"m"}})}},
		},
		{
			name: "two actions, a message and a delay: both actions carry one hold",
			p:    p, next: []string{"a1", "a2", "m", "d"},
			want: []Outgoing{
				{Kind: KindEmail, Step: child(p, nid("a1"), "a1", at, nil,
					&Hold{Join: p.ID, Actions: []string{"a1", "a2"}, Then: []string{"m", "d"}})},
				{Kind: KindCRM, Step: child(p, nid("a2"), "a2", at, nil,
					&Hold{Join: p.ID, Actions: []string{"a1", "a2"}, Then: []string{"m", "d"}})},
			},
		},
		{
			name: "a missing block counts as a non-action sibling",
			p:    p, next: []string{"a", "gone"},
			want: []Outgoing{{Kind: KindTags, Step: child(p, nid("a"), "a", at, nil,
				&Hold{Join: p.ID, Actions: []string{"a"}, Then: []string{"gone"}})}},
		},
		{
			name: "only messages and a delay: all start, no hold",
			p:    p, next: []string{"m", "m2", "d"},
			want: []Outgoing{
				{Kind: KindFlow, Step: child(p, nid("m"), "m", at, nil, nil)},
				{Kind: KindFlow, Step: child(p, nid("m2"), "m2", at, nil, nil)},
				{Kind: KindFlow, Step: child(p, nid("d"), "d", at, nil, nil)},
			},
		},
		{
			name: "only actions: all start, no hold",
			p:    p, next: []string{"a1", "a2"},
			want: []Outgoing{
				{Kind: KindEmail, Step: child(p, nid("a1"), "a1", at, nil, nil)},
				{Kind: KindCRM, Step: child(p, nid("a2"), "a2", at, nil, nil)},
			},
		},
		{
			name: "a due time delays every started child",
			p:    p, next: []string{"a", "m"}, due: &due,
			want: []Outgoing{{Kind: KindTags, Step: child(p, nid("a"), "a", at, &due,
				&Hold{Join: p.ID, Actions: []string{"a"}, Then: []string{"m"}})}},
		},
		{
			name: "no next blocks: nothing",
			p:    p, next: nil, want: []Outgoing{},
		},
		{
			name: "the parent's own hold is not inherited",
			p: func() Step {
				q := p
				q.Hold = &Hold{Join: "older", Actions: []string{"x"}, Then: []string{"y"}}
				q.Action = 4
				q.Due = &due
				return q
			}(),
			next: []string{"m"},
			want: []Outgoing{{Kind: KindFlow, Step: child(p, nid("m"), "m", at, nil, nil)}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Advance(tn, tc.p, tc.next, at, tc.due)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Advance:\n got %+v\nwant %+v", got, tc.want)
			}
			// Stable: a replayed parent makes the same children.
			if again := Advance(tn, tc.p, tc.next, at, tc.due); !reflect.DeepEqual(again, got) {
				t.Fatalf("second Advance differs:\n%+v\n%+v", again, got)
			}
		})
	}
}

func TestAdvanceEmailRunRoutesMessagesToEmail(t *testing.T) {
	p := parentStep()
	p.Channel = ChannelEmail
	got := Advance(prioTunnel(), p, []string{"m", "d"}, t0, nil)
	if len(got) != 2 || got[0].Kind != KindEmail || got[1].Kind != KindFlow {
		t.Fatalf("kinds = %+v, want message->email, delay->flow", got)
	}
	if got[0].Step.Channel != ChannelEmail || got[0].Step.Gen != 3 {
		t.Fatalf("child %+v lost the run's channel or generation", got[0].Step)
	}
}

func TestReleaseSameWhicheverSiblingReleases(t *testing.T) {
	tn := prioTunnel()
	p := parentStep()
	started := Advance(tn, p, []string{"a1", "a2", "m", "d"}, t0, nil)
	if len(started) != 2 {
		t.Fatalf("started %d steps, want 2", len(started))
	}
	h := started[0].Step.Hold
	if h != started[1].Step.Hold && !reflect.DeepEqual(h, started[1].Step.Hold) {
		t.Fatalf("siblings carry different holds: %+v, %+v", h, started[1].Step.Hold)
	}
	// The last action of each sibling may be the one that completes the join.
	last1 := started[0].Step
	last2 := started[1].Step
	at := started[0].Step.At
	r1 := Release(tn, last1, h, at)
	r2 := Release(tn, last2, h, at)
	want := []Outgoing{
		{Kind: KindFlow, Step: child(p, DeriveID(p.ID, "held", "m"), "m", at, nil, nil)},
		{Kind: KindFlow, Step: child(p, DeriveID(p.ID, "held", "d"), "d", at, nil, nil)},
	}
	if !reflect.DeepEqual(r1, want) {
		t.Fatalf("Release by a1:\n got %+v\nwant %+v", r1, want)
	}
	if !reflect.DeepEqual(r2, want) {
		t.Fatalf("Release by a2:\n got %+v\nwant %+v", r2, want)
	}
	if DeriveID(p.ID, "held", "m") == DeriveID(p.ID, "next", "m") {
		t.Fatal("a held block and a directly started one must not share an id")
	}
}

func TestNextAction(t *testing.T) {
	tn := prioTunnel()
	due := t0.Add(time.Hour)
	s := Step{V: 1, ID: "a-0", WS: "ws", Sub: "sub", Tunnel: "tun", Channel: ChannelChat, Gen: 2,
		Block: "a", Action: 0, At: t0, Due: &due, Hold: &Hold{Join: "j", Actions: []string{"a"}, Then: []string{"m"}}}
	got := NextAction(tn, s)
	want := Outgoing{Kind: KindFlow, Step: Step{V: 1, ID: DeriveID("a-0", "action", "1"), WS: "ws", Sub: "sub",
		Tunnel: "tun", Channel: ChannelChat, Gen: 2, Block: "a", Action: 1, At: t0, Spin: 1,
		Hold: &Hold{Join: "j", Actions: []string{"a"}, Then: []string{"m"}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("NextAction:\n got %+v\nwant %+v", got, want)
	}
	if s.Action != 0 || s.Due == nil {
		t.Fatal("NextAction changed its argument")
	}
}

// stopTunnel: e -> [s, b]; s (action: stop, add_tags) -> n; b -> c (delay) -> d.
func stopTunnel() *tunnel.Tunnel {
	return &tunnel.Tunnel{Entry: "e", Blocks: []tunnel.Block{
		{ID: "e", Type: "message", Text: "e", Next: []string{"s", "b"}},
		{ID: "s", Type: "action", Actions: []tunnel.Action{{Type: "stop"}, {Type: "add_tags"}, {Type: "add_tags"}}, Next: []string{"n"}},
		{ID: "n", Type: "message", Text: "n"},
		{ID: "b", Type: "message", Text: "b", Next: []string{"c"}},
		{ID: "c", Type: "delay", Seconds: 60, Next: []string{"d"}},
		{ID: "d", Type: "message", Text: "d"},
	}}
}

func TestStopped(t *testing.T) {
	tn := stopTunnel()
	stopAt := t0
	atB := StopMarker{At: stopAt, Block: "b", ByTunnel: "other", ByBlock: "x", ByGen: 1, ByChan: ChannelChat, StepID: "stop-b"}
	whole := StopMarker{At: stopAt, ByTunnel: "tun", ByBlock: "s", ByGen: 1, ByChan: ChannelChat, ByAction: 0, StepID: "stop-all"}
	step := func(block string, action int, at time.Time) Step {
		return Step{V: 1, ID: "st-" + block, WS: "ws", Sub: "sub", Tunnel: "tun", Channel: ChannelChat, Gen: 1,
			Block: block, Action: action, At: at}
	}
	with := func(s Step, f func(*Step)) Step { f(&s); return s }
	before, after := stopAt.Add(-time.Millisecond), stopAt.Add(time.Nanosecond)
	tests := []struct {
		name    string
		t       *tunnel.Tunnel
		s       Step
		markers []StopMarker
		want    bool
		marker  StopMarker
	}{
		{"no markers", tn, step("b", 0, before), nil, false, StopMarker{}},
		{"at the block, before the stop", tn, step("b", 0, before), []StopMarker{atB}, true, atB},
		{"at the block, at the stop's instant", tn, step("b", 0, stopAt), []StopMarker{atB}, true, atB},
		{"at the block, after the stop: proceeds", tn, step("b", 0, after), []StopMarker{atB}, false, StopMarker{}},
		{"reachable delay", tn, step("c", 0, before), []StopMarker{atB}, true, atB},
		{"reachable beyond the delay", tn, step("d", 0, before), []StopMarker{atB}, true, atB},
		{"reachable, on the email channel too", tn, with(step("d", 0, before), func(s *Step) { s.Channel = ChannelEmail }), []StopMarker{atB}, true, atB},
		{"reachable, another generation too", tn, with(step("d", 0, before), func(s *Step) { s.Gen = 7 }), []StopMarker{atB}, true, atB},
		{"before the block: proceeds", tn, step("e", 0, before), []StopMarker{atB}, false, StopMarker{}},
		{"a parallel branch: proceeds", tn, step("n", 0, before), []StopMarker{atB}, false, StopMarker{}},
		{"a parallel action block: proceeds", tn, step("s", 1, before), []StopMarker{atB}, false, StopMarker{}},
		{"whole tunnel: the entry", tn, step("e", 0, before), []StopMarker{whole}, true, whole},
		{"whole tunnel: any block", tn, step("d", 0, stopAt), []StopMarker{whole}, true, whole},
		{"whole tunnel: a block that no longer exists", tn, step("gone", 0, before), []StopMarker{whole}, true, whole},
		{"whole tunnel: a deleted tunnel", nil, step("d", 0, before), []StopMarker{whole}, true, whole},
		{"whole tunnel, after the stop: proceeds", tn, step("e", 0, after), []StopMarker{whole}, false, StopMarker{}},
		{"the stopping block's next action is exempt", tn, step("s", 1, before), []StopMarker{whole}, false, StopMarker{}},
		{"the stopping block's last action is exempt", tn, step("s", 2, before), []StopMarker{whole}, false, StopMarker{}},
		{"an action of the stopping block before the stop is not exempt", tn, step("s", 0, before),
			[]StopMarker{func() StopMarker { m := whole; m.ByAction = 1; return m }()}, true,
			func() StopMarker { m := whole; m.ByAction = 1; return m }()},
		{"the stopping block's next blocks are not exempt", tn, step("n", 0, before), []StopMarker{whole}, true, whole},
		{"same block of another generation is not exempt", tn, with(step("s", 1, before), func(s *Step) { s.Gen = 2 }), []StopMarker{whole}, true, whole},
		{"same block on another channel is not exempt", tn, with(step("s", 1, before), func(s *Step) { s.Channel = ChannelEmail }), []StopMarker{whole}, true, whole},
		{"same block of another tunnel is not exempt", tn, with(step("s", 1, before), func(s *Step) { s.Tunnel = "tun2" }), []StopMarker{whole}, true, whole},
		{"a marker on an unknown block drops nothing", tn, step("b", 0, before), []StopMarker{{At: stopAt, Block: "gone"}}, false, StopMarker{}},
		{"the first marker that applies is reported", tn, step("d", 0, before),
			[]StopMarker{{At: before.Add(-time.Second), Block: "b"}, atB, whole}, true, atB},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, got := Stopped(tc.t, tc.s, tc.markers)
			if got != tc.want {
				t.Fatalf("Stopped = %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(m, tc.marker) {
				t.Fatalf("marker = %+v, want %+v", m, tc.marker)
			}
		})
	}
}

func TestStopActsOnceOverAdvancedSteps(t *testing.T) {
	// The stopping block's continuation keeps the block's origin time, so a
	// STOP covers what follows it; a step made after the STOP by a run that
	// is not stopped proceeds.
	tn := stopTunnel()
	s := Step{V: 1, ID: "s0", WS: "ws", Sub: "sub", Tunnel: "tun", Channel: ChannelChat, Gen: 1, Block: "s", Action: 2, At: t0}
	m := StopMarker{At: t0.Add(time.Second), ByTunnel: "tun", ByBlock: "s", ByGen: 1, ByChan: ChannelChat, ByAction: 0}
	next := Advance(tn, s, []string{"n"}, s.At, nil)
	if _, stopped := Stopped(tn, next[0].Step, []StopMarker{m}); !stopped {
		t.Fatal("the stopping block's next block must be dropped")
	}
	later := Advance(tn, s, []string{"n"}, t0.Add(2*time.Second), nil)
	if _, stopped := Stopped(tn, later[0].Step, []StopMarker{m}); stopped {
		t.Fatal("a step made after the STOP must proceed")
	}
}
