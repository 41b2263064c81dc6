package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

type identityView struct {
	Channel    string `json:"channel"`
	ExternalID string `json:"external_id"`
}

type runView struct {
	Tunnel     string `json:"tunnel"`
	Channel    string `json:"channel"`
	Generation int    `json:"generation"`
	Recorded   bool   `json:"recorded"`
	Status     string `json:"status"`
}

type cardView struct {
	ID           string         `json:"id"`
	FirstName    string         `json:"first_name"`
	LastName     string         `json:"last_name"`
	Email        string         `json:"email"`
	Phone        string         `json:"phone"`
	Channels     []identityView `json:"channels"`
	Tags         []string       `json:"tags"`
	Fields       map[string]any `json:"fields"`
	EmailAccount any            `json:"email_account"`
	SalesPlans   []planView     `json:"sales_plans"`
	CRM          map[string]any `json:"crm"`
	Runs         []runView      `json:"runs"`
	Timezone     string         `json:"timezone"`
	Waits        []waitView     `json:"waits"`
	PausedUntil  *Time          `json:"paused_until"`
	Unreachable  []string       `json:"unreachable"`
}

// waitView is a message block waiting for the subscriber's answer.
type waitView struct {
	Tunnel     string `json:"tunnel"`
	Block      string `json:"block"`
	Generation int    `json:"generation"`
	AskedAt    Time   `json:"asked_at"`
	TimeoutAt  *Time  `json:"timeout_at"`
}

