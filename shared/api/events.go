package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/schedule"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// eventInput is an inbound channel event (SPEC section 8).
type eventInput struct {
	EventID    string `json:"event_id"`
	Type       string `json:"type"`
	Tunnel     string `json:"tunnel"`
	LeadSource string `json:"lead_source"`
	Block      string `json:"block"`
	Text       string `json:"text"`
	Button     string `json:"button"`
	Subscriber struct {
		Channel    string `json:"channel"`
		ExternalID string `json:"external_id"`
		FirstName  string `json:"first_name"`
		LastName   string `json:"last_name"`
		Email      string `json:"email"`
		Phone      string `json:"phone"`
		Timezone   string `json:"timezone"`
	} `json:"subscriber"`
}

type runRef struct {
	Tunnel     string `json:"tunnel"`
	Channel    string `json:"channel"`
	Generation int    `json:"generation"`
}

type eventAnswer struct {
	SubscriberID string  `json:"subscriber_id"`
	Run          *runRef `json:"run"`
}

// postEvent ingests an event: it upserts the subscriber, writes the state,
// records the event with its first steps, then enqueues them. Every write is
// idempotent, so a retry after a failure anywhere finishes the job; a repeat
// of a finished event answers the first answer and does nothing more.
func (s *Server) postEvent(r *http.Request, ws string) response {
	var in eventInput
	if res, good := readBody(r, &in); !good {
		return res
	}
	v := &validator{s: s, r: r, ws: ws}
	in.validate(v)
	if len(v.errs) > 0 {
		return invalid(summary(v.errs), v.errs...)
	}
	return s.ingest(r, ws, &in)
}

// ingest runs a valid event (from POST /v1/events or a built-in channel).
func (s *Server) ingest(r *http.Request, ws string, in *eventInput) response {
	ctx := r.Context()
	if rec, err := s.Store.GetEvent(ctx, ws, in.EventID); err == nil {
		return s.finishEvent(r, ws, in.EventID, rec)
	} else if !errors.Is(err, engine.ErrNotFound) {
		return internalErr(err)
	}

	// Resolve the tunnel before writing anything: an unknown one is the client's error.
	var target *tunnel.Tunnel
	tunnelID := in.Tunnel
	if in.Type == "subscribe" && tunnelID == "" {
		tunnelID = "default"
		if in.LeadSource != "" {
			e, err := s.Store.GetEntity(ctx, ws, store.KindLeadSource, in.LeadSource)
			if errors.Is(err, engine.ErrNotFound) {
				return invalid("unknown lead source", FieldError{Pointer: "/lead_source", Detail: fmt.Sprintf("unknown lead source %q", in.LeadSource)})
			} else if err != nil {
				return internalErr(err)
			}
			var ls struct {
				Tunnel string `json:"tunnel"`
			}
			_ = json.Unmarshal(e.Doc, &ls)
			if ls.Tunnel != "" {
				tunnelID = ls.Tunnel
			}
		}
	}
	if in.Type != "message" && in.Type != "button" {
		t, err := s.Store.Tunnel(ctx, ws, tunnelID)
		if errors.Is(err, engine.ErrNotFound) {
			return invalid("unknown tunnel", FieldError{Pointer: "/tunnel", Detail: fmt.Sprintf("unknown tunnel %q", tunnelID)})
		} else if err != nil {
			return internalErr(err)
		}
		target = t
		if in.Block != "" {
			if _, found := t.Block(in.Block); !found {
				return invalid("unknown block", FieldError{Pointer: "/block", Detail: fmt.Sprintf("block %q does not exist in tunnel %q", in.Block, tunnelID)})
			}
		}
	}

	sub := in.Subscriber
	subID, err := s.Store.UpsertSubscriber(ctx, ws, engine.Identity{Channel: sub.Channel, ExternalID: sub.ExternalID},
		store.Profile{FirstName: sub.FirstName, LastName: sub.LastName, Email: sub.Email, Phone: sub.Phone, Timezone: sub.Timezone})
	if err != nil {
		return internalErr(err)
	}
	now := s.now()
	answer := eventAnswer{SubscriberID: subID}
	var steps []engine.Outgoing
	switch in.Type {
	case "message", "button":
		var reply *engine.Outgoing
		var text string
		reply, text, err = s.answer(r, ws, subID, in, now)
		if err != nil {
			break
		}
		err = s.Store.RecordInbound(ctx, ws, subID, engine.ChatMessage{
			ID: "in" + engine.DeriveID(ws, "event", in.EventID), Direction: "inbound", Text: text, CreatedAt: now,
		})
		if err == nil && reply != nil {
			steps = append(steps, *reply)
			answer.Run = &runRef{Tunnel: reply.Step.Tunnel, Channel: engine.ChannelChat, Generation: reply.Step.Gen}
		}
	default:
		block := in.Block
		if block == "" {
			block = target.Entry
		}
		pending := 0
		if block != "" && len(target.Blocks) > 0 {
			pending = 1
		}
		var gen int
		gen, err = s.Store.StartRun(ctx, ws, subID, engine.RunStart{
			Tunnel: tunnelID, Channel: engine.ChannelChat, Recorded: in.Type == "subscribe",
			By: "event:" + in.EventID, At: now, Pending: pending,
		})
		if err != nil {
			break
		}
		answer.Run = &runRef{Tunnel: tunnelID, Channel: engine.ChannelChat, Generation: gen}
		if pending == 1 {
			first := engine.Step{
				V: engine.MessageVersion, ID: engine.DeriveID(ws, "event", in.EventID, tunnelID, block),
				WS: ws, Sub: subID, Tunnel: tunnelID, Channel: engine.ChannelChat, Gen: gen, Block: block, At: now,
			}
			steps = append(steps, engine.Outgoing{Kind: engine.StepKind(target, first), Step: first})
		}
	}
	if err != nil {
		return internalErr(err)
	}
	body, _ := json.Marshal(answer)
	rec, err := s.Store.PutEvent(ctx, ws, in.EventID, store.EventRecord{Answer: body, Steps: steps})
	if err != nil {
		return internalErr(err)
	}
	return s.finishEvent(r, ws, in.EventID, rec)
}

