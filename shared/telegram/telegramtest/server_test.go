package telegramtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

const token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"

// answer is the Bot API envelope.
type answer struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// call makes a raw Bot API request, the way any client would.
func call(t *testing.T, srv *telegramtest.Server, tok, method, contentType string, body io.Reader) (int, answer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/bot"+tok+"/"+method, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	if !a.OK && a.ErrorCode != resp.StatusCode {
		t.Fatalf("error_code %d but HTTP status %d", a.ErrorCode, resp.StatusCode)
	}
	return resp.StatusCode, a
}

func callJSON(t *testing.T, srv *telegramtest.Server, tok, method string, params any) (int, answer) {
	t.Helper()
	b, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return call(t, srv, tok, method, "application/json", bytes.NewReader(b))
}

func TestRoutingAndAuth(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	tests := []struct {
		name, tok, method string
		status            int
		desc              string
	}{
		{"getMe", token, "getMe", 200, ""},
		{"method case-insensitive", token, "GETME", 200, ""},
		{"unknown method", token, "sendDice", 404, "Not Found"},
		{"unknown token getMe", "987:" + strings.Repeat("b", 35), "getMe", 401, "Unauthorized"},
		{"unknown token sendMessage", "987:" + strings.Repeat("b", 35), "sendMessage", 401, "Unauthorized"},
		{"unknown token setWebhook", "987:" + strings.Repeat("b", 35), "setWebhook", 401, "Unauthorized"},
		{"unknown token answerCallbackQuery", "987:" + strings.Repeat("b", 35), "answerCallbackQuery", 401, "Unauthorized"},
		{"no method", token, "", 404, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := callJSON(t, srv, tt.tok, tt.method, map[string]any{"chat_id": 1, "text": "x"})
			if status != tt.status || a.OK != (tt.status == 200) || a.Description != tt.desc {
				t.Fatalf("got %d %+v, want %d %q", status, a, tt.status, tt.desc)
			}
		})
	}
	_, a := callJSON(t, srv, token, "getMe", nil)
	var me telegramtest.User
	if err := json.Unmarshal(a.Result, &me); err != nil || me.ID != 123456789 || !me.IsBot || me.Username != "test123456789_bot" {
		t.Fatalf("getMe result = %s (%v)", a.Result, err)
	}
}

