package engine

import (
	"strconv"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// StepKind is the kind of function that runs step s of tunnel t. A step whose
// block is gone runs anywhere (it only records "block removed"): KindFlow.
func StepKind(t *tunnel.Tunnel, s Step) Kind {
	if t == nil {
		return KindFlow
	}
	b, ok := t.Block(s.Block)
	if !ok {
		return KindFlow
	}
	switch b.Type {
	case "message":
		if s.Channel == ChannelEmail {
			return KindEmail
		}
		return KindFlow
	case "action":
		if s.Action >= 0 && s.Action < len(b.Actions) {
			return ActionKind(b.Actions[s.Action].Type)
		}
	}
	return KindFlow
}

// Advance makes the steps that follow parent into the blocks next, applying
// the priority rule: when next holds action blocks and other blocks, only the
// action blocks start now; the others are held until every one of those action
// blocks has completed (see Release). at is the children's origin time and due,
// when set, delays them.
func Advance(t *tunnel.Tunnel, parent Step, next []string, at time.Time, due *time.Time) []Outgoing {
	var actions, others []string
	for _, id := range next {
		if b, ok := t.Block(id); ok && b.Type == "action" {
			actions = append(actions, id)
		} else {
			others = append(others, id)
		}
	}
	var hold *Hold
	start := next
	if len(actions) > 0 && len(others) > 0 {
		hold = &Hold{Join: parent.ID, Actions: actions, Then: others, Spin: parent.Spin}
		start = actions
	}
	out := make([]Outgoing, 0, len(start))
	for _, id := range start {
		child := childStep(parent, DeriveID(parent.ID, "next", id), id, at, due)
		child.Hold = hold
		out = append(out, Outgoing{Kind: StepKind(t, child), Step: child})
	}
	return out
}

// Release makes the held blocks of h start: children of the step that
// completed the join. Their ids derive from the join, not from that step, so
// whichever sibling releases them, they are the same steps.
func Release(t *tunnel.Tunnel, parent Step, h *Hold, at time.Time) []Outgoing {
	out := make([]Outgoing, 0, len(h.Then))
	for _, id := range h.Then {
		child := childStep(parent, DeriveID(h.Join, "held", id), id, at, nil)
		child.Spin = h.Spin + 1
		out = append(out, Outgoing{Kind: StepKind(t, child), Step: child})
	}
	return out
}

// NextAction is the step of the following action of the same action block.
// It keeps the block's origin time and hold: the block is one unit of work.
func NextAction(t *tunnel.Tunnel, s Step) Outgoing {
	child := s
	child.ID = DeriveID(s.ID, "action", strconv.Itoa(s.Action+1))
	child.Action = s.Action + 1
	child.Due, child.Wait = nil, nil
	child.Spin = s.Spin + 1
	return Outgoing{Kind: StepKind(t, child), Step: child}
}

func childStep(parent Step, id, block string, at time.Time, due *time.Time) Step {
	return Step{
		V: MessageVersion, ID: id, WS: parent.WS, Sub: parent.Sub,
		Tunnel: parent.Tunnel, Channel: parent.Channel, Gen: parent.Gen,
		Block: block, Action: 0, At: at, Due: due, Spin: parent.Spin + 1,
	}
}

// Stopped tells whether a STOP marker drops step s of tunnel t.
func Stopped(t *tunnel.Tunnel, s Step, markers []StopMarker) (StopMarker, bool) {
	for _, m := range markers {
		if m.StepID != "" && m.StepID == s.ID {
			continue // the stop step itself, retried after writing its marker
		}
		if gen, ok := m.Gens[s.Channel]; ok && s.Gen > gen {
			continue // a sending begun after the STOP proceeds, whatever the clocks say
		}
		if m.Gens != nil && !hasGen(m, s.Channel) && s.Gen >= 1 {
			continue // the run did not exist when the STOP ran: it is a new sending
		}
		if s.At.After(m.At) {
			continue // came into being after the STOP: a new sending proceeds
		}
		if m.ByTunnel == s.Tunnel && m.ByChan == s.Channel && m.ByGen == s.Gen &&
			m.ByBlock == s.Block && s.Action > m.ByAction {
			continue // the stopping action block finishes its own list
		}
		if m.Block == "" {
			return m, true
		}
		if t != nil && t.Reachable(m.Block)[s.Block] {
			return m, true
		}
	}
	return StopMarker{}, false
}

func hasGen(m StopMarker, channel string) bool {
	_, ok := m.Gens[channel]
	return ok
}
