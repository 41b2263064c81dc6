package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tunnels/tunnels/shared/egress"
)

// DefaultBaseURL is where the Bot API lives.
const DefaultBaseURL = "https://api.telegram.org"

// MaxCallbackData is the most bytes Telegram accepts in a button's
// callback_data, which carries Button.ID.
const MaxCallbackData = 64

// maxAnswer bounds how much of an answer is read: Bot API answers to the calls
// made here are a few hundred bytes.
const maxAnswer = 1 << 20

// maxDescription bounds the description kept in an APIError.
const maxDescription = 512

// DefaultAllowedUpdates are the update types the engine handles: messages
// (/start and text), button presses and the bot being blocked or unblocked.
// Pass them to SetWebhook so Telegram sends nothing else.
func DefaultAllowedUpdates() []string {
	return []string{"message", "callback_query", "my_chat_member"}
}

// Bot is the bot behind a token, as getMe describes it.
type Bot struct {
	ID        int64
	IsBot     bool
	FirstName string
	Username  string
}

// Button is an inline keyboard button: Text is shown, ID comes back as the
// CallbackData of the KindButton update when the user presses it.
type Button struct {
	ID   string
	Text string
}

// Client calls the Bot API for one bot. It is safe for concurrent use. It never
// sleeps or retries: rate limits and retries are the caller's, across all the
// functions that share the bot (see RetryAfterError).
type Client struct {
	token string
	base  string
	http  *http.Client
}

// defaultHTTP is shared so that clients built without one reuse connections.
var defaultHTTP = sync.OnceValue(func() *http.Client {
	return egress.NewClient(egress.Policy{}, egress.Options{})
})

