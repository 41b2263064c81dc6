package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/telegram"
)

// Channels: a workspace reaches subscribers through several channels, each a
// catalog entity of kind webhook (the signed connector of SPEC section 8) or
// telegram (a bot, built in). A subscriber's identity names the channel its
// messages go through; identities naming no channel go through "default",
// the channel PUT /v1/channel has always written.

const (
	ChannelWebhook  = "webhook"
	ChannelTelegram = "telegram"
)

func (s *Server) channelRoutes() []route {
	return []route{
		{"PUT /v1/channels/{id}", s.putChannel},
		{"GET /v1/channels/{id}", s.getChannel},
		{"DELETE /v1/channels/{id}", s.deleteChannel},
		{"GET /v1/channels", s.listChannels},
	}
}

type channelsInput struct {
	Kind     string `json:"kind"`
	URL      string `json:"url"`
	Secret   string `json:"secret"`
	BotToken string `json:"bot_token"`
}

// channelSecrets are a channel's write-only parts.
type channelSecrets struct {
	Secret        string `json:"secret,omitempty"`         // webhook: the signing secret
	BotToken      string `json:"bot_token,omitempty"`      // telegram
	WebhookSecret string `json:"webhook_secret,omitempty"` // telegram: X-Telegram-Bot-Api-Secret-Token
}

// telegramDoc is a telegram channel's public document.
type telegramDoc struct {
	Kind       string `json:"kind"`
	BotID      int64  `json:"bot_id"`
	Username   string `json:"bot_username"`
	WebhookURL string `json:"webhook_url"`
}

func (s *Server) putChannel(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if !validID(id) {
		return badID("id", id)
	}
	var in channelsInput
	if res, good := readBody(r, &in); !good {
		return res
	}
	ctx := r.Context()
	old, err := s.Store.GetEntity(ctx, ws, store.KindChannel, id)
	exists := err == nil
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return internalErr(err)
	}
	var sec channelSecrets
	if exists {
		_ = json.Unmarshal(old.Secret, &sec)
	}
	v := &validator{s: s, r: r, ws: ws}
	switch in.Kind {
	case ChannelWebhook:
		v.address("/url", in.URL)
		switch {
		case in.Secret != "" && len(in.Secret) < 16:
			v.add("/secret", "a secret of at least 16 characters is required")
		case in.Secret == "" && sec.Secret == "":
			v.add("/secret", "a secret of at least 16 characters is required")
		}
		if in.BotToken != "" {
			v.add("/bot_token", "a webhook channel has no bot_token")
		}
	case ChannelTelegram:
		switch {
		case in.BotToken != "" && !telegram.ValidToken(in.BotToken):
			v.add("/bot_token", "this is not a Telegram bot token (123456789:AA... from @BotFather)")
		case in.BotToken == "" && sec.BotToken == "":
			v.add("/bot_token", "the bot's token from @BotFather is required")
		}
		if in.URL != "" {
			v.add("/url", "a telegram channel has no url: Telegram is called at its own address")
		}
		if in.Secret != "" {
			v.add("/secret", "a telegram channel has no secret: the deployment makes its own")
		}
	default:
		v.add("/kind", "kind must be webhook or telegram, not %q", in.Kind)
	}
	if len(v.errs) > 0 {
		return invalid(summary(v.errs), v.errs...)
	}

	e := store.Entity{Kind: store.KindChannel, ID: id}
	switch in.Kind {
	case ChannelWebhook:
		if in.Secret != "" {
			sec.Secret = in.Secret
		}
		sec.BotToken, sec.WebhookSecret = "", ""
		e.Doc, _ = json.Marshal(map[string]string{"kind": ChannelWebhook, "url": in.URL})
	case ChannelTelegram:
		if in.BotToken != "" {
			sec.BotToken = in.BotToken
		}
		sec.Secret = ""
		doc, res, good := s.connectTelegram(r, ws, id, &sec)
		if !good {
			return res
		}
		e.Doc, _ = json.Marshal(doc)
	}
	e.Secret, _ = json.Marshal(sec)
	saved, err := s.Store.PutEntity(ctx, ws, e)
	if err != nil {
		return internalErr(err)
	}
	return ok(channelView(saved))
}

