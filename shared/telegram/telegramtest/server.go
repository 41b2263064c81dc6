// Package telegramtest is a local fake of the Telegram Bot API for tests: a
// real HTTP server on 127.0.0.1 that answers the methods Tunnels uses the way
// https://core.telegram.org/bots/api documents them — {"ok":true,"result":…}
// or {"ok":false,"error_code":N,"description":…} with HTTP status N, routes
// /bot<token>/<method> (method names case-insensitive), parameters as JSON,
// form, multipart or query — and that delivers updates to the registered
// webhook with the X-Telegram-Bot-Api-Secret-Token header, as Telegram does.
//
// Deviations from Telegram, all in the direction of testing: setWebhook
// accepts plain http for loopback hosts (Telegram requires https), and Deliver
// only posts to loopback addresses.
package telegramtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
)

// HeaderSecretToken is the header carrying the webhook's secret_token.
const HeaderSecretToken = "X-Telegram-Bot-Api-Secret-Token"

// maxText is Telegram's limit on a message's text, in UTF-16 code units.
const maxText = 4096

// maxCallbackData is Telegram's limit on a button's callback_data, in bytes.
const maxCallbackData = 64

// WebhookInfo is what a bot's setWebhook registered.
type WebhookInfo struct {
	URL            string
	SecretToken    string
	AllowedUpdates []string // nil when never given
}

// SentMessage is a sendMessage the server accepted.
type SentMessage struct {
	BotID       int64 // the public id before ':' in the token
	ChatID      int64
	MessageID   int64
	Text        string
	ReplyMarkup json.RawMessage // as received; nil without one
	Buttons     [][]InlineButton
	At          time.Time // when the server received it
}

// Server is the fake Bot API. It is safe for concurrent use.
type Server struct {
	ts     *httptest.Server
	client *http.Client

	mu         sync.Mutex
	bots       map[string]*bot
	blocked    map[int64]bool
	throttleN  int
	throttleS  int
	sent       []SentMessage
	lastMsgID  map[int64]int64 // per chat, as Telegram numbers private chats
	answered   []string
	sendCalled int
	acceptAny  bool
}

type bot struct {
	user       User
	webhook    WebhookInfo
	lastUpdate int64
	lastBody   []byte // the last delivered update, for Redeliver
}

// New starts a server on 127.0.0.1 that knows the given bot tokens (each with
// username "test<id>_bot"); every other token is answered 401 Unauthorized.
func New(tokens ...string) *Server {
	s := &Server{
		client:    &http.Client{},
		bots:      map[string]*bot{},
		blocked:   map[int64]bool{},
		lastMsgID: map[int64]int64{},
	}
	// httptest listens on 127.0.0.1:0 (or [::1]:0 without IPv4 loopback).
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	for _, t := range tokens {
		s.AddToken(t, "")
	}
	return s
}

// Close stops the server.
func (s *Server) Close() { s.ts.Close() }

// URL is the base URL to give the client instead of https://api.telegram.org.
func (s *Server) URL() string { return s.ts.URL }

// AddToken makes token a valid bot token with this username ("" for
// "test<id>_bot"). Its bot id is the number before ':' (0 if there is none).
func (s *Server) AddToken(token, username string) {
	idText, _, _ := strings.Cut(token, ":")
	id, _ := strconv.ParseInt(idText, 10, 64)
	if username == "" {
		username = fmt.Sprintf("test%d_bot", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bots[token] = &bot{user: User{ID: id, IsBot: true, FirstName: username, Username: username}}
}

// AcceptAnyToken makes every token of the right shape a bot the first time
// it is used (make dev: paste any token; tests add theirs with AddToken).
func (s *Server) AcceptAnyToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acceptAny = true
}

// Block makes every later sendMessage to chatID answer 403 "Forbidden: bot
// was blocked by the user".
func (s *Server) Block(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocked[chatID] = true
}

// Unblock undoes Block.
func (s *Server) Unblock(chatID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocked, chatID)
}