func (s *Server) getSubscriber(r *http.Request, ws string) response {
	id := r.PathValue("id")
	card, err := s.Store.GetCard(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	sub := card.Subscriber
	v := cardView{
		ID: sub.ID, FirstName: sub.FirstName, LastName: sub.LastName, Email: sub.Email, Phone: sub.Phone,
		Channels: []identityView{}, Tags: sub.Tags, Fields: sub.Fields, SalesPlans: []planView{},
		CRM:  map[string]any{"amo_contact_id": nil, "amo_lead_ids": []int64{}},
		Runs: []runView{}, Timezone: sub.Timezone, Waits: []waitView{}, Unreachable: []string{},
	}
	if sub.PausedUntil.After(s.now()) {
		t := Time(sub.PausedUntil)
		v.PausedUntil = &t
	}
	for ch := range sub.Unreachable {
		v.Unreachable = append(v.Unreachable, ch)
	}
	sort.Strings(v.Unreachable)
	for _, w := range sub.Waits {
		if !w.Open() {
			continue
		}
		wv := waitView{Tunnel: w.Tunnel, Block: w.Block, Generation: w.Gen, AskedAt: Time(w.AskedAt)}
		if w.Until != nil {
			t := Time(*w.Until)
			wv.TimeoutAt = &t
		}
		v.Waits = append(v.Waits, wv)
	}
	sort.Slice(v.Waits, func(i, j int) bool { return time.Time(v.Waits[i].AskedAt).Before(time.Time(v.Waits[j].AskedAt)) })
	if a := sub.EmailAccount; a != nil {
		var lead *string // null when the account came through no lead source
		if a.LeadSource != "" {
			lead = &a.LeadSource
		}
		v.EmailAccount = emailAccountView{Email: a.Email, EmailBot: a.EmailBot, LeadSource: lead,
			Tunnel: a.Tunnel, Unsubscribed: a.Unsubscribed, CreatedAt: Time(a.CreatedAt)}
	}
	for _, m := range sub.Plans {
		v.SalesPlans = append(v.SalesPlans, planView{Plan: m.Plan, Status: m.Status, Operator: optional(m.Operator)})
	}
	sort.Slice(v.SalesPlans, func(i, j int) bool { return v.SalesPlans[i].Plan < v.SalesPlans[j].Plan })
	if sub.CRM.AmoContactID != 0 {
		v.CRM["amo_contact_id"] = sub.CRM.AmoContactID
	}
	if len(sub.CRM.AmoLeadIDs) > 0 {
		v.CRM["amo_lead_ids"] = sub.CRM.AmoLeadIDs
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	for _, c := range sub.Channels {
		v.Channels = append(v.Channels, identityView{Channel: c.Channel, ExternalID: c.ExternalID})
	}
	for _, run := range sub.Runs {
		v.Runs = append(v.Runs, runView{
			Tunnel: run.Tunnel, Channel: run.Channel, Generation: run.Gen, Recorded: run.Recorded,
			Status: run.Status(sub.Stops[run.Tunnel]),
		})
	}
	sort.Slice(v.Runs, func(i, j int) bool {
		a, b := v.Runs[i], v.Runs[j]
		if a.Tunnel != b.Tunnel {
			return a.Tunnel < b.Tunnel
		}
		return a.Channel < b.Channel
	})
	return ok(v)
}

type emailAccountView struct {
	Email        string  `json:"email"`
	EmailBot     string  `json:"email_bot"`
	LeadSource   *string `json:"lead_source"`
	Tunnel       string  `json:"tunnel"`
	Unsubscribed bool    `json:"unsubscribed"`
	CreatedAt    Time    `json:"created_at"`
}

type planView struct {
	Plan     string  `json:"plan"`
	Status   string  `json:"status"`
	Operator *string `json:"operator"`
}

type journeyView struct {
	StepID     string         `json:"step_id"`
	Tunnel     string         `json:"tunnel"`
	Channel    string         `json:"channel"`
	Generation int            `json:"generation"`
	Block      string         `json:"block"`
	Action     *int           `json:"action"`
	Type       string         `json:"type"`
	Status     string         `json:"status"`
	Reason     string         `json:"reason"`
	Attempts   int            `json:"attempts"`
	StartedAt  Time           `json:"started_at"`
	FinishedAt Time           `json:"finished_at"`
	Detail     map[string]any `json:"detail"`
}

// actionTypes are the types of action steps (the others are block types).
var blockTypes = map[string]bool{"message": true, "delay": true, "action": true, "condition": true, "split": true, "unknown": true}

func (s *Server) getJourney(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if res, found := s.subscriberExists(r, ws, id); !found {
		return res
	}
	p, res, good := page(r)
	if !good {
		return res
	}
	recs, next, err := s.Store.Journey(r.Context(), ws, id, p)
	if err != nil {
		return listErr(err)
	}
	steps := make([]journeyView, 0, len(recs))
	for _, rec := range recs {
		jv := journeyView{
			StepID: rec.Step.ID, Tunnel: rec.Step.Tunnel, Channel: rec.Step.Channel, Generation: rec.Step.Gen,
			Block: rec.Step.Block, Type: rec.Type, Status: rec.Status, Reason: rec.Reason, Attempts: rec.Attempts,
			StartedAt: Time(rec.StartedAt), FinishedAt: Time(rec.FinishedAt), Detail: rec.Detail,
		}
		if !blockTypes[rec.Type] {
			a := rec.Step.Action
			jv.Action = &a
		}
		if jv.Detail == nil {
			jv.Detail = map[string]any{}
		}
		steps = append(steps, jv)
	}
	return ok(map[string]any{"steps": steps, "next_cursor": next})
}

func (s *Server) subscriberExists(r *http.Request, ws, id string) (response, bool) {
	_, err := s.Store.Subscriber(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id)), false
	}
	if err != nil {
		return internalErr(err), false
	}
	return response{}, true
}

type chatMessageView struct {
	ID        string `json:"id"`
	Direction string `json:"direction"`
	Text      string `json:"text"`
	Tunnel    string `json:"tunnel,omitempty"`
	Block     string `json:"block,omitempty"`
	StepID    string `json:"step_id,omitempty"`
	Operator  string `json:"operator,omitempty"`
	Delivery  string `json:"delivery,omitempty"`
	Unread    bool   `json:"unread"`
	CreatedAt Time   `json:"created_at"`
}

func viewChat(m engine.ChatMessage, unread bool) chatMessageView {
	return chatMessageView{
		ID: m.ID, Direction: m.Direction, Text: m.Text, Tunnel: m.Tunnel, Block: m.Block, StepID: m.StepID,
		Operator: m.Operator, Delivery: m.Delivery, Unread: unread, CreatedAt: Time(m.CreatedAt),
	}
}

func (s *Server) getChat(r *http.Request, ws string) response {
	id := r.PathValue("id")
	card, err := s.Store.GetCard(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	p, res, good := page(r)
	if !good {
		return res
	}
	msgs, next, err := s.Store.Chat(r.Context(), ws, id, p)
	if err != nil {
		return listErr(err)
	}
	last := ""
	if card.Unread {
		if m, err := s.Store.LastChatMessage(r.Context(), ws, id); err == nil && m != nil {
			last = m.ID
		}
	}
	out := make([]chatMessageView, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, viewChat(m, m.ID == last))
	}
	return ok(map[string]any{"messages": out, "next_cursor": next})
}

