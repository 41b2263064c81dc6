package telegram_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/telegram"
	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

// testToken has the shape of a @BotFather token (35 characters after ':').
const testToken = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"

func newClient(t *testing.T, base string) *telegram.Client {
	t.Helper()
	c, err := telegram.NewClient(testToken, base, &http.Client{})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// noToken fails the test when err, or any *url.Error in it, shows the token.
func noToken(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	secret := testToken[strings.Index(testToken, ":")+1:]
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), secret) {
			t.Fatalf("error shows the token: %q", e.Error())
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) && (strings.Contains(ue.URL, secret) || strings.Contains(ue.Error(), secret)) {
		t.Fatalf("*url.Error shows the token: %q", ue.URL)
	}
	if !strings.Contains(err.Error(), "telegram") {
		t.Fatalf("error does not say where it comes from: %q", err)
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		name, token, base string
		wantErr           bool
	}{
		{"default base", testToken, "", false},
		{"custom base", testToken, "http://127.0.0.1:1", false},
		{"malformed token", "not-a-token", "", true},
		{"token without secret", "123456:", "", true},
		{"base not http", testToken, "ftp://127.0.0.1", true},
		{"base with credentials", testToken, "http://u:p@127.0.0.1", true},
		{"base without host", testToken, "http://", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := telegram.NewClient(tt.token, tt.base, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) {
				t.Fatalf("error shows the token: %v", err)
			}
			if err == nil && c.BotID() != "123456789" {
				t.Fatalf("BotID = %q", c.BotID())
			}
		})
	}
}

func TestGetMe(t *testing.T) {
	srv := telegramtest.New()
	defer srv.Close()
	srv.AddToken(testToken, "tunnels_demo_bot")
	me, err := newClient(t, srv.URL()).GetMe(context.Background())
	if err != nil {
		t.Fatalf("GetMe: %v", err)
	}
	if me.ID != 123456789 || !me.IsBot || me.Username != "tunnels_demo_bot" {
		t.Fatalf("GetMe = %+v", me)
	}
}

func TestUnknownTokenIsUnauthorizedOnEveryMethod(t *testing.T) {
	srv := telegramtest.New() // knows no token
	defer srv.Close()
	c := newClient(t, srv.URL())
	ctx := context.Background()
	calls := map[string]func() error{
		"getMe":               func() error { _, err := c.GetMe(ctx); return err },
		"setWebhook":          func() error { return c.SetWebhook(ctx, "https://example.com/h", "s3cret", nil) },
		"deleteWebhook":       func() error { return c.DeleteWebhook(ctx) },
		"sendMessage":         func() error { _, err := c.SendMessage(ctx, 42, "hi", nil); return err },
		"answerCallbackQuery": func() error { return c.AnswerCallbackQuery(ctx, "77") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, telegram.ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			noToken(t, err)
		})
	}
}

func TestWebhook(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	c := newClient(t, srv.URL())
	ctx := context.Background()

	err := c.SetWebhook(ctx, "https://tunnels.example/v1/channels/tg/telegram", "sec_RET-1", telegram.DefaultAllowedUpdates())
	if err != nil {
		t.Fatalf("SetWebhook: %v", err)
	}
	got := srv.Webhook(testToken)
	want := telegramtest.WebhookInfo{URL: "https://tunnels.example/v1/channels/tg/telegram", SecretToken: "sec_RET-1",
		AllowedUpdates: []string{"message", "callback_query", "my_chat_member"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("webhook = %+v, want %+v", got, want)
	}

	if err := c.DeleteWebhook(ctx); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	if got := srv.Webhook(testToken); got.URL != "" || got.SecretToken != "" {
		t.Fatalf("after DeleteWebhook: %+v", got)
	}
}

func TestSetWebhookRefusesBadArgumentsBeforeSending(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	c := newClient(t, srv.URL())
	tests := []struct{ name, url, secret string }{
		{"empty secret", "https://x.example/h", ""},
		{"secret with space", "https://x.example/h", "a b"},
		{"secret too long", "https://x.example/h", strings.Repeat("a", 257)},
		{"empty url", "", "secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.SetWebhook(context.Background(), tt.url, tt.secret, nil)
			if !errors.Is(err, telegram.ErrPermanent) {
				t.Fatalf("err = %v, want ErrPermanent", err)
			}
			if got := srv.Webhook(testToken); got.URL != "" {
				t.Fatalf("webhook was set: %+v", got)
			}
		})
	}
}

