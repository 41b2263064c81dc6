package engine

import (
	"context"
	"sort"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// PrepareFunc sees, before a batch of steps runs, every step of the batch
// whose action is of its type, and answers a value per step id that the
// action finds in ActionContext.Prepared. It lets the steps of a batch
// share one write instead of each taking its own on a shared item (a sales
// plan's round-robin position: one reservation of k slots). A step it
// answers nothing for, or every step when it fails, runs unprepared, so an
// action must also work without it.
type PrepareFunc func(ctx context.Context, steps []PreparedStep) (map[string]any, error)

// PreparedStep is a step with the action it will run.
type PreparedStep struct {
	Step   Step
	Action tunnel.Action
}

type preparedKey struct{}

// BeforeBatch runs the Prepare functions over a batch's steps and answers the
// context the batch's steps run with. Steps are offered in step id order.
func (p *Processor) BeforeBatch(ctx context.Context, steps []Step) context.Context {
	if len(p.Prepare) == 0 {
		return ctx
	}
	byType := map[string][]PreparedStep{}
	for _, s := range steps {
		t, err := p.Tunnels.Tunnel(ctx, s.WS, s.Tunnel)
		if err != nil {
			continue
		}
		b, ok := t.Block(s.Block)
		if !ok || b.Type != tunnel.BlockAction || s.Action >= len(b.Actions) || s.Phase != "" {
			continue
		}
		a := b.Actions[s.Action]
		if p.Prepare[a.Type] != nil {
			byType[a.Type] = append(byType[a.Type], PreparedStep{Step: s, Action: a})
		}
	}
	prepared := map[string]any{}
	for typ, group := range byType {
		sort.Slice(group, func(i, j int) bool { return group[i].Step.ID < group[j].Step.ID })
		vals, err := p.Prepare[typ](ctx, group)
		if err != nil {
			p.log().Warn("prepare a batch's steps; they run unprepared", "action", typ, "steps", len(group), "error", err)
			continue
		}
		for id, v := range vals {
			prepared[id] = v
		}
	}
	if len(prepared) == 0 {
		return ctx
	}
	return context.WithValue(ctx, preparedKey{}, prepared)
}

func preparedFor(ctx context.Context, id string) any {
	m, _ := ctx.Value(preparedKey{}).(map[string]any)
	return m[id]
}
