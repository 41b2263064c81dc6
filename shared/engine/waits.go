package engine

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// A message block with buttons or a reply waits for the subscriber. Its step
// opens a Wait on the profile (before the message leaves, so the fastest
// answer finds it), sends the message, and makes one child: the timeout step,
// due when the reply's timeout runs out. An inbound event that answers the
// wait becomes a reply step (see ReplyStep). Replies and the timeout all end
// the wait with one conditional write (Store.EndWait): whichever ends it goes
// on, every other one is recorded skipped. A duplicate of any of them is a
// duplicate step, deduplicated by its claim like every step.

// ask sends a waiting message and opens its wait; a re-ask (after an invalid
// reply) sends the message again under the same wait.
func (p *Processor) ask(ctx context.Context, ac *ActionContext, claim Claim) (Outcome, []Outgoing, error) {
	s, b := ac.Step, ac.Block
	key := WaitKey(s.Tunnel, s.Block)
	var children []Outgoing
	var until *time.Time
	// The wait holds one pending count of the run: the timeout step when
	// there is one, else this step's own count, kept (+1). An ask that
	// replaces an open wait ends it and takes over its count (-1).
	holds, takeOver := 0, 0
	if s.Phase != PhaseReask {
		w := Wait{ID: s.ID, Tunnel: s.Tunnel, Block: s.Block, Gen: s.Gen, At: s.At, AskedAt: claim.FirstAt}
		if r := b.Reply; r != nil && r.TimeoutSeconds > 0 {
			due := claim.FirstAt.Add(time.Duration(r.TimeoutSeconds) * time.Second)
			w.Until, until = &due, &due
			child := childStep(s, DeriveID(s.ID, "timeout"), s.Block, claim.StartedAt, &due)
			child.Phase, child.Input = PhaseTimeout, &Input{Wait: s.ID}
			if r.TimeoutSeconds >= tunnel.MinWaitSeconds {
				child.Spin = 0
			}
			children = append(children, Outgoing{Kind: KindFlow, Step: child})
		}
		old, had := ac.Subscriber.Waits[key]
		switch {
		case had && old.ID == s.ID:
			w.Replaced = old.Replaced // a retry: the wait is stored already
		default:
			prev := ""
			if had && old.Open() {
				w.Replaced, prev = true, old.ID
			}
			if err := p.Store.OpenWait(ctx, s.WS, s.Sub, w, prev); err != nil {
				return Outcome{}, nil, fmt.Errorf("open wait: %w", err)
			}
		}
		if len(children) == 0 {
			holds = 1
		}
		if w.Replaced {
			takeOver = -1
		}
	}
	out, err := p.message(ctx, ac, claim)
	if err != nil {
		return Outcome{}, nil, err
	}
	if out.Status != StatusDone {
		// Nobody saw the question: nothing to wait for.
		if s.Phase != PhaseReask {
			if _, err := p.Store.EndWait(ctx, s.WS, s.Sub, key, s.ID, s.ID, "undelivered"); err != nil {
				return Outcome{}, nil, fmt.Errorf("end wait: %w", err)
			}
		}
		out.RunDelta = takeOver // no wait holds a count; a replaced one's is taken over
		return out, nil, nil
	}
	waiting := map[string]any{"reply": b.Reply != nil}
	if len(b.Buttons) > 0 {
		ids := make([]any, len(b.Buttons))
		for i, bt := range b.Buttons {
			ids[i] = bt.ID
		}
		waiting["buttons"] = ids
	}
	if until != nil {
		waiting["timeout_at"] = *until
	}
	out.Detail["waiting"] = waiting
	if s.Phase == PhaseReask {
		out.Detail["reask"] = true
	}
	out.RunDelta = holds + takeOver
	return out, children, nil
}

// ReplyStep is the step that brings a subscriber's answer to wait w: it runs
// at the waiting block, in the wait's run, with the wait's origin time (a STOP
// that covers the wait covers the answer too). Its id derives from the inbound
// event, so the event's retries make the same step.
func ReplyStep(ws, sub, eventID string, w Wait, in Input) Step {
	in.Wait = w.ID
	return Step{
		V: MessageVersion, ID: DeriveID(ws, "event", eventID, "reply"), WS: ws, Sub: sub,
		Tunnel: w.Tunnel, Channel: ChannelChat, Gen: w.Gen, Block: w.Block, At: w.At,
		Phase: PhaseReply, Input: &in,
	}
}