func TestSetWebhookEncodings(t *testing.T) {
	form := url.Values{"url": {"https://a.example/h"}, "secret_token": {"form_secret"}, "allowed_updates": {`["message"]`}}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("url", "https://b.example/h")
	_ = mw.WriteField("secret_token", "multipart_secret")
	_ = mw.WriteField("allowed_updates", `["callback_query"]`)
	_ = mw.Close()
	tests := []struct {
		name, ct, query string
		body            string
		want            telegramtest.WebhookInfo
	}{
		{"json", "application/json", "", `{"url":"https://c.example/h","secret_token":"json_secret","allowed_updates":["message","my_chat_member"]}`,
			telegramtest.WebhookInfo{URL: "https://c.example/h", SecretToken: "json_secret", AllowedUpdates: []string{"message", "my_chat_member"}}},
		{"form", "application/x-www-form-urlencoded", "", form.Encode(),
			telegramtest.WebhookInfo{URL: "https://a.example/h", SecretToken: "form_secret", AllowedUpdates: []string{"message"}}},
		{"multipart", mw.FormDataContentType(), "", mp.String(),
			telegramtest.WebhookInfo{URL: "https://b.example/h", SecretToken: "multipart_secret", AllowedUpdates: []string{"callback_query"}}},
		{"query", "", "?url=" + url.QueryEscape("http://127.0.0.1:9/h") + "&secret_token=q", "",
			telegramtest.WebhookInfo{URL: "http://127.0.0.1:9/h", SecretToken: "q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := telegramtest.New(token)
			defer srv.Close()
			status, a := call(t, srv, token, "setWebhook"+tt.query, tt.ct, strings.NewReader(tt.body))
			if status != 200 || string(a.Result) != "true" {
				t.Fatalf("setWebhook = %d %+v", status, a)
			}
			if got := srv.Webhook(token); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("webhook = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWebhookLifecycle(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	if status, a := callJSON(t, srv, token, "setWebhook", map[string]any{"url": "https://x.example/h", "secret_token": "s1", "allowed_updates": []string{"message"}}); status != 200 {
		t.Fatalf("setWebhook: %+v", a)
	}
	// allowed_updates absent: Telegram keeps the previous list.
	callJSON(t, srv, token, "setWebhook", map[string]any{"url": "https://y.example/h", "secret_token": "s2"})
	_, a := callJSON(t, srv, token, "getWebhookInfo", nil)
	var info struct {
		URL            string   `json:"url"`
		AllowedUpdates []string `json:"allowed_updates"`
		Pending        *int     `json:"pending_update_count"`
	}
	if err := json.Unmarshal(a.Result, &info); err != nil || info.URL != "https://y.example/h" || fmt.Sprint(info.AllowedUpdates) != "[message]" || info.Pending == nil {
		t.Fatalf("getWebhookInfo = %s", a.Result)
	}
	if strings.Contains(string(a.Result), "s2") {
		t.Fatal("getWebhookInfo shows the secret token; Telegram does not")
	}
	refusals := []struct {
		name   string
		params map[string]any
		desc   string
	}{
		{"bad secret", map[string]any{"url": "https://x.example/h", "secret_token": "a b"}, "Bad Request: secret token contains unallowed characters"},
		{"plain http", map[string]any{"url": "http://x.example/h"}, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"},
		{"not a url", map[string]any{"url": "::nope"}, "Bad Request: bad webhook: invalid webhook URL specified"},
	}
	for _, r := range refusals {
		if status, a := callJSON(t, srv, token, "setWebhook", r.params); status != 400 || a.Description != r.desc {
			t.Errorf("%s: %d %q, want 400 %q", r.name, status, a.Description, r.desc)
		}
	}
	if got := srv.Webhook(token); got.URL != "https://y.example/h" || got.SecretToken != "s2" {
		t.Fatalf("a refused setWebhook changed the webhook: %+v", got)
	}
	if status, _ := callJSON(t, srv, token, "deleteWebhook", nil); status != 200 {
		t.Fatal("deleteWebhook failed")
	}
	if got := srv.Webhook(token); got.URL != "" || got.SecretToken != "" {
		t.Fatalf("after deleteWebhook: %+v", got)
	}
}

func TestSendMessage(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	markup := `{"inline_keyboard":[[{"text":"Yes","callback_data":"yes"}]]}`
	tests := []struct {
		name   string
		params map[string]any
		status int
		desc   string
	}{
		{"plain", map[string]any{"chat_id": 42, "text": "one"}, 200, ""},
		{"chat id as string", map[string]any{"chat_id": "42", "text": "two"}, 200, ""},
		{"with keyboard object", map[string]any{"chat_id": 42, "text": "three", "reply_markup": json.RawMessage(markup)}, 200, ""},
		{"with keyboard string", map[string]any{"chat_id": 42, "text": "four", "reply_markup": markup}, 200, ""},
		{"empty text", map[string]any{"chat_id": 42, "text": ""}, 400, "Bad Request: message text is empty"},
		{"blank text", map[string]any{"chat_id": 42, "text": "  "}, 400, "Bad Request: message text is empty"},
		{"too long", map[string]any{"chat_id": 42, "text": strings.Repeat("😀", 2049)}, 400, "Bad Request: message is too long"},
		{"no chat", map[string]any{"text": "x"}, 400, "Bad Request: chat_id is empty"},
		{"username chat", map[string]any{"chat_id": "@someone", "text": "x"}, 400, "Bad Request: chat not found"},
		{"bad markup", map[string]any{"chat_id": 42, "text": "x", "reply_markup": "{"}, 400, "Bad Request: can't parse reply keyboard markup JSON object"},
		{"callback data too long", map[string]any{"chat_id": 42, "text": "x", "reply_markup": map[string]any{
			"inline_keyboard": [][]map[string]string{{{"text": "B", "callback_data": strings.Repeat("d", 65)}}}}}, 400, "Bad Request: BUTTON_DATA_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, a := callJSON(t, srv, token, "sendMessage", tt.params)
			if status != tt.status || a.Description != tt.desc {
				t.Fatalf("got %d %q, want %d %q", status, a.Description, tt.status, tt.desc)
			}
		})
	}
	// A form-encoded request, as many clients send it.
	form := url.Values{"chat_id": {"42"}, "text": {"five"}, "reply_markup": {markup}}
	if status, a := call(t, srv, token, "sendMessage", "application/x-www-form-urlencoded", strings.NewReader(form.Encode())); status != 200 {
		t.Fatalf("form sendMessage: %+v", a)
	}
	sent := srv.Sent(42)
	var texts []string
	for i, m := range sent {
		texts = append(texts, m.Text)
		if m.MessageID != int64(i+1) || m.BotID != 123456789 || m.At.IsZero() || (i > 0 && m.At.Before(sent[i-1].At)) {
			t.Errorf("message %d = %+v", i, m)
		}
	}
	if got := strings.Join(texts, ","); got != "one,two,three,four,five" {
		t.Fatalf("sent in order %q", got)
	}
	for _, i := range []int{2, 3, 4} {
		if fmt.Sprint(sent[i].Buttons) != "[[{Yes yes }]]" || sent[i].ReplyMarkup == nil {
			t.Errorf("message %d buttons = %v", i, sent[i].Buttons)
		}
	}
	if len(srv.AllSent()) != 5 {
		t.Fatalf("AllSent has %d", len(srv.AllSent()))
	}
	_, a := callJSON(t, srv, token, "sendMessage", map[string]any{"chat_id": 42, "text": "six"})
	var msg telegramtest.Message
	if err := json.Unmarshal(a.Result, &msg); err != nil || msg.MessageID != 6 || msg.Chat.ID != 42 || msg.Text != "six" || msg.From == nil || !msg.From.IsBot {
		t.Fatalf("result = %s", a.Result)
	}
}

func TestBlockAndThrottle(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	srv.Block(42)
	status, a := callJSON(t, srv, token, "sendMessage", map[string]any{"chat_id": 42, "text": "x"})
	if status != 403 || a.Description != "Forbidden: bot was blocked by the user" {
		t.Fatalf("blocked: %d %+v", status, a)
	}
	if status, _ := callJSON(t, srv, token, "sendMessage", map[string]any{"chat_id": 43, "text": "x"}); status != 200 {
		t.Fatal("Block(42) blocked chat 43")
	}
	srv.Unblock(42)
	if status, _ := callJSON(t, srv, token, "sendMessage", map[string]any{"chat_id": 42, "text": "x"}); status != 200 {
		t.Fatal("Unblock did not unblock")
	}

	srv.Throttle(2, 5)
	for i := range 2 {
		status, a := callJSON(t, srv, token, "sendMessage", map[string]any{"chat_id": 43, "text": "x"})
		if status != 429 || a.Description != "Too Many Requests: retry after 5" || a.Parameters == nil || a.Parameters.RetryAfter != 5 {
			t.Fatalf("throttled call %d: %d %+v", i, status, a)
		}
	}
	if status, _ := callJSON(t, srv, token, "sendMessage", map[string]any{"chat_id": 43, "text": "x"}); status != 200 {
		t.Fatal("third call still throttled")
	}
	if n := len(srv.Sent(43)); n != 2 {
		t.Fatalf("chat 43 has %d messages, want 2 (throttled ones are not sent)", n)
	}
	if n := srv.SendCalls(); n != 6 {
		t.Fatalf("SendCalls = %d, want 6", n)
	}
}

func TestAnswerCallbackQuery(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	if status, _ := callJSON(t, srv, token, "answerCallbackQuery", map[string]any{"callback_query_id": "q1"}); status != 200 {
		t.Fatal("answerCallbackQuery failed")
	}
	if status, _ := callJSON(t, srv, token, "answerCallbackQuery", map[string]any{}); status != 400 {
		t.Fatal("answerCallbackQuery without id accepted")
	}
	if got := srv.Answered(); fmt.Sprint(got) != "[q1]" {
		t.Fatalf("Answered = %v", got)
	}
}

// hook is a webhook endpoint on loopback that records what it receives.
type hook struct {
	mu      sync.Mutex
	secrets []string
	bodies  []telegramtest.Update
	status  int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var u telegramtest.Update
	_ = json.NewDecoder(r.Body).Decode(&u)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, r.Header.Get(telegramtest.HeaderSecretToken))
	h.bodies = append(h.bodies, u)
	if h.status != 0 {
		w.WriteHeader(h.status)
	}
}

func TestDeliver(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	h := &hook{}
	ts := httptest.NewServer(h)
	defer ts.Close()
	ctx := context.Background()

	if _, err := srv.Deliver(ctx, token, telegramtest.TextUpdate(42, "hi")); err == nil {
		t.Fatal("Deliver without a webhook succeeded")
	}
	callJSON(t, srv, token, "setWebhook", map[string]any{"url": ts.URL + "/hook", "secret_token": "shh", "allowed_updates": []string{"message", "callback_query"}})

	for _, u := range []telegramtest.Update{telegramtest.StartUpdate(42, "Ann", "landing"), telegramtest.TextUpdate(42, "hi"), telegramtest.CallbackUpdate(42, 3, "b1")} {
		if status, err := srv.Deliver(ctx, token, u); err != nil || status != 200 {
			t.Fatalf("Deliver: %d %v", status, err)
		}
	}
	if _, err := srv.Deliver(ctx, token, telegramtest.KickedUpdate(42)); err == nil {
		t.Fatal("delivered a my_chat_member update that allowed_updates excludes")
	}
	if status, err := srv.Redeliver(ctx, token); err != nil || status != 200 {
		t.Fatalf("Redeliver: %d %v", status, err)
	}
	explicit := telegramtest.TextUpdate(42, "again")
	explicit.UpdateID = 100
	srv.Deliver(ctx, token, explicit)
	srv.Deliver(ctx, token, telegramtest.TextUpdate(42, "after"))

	h.mu.Lock()
	var ids []int64
	for i, b := range h.bodies {
		ids = append(ids, b.UpdateID)
		if h.secrets[i] != "shh" {
			t.Errorf("delivery %d secret header = %q", i, h.secrets[i])
		}
	}
	first := h.bodies[0]
	h.mu.Unlock()
	if fmt.Sprint(ids) != "[1 2 3 3 100 101]" {
		t.Fatalf("update ids = %v, want [1 2 3 3 100 101]", ids)
	}
	if first.Message == nil || first.Message.Text != "/start landing" || first.Message.Chat.Type != "private" {
		t.Fatalf("first delivery = %+v", first)
	}

	h.mu.Lock()
	h.status = http.StatusUnauthorized
	h.mu.Unlock()
	if status, err := srv.Deliver(ctx, token, telegramtest.TextUpdate(42, "x")); err != nil || status != 401 {
		t.Fatalf("Deliver returned %d %v, want the webhook's 401", status, err)
	}
}

func TestDeliverOnlyToLoopback(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	callJSON(t, srv, token, "setWebhook", map[string]any{"url": "https://tunnels.example/hook", "secret_token": "shh"})
	if _, err := srv.Deliver(context.Background(), token, telegramtest.TextUpdate(42, "x")); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Deliver to a public address: %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := telegramtest.New(token)
	defer srv.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				params, _ := json.Marshal(map[string]any{"chat_id": 42 + g%2, "text": fmt.Sprintf("g%d-%d", g, i)})
				resp, err := http.Post(srv.URL()+"/bot"+token+"/sendMessage", "application/json", bytes.NewReader(params))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				_ = srv.Sent(42)
				_ = srv.AllSent()
			}
		}()
	}
	wg.Wait()
	for _, chat := range []int64{42, 43} {
		sent := srv.Sent(chat)
		if len(sent) != 40 {
			t.Fatalf("chat %d: %d messages, want 40", chat, len(sent))
		}
		for i, m := range sent {
			if m.MessageID != int64(i+1) {
				t.Fatalf("chat %d message %d has id %d", chat, i, m.MessageID)
			}
		}
	}
}

