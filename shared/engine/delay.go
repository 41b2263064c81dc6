package engine

import (
	"fmt"
	"time"

	"github.com/tunnels/tunnels/shared/schedule"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// delay ends a delay block's step: its next blocks are made now, due when
// the wait is over. A delay with a window does not trust a time computed
// days ahead: it sends a wake-up step of its own block, which checks the
// window again when it arrives (a late delivery, or a window edited in the
// meantime) and waits for the next opening if the window has closed.
func (p *Processor) delay(ac *ActionContext, claim Claim) (Outcome, []Outgoing) {
	s, b, t, sub := ac.Step, ac.Block, ac.Tunnel, ac.Subscriber
	now := claim.StartedAt
	detail := map[string]any{}
	if s.Phase == PhaseWake {
		if w, tz, ok := delayWindow(b, sub); ok && !w.Contains(now) {
			next := w.Next(now)
			detail["window"] = "closed"
			detail["timezone"] = tz
			detail["due_at"] = next
			again := childStep(s, DeriveID(s.ID, "wake"), s.Block, s.At, &next)
			again.Phase, again.Spin = PhaseWake, s.Spin
			return Done(detail), []Outgoing{{Kind: KindFlow, Step: again}}
		}
		detail["woke_at"] = now
		children := Advance(t, s, b.Next, now, nil)
		if now.Sub(s.At) >= tunnel.MinWaitSeconds*time.Second {
			for i := range children {
				children[i].Step.Spin = 0
			}
		}
		return Done(detail), children
	}

	due := now.Add(time.Duration(b.Seconds) * time.Second)
	detail["seconds"] = b.Seconds
	if u := b.Until; u != nil {
		at, why := untilTime(u, sub)
		if why != "" {
			return Skipped(why), nil
		}
		due = at.Add(time.Duration(u.OffsetSeconds) * time.Second)
		detail["until"] = due
		if due.Before(now) {
			detail["passed"] = true
			due = now
		}
		if due.Sub(now) > tunnel.MaxWaitSeconds*time.Second {
			out := Failed(fmt.Sprintf("the date %s is more than 365 days away", due.Format(time.RFC3339)))
			out.Detail = detail
			return out, nil
		}
	}
	waited := due.Sub(now) >= tunnel.MinWaitSeconds*time.Second
	if w, tz, ok := delayWindow(b, sub); ok {
		next := w.Next(due)
		detail["timezone"] = tz
		detail["due_at"] = next
		if !next.After(now) {
			detail["window"] = "open"
			return Done(detail), Advance(t, s, b.Next, now, nil)
		}
		wake := childStep(s, DeriveID(s.ID, "wake"), s.Block, now, &next)
		wake.Phase = PhaseWake
		if next.Sub(now) >= tunnel.MinWaitSeconds*time.Second {
			wake.Spin = 0
		}
		return Done(detail), []Outgoing{{Kind: KindFlow, Step: wake}}
	}
	detail["due_at"] = due
	children := Advance(t, s, b.Next, now, &due)
	if waited {
		for i := range children {
			children[i].Step.Spin = 0 // the run waited: a drip, not a spin
		}
	}
	return Done(detail), children
}

// delayWindow is the block's window in the zone it names ("subscriber": the
// subscriber's own, UTC when unknown or invalid).
func delayWindow(b *tunnel.Block, sub *Subscriber) (schedule.Window, string, bool) {
	if b.Window == nil {
		return schedule.Window{}, "", false
	}
	loc, tz := subscriberZone(b.Window.Timezone, sub)
	w, err := schedule.NewWindow(loc, b.Window.Hours, b.Window.Weekdays)
	if err != nil {
		return schedule.Window{}, "", false // validated when saved; an invalid window does not hold the run
	}
	return w, tz, true
}

func subscriberZone(name string, sub *Subscriber) (*time.Location, string) {
	if name == "subscriber" {
		name = sub.Timezone
	}
	if loc, err := schedule.LoadLocation(name); err == nil {
		return loc, name
	}
	return time.UTC, "UTC"
}

// untilTime is the date a delay waits for, or why it cannot wait for it.
func untilTime(u *tunnel.Until, sub *Subscriber) (time.Time, string) {
	if u.At != "" {
		at, err := time.Parse(time.RFC3339, u.At)
		if err != nil {
			return time.Time{}, fmt.Sprintf("until.at %q is not a date-time", u.At)
		}
		return at, ""
	}
	v, ok := sub.Fields[u.Field].(string)
	if !ok || v == "" {
		return time.Time{}, fmt.Sprintf("field %q is not set: there is no date to wait for, so the branch ends here", u.Field)
	}
	loc, _ := subscriberZone("subscriber", sub)
	at, err := schedule.DateValue(v, loc)
	if err != nil {
		return time.Time{}, fmt.Sprintf("field %q holds %q, which is not a date", u.Field, v)
	}
	return at, ""
}