func TestSetWebhookSurfacesTelegramRefusal(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	// Telegram (and the fake) refuse a plain-http webhook that is not loopback.
	err := newClient(t, srv.URL()).SetWebhook(context.Background(), "http://tunnels.example/h", "secret", nil)
	var apiErr *telegram.APIError
	if !errors.Is(err, telegram.ErrPermanent) || !errors.As(err, &apiErr) || apiErr.Code != 400 ||
		!strings.Contains(apiErr.Description, "HTTPS") {
		t.Fatalf("err = %v, want a permanent 400 about HTTPS", err)
	}
}

func TestSendMessage(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	c := newClient(t, srv.URL())
	ctx := context.Background()

	id1, err := c.SendMessage(ctx, 42, "Hello <b>not html</b>", nil)
	if err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
	long := strings.Repeat("x", telegram.MaxCallbackData)
	id2, err := c.SendMessage(ctx, 42, "Pick one", []telegram.Button{{ID: "yes", Text: "Yes"}, {ID: long, Text: "Long id"}})
	if err != nil {
		t.Fatalf("SendMessage with buttons: %v", err)
	}
	if id1 <= 0 || id2 <= id1 {
		t.Fatalf("message ids %d, %d: want increasing", id1, id2)
	}
	sent := srv.Sent(42)
	if len(sent) != 2 {
		t.Fatalf("sent %d messages, want 2", len(sent))
	}
	if sent[0].Text != "Hello <b>not html</b>" || sent[0].ReplyMarkup != nil || sent[0].MessageID != id1 {
		t.Fatalf("first message = %+v", sent[0])
	}
	want := [][]telegramtest.InlineButton{{{Text: "Yes", CallbackData: "yes"}}, {{Text: "Long id", CallbackData: long}}}
	if fmt.Sprint(sent[1].Buttons) != fmt.Sprint(want) || sent[1].MessageID != id2 {
		t.Fatalf("second message buttons = %+v, want one per row %+v", sent[1].Buttons, want)
	}
	if sent[1].BotID != 123456789 {
		t.Fatalf("BotID = %d", sent[1].BotID)
	}
	if len(srv.Sent(43)) != 0 {
		t.Fatal("messages recorded for another chat")
	}
}

