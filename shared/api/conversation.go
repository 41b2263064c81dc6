package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// Operators take over a conversation: they answer through the subscriber's
// channel and pause the tunnels' messages meanwhile.

// MaxPauseMinutes bounds a pause (30 days).
const MaxPauseMinutes = 43200

func (s *Server) conversationRoutes() []route {
	return []route{
		{"POST /v1/subscribers/{id}/chat", s.postOperatorMessage},
		{"POST /v1/subscribers/{id}/pause", s.pause},
		{"DELETE /v1/subscribers/{id}/pause", s.resume},
	}
}

// postOperatorMessage sends an operator's message through the channel the
// subscriber came through and stores it in the chat (which it marks read:
// the operator has read what they answer).
func (s *Server) postOperatorMessage(r *http.Request, ws string) response {
	id := r.PathValue("id")
	var in struct {
		Text     string `json:"text"`
		Operator string `json:"operator"`
	}
	if res, good := readBody(r, &in); !good {
		return res
	}
	v := &validator{s: s, r: r, ws: ws}
	switch n := utf8.RuneCountInString(in.Text); {
	case strings.TrimSpace(in.Text) == "":
		v.add("/text", "a text is required")
	case n > 4096:
		v.add("/text", "a message has at most 4096 characters, this one has %d", n)
	}
	if in.Operator == "" {
		v.add("/operator", "the operator who writes is required")
	} else {
		v.exists("/operator", store.KindOperator, in.Operator, "operator")
	}
	if len(v.errs) > 0 {
		return invalid(summary(v.errs), v.errs...)
	}
	ctx := r.Context()
	sub, err := s.Store.Subscriber(ctx, ws, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	if len(sub.Channels) == 0 || s.Messenger == nil {
		return fail(http.StatusConflict, "conflict", "the subscriber has no channel to answer through")
	}
	ident := sub.Channels[0]
	now := s.now()
	msg := engine.ChatMessage{
		ID: "op" + store.NewID(now), Direction: "outbound", Text: in.Text, Operator: in.Operator, CreatedAt: now,
	}
	if sub.Unreachable[ident.Channel] {
		return fail(http.StatusConflict, "conflict", fmt.Sprintf("the subscriber blocked the bot on channel %q", ident.Channel))
	}
	_, derr := s.Messenger.Deliver(ctx, ws, engine.ChatDelivery{
		StepID: msg.ID, SubscriberID: sub.ID, Channel: ident.Channel, ExternalID: ident.ExternalID, Text: in.Text,
	})
	switch {
	case derr == nil:
		msg.Delivery = "delivered"
	case errors.Is(derr, engine.ErrNoChannel):
		return fail(http.StatusConflict, "conflict", "no channel is configured to reach the subscriber: PUT /v1/channels/{id} or /v1/channel")
	case errors.Is(derr, engine.ErrUnreachable):
		return fail(http.StatusConflict, "conflict", fmt.Sprintf("the subscriber blocked the bot on channel %q", ident.Channel))
	default:
		msg.Delivery = "failed"
	}
	if err := s.Store.SaveChatMessage(ctx, ws, sub.ID, msg); err != nil {
		return internalErr(err)
	}
	if err := s.Store.MarkRead(ctx, ws, sub.ID); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return internalErr(err)
	}
	if derr != nil {
		s.log().Warn("operator message not delivered", "subscriber", sub.ID, "error", derr)
		return fail(http.StatusBadGateway, "request_failed", "the channel did not take the message; it is stored in the chat as failed: "+derr.Error())
	}
	return status(http.StatusCreated, viewChat(msg, false))
}

func (s *Server) pause(r *http.Request, ws string) response {
	id := r.PathValue("id")
	var in struct {
		Minutes int `json:"minutes"`
	}
	if res, good := readBody(r, &in); !good {
		return res
	}
	if in.Minutes < 1 || in.Minutes > MaxPauseMinutes {
		return invalid("minutes out of range", FieldError{Pointer: "/minutes", Detail: fmt.Sprintf("minutes must be between 1 and %d (30 days), got %d", MaxPauseMinutes, in.Minutes)})
	}
	until := s.now().Add(time.Duration(in.Minutes) * time.Minute)
	if err := s.Store.SetPause(r.Context(), ws, id, until); errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id))
	} else if err != nil {
		return internalErr(err)
	}
	return ok(map[string]any{"paused_until": Time(until)})
}

func (s *Server) resume(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if err := s.Store.SetPause(r.Context(), ws, id, time.Time{}); errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("subscriber %q", id))
	} else if err != nil {
		return internalErr(err)
	}
	return response{status: http.StatusNoContent}
}