func TestAcceptAnyTokenAndFakeEndpoints(t *testing.T) {
	s := telegramtest.New()
	defer s.Close()
	tok := "4242:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
	get := func(path string) (int, string) {
		res, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/bot" + tok + "/getMe"); code != http.StatusUnauthorized {
		t.Fatalf("an unknown token before AcceptAnyToken: %d", code)
	}
	s.AcceptAnyToken()
	if code, body := get("/bot" + tok + "/getMe"); code != http.StatusOK || !strings.Contains(body, `"username":"test4242_bot"`) {
		t.Fatalf("getMe: %d %s", code, body)
	}
	if code, _ := get("/botnot-a-token/getMe"); code != http.StatusUnauthorized {
		t.Fatalf("a malformed token was accepted: %d", code)
	}
	res, err := http.Post(s.URL()+"/bot"+tok+"/sendMessage", "application/json", strings.NewReader(`{"chat_id": 7, "text": "hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if code, body := get("/fake/sent?chat_id=7"); code != http.StatusOK || !strings.Contains(body, `"Text":"hello"`) {
		t.Fatalf("fake/sent: %d %s", code, body)
	}
	// Without a webhook there is nowhere to deliver to.
	res, err = http.Post(s.URL()+"/fake/updates?token="+token, "application/json", strings.NewReader(`{"message": {"message_id": 1, "chat": {"id": 7, "type": "private"}, "text": "hi"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("fake/updates without a webhook: %d", res.StatusCode)
	}
}