// answer finds the wait an inbound message or button press answers and makes
// the reply step that resumes it (nil when it answers nothing: a message is
// then only a chat message). Among several waits that the answer fits, the
// one asked last wins. Waits of a superseded run, stopped, or past their
// timeout are passed over. It also says what to store in the chat: the text,
// or the pressed button's label.
func (s *Server) answer(r *http.Request, ws, subID string, in *eventInput, now time.Time) (*engine.Outgoing, string, error) {
	ctx := r.Context()
	text := in.Text
	if in.Type == "button" {
		text = "[" + in.Button + "]"
	}
	sub, err := s.Store.Subscriber(ctx, ws, subID)
	if err != nil {
		return nil, text, err
	}
	var best *engine.Wait
	var bestBlock *tunnel.Block
	for _, w := range sub.Waits {
		if !w.Open() || (w.Until != nil && !now.Before(*w.Until)) {
			continue
		}
		if in.Type == "button" && ((in.Block != "" && w.Block != in.Block) || (in.Tunnel != "" && w.Tunnel != in.Tunnel)) {
			continue
		}
		if run, ok := sub.Runs[engine.RunKey(w.Tunnel, engine.ChannelChat)]; ok && run.Gen > w.Gen {
			continue
		}
		t, err := s.Store.Tunnel(ctx, ws, w.Tunnel)
		if errors.Is(err, engine.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, text, err
		}
		b, ok := t.Block(w.Block)
		if !ok || !engine.Answers(b, in.Button, in.Text) {
			continue
		}
		probe := engine.ReplyStep(ws, subID, in.EventID, w, engine.Input{})
		if _, stopped := engine.Stopped(t, probe, sub.Stops[w.Tunnel]); stopped {
			continue
		}
		if best == nil || w.AskedAt.After(best.AskedAt) {
			w := w
			best, bestBlock = &w, b
		}
	}
	if best == nil {
		return nil, text, nil
	}
	if bt, ok := bestBlock.Button(in.Button); ok {
		text = bt.Text
	}
	step := engine.ReplyStep(ws, subID, in.EventID, *best, engine.Input{Button: in.Button, Text: in.Text})
	return &engine.Outgoing{Kind: engine.KindFlow, Step: step}, text, nil
}