// Answers reports whether an inbound text or button press answers wait w of
// block b: a button of the block, a text equal to a button's label, or any
// text when the block takes a reply.
func Answers(b *tunnel.Block, button, text string) bool {
	if button != "" {
		_, ok := b.Button(button)
		return ok
	}
	return b.Reply != nil || labelled(b, text) != nil
}

// labelled finds the button whose label the text repeats (channels without
// buttons show them as text, and people type what they read).
func labelled(b *tunnel.Block, text string) *tunnel.Button {
	t := strings.TrimSpace(text)
	for i := range b.Buttons {
		if t != "" && strings.EqualFold(strings.TrimSpace(b.Buttons[i].Text), t) {
			return &b.Buttons[i]
		}
	}
	return nil
}

// reply resumes a waiting block with the subscriber's answer.
func (p *Processor) reply(ctx context.Context, ac *ActionContext, claim Claim) (Outcome, []Outgoing, error) {
	s, b, sub, t := ac.Step, ac.Block, ac.Subscriber, ac.Tunnel
	in := s.Input
	if in == nil {
		return Failed("a reply step without an answer"), nil, nil
	}
	key := WaitKey(s.Tunnel, s.Block)
	w, ok := sub.Waits[key]
	if !ok || w.ID != in.Wait {
		return Skipped("the message this answers no longer waits (it was asked again, or its wait is gone)"), nil, nil
	}
	if !w.Open() && w.By != s.ID {
		return Skipped(endedBy(w)), nil, nil
	}
	end := func(how string) (bool, error) {
		ok, err := p.Store.EndWait(ctx, s.WS, s.Sub, key, w.ID, s.ID, how)
		if err != nil {
			return false, fmt.Errorf("end wait: %w", err)
		}
		return ok, nil
	}

	btn := (*tunnel.Button)(nil)
	if in.Button != "" {
		var found bool
		if btn, found = b.Button(in.Button); !found {
			return Skipped(fmt.Sprintf("block %q has no button %q", s.Block, in.Button)), nil, nil
		}
	} else {
		btn = labelled(b, in.Text)
	}
	if btn != nil {
		if ok, err := end("button"); err != nil || !ok {
			return Skipped("the wait was ended by another answer or the timeout"), nil, err
		}
		out := Done(map[string]any{"wait": w.ID, "button": btn.ID, "label": btn.Text})
		out.RunDelta = -1 // the wait's pending count ends with it
		return out, Advance(t, s, btn.Next, claim.StartedAt, nil), nil
	}
	r := b.Reply
	if r == nil {
		return Skipped("this message waits for a button press, and the text is none of its buttons"), nil, nil
	}
	value, problem := validReply(r.Validate, in.Text)
	if problem != "" {
		n, open, err := p.Store.CountInvalid(ctx, s.WS, s.Sub, key, w.ID, s.ID)
		if err != nil {
			return Outcome{}, nil, fmt.Errorf("count invalid reply: %w", err)
		}
		if !open {
			return Skipped("the wait was ended by another answer or the timeout"), nil, nil
		}
		detail := map[string]any{"wait": w.ID, "reply": clip(in.Text), "valid": false, "problem": problem, "invalid_replies": n}
		if n >= tunnel.MaxReplyAttempts {
			if ok, err := end("invalid"); err != nil || !ok {
				return Skipped("the wait was ended by another answer or the timeout"), nil, err
			}
			detail["took"] = "on_timeout"
			out := Done(detail)
			out.RunDelta = -1
			return out, Advance(t, s, r.OnTimeout, claim.StartedAt, nil), nil
		}
		detail["took"] = "reask"
		out := Done(detail)
		again := childStep(s, DeriveID(s.ID, "reask"), s.Block, claim.StartedAt, nil)
		again.Phase = PhaseReask
		return out, []Outgoing{{Kind: KindFlow, Step: again}}, nil
	}
	if ok, err := end("reply"); err != nil || !ok {
		return Skipped("the wait was ended by another answer or the timeout"), nil, err
	}
	detail := map[string]any{"wait": w.ID, "reply": clip(in.Text), "valid": true}
	if r.Field != "" {
		stored, err := p.storeReply(ctx, s, r.Field, value)
		if err != nil {
			return Outcome{}, nil, err
		}
		detail["field"] = r.Field
		if stored != nil {
			detail["value"] = stored
		} else {
			detail["field_missing"] = true
		}
	}
	out := Done(detail)
	out.RunDelta = -1
	return out, Advance(t, s, r.Next, claim.StartedAt, nil), nil
}