// Throttle makes the next n sendMessage calls (of any bot) answer 429 "Too
// Many Requests: retry after <retryAfter>" with parameters.retry_after
// (omitted when retryAfter is 0, to test clients against answers without it).
func (s *Server) Throttle(n, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleN, s.throttleS = n, retryAfter
}

// Sent returns the messages accepted for chatID, in the order received.
func (s *Server) Sent(chatID int64) []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SentMessage
	for _, m := range s.sent {
		if m.ChatID == chatID {
			out = append(out, m)
		}
	}
	return out
}

// AllSent returns every accepted message, in the order received.
func (s *Server) AllSent() []SentMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// SendCalls counts sendMessage calls, accepted or not.
func (s *Server) SendCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendCalled
}

// Answered returns the callback query ids answered, in order.
func (s *Server) Answered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.answered)
}

// Webhook returns what setWebhook registered for token (zero if nothing).
func (s *Server) Webhook(token string) WebhookInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bots[token]
	if b == nil {
		return WebhookInfo{}
	}
	w := b.webhook
	w.AllowedUpdates = slices.Clone(w.AllowedUpdates)
	return w
}

// Deliver posts u to the webhook registered for token, as Telegram does: JSON
// body, HeaderSecretToken set to the registered secret. An UpdateID of 0 is
// replaced by the bot's next one. It returns the webhook's HTTP status. It
// fails without posting when the token has no webhook, the webhook is not on
// a loopback address, or the update's type is not in allowed_updates.
func (s *Server) Deliver(ctx context.Context, token string, u Update) (int, error) {
	s.mu.Lock()
	b := s.bots[token]
	if b == nil {
		s.mu.Unlock()
		return 0, errors.New("telegramtest: unknown token")
	}
	wh := b.webhook
	if hu, err := url.Parse(wh.URL); wh.URL == "" || err != nil || !isLoopback(hu.Hostname()) {
		s.mu.Unlock()
		return 0, errors.New("telegramtest: no webhook on a loopback address set for this token")
	}
	if t := updateType(u); len(wh.AllowedUpdates) > 0 && !slices.Contains(wh.AllowedUpdates, t) {
		s.mu.Unlock()
		return 0, fmt.Errorf("telegramtest: %s updates are not in allowed_updates %v", t, wh.AllowedUpdates)
	}
	if u.UpdateID == 0 {
		u.UpdateID = b.lastUpdate + 1
	}
	b.lastUpdate = max(b.lastUpdate, u.UpdateID)
	body, err := json.Marshal(u)
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	b.lastBody = body
	s.mu.Unlock()
	return s.post(ctx, wh, body)
}

// Redeliver posts the last update delivered for token again, same update_id,
// as Telegram does when a webhook did not answer 2xx in time.
func (s *Server) Redeliver(ctx context.Context, token string) (int, error) {
	s.mu.Lock()
	b := s.bots[token]
	if b == nil || b.lastBody == nil {
		s.mu.Unlock()
		return 0, errors.New("telegramtest: nothing delivered for this token")
	}
	wh, body := b.webhook, b.lastBody
	s.mu.Unlock()
	return s.post(ctx, wh, body)
}

