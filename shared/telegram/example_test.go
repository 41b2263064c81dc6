package telegram_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/tunnels/tunnels/shared/telegram"
	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

// A bot's whole loop against the fake Bot API: check the token, register the
// webhook with a secret, receive /start through it, answer with a button, and
// see a blocked user come back as ErrBlocked.
func Example() {
	const token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
	api := telegramtest.New()
	defer api.Close()
	api.AddToken(token, "tunnels_demo_bot")
	ctx := context.Background()

	// Production passes the egress client and no base URL.
	bot, err := telegram.NewClient(token, api.URL(), &http.Client{})
	if err != nil {
		fmt.Println(err)
		return
	}
	secret, err := telegram.NewSecretToken()
	if err != nil {
		fmt.Println(err)
		return
	}

	webhook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !telegram.VerifySecret(r.Header.Get(telegram.HeaderSecretToken), secret) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		u, err := telegram.ParseUpdate(body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Printf("update %d: %s from %s, payload %q\n", u.UpdateID, u.Kind, u.FirstName, u.Payload)
		if u.Kind == telegram.KindStart {
			_, err := bot.SendMessage(r.Context(), u.ChatID, "Welcome, "+u.FirstName+"!", []telegram.Button{{ID: "more", Text: "Tell me more"}})
			if err != nil {
				fmt.Println(err)
			}
		}
	}))
	defer webhook.Close()

	me, err := bot.GetMe(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("bot:", me.Username)
	if err := bot.SetWebhook(ctx, webhook.URL, secret, telegram.DefaultAllowedUpdates()); err != nil {
		fmt.Println(err)
		return
	}

	status, err := api.Deliver(ctx, token, telegramtest.StartUpdate(42, "Ann", "landing"))
	fmt.Println("webhook answered", status, err)
	for _, m := range api.Sent(42) {
		fmt.Printf("sent to %d: %q %v\n", m.ChatID, m.Text, m.Buttons)
	}

	forged, err := http.Post(webhook.URL, "application/json", strings.NewReader(`{"update_id":1}`))
	if err == nil {
		forged.Body.Close()
		fmt.Println("forged update answered", forged.StatusCode)
	}

	api.Block(42)
	_, err = bot.SendMessage(ctx, 42, "Still there?", nil)
	fmt.Println("blocked:", errors.Is(err, telegram.ErrBlocked))

	// Output:
	// bot: tunnels_demo_bot
	// update 1: start from Ann, payload "landing"
	// webhook answered 200 <nil>
	// sent to 42: "Welcome, Ann!" [[{Tell me more more }]]
	// forged update answered 401
	// blocked: true
}
