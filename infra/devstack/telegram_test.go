package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

// Issue 11: a Telegram bot as a built-in channel, end to end against the fake
// Bot API (shared/telegram/telegramtest), which delivers updates to the
// system's webhook the way Telegram does. One test, run in sequence: the fake
// counts and throttles per server, not per test.

const tgToken = "7000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"

func sentTexts(chat int64) []string {
	var out []string
	for _, m := range tgAPI.Sent(chat) {
		out = append(out, m.Text)
	}
	return out
}

func waitForTelegram(t *testing.T, chat int64, want ...string) []telegramtest.SentMessage {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("chat %d to receive %q", chat, want), func() (bool, string) {
		return strings.Join(sentTexts(chat), "|") == strings.Join(want, "|"), fmt.Sprintf("%q", sentTexts(chat))
	})
	return tgAPI.Sent(chat)
}

func deliver(t *testing.T, u telegramtest.Update) {
	t.Helper()
	status, err := tgAPI.Deliver(context.Background(), tgToken, u)
	if err != nil || status != http.StatusOK {
		t.Fatalf("deliver: %d %v", status, err)
	}
}

func TestTelegramChannel(t *testing.T) {
	needSystem(t)
	a := logicWorkspace(t, "Telegram")
	tgAPI.AddToken(tgToken, "tunnels_test_bot")

	// A token Telegram does not know is refused, and nothing is stored.
	p := a.problem(http.MethodPut, "/v1/channels/tg", map[string]string{"kind": "telegram", "bot_token": "7000002:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2"}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/bot_token" {
		t.Fatalf("errors: %+v", p.Errors)
	}
	a.problem(http.MethodGet, "/v1/channels/tg", nil, http.StatusNotFound, "not_found")
	a.problem(http.MethodPut, "/v1/channels/tg", map[string]string{"kind": "telegram", "bot_token": "not-a-token"}, http.StatusBadRequest, "validation_failed")

	// Pasting the token connects the bot: getMe, then setWebhook with a secret.
	code, body := a.do(http.MethodPut, "/v1/channels/tg", map[string]string{"kind": "telegram", "bot_token": tgToken})
	if code != http.StatusOK || bytes.Contains(body, []byte(tgToken)) || bytes.Contains(body, []byte("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1")) {
		t.Fatalf("PUT channel: %d %s", code, body)
	}
	var ch map[string]any
	_ = json.Unmarshal(body, &ch)
	if ch["kind"] != "telegram" || ch["bot_username"] != "tunnels_test_bot" || ch["has_token"] != true {
		t.Fatalf("channel: %v", ch)
	}
	hook := tgAPI.Webhook(tgToken)
	if !strings.HasPrefix(hook.URL, sys.APIURL+"/v1/channels/tg/telegram?workspace=") || len(hook.SecretToken) < 32 ||
		strings.Join(hook.AllowedUpdates, ",") != "message,callback_query,my_chat_member" {
		t.Fatalf("webhook: %+v", hook)
	}
	var list struct {
		Channels []map[string]any `json:"channels"`
	}
	a.must(http.MethodGet, "/v1/channels", nil, http.StatusOK, &list)
	kinds := map[string]any{}
	for _, c := range list.Channels {
		kinds[c["id"].(string)] = c["kind"]
	}
	if kinds["tg"] != "telegram" || kinds["default"] != "webhook" { // /v1/channel is the default webhook channel
		t.Fatalf("channels: %v", list.Channels)
	}

	// A forged update is refused and writes nothing.
	for _, secret := range []string{"", "wrong", hook.SecretToken + "x"} {
		req, _ := http.NewRequest(http.MethodPost, hook.URL, strings.NewReader(`{"update_id": 1, "message": {"message_id": 1, "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "first_name": "Eve"}, "text": "/start"}}`))
		if secret != "" {
			req.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("forged update with secret %q: %d", secret, res.StatusCode)
		}
	}
	if sub := a.telegramSubscriber(42); sub != "" {
		t.Fatalf("a forged update created subscriber %s", sub)
	}

	// /start landing subscribes through the lead source; the funnel's
	// messages arrive in order, a second apart at least (one chat), with the
	// buttons as an inline keyboard.
	a.must(http.MethodPut, "/v1/tunnels/welcome", json.RawMessage(`{"name": "Welcome", "entry": "hi", "blocks": [
		{"id": "hi", "type": "message", "text": "Hi {{subscriber.first_name}}", "next": ["two"]},
		{"id": "two", "type": "message", "text": "Two", "next": ["three"]},
		{"id": "three", "type": "message", "text": "Three", "next": ["ask"]},
		{"id": "ask", "type": "message", "text": "Join the webinar?",
		 "buttons": [{"id": "yes", "text": "Yes", "next": ["great"]}, {"id": "no", "text": "No", "next": ["bye"]}]},
		{"id": "great", "type": "message", "text": "Great"},
		{"id": "bye", "type": "message", "text": "Bye"}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/lead-sources/landing", map[string]string{"name": "Landing", "tunnel": "welcome"}, http.StatusOK, nil)
	const tanya = 5001
	start := telegramtest.StartUpdate(tanya, "Tanya", "landing")
	deliver(t, start)
	sent := waitForTelegram(t, tanya, "Hi Tanya", "Two", "Three", "Join the webinar?")
	for i := 1; i < len(sent); i++ {
		if gap := sent[i].At.Sub(sent[i-1].At); gap < 900*time.Millisecond {
			t.Errorf("messages %d and %d to one chat %s apart: faster than Telegram's one a second", i-1, i, gap)
		}
	}
	if b := sent[3].Buttons; len(b) != 2 || len(b[0]) != 1 || b[0][0].Text != "Yes" || b[0][0].CallbackData != "yes" {
		t.Fatalf("inline keyboard: %+v", sent[3].Buttons)
	}
	// Telegram redelivering the same update starts nothing more.
	if status, err := tgAPI.Redeliver(context.Background(), tgToken); err != nil || status != http.StatusOK {
		t.Fatalf("redeliver: %d %v", status, err)
	}
	sub := a.telegramSubscriber(tanya)
	c := a.card(sub)
	if len(c.Runs) != 1 || c.Runs[0].Tunnel != "welcome" || c.Runs[0].Generation != 1 || c.Channels[0].Channel != "tg" {
		t.Fatalf("card after a redelivered /start: %+v", c)
	}

	// The button press resumes the run and is answered.
	deliver(t, telegramtest.CallbackUpdate(tanya, sent[3].MessageID, "yes"))
	waitForTelegram(t, tanya, "Hi Tanya", "Two", "Three", "Join the webinar?", "Great")
	if len(tgAPI.Answered()) == 0 {
		t.Fatal("the callback query was not answered")
	}
	// A text is an inbound chat message; the operator answers through the bot.
	deliver(t, telegramtest.TextUpdate(tanya, "When does it start?"))
	a.must(http.MethodPut, "/v1/operators/olga", map[string]string{"name": "Olga"}, http.StatusOK, nil)
	eventually(t, 10*time.Second, "the inbound text in the chat", func() (bool, string) {
		var chat struct {
			Messages []struct {
				Direction, Text string
			} `json:"messages"`
		}
		a.must(http.MethodGet, "/v1/subscribers/"+sub+"/chat", nil, http.StatusOK, &chat)
		for _, m := range chat.Messages {
			if m.Direction == "inbound" && m.Text == "When does it start?" {
				return true, ""
			}
		}
		return false, fmt.Sprint(chat.Messages)
	})
	a.must(http.MethodPost, "/v1/subscribers/"+sub+"/chat", map[string]string{"text": "At 7 pm", "operator": "olga"}, http.StatusCreated, nil)
	waitForTelegram(t, tanya, "Hi Tanya", "Two", "Three", "Join the webinar?", "Great", "At 7 pm")

	// Telegram's 429 pauses the bot for retry_after; the message goes once, later.
	a.must(http.MethodPut, "/v1/tunnels/again", json.RawMessage(`{"name": "Again", "entry": "m", "blocks": [{"id": "m", "type": "message", "text": "After the 429"}]}`), http.StatusOK, nil)
	tgAPI.Throttle(1, 2)
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "tg-again", "type": "start", "tunnel": "again",
		"subscriber": map[string]string{"channel": "tg", "external_id": fmt.Sprint(tanya)}}, http.StatusAccepted, nil)
	waitForTelegram(t, tanya, "Hi Tanya", "Two", "Three", "Join the webinar?", "Great", "At 7 pm", "After the 429")
	j := a.finished(sub, "again")
	if s, _ := find(j, "again", "m", -1); s.Status != "done" || s.Attempts != 2 {
		t.Fatalf("the throttled step: %+v", s)
	}

	// A user who blocked the bot: the step is skipped, no retry, marked unreachable.
	const boris = 5002
	tgAPI.Block(boris)
	calls := tgAPI.SendCalls()
	deliver(t, telegramtest.StartUpdate(boris, "Boris", "landing"))
	var bsub string
	eventually(t, 30*time.Second, "the blocked user's first step", func() (bool, string) {
		bsub = a.telegramSubscriber(boris)
		if bsub == "" {
			return false, "no subscriber yet"
		}
		j := a.journey(bsub)
		for _, s := range j {
			if s.Status == "skipped" && strings.Contains(s.Reason, "blocked the bot") {
				return true, ""
			}
		}
		return false, describe(j)
	})
	time.Sleep(2 * time.Second)
	if n := tgAPI.SendCalls() - calls; n != 1 {
		t.Fatalf("%d sendMessage calls for a blocked user, want 1 (no retries)", n)
	}
	var bc struct {
		Unreachable []string `json:"unreachable"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+bsub, nil, http.StatusOK, &bc)
	if len(bc.Unreachable) != 1 || bc.Unreachable[0] != "tg" {
		t.Fatalf("unreachable: %v", bc.Unreachable)
	}

	// Blocking the bot (my_chat_member "kicked") marks Tanya unreachable on tg;
	// unblocking clears it.
	deliver(t, telegramtest.KickedUpdate(tanya))
	var tc struct {
		Unreachable []string `json:"unreachable"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &tc)
	if len(tc.Unreachable) != 1 || tc.Unreachable[0] != "tg" {
		t.Fatalf("after kicked: unreachable %v", tc.Unreachable)
	}
	deliver(t, telegramtest.MemberUpdate(tanya))
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &tc)
	if len(tc.Unreachable) != 0 {
		t.Fatalf("after member again: unreachable %v", tc.Unreachable)
	}

	// The bot token never appears in the system's logs.
	if b, err := os.ReadFile(systemLog); err != nil || bytes.Contains(b, []byte("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1")) {
		t.Fatalf("the token is in the system log (%v)", err)
	}
}

// telegramSubscriber finds the subscriber of a Telegram chat of channel tg
// ("" while there is none).
func (a *api) telegramSubscriber(chat int64) string {
	a.t.Helper()
	sub, err := sys.Store.FindSubscriber(context.Background(), a.ws, engine.Identity{Channel: "tg", ExternalID: fmt.Sprint(chat)})
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		a.t.Fatal(err)
	}
	return sub
}
