package engine

import (
	"context"
	"fmt"
)

// A tunnel's counters, kept so the console can show per-block figures
// without reading journeys. Counter names (values add up):
//
//	d#<block>, s#<block>, f#<block>   steps of the block done, skipped, failed
//	e#<block>                         steps that entered the block (waiting = e - d - s - f)
//	b#<block>#<branch>                condition and split branches taken
//	runs, ended                       runs begun and ended (active = runs - ended)
//
// They are counted after a step's record, so a crash between the two loses
// that step's counts (nothing is ever counted twice).

// StatsSink takes a finished step's counts (the step functions buffer them
// and write once per batch).
type StatsSink interface {
	Count(ws, tunnel string, counters map[string]int64)
}

var statusKey = map[string]string{StatusDone: "d#", StatusSkipped: "s#", StatusFailed: "f#"}

// countStep counts a finished step s, its outcome and its children.
func (p *Processor) countStep(ctx context.Context, s Step, sub *Subscriber, rec StepRecord, out Outcome, children []Outgoing, ended bool) {
	if p.Stats == nil {
		return
	}
	own := map[string]int64{}
	add := func(m map[string]int64, k string, n int64) {
		if n != 0 {
			m[k] += n
		}
	}
	add(own, statusKey[rec.Status]+s.Block, 1)
	entered := int64(out.RunDelta)
	if s.Phase == PhaseReply {
		entered++ // an answer entered the block from outside
	}
	add(own, "e#"+s.Block, entered)
	if rec.Type == "condition" || rec.Type == "split" {
		if b, ok := rec.Detail["branch"]; ok {
			add(own, fmt.Sprintf("b#%s#%v", s.Block, b), 1)
		}
	}
	others := map[string]map[string]int64{}
	for _, c := range children {
		m := own
		if c.Step.Tunnel != s.Tunnel {
			if others[c.Step.Tunnel] == nil {
				others[c.Step.Tunnel] = map[string]int64{}
			}
			m = others[c.Step.Tunnel]
		}
		add(m, "e#"+c.Step.Block, 1)
		if c.Step.Tunnel != s.Tunnel || c.Step.Channel != s.Channel || c.Step.Gen != s.Gen {
			add(m, "runs", 1) // the first step of another run (START, an email run)
		}
	}
	if sub.Runs[RunKey(s.Tunnel, s.Channel)].Gen > s.Gen {
		// A later generation replaced this one: it ends here, once.
		superseded, err := p.Store.EndRun(ctx, s.WS, s.Sub, s.Tunnel, s.Channel, s.Gen, true)
		if err != nil {
			p.log().Warn("count the run's end", "error", err)
		}
		ended = ended || superseded
	}
	if ended {
		add(own, "ended", 1)
	}
	p.Stats.Count(s.WS, s.Tunnel, own)
	for t, m := range others {
		p.Stats.Count(s.WS, t, m)
	}
}