// connectTelegram checks the token with getMe and points the bot's webhook at
// this deployment, with a secret token only Telegram and this channel know.
func (s *Server) connectTelegram(r *http.Request, ws, id string, sec *channelSecrets) (telegramDoc, response, bool) {
	ctx := r.Context()
	bot, err := telegram.NewClient(sec.BotToken, s.TelegramAPI, s.TelegramHTTP)
	if err != nil {
		return telegramDoc{}, invalid("bad bot token", FieldError{Pointer: "/bot_token", Detail: "this is not a Telegram bot token"}), false
	}
	me, err := bot.GetMe(ctx)
	switch {
	case errors.Is(err, telegram.ErrUnauthorized):
		return telegramDoc{}, invalid("Telegram refused the token", FieldError{Pointer: "/bot_token", Detail: "Telegram does not know this token (getMe answered 401): copy it again from @BotFather"}), false
	case err != nil:
		return telegramDoc{}, fail(http.StatusBadGateway, "request_failed", "Telegram could not be reached to check the token: "+err.Error()), false
	}
	if sec.WebhookSecret == "" {
		if sec.WebhookSecret, err = telegram.NewSecretToken(); err != nil {
			return telegramDoc{}, internalErr(err), false
		}
	}
	base := s.PublicURL
	if base == "" {
		base = actions.PublicBaseURL(r.Host)
	}
	if base == "" {
		return telegramDoc{}, fail(http.StatusConflict, "conflict", "the deployment does not know its public address: set the PublicUrl parameter"), false
	}
	hook := base + "/v1/channels/" + url.PathEscape(id) + "/telegram?workspace=" + url.QueryEscape(ws)
	if err := bot.SetWebhook(ctx, hook, sec.WebhookSecret, telegram.DefaultAllowedUpdates()); err != nil {
		return telegramDoc{}, fail(http.StatusBadGateway, "request_failed", "Telegram did not take the webhook: "+err.Error()), false
	}
	return telegramDoc{Kind: ChannelTelegram, BotID: me.ID, Username: me.Username, WebhookURL: hook}, response{}, true
}