// patchChat reads the chat: {"unread": false} takes it off the unread tab.
func (s *Server) patchChat(r *http.Request, ws string) response {
	id := r.PathValue("id")
	var in struct {
		Unread *bool `json:"unread"`
	}
	if res, good := readBody(r, &in); !good {
		return res
	}
	if in.Unread == nil || *in.Unread {
		return invalid("/unread: only {\"unread\": false} is accepted", FieldError{Pointer: "/unread", Detail: "must be false: reading the chat clears its unread mark"})
	}
	err := s.Store.MarkRead(r.Context(), ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	return s.getChat(r, ws)
}

func (s *Server) listChats(r *http.Request, ws string) response {
	if f := r.URL.Query().Get("filter"); f != "unread" {
		return invalid("filter=unread is required", FieldError{Pointer: "", Detail: fmt.Sprintf("query parameter filter must be \"unread\", not %q", f)})
	}
	p, res, good := page(r)
	if !good {
		return res
	}
	subs, next, err := s.Store.UnreadChats(r.Context(), ws, p)
	if err != nil {
		return listErr(err)
	}
	chats := make([]map[string]any, 0, len(subs))
	for _, sub := range subs {
		var last any
		if m, err := s.Store.LastChatMessage(r.Context(), ws, sub.ID); err == nil && m != nil {
			last = viewChat(*m, true)
		}
		chats = append(chats, map[string]any{
			"subscriber_id": sub.ID, "first_name": sub.FirstName, "last_name": sub.LastName,
			"last_message": last, "unread": true,
		})
	}
	return ok(map[string]any{"chats": chats, "next_cursor": next})
}

func (s *Server) listMentions(r *http.Request, ws string) response {
	op := r.PathValue("id")
	if _, err := s.Store.GetEntity(r.Context(), ws, store.KindOperator, op); errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("operator %q", op))
	} else if err != nil {
		return internalErr(err)
	}
	p, res, good := page(r)
	if !good {
		return res
	}
	ms, next, err := s.Store.Mentions(r.Context(), ws, op, p)
	if err != nil {
		return listErr(err)
	}
	out := make([]map[string]any, 0, len(ms))
	for _, m := range ms {
		out = append(out, map[string]any{
			"id": m.Message.ID, "operator": op, "subscriber_id": m.SubscriberID, "comment": m.Message.Text,
			"chat_message_id": m.Message.ID, "created_at": Time(m.Message.CreatedAt),
		})
	}
	return ok(map[string]any{"mentions": out, "next_cursor": next})
}

// subscriberSummary is a subscriber as GET /v1/subscribers lists it.
type subscriberSummary struct {
	ID        string   `json:"id"`
	FirstName string   `json:"first_name"`
	LastName  string   `json:"last_name"`
	Email     string   `json:"email"`
	Phone     string   `json:"phone"`
	Channels  []string `json:"channels"`
	Tags      []string `json:"tags"`
	CreatedAt Time     `json:"created_at"`
}

// listSubscribers searches the workspace's subscribers (newest first) by
// name, email, phone, channel identity or id (q), and by tag.
func (s *Server) listSubscribers(r *http.Request, ws string) response {
	p, res, good := page(r)
	if !good {
		return res
	}
	q, tag := r.URL.Query().Get("q"), r.URL.Query().Get("tag")
	if len(q) > 200 {
		return invalid("q is too long", FieldError{Pointer: "", Detail: "query parameter q has at most 200 characters"})
	}
	if tag != "" && !validID(tag) {
		return invalid("bad tag", FieldError{Pointer: "", Detail: fmt.Sprintf("query parameter tag: %q is not a tag id", tag)})
	}
	found, next, err := s.Store.SearchSubscribers(r.Context(), ws, q, tag, p)
	if err != nil {
		return listErr(err)
	}
	out := make([]subscriberSummary, 0, len(found))
	for _, e := range found {
		out = append(out, subscriberSummary{ID: e.ID, FirstName: e.FirstName, LastName: e.LastName, Email: e.Email,
			Phone: e.Phone, Channels: e.Channels, Tags: e.Tags, CreatedAt: Time(e.CreatedAt)})
	}
	return ok(map[string]any{"subscribers": out, "next_cursor": next})
}