func TestSendMessageRefusesBadArgumentsBeforeSending(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	c := newClient(t, srv.URL())
	tests := []struct {
		name    string
		chat    int64
		text    string
		buttons []telegram.Button
	}{
		{"no chat", 0, "hi", nil},
		{"empty text", 42, "", nil},
		{"blank text", 42, " \n\t", nil},
		{"button id too long", 42, "hi", []telegram.Button{{ID: strings.Repeat("x", telegram.MaxCallbackData+1), Text: "B"}}},
		{"button id multibyte too long", 42, "hi", []telegram.Button{{ID: strings.Repeat("é", 33), Text: "B"}}},
		{"empty button id", 42, "hi", []telegram.Button{{ID: "", Text: "B"}}},
		{"empty button text", 42, "hi", []telegram.Button{{ID: "ok", Text: ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.SendMessage(context.Background(), tt.chat, tt.text, tt.buttons)
			if !errors.Is(err, telegram.ErrPermanent) {
				t.Fatalf("err = %v, want ErrPermanent", err)
			}
			if n := srv.SendCalls(); n != 0 {
				t.Fatalf("%d calls reached the server", n)
			}
		})
	}
}

func TestSendMessageBlocked(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	srv.Block(42)
	_, err := newClient(t, srv.URL()).SendMessage(context.Background(), 42, "hi", nil)
	if !errors.Is(err, telegram.ErrBlocked) || errors.Is(err, telegram.ErrPermanent) || errors.Is(err, telegram.ErrTransient) {
		t.Fatalf("err = %v, want ErrBlocked only", err)
	}
	var apiErr *telegram.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != 403 || apiErr.Description != "Forbidden: bot was blocked by the user" {
		t.Fatalf("APIError = %+v", apiErr)
	}
	noToken(t, err)
	if len(srv.Sent(42)) != 0 {
		t.Fatal("a message to a blocked chat was recorded")
	}
}

func TestSendMessageThrottledIsNotRetried(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	srv.Throttle(1, 7)
	c := newClient(t, srv.URL())
	_, err := c.SendMessage(context.Background(), 42, "hi", nil)
	var ra *telegram.RetryAfterError
	if !errors.As(err, &ra) || ra.After != 7*time.Second {
		t.Fatalf("err = %v, want RetryAfterError of 7s", err)
	}
	if !errors.Is(err, telegram.ErrTransient) {
		t.Fatalf("RetryAfterError is not ErrTransient: %v", err)
	}
	noToken(t, err)
	if n := srv.SendCalls(); n != 1 {
		t.Fatalf("the client made %d calls, want 1 (no retry of its own)", n)
	}
	if _, err := c.SendMessage(context.Background(), 42, "hi", nil); err != nil {
		t.Fatalf("after the throttle: %v", err)
	}
}

func TestAnswerCallbackQuery(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	c := newClient(t, srv.URL())
	if err := c.AnswerCallbackQuery(context.Background(), "4382bfdwdsb323b2d9"); err != nil {
		t.Fatalf("AnswerCallbackQuery: %v", err)
	}
	if err := c.AnswerCallbackQuery(context.Background(), ""); !errors.Is(err, telegram.ErrPermanent) {
		t.Fatalf("empty id: err = %v, want ErrPermanent", err)
	}
	if got := srv.Answered(); len(got) != 1 || got[0] != "4382bfdwdsb323b2d9" {
		t.Fatalf("answered = %v", got)
	}
}

// TestErrorKinds feeds the client answers that the fake does not produce on
// its own (other codes, a proxy's HTML, descriptions echoing the token) from a
// raw loopback server.
func TestErrorKinds(t *testing.T) {
	api := func(code int, desc string) string {
		b, _ := json.Marshal(map[string]any{"ok": false, "error_code": code, "description": desc})
		return string(b)
	}
	tests := []struct {
		name   string
		status int
		body   string
		want   error
		code   int
		after  time.Duration
	}{
		{"401", 401, api(401, "Unauthorized"), telegram.ErrUnauthorized, 401, 0},
		{"403 deactivated", 403, api(403, "Forbidden: user is deactivated"), telegram.ErrBlocked, 403, 0},
		{"403 kicked", 403, api(403, "Forbidden: bot was kicked from the group chat"), telegram.ErrBlocked, 403, 0},
		{"400 chat not found", 400, api(400, "Bad Request: chat not found"), telegram.ErrBlocked, 400, 0},
		{"400 other", 400, api(400, "Bad Request: message text is empty"), telegram.ErrPermanent, 400, 0},
		{"400 echoing the token", 400, api(400, "Bad Request: invalid token "+testToken), telegram.ErrPermanent, 400, 0},
		{"409", 409, api(409, "Conflict: can't use getUpdates method while webhook is active"), telegram.ErrPermanent, 409, 0},
		{"500", 500, api(500, "Internal Server Error"), telegram.ErrTransient, 500, 0},
		{"502 html", 502, "<html>Bad Gateway</html>", telegram.ErrTransient, 502, 0},
		{"404 html", 404, "<html>nope</html>", telegram.ErrPermanent, 404, 0},
		{"429 retry in text only", 429, api(429, "Too Many Requests: retry after 3"), telegram.ErrTransient, 0, 3 * time.Second},
		{"429 without delay", 429, api(429, "Too Many Requests"), telegram.ErrTransient, 429, 0},
		{"200 not json", 200, "hello", telegram.ErrPermanent, 200, 0},
		{"200 ok false", 200, api(400, "Bad Request: wrong"), telegram.ErrPermanent, 400, 0},
		{"200 wrong result", 200, `{"ok":true,"result":"not a message"}`, telegram.ErrPermanent, 200, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer ts.Close()
			_, err := newClient(t, ts.URL).SendMessage(context.Background(), 42, "hi", nil)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, other := range []error{telegram.ErrUnauthorized, telegram.ErrBlocked, telegram.ErrTransient, telegram.ErrPermanent} {
				if other != tt.want && errors.Is(err, other) {
					t.Fatalf("err = %v is also %v", err, other)
				}
			}
			var ra *telegram.RetryAfterError
			if got := errors.As(err, &ra); got != (tt.after > 0) || (got && ra.After != tt.after) {
				t.Fatalf("RetryAfterError = %v, want after %v", ra, tt.after)
			}
			var apiErr *telegram.APIError
			if tt.code != 0 && (!errors.As(err, &apiErr) || apiErr.Code != tt.code) {
				t.Fatalf("APIError = %v, want code %d", apiErr, tt.code)
			}
			noToken(t, err)
		})
	}
}