func (s *Server) getChannel(r *http.Request, ws string) response {
	id := r.PathValue("id")
	if !validID(id) {
		return notFound(fmt.Sprintf("channel %q", id))
	}
	e, err := s.Store.GetEntity(r.Context(), ws, store.KindChannel, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("channel %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	return ok(channelView(e))
}

func (s *Server) deleteChannel(r *http.Request, ws string) response {
	id := r.PathValue("id")
	ctx := r.Context()
	if !validID(id) {
		return notFound(fmt.Sprintf("channel %q", id))
	}
	e, err := s.Store.GetEntity(ctx, ws, store.KindChannel, id)
	if errors.Is(err, engine.ErrNotFound) {
		return notFound(fmt.Sprintf("channel %q", id))
	}
	if err != nil {
		return internalErr(err)
	}
	var sec channelSecrets
	_ = json.Unmarshal(e.Secret, &sec)
	if sec.BotToken != "" {
		// Stop Telegram posting here; a failure leaves updates that the
		// webhook refuses (the channel is gone), so it is only logged.
		if bot, err := telegram.NewClient(sec.BotToken, s.TelegramAPI, s.TelegramHTTP); err == nil {
			if err := bot.DeleteWebhook(ctx); err != nil {
				s.log().Warn("telegram deleteWebhook", "channel", id, "error", err)
			}
		}
	}
	if err := s.Store.DeleteEntity(ctx, ws, store.KindChannel, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return internalErr(err)
	}
	return response{status: http.StatusNoContent}
}

func (s *Server) listChannels(r *http.Request, ws string) response {
	p, res, good := page(r)
	if !good {
		return res
	}
	items, next, err := s.Store.ListEntities(r.Context(), ws, store.KindChannel, p)
	if err != nil {
		return listErr(err)
	}
	views := make([]map[string]any, 0, len(items))
	for _, e := range items {
		views = append(views, channelView(e))
	}
	return ok(map[string]any{"channels": views, "next_cursor": next})
}

// channelView is a channel as /v1/channels shows it: never a secret, only
// whether it is set.
func channelView(e store.Entity) map[string]any {
	out := map[string]any{}
	_ = json.Unmarshal(e.Doc, &out)
	if out["kind"] == nil {
		out["kind"] = ChannelWebhook // written by PUT /v1/channel
	}
	var sec channelSecrets
	_ = json.Unmarshal(e.Secret, &sec)
	out["id"] = e.ID
	switch out["kind"] {
	case ChannelTelegram:
		out["has_token"] = sec.BotToken != ""
	default:
		out["has_secret"] = sec.Secret != ""
	}
	out["created_at"] = Time(e.CreatedAt)
	out["updated_at"] = Time(e.UpdatedAt)
	return out
}

// telegramWebhook takes a bot's updates (public: Telegram calls it). Only a
// request with the channel's secret token is read; anything else answers 401
// and writes nothing. Every update is answered 200 once handled (Telegram
// would otherwise send it again), deduplicated by its update_id.
func (s *Server) telegramWebhook(w http.ResponseWriter, r *http.Request) {
	id, ws := r.PathValue("id"), r.URL.Query().Get("workspace")
	ctx := r.Context()
	refuse := func() {
		writeProblem(w, problem{Status: http.StatusUnauthorized, Code: "unauthorized", Detail: "not a Telegram update of this channel"})
	}
	if !validID(id) || ws == "" || len(ws) > 64 {
		refuse()
		return
	}
	e, err := s.Store.GetEntity(ctx, ws, store.KindChannel, id)
	if errors.Is(err, engine.ErrNotFound) {
		refuse()
		return
	}
	if err != nil {
		s.internal(w, r, err)
		return
	}
	var sec channelSecrets
	_ = json.Unmarshal(e.Secret, &sec)
	if sec.WebhookSecret == "" || !telegram.VerifySecret(r.Header.Get(telegram.HeaderSecretToken), sec.WebhookSecret) {
		refuse()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		writeProblem(w, problem{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Detail: "an update is at most 256 KiB"})
		return
	}
	u, err := telegram.ParseUpdate(body)
	if err != nil {
		writeProblem(w, problem{Status: http.StatusBadRequest, Code: "invalid_json", Detail: err.Error()})
		return
	}
	res := s.telegramUpdate(r, ws, id, sec, u)
	if p, isProblem := res.body.(problem); isProblem {
		if p.Status >= 500 {
			s.log().Error("telegram update failed", "channel", id, "update_id", u.UpdateID, "error", p.cause)
		}
		writeProblem(w, p) // Telegram sends it again later
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// telegramUpdate turns an update into an event of the channel's subscriber.
func (s *Server) telegramUpdate(r *http.Request, ws, channel string, sec channelSecrets, u telegram.Update) response {
	ctx := r.Context()
	in := &eventInput{EventID: "tg:" + channel + ":" + strconv.FormatInt(u.UpdateID, 10)}
	in.Subscriber.Channel = channel
	in.Subscriber.ExternalID = strconv.FormatInt(u.ChatID, 10)
	in.Subscriber.FirstName = clipName(u.FirstName)
	in.Subscriber.LastName = clipName(u.LastName)
	switch u.Kind {
	case telegram.KindStart:
		in.Type = "subscribe"
		if u.Payload != "" {
			// A deep link t.me/<bot>?start=<lead source>; an unknown payload
			// subscribes to the default tunnel rather than losing the person.
			if _, err := s.Store.GetEntity(ctx, ws, store.KindLeadSource, u.Payload); err == nil {
				in.LeadSource = u.Payload
			} else if !errors.Is(err, engine.ErrNotFound) {
				return internalErr(err)
			}
		}
	case telegram.KindText:
		in.Type, in.Text = "message", u.Text
	case telegram.KindButton:
		in.Type, in.Button = "button", u.CallbackData
		if u.CallbackID != "" {
			// Stop the button's spinner; the press is handled either way.
			if bot, err := telegram.NewClient(sec.BotToken, s.TelegramAPI, s.TelegramHTTP); err == nil {
				if err := bot.AnswerCallbackQuery(ctx, u.CallbackID); err != nil {
					s.log().Warn("telegram answerCallbackQuery", "channel", channel, "error", err)
				}
			}
		}
		if in.Button == "" || !validID(in.Button) {
			return ok(nil) // not one of ours
		}
	case telegram.KindKicked, telegram.KindMember:
		sub, err := s.Store.FindSubscriber(ctx, ws, engine.Identity{Channel: channel, ExternalID: in.Subscriber.ExternalID})
		if errors.Is(err, engine.ErrNotFound) {
			return ok(nil) // never wrote to the bot: nothing to mark
		}
		if err != nil {
			return internalErr(err)
		}
		if err := s.Store.SetUnreachable(ctx, ws, sub, channel, u.Kind == telegram.KindKicked); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return internalErr(err)
		}
		return ok(nil)
	default:
		return ok(nil)
	}
	if strings.TrimSpace(in.Text) == "" && in.Type == "message" {
		return ok(nil)
	}
	return s.ingest(r, ws, in)
}

func clipName(s string) string {
	if len(s) <= 200 {
		return s
	}
	cut := 200
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