// finishEvent enqueues an event's first steps if that has not happened yet
// and answers the recorded answer.
func (s *Server) finishEvent(r *http.Request, ws, id string, rec store.EventRecord) response {
	if !rec.Enqueued && len(rec.Steps) > 0 {
		if err := s.Queue.Send(r.Context(), s.now(), rec.Steps); err != nil {
			return internalErr(err)
		}
		// A run's first step entered its block (a reply is counted when it runs).
		for _, o := range rec.Steps {
			if o.Step.Phase == "" {
				if err := s.Store.AddStats(r.Context(), ws, o.Step.Tunnel, map[string]int64{"e#" + o.Step.Block: 1, "runs": 1}); err != nil {
					s.log().Warn("count a run's start", "error", err)
				}
			}
		}
		if err := s.Store.MarkEventEnqueued(r.Context(), ws, id); err != nil {
			return internalErr(err)
		}
	}
	return status(http.StatusAccepted, json.RawMessage(rec.Answer))
}

func (in *eventInput) validate(v *validator) {
	if in.EventID == "" || len(in.EventID) > 200 {
		v.add("/event_id", "an event_id of 1 to 200 characters is required")
	}
	switch in.Type {
	case "subscribe":
		if in.Block != "" {
			v.add("/block", "a subscribe event starts at the entry block; use a start event to start at a block")
		}
	case "start":
		if in.Tunnel == "" {
			v.add("/tunnel", "a start event needs a tunnel")
		}
		if in.LeadSource != "" {
			v.add("/lead_source", "a start event takes no lead_source")
		}
	case "message":
		if strings.TrimSpace(in.Text) == "" {
			v.add("/text", "a message event needs text")
		}
		for ptr, val := range map[string]string{"/tunnel": in.Tunnel, "/block": in.Block, "/lead_source": in.LeadSource} {
			if val != "" {
				v.add(ptr, "a message event takes no %s", ptr[1:])
			}
		}
	case "button":
		if in.Button == "" {
			v.add("/button", "a button event needs the id of the pressed button")
		}
		if in.Block == "" {
			v.add("/block", "a button event needs the block whose button was pressed")
		} else if !validID(in.Block) {
			v.add("/block", "%q is not a valid block id", in.Block)
		}
		if in.LeadSource != "" {
			v.add("/lead_source", "a button event takes no lead_source")
		}
	default:
		v.add("/type", "type must be subscribe, message, button or start, not %q", in.Type)
	}
	if in.Type != "message" && in.Text != "" {
		v.add("/text", "only a message event carries text")
	}
	if in.Type != "button" && in.Button != "" {
		v.add("/button", "only a button event names a button")
	}
	if tz := in.Subscriber.Timezone; tz != "" {
		if err := schedule.ValidZone(tz); err != nil {
			v.add("/subscriber/timezone", "%v", err)
		}
	}
	if in.Tunnel != "" && !validID(in.Tunnel) {
		v.add("/tunnel", "%q is not a valid tunnel id", in.Tunnel)
	}
	sub := in.Subscriber
	if sub.Channel == "" || len(sub.Channel) > 64 || strings.ContainsAny(sub.Channel, ":#") {
		v.add("/subscriber/channel", "a channel name of 1 to 64 characters without ':' or '#' is required")
	}
	if sub.ExternalID == "" || len(sub.ExternalID) > 200 {
		v.add("/subscriber/external_id", "an external_id of 1 to 200 characters is required")
	}
	v.email("/subscriber/email", sub.Email, false)
	for ptr, val := range map[string]string{"/subscriber/first_name": sub.FirstName, "/subscriber/last_name": sub.LastName, "/subscriber/phone": sub.Phone} {
		if len(val) > 200 {
			v.add(ptr, "at most 200 characters")
		}
	}
}