func (s *Server) post(ctx context.Context, wh WebhookInfo, body []byte) (int, error) {
	if wh.URL == "" {
		return 0, errors.New("telegramtest: no webhook set for this token")
	}
	u, err := url.Parse(wh.URL)
	if err != nil || !isLoopback(u.Hostname()) {
		return 0, errors.New("telegramtest: webhook is not on a loopback address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if wh.SecretToken != "" {
		req.Header.Set(HeaderSecretToken, wh.SecretToken)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

func updateType(u Update) string {
	switch {
	case u.Message != nil:
		return "message"
	case u.EditedMessage != nil:
		return "edited_message"
	case u.CallbackQuery != nil:
		return "callback_query"
	case u.MyChatMember != nil:
		return "my_chat_member"
	}
	return ""
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiError is an answer {"ok": false}.
type apiError struct {
	code       int
	desc       string
	retryAfter int
}

func badRequest(desc string) *apiError { return &apiError{code: 400, desc: "Bad Request: " + desc} }

// tokenShape is a bot token's shape: digits, ':', 30 to 50 of [A-Za-z0-9_-].
func tokenShape(token string) bool {
	id, secret, ok := strings.Cut(token, ":")
	if !ok || id == "" || len(secret) < 30 || len(secret) > 50 {
		return false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range secret {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Fake-only endpoints, for trying a bot by hand (make dev):
//
//	POST /fake/updates?token=<bot token>   body: a Telegram Update; delivered to the bot's webhook
//	GET  /fake/sent?chat_id=<id>           what the bot sent (every chat without chat_id)
func (s *Server) serveFake(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/fake/updates":
		var u Update
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&u); err != nil {
			http.Error(w, `{"error": "the body is not a Telegram Update"}`, http.StatusBadRequest)
			return
		}
		status, err := s.Deliver(r.Context(), r.URL.Query().Get("token"), u)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"webhook_status": status})
	case r.Method == http.MethodGet && r.URL.Path == "/fake/sent":
		msgs := s.AllSent()
		if c := r.URL.Query().Get("chat_id"); c != "" {
			id, _ := strconv.ParseInt(c, 10, 64)
			msgs = s.Sent(id)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"messages": msgs})
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/fake/") {
		s.serveFake(w, r)
		return
	}
	result, aerr := s.handle(r)
	w.Header().Set("Content-Type", "application/json")
	if aerr != nil {
		body := map[string]any{"ok": false, "error_code": aerr.code, "description": aerr.desc}
		if aerr.retryAfter > 0 {
			body["parameters"] = map[string]any{"retry_after": aerr.retryAfter}
		}
		w.WriteHeader(aerr.code)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "result": result})
}

func (s *Server) handle(r *http.Request) (any, *apiError) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || token == "" || method == "" || strings.Contains(method, "/") {
		return nil, &apiError{code: 404, desc: "Not Found"}
	}
	s.mu.Lock()
	b := s.bots[token]
	accept := s.acceptAny && tokenShape(token)
	s.mu.Unlock()
	if b == nil && accept {
		s.AddToken(token, "")
		s.mu.Lock()
		b = s.bots[token]
		s.mu.Unlock()
	}
	if b == nil {
		return nil, &apiError{code: 401, desc: "Unauthorized"}
	}
	p, err := params(r)
	if err != nil {
		return nil, badRequest("can't parse request parameters")
	}
	switch strings.ToLower(method) {
	case "getme":
		return b.user, nil
	case "setwebhook":
		return s.setWebhook(token, p)
	case "deletewebhook":
		s.mu.Lock()
		defer s.mu.Unlock()
		b.webhook.URL, b.webhook.SecretToken = "", ""
		return true, nil
	case "getwebhookinfo":
		s.mu.Lock()
		defer s.mu.Unlock()
		info := map[string]any{"url": b.webhook.URL, "has_custom_certificate": false, "pending_update_count": 0}
		if b.webhook.AllowedUpdates != nil {
			info["allowed_updates"] = b.webhook.AllowedUpdates
		}
		return info, nil
	case "sendmessage":
		return s.sendMessage(b, p)
	case "answercallbackquery":
		id := p["callback_query_id"]
		if id == "" {
			return nil, badRequest("query is too old and response timeout expired or query ID is invalid")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.answered = append(s.answered, id)
		return true, nil
	}
	return nil, &apiError{code: 404, desc: "Not Found"}
}

func (s *Server) setWebhook(token string, p map[string]string) (any, *apiError) {
	hook, secret := p["url"], p["secret_token"]
	var allowed []string
	if raw, ok := p["allowed_updates"]; ok {
		if err := json.Unmarshal([]byte(raw), &allowed); err != nil {
			return nil, badRequest("can't parse allowed updates")
		}
		if allowed == nil {
			allowed = []string{}
		}
	}
	if secret != "" && !validSecret(secret) {
		return nil, badRequest("secret token contains unallowed characters")
	}
	if hook != "" {
		u, err := url.Parse(hook)
		if err != nil || u.Host == "" {
			return nil, badRequest("bad webhook: invalid webhook URL specified")
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			return nil, badRequest("bad webhook: An HTTPS URL must be provided for webhook")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bots[token]
	b.webhook.URL, b.webhook.SecretToken = hook, secret
	if allowed != nil {
		b.webhook.AllowedUpdates = allowed
	}
	return true, nil
}

func (s *Server) sendMessage(b *bot, p map[string]string) (any, *apiError) {
	s.mu.Lock()
	s.sendCalled++
	if s.throttleN > 0 {
		s.throttleN--
		after := s.throttleS
		s.mu.Unlock()
		return nil, &apiError{code: 429, desc: fmt.Sprintf("Too Many Requests: retry after %d", after), retryAfter: after}
	}
	s.mu.Unlock()
	if p["chat_id"] == "" {
		return nil, badRequest("chat_id is empty")
	}
	chatID, err := strconv.ParseInt(p["chat_id"], 10, 64)
	if err != nil || chatID == 0 {
		return nil, badRequest("chat not found")
	}
	text := p["text"]
	if strings.TrimSpace(text) == "" {
		return nil, badRequest("message text is empty")
	}
	if len(utf16.Encode([]rune(text))) > maxText {
		return nil, badRequest("message is too long")
	}
	var markup json.RawMessage
	var kb InlineKeyboard
	if raw := p["reply_markup"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &kb); err != nil || kb.InlineKeyboard == nil {
			return nil, badRequest("can't parse reply keyboard markup JSON object")
		}
		for _, row := range kb.InlineKeyboard {
			for _, btn := range row {
				if btn.Text == "" {
					return nil, badRequest("text buttons are unallowed in the inline keyboard")
				}
				if len(btn.CallbackData) > maxCallbackData || (btn.CallbackData == "" && btn.URL == "") {
					return nil, badRequest("BUTTON_DATA_INVALID")
				}
			}
		}
		markup = json.RawMessage(raw)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked[chatID] {
		return nil, &apiError{code: 403, desc: "Forbidden: bot was blocked by the user"}
	}
	s.lastMsgID[chatID]++
	now := time.Now()
	m := SentMessage{BotID: b.user.ID, ChatID: chatID, MessageID: s.lastMsgID[chatID], Text: text, ReplyMarkup: markup, Buttons: kb.InlineKeyboard, At: now}
	s.sent = append(s.sent, m)
	from := b.user
	msg := Message{MessageID: m.MessageID, From: &from, Chat: Chat{ID: chatID, Type: "private"}, Date: now.Unix(), Text: text}
	if markup != nil {
		msg.ReplyMarkup = &kb
	}
	return msg, nil
}

// params collects a request's parameters the ways the Bot API accepts them:
// the query string, then a JSON object, a urlencoded form or a multipart form.
// Values that are JSON strings are unquoted; other JSON values (reply_markup,
// allowed_updates, numbers) keep their JSON text, which is how form requests
// carry them too.
func params(r *http.Request) (map[string]string, error) {
	p := map[string]string{}
	for k, v := range r.URL.Query() {
		p[k] = v[0]
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return p, nil
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		for k, v := range obj {
			var str string
			if json.Unmarshal(v, &str) == nil {
				p[k] = str
			} else if string(v) != "null" {
				p[k] = string(v)
			}
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		for k, v := range r.PostForm {
			p[k] = v[0]
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(1 << 20); err != nil {
			return nil, err
		}
		for k, v := range r.MultipartForm.Value {
			p[k] = v[0]
		}
	}
	return p, nil
}

func validSecret(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