// storeReply writes a valid answer to the reply's field, converted to its
// type; nil when the field no longer exists.
func (p *Processor) storeReply(ctx context.Context, s Step, field, text string) (any, error) {
	if p.Fields == nil {
		return nil, nil
	}
	typ, err := p.Fields.FieldType(ctx, s.WS, field)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read field: %w", err)
	}
	value, err := fields.Convert(typ, text)
	if err != nil {
		value = text // a string field, or a field whose type changed since the save
		if typ != fields.String {
			return nil, nil
		}
	}
	if err := p.Fields.SetFields(ctx, s.WS, s.Sub, map[string]any{field: value}); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store reply: %w", err)
	}
	return value, nil
}

// replyTimeout ends a wait nobody answered in time.
func (p *Processor) replyTimeout(ctx context.Context, ac *ActionContext, claim Claim) (Outcome, []Outgoing, error) {
	s, b, sub := ac.Step, ac.Block, ac.Subscriber
	if s.Input == nil {
		return Failed("a timeout step without its wait"), nil, nil
	}
	key := WaitKey(s.Tunnel, s.Block)
	w, ok := sub.Waits[key]
	// A timeout that does not end its wait has no count of its own: the
	// step that ended the wait (or the ask that replaced it) took it.
	if !ok || w.ID != s.Input.Wait {
		out := Skipped("the message was asked again; this timeout belonged to an earlier ask")
		out.RunDelta = 1
		return out, nil, nil
	}
	if !w.Open() && w.By != s.ID {
		out := Skipped(endedBy(w))
		out.RunDelta = 1
		return out, nil, nil
	}
	ended, err := p.Store.EndWait(ctx, s.WS, s.Sub, key, w.ID, s.ID, "timeout")
	if err != nil {
		return Outcome{}, nil, fmt.Errorf("end wait: %w", err)
	}
	if !ended {
		out := Skipped("answered before the timeout")
		out.RunDelta = 1
		return out, nil, nil
	}
	var next []string
	if b.Reply != nil {
		next = b.Reply.OnTimeout
	}
	return Done(map[string]any{"wait": w.ID, "timeout": true}), Advance(ac.Tunnel, s, next, claim.StartedAt, nil), nil
}

func endedBy(w Wait) string {
	switch w.How {
	case "timeout":
		return "the wait had already timed out"
	case "button":
		return "a button of this message was already pressed"
	case "reply":
		return "this message was already answered"
	case "invalid":
		return "the wait had already ended after too many invalid replies"
	}
	return "the wait had already ended"
}

// validReply checks an answer against the reply's validate: the value to
// store, or a problem saying what is wrong with it.
func validReply(validate, text string) (string, string) {
	t := strings.TrimSpace(text)
	if t == "" {
		return "", "the reply is empty"
	}
	switch validate {
	case tunnel.ValidateEmail:
		a, err := mail.ParseAddress(t)
		if err != nil || a.Address != t || !strings.Contains(t[strings.LastIndexByte(t, '@')+1:], ".") {
			return "", fmt.Sprintf("%q is not an email address", clip(t))
		}
		return t, ""
	case tunnel.ValidatePhone:
		digits := 0
		for i, r := range t {
			switch {
			case r >= '0' && r <= '9':
				digits++
			case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')', r == '.':
			default:
				return "", fmt.Sprintf("%q is not a phone number", clip(t))
			}
		}
		if digits < 7 || digits > 15 {
			return "", fmt.Sprintf("%q is not a phone number (7 to 15 digits)", clip(t))
		}
		return t, ""
	case tunnel.ValidateNumber:
		n := strings.ReplaceAll(strings.ReplaceAll(t, " ", ""), ",", ".")
		if _, err := strconv.ParseFloat(n, 64); err != nil {
			return "", fmt.Sprintf("%q is not a number", clip(t))
		}
		return n, ""
	}
	return text, ""
}

func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(c byte) bool { return c&0xC0 != 0x80 }
