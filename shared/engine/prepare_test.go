package engine

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestBeforeBatch(t *testing.T) {
	two := &tunnel.Tunnel{Entry: "act", Blocks: []tunnel.Block{
		{ID: "act", Type: "action", Actions: []tunnel.Action{{Type: "mark_unread"}, {Type: "add_tags", Tags: []string{"x"}}}},
	}}
	h := newHarness(t, map[string]*tunnel.Tunnel{"one": two})
	p := h.procs[KindTags]
	seen := map[string]any{}
	p.Actions["mark_unread"] = func(ctx context.Context, ac *ActionContext) (Outcome, error) {
		seen[ac.Step.ID] = ac.Prepared
		return Done(nil), nil
	}
	var offered [][]string
	fail := false
	p.Prepare = map[string]PrepareFunc{"mark_unread": func(ctx context.Context, steps []PreparedStep) (map[string]any, error) {
		var ids []string
		for _, s := range steps {
			ids = append(ids, s.Step.ID+"/"+s.Action.Type)
		}
		offered = append(offered, ids)
		if fail {
			return nil, errors.New("throttled")
		}
		out := map[string]any{}
		for i, s := range steps {
			out[s.Step.ID] = int64(i)
		}
		return out, nil
	}}
	a := Step{V: MessageVersion, ID: "b-step", WS: testWS, Sub: testSub, Tunnel: "one", Channel: ChannelChat, Gen: 1, Block: "act", Action: 0, At: t0}
	b := a
	b.ID = "a-step"
	tags := a
	tags.ID, tags.Action = "tags-step", 1
	gone := a
	gone.ID, gone.Tunnel = "gone", "missing"

	ctx := p.BeforeBatch(context.Background(), []Step{a, tags, b, gone})
	if want := [][]string{{"a-step/mark_unread", "b-step/mark_unread"}}; !reflect.DeepEqual(offered, want) {
		t.Fatalf("offered %v, want %v (only its type, in step id order)", offered, want)
	}
	for _, s := range []Step{a, b} {
		if err := p.Process(ctx, s, 1); err != nil {
			t.Fatal(err)
		}
	}
	if want := map[string]any{"a-step": int64(0), "b-step": int64(1)}; !reflect.DeepEqual(seen, want) {
		t.Errorf("prepared values seen %v, want %v", seen, want)
	}

	// A failing preparation leaves the steps unprepared; they still run.
	fail, offered = true, nil
	c := a
	c.ID = "c-step"
	ctx = p.BeforeBatch(context.Background(), []Step{c})
	if err := p.Process(ctx, c, 1); err != nil {
		t.Fatal(err)
	}
	if len(offered) != 1 || seen["c-step"] != nil {
		t.Errorf("after a failed preparation: offered %v, prepared %v; want offered once, nil", offered, seen["c-step"])
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if !reflect.DeepEqual(ids, []string{"a-step", "b-step", "c-step"}) {
		t.Errorf("ran %v", ids)
	}
}