// NewClient returns a Client for the bot with this token. baseURL is the Bot
// API's address ("" for DefaultBaseURL; tests give a telegramtest.Server's
// URL). hc makes the requests; production passes the egress client (nil: an
// egress client with default options, which reaches only public addresses).
// It makes no request and never follows redirects. A token without the shape of a bot token is refused with
// an error wrapping ErrUnauthorized.
func NewClient(token, baseURL string, hc *http.Client) (*Client, error) {
	if !ValidToken(token) {
		return nil, fmt.Errorf("%w: malformed bot token", ErrUnauthorized)
	}
	if baseURL == "" {
		baseURL = DefaultBaseURL
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.User != nil {
		return nil, errors.New("telegram: base url is not an http(s) url without query or credentials")
	}
	if hc == nil {
		hc = defaultHTTP()
	}
	// The Bot API does not redirect; following one would send the token, which
	// is in the path, to the host it names. A copy keeps the caller's client
	// (and its transport, shared) as it was.
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{token: token, base: strings.TrimRight(baseURL, "/"), http: &noRedirect}, nil
}

// BotID is the public id of the client's bot (see BotID).
func (c *Client) BotID() string { return BotID(c.token) }

// GetMe checks the token and returns the bot it belongs to.
func (c *Client) GetMe(ctx context.Context) (Bot, error) {
	var u struct {
		ID        int64  `json:"id"`
		IsBot     bool   `json:"is_bot"`
		FirstName string `json:"first_name"`
		Username  string `json:"username"`
	}
	if err := c.call(ctx, "getMe", struct{}{}, &u); err != nil {
		return Bot{}, err
	}
	return Bot{ID: u.ID, IsBot: u.IsBot, FirstName: u.FirstName, Username: u.Username}, nil
}

// SetWebhook makes Telegram POST the bot's updates to webhookURL with
// secretToken in HeaderSecretToken (see NewSecretToken). allowedUpdates lists
// the update types wanted (see DefaultAllowedUpdates); nil keeps Telegram's
// current list. Telegram requires an https url on port 443, 80, 88 or 8443.
func (c *Client) SetWebhook(ctx context.Context, webhookURL, secretToken string, allowedUpdates []string) error {
	if webhookURL == "" {
		return fmt.Errorf("%w: setWebhook: empty url (use DeleteWebhook)", ErrPermanent)
	}
	if !ValidSecretToken(secretToken) {
		// An empty secret would let anyone post updates as Telegram.
		return fmt.Errorf("%w: setWebhook: secret token must be 1-256 characters of [A-Za-z0-9_-]", ErrPermanent)
	}
	params := map[string]any{"url": webhookURL, "secret_token": secretToken}
	if allowedUpdates != nil {
		// An explicit empty list means "all but a few types" to Telegram,
		// unlike an absent one, so nil and empty are kept apart.
		params["allowed_updates"] = allowedUpdates
	}
	return c.call(ctx, "setWebhook", params, nil)
}

// DeleteWebhook stops webhook delivery for the bot (pending updates are kept).
func (c *Client) DeleteWebhook(ctx context.Context) error {
	return c.call(ctx, "deleteWebhook", struct{}{}, nil)
}

// SendMessage sends text as plain text (no parse mode, so nothing in it is
// interpreted) to chatID, with one inline button per row, and returns the new
// message's id. Arguments that Telegram would refuse — no chat, empty text, a
// button without text or whose ID is empty or longer than MaxCallbackData
// bytes — fail with ErrPermanent before anything is sent.
func (c *Client) SendMessage(ctx context.Context, chatID int64, text string, buttons []Button) (int64, error) {
	if chatID == 0 {
		return 0, fmt.Errorf("%w: sendMessage: no chat id", ErrPermanent)
	}
	if strings.TrimSpace(text) == "" {
		return 0, fmt.Errorf("%w: sendMessage: empty text", ErrPermanent)
	}
	type inlineButton struct {
		Text         string `json:"text"`
		CallbackData string `json:"callback_data"`
	}
	type markup struct {
		InlineKeyboard [][]inlineButton `json:"inline_keyboard"`
	}
	params := struct {
		ChatID      int64   `json:"chat_id"`
		Text        string  `json:"text"`
		ReplyMarkup *markup `json:"reply_markup,omitempty"`
	}{ChatID: chatID, Text: text}
	if len(buttons) > 0 {
		params.ReplyMarkup = &markup{}
		for i, b := range buttons {
			if strings.TrimSpace(b.Text) == "" {
				return 0, fmt.Errorf("%w: sendMessage: button %d has no text", ErrPermanent, i)
			}
			if b.ID == "" || len(b.ID) > MaxCallbackData {
				return 0, fmt.Errorf("%w: sendMessage: button %d id must be 1-%d bytes", ErrPermanent, i, MaxCallbackData)
			}
			params.ReplyMarkup.InlineKeyboard = append(params.ReplyMarkup.InlineKeyboard, []inlineButton{{Text: b.Text, CallbackData: b.ID}})
		}
	}
	var m struct {
		MessageID int64 `json:"message_id"`
	}
	if err := c.call(ctx, "sendMessage", params, &m); err != nil {
		return 0, err
	}
	return m.MessageID, nil
}

// AnswerCallbackQuery acknowledges a button press (Update.CallbackID), which
// stops the button's loading indicator in the user's app.
func (c *Client) AnswerCallbackQuery(ctx context.Context, callbackID string) error {
	if callbackID == "" {
		return fmt.Errorf("%w: answerCallbackQuery: empty callback query id", ErrPermanent)
	}
	return c.call(ctx, "answerCallbackQuery", map[string]string{"callback_query_id": callbackID}, nil)
}

// envelope is every Bot API answer.
type envelope struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// retryAfterText finds the delay in "Too Many Requests: retry after 5" when an
// answer lacks parameters.retry_after (0: none). It is a plain scan, not a
// regular expression: the flow function then links no regexp package.
func retryAfterText(desc string) int {
	_, rest, ok := strings.Cut(desc, "retry after ")
	if !ok {
		return 0
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(rest[:end])
	return n
}

// call POSTs params as JSON to method and decodes the result into dest (nil:
// ignored). Every error it returns is free of the token.
func (c *Client) call(ctx context.Context, method string, params, dest any) error {
	body, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("%w: %s: encode: %v", ErrPermanent, method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/bot"+c.token+"/"+method, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPermanent, method, c.redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		kind := ErrTransient
		if egress.IsRefused(err) {
			kind = ErrPermanent
		}
		return fmt.Errorf("%w: %s: %w", kind, method, c.redact(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%w: %s: read answer: %w", ErrTransient, method, c.redact(err))
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || (!env.OK && env.ErrorCode == 0 && env.Description == "") {
		// Not the Bot API speaking (a proxy, a load balancer): judge by status.
		kind := ErrPermanent
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			kind = ErrTransient
		} else if resp.StatusCode == http.StatusUnauthorized {
			kind = ErrUnauthorized
		}
		return &APIError{Method: method, Code: resp.StatusCode, Description: "unexpected answer: " + http.StatusText(resp.StatusCode), kind: kind}
	}
	if !env.OK {
		return c.apiError(method, resp.StatusCode, env)
	}
	if dest == nil {
		return nil
	}
	if err := json.Unmarshal(env.Result, dest); err != nil {
		return &APIError{Method: method, Code: resp.StatusCode, Description: "unexpected result: " + c.redact(err).Error(), kind: ErrPermanent}
	}
	return nil
}

// apiError turns an {"ok": false} answer into the error of its kind.
func (c *Client) apiError(method string, status int, env envelope) error {
	code := env.ErrorCode
	if code == 0 {
		code = status
	}
	desc := RedactToken(env.Description, c.token)
	if len(desc) > maxDescription {
		desc = desc[:maxDescription]
	}
	if code == http.StatusTooManyRequests {
		secs := 0
		if env.Parameters != nil {
			secs = env.Parameters.RetryAfter
		}
		if secs <= 0 {
			secs = retryAfterText(desc)
		}
		if secs > 0 {
			return &RetryAfterError{Method: method, After: time.Duration(secs) * time.Second}
		}
	}
	return &APIError{Method: method, Code: code, Description: desc, kind: classify(code, desc)}
}

// redact returns err without the token. The *url.Error of a failed request
// names the request URL, which holds the token: it is rebuilt with the URL
// redacted, keeping its cause (for errors.Is(err, context.DeadlineExceeded))
// unless the cause's own text holds the token too.
func (c *Client) redact(err error) error {
	clean := func(e error) error {
		if msg := RedactToken(e.Error(), c.token); msg != e.Error() {
			var ne net.Error
			return &redactedError{msg: msg, timeout: errors.As(e, &ne) && ne.Timeout()}
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue == err {
		return &url.Error{Op: ue.Op, URL: RedactToken(ue.URL, c.token), Err: clean(ue.Err)}
	}
	return clean(err)
}