func TestTransportErrorsHideTheToken(t *testing.T) {
	// A port nobody listens on: listen, note it, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	expired, cancel := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel()

	tests := []struct {
		name  string
		base  string
		ctx   func() (context.Context, context.CancelFunc)
		cause error
	}{
		{"connection refused", dead, func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, nil},
		{"deadline while waiting", slow.URL, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"deadline already past", slow.URL, func() (context.Context, context.CancelFunc) { return expired, func() {} }, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			_, err := newClient(t, tt.base).SendMessage(ctx, 42, "hi", nil)
			if !errors.Is(err, telegram.ErrTransient) {
				t.Fatalf("err = %v, want ErrTransient", err)
			}
			var ue *url.Error
			if !errors.As(err, &ue) || !strings.Contains(ue.URL, "123456789:REDACTED") {
				t.Fatalf("want a *url.Error naming the bot, got %v", err)
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Fatalf("err = %v, want it to wrap %v", err, tt.cause)
			}
			noToken(t, err)
		})
	}
}

func TestDefaultHTTPClientRefusesLoopback(t *testing.T) {
	srv := telegramtest.New(testToken)
	defer srv.Close()
	c, err := telegram.NewClient(testToken, srv.URL(), nil) // the egress client
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetMe(context.Background())
	if !errors.Is(err, telegram.ErrPermanent) {
		t.Fatalf("err = %v, want ErrPermanent (egress refusal)", err)
	}
	noToken(t, err)
}

// TestRedirectIsNotFollowed: following a redirect would hand the token, which
// is in the path, to whatever host the redirect names.
func TestRedirectIsNotFollowed(t *testing.T) {
	var hit atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Store(true) }))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	hc := &http.Client{} // follows redirects by default
	c, err := telegram.NewClient(testToken, redirect.URL, hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SendMessage(context.Background(), 42, "hi", nil)
	var apiErr *telegram.APIError
	if !errors.Is(err, telegram.ErrPermanent) || !errors.As(err, &apiErr) || apiErr.Code != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v, want a permanent 307", err)
	}
	noToken(t, err)
	if hit.Load() {
		t.Fatal("the redirect was followed")
	}
	if hc.CheckRedirect != nil {
		t.Fatal("NewClient changed the caller's http.Client")
	}
}
