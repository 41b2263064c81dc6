package telegram

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Kind says what an update means for the engine.
type Kind int

const (
	// KindIgnored: nothing for the engine (edited messages, group chats,
	// messages without text, other update types). Only UpdateID is sure to be
	// set; a CallbackID, when present, should still be answered.
	KindIgnored Kind = iota
	// KindStart: "/start", "/start <payload>" or "/start@bot <payload>"; the
	// user opened the bot, perhaps through t.me/<bot>?start=<payload>.
	KindStart
	// KindText: any other text message.
	KindText
	// KindButton: the user pressed an inline button (callback_query).
	KindButton
	// KindKicked: the user blocked the bot (my_chat_member → "kicked").
	KindKicked
	// KindMember: the user unblocked the bot (my_chat_member → "member").
	KindMember
)

var kindNames = [...]string{"ignored", "start", "text", "button", "kicked", "member"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// MaxPayload is the longest /start payload Telegram passes on.
const MaxPayload = 64

// Update is a Telegram update reduced to what the engine uses. In a private
// chat ChatID equals UserID.
type Update struct {
	UpdateID     int64 // deduplicate on it: Telegram redelivers until a 2xx
	Kind         Kind
	ChatID       int64
	UserID       int64
	FirstName    string
	LastName     string
	Username     string
	LanguageCode string
	Text         string // the message text (KindStart, KindText)
	// Payload is the deep-link payload of a KindStart: the part after
	// "/start " when it is 1–64 characters of [A-Za-z0-9_-], as Telegram
	// deep links allow; otherwise "" (a user typing "/start something else").
	Payload      string
	CallbackID   string // KindButton: answer it with AnswerCallbackQuery
	CallbackData string // KindButton: the pressed Button's ID
	MessageID    int64  // the user's message, or the bot's message whose button was pressed
}

// The wire shapes of the Bot API objects ParseUpdate reads.
type (
	wireUser struct {
		ID           int64  `json:"id"`
		IsBot        bool   `json:"is_bot"`
		FirstName    string `json:"first_name"`
		LastName     string `json:"last_name"`
		Username     string `json:"username"`
		LanguageCode string `json:"language_code"`
	}
	wireChat struct {
		ID   int64  `json:"id"`
		Type string `json:"type"`
	}
	wireMessage struct {
		MessageID int64     `json:"message_id"`
		From      *wireUser `json:"from"`
		Chat      wireChat  `json:"chat"`
		Text      string    `json:"text"`
	}
	wireUpdate struct {
		UpdateID      *int64       `json:"update_id"`
		Message       *wireMessage `json:"message"`
		CallbackQuery *struct {
			ID      string       `json:"id"`
			From    wireUser     `json:"from"`
			Message *wireMessage `json:"message"`
			Data    string       `json:"data"`
		} `json:"callback_query"`
		MyChatMember *struct {
			Chat          wireChat `json:"chat"`
			From          wireUser `json:"from"`
			NewChatMember struct {
				Status string `json:"status"`
			} `json:"new_chat_member"`
		} `json:"my_chat_member"`
	}
)

// ErrMalformedUpdate is wrapped by ParseUpdate's errors: the body is not a
// Telegram update (not JSON, or no positive update_id).
var ErrMalformedUpdate = errors.New("telegram: malformed update")

// ParseUpdate turns the JSON body of a webhook request into an Update. It does
// no I/O. Only private chats yield kinds other than KindIgnored: the engine
// talks to one subscriber at a time.
func ParseUpdate(body []byte) (Update, error) {
	var w wireUpdate
	if err := json.Unmarshal(body, &w); err != nil {
		return Update{}, fmt.Errorf("%w: %v", ErrMalformedUpdate, err)
	}
	if w.UpdateID == nil || *w.UpdateID <= 0 {
		return Update{}, fmt.Errorf("%w: no update_id", ErrMalformedUpdate)
	}
	u := Update{UpdateID: *w.UpdateID}
	switch {
	case w.Message != nil:
		m := w.Message
		if m.Chat.Type != "private" || m.From == nil || m.Text == "" {
			return u, nil
		}
		u.setUser(m.Chat.ID, *m.From)
		u.MessageID, u.Text = m.MessageID, m.Text
		u.Kind = KindText
		if payload, ok := startCommand(m.Text); ok {
			u.Kind, u.Payload = KindStart, payload
		}
	case w.CallbackQuery != nil:
		q := w.CallbackQuery
		u.CallbackID = q.ID
		// Without its message (an inline-mode message) or data (a game) the
		// press is not a funnel button.
		if q.Message == nil || q.Message.Chat.Type != "private" || q.Data == "" {
			return u, nil
		}
		u.setUser(q.Message.Chat.ID, q.From)
		u.Kind, u.CallbackData, u.MessageID = KindButton, q.Data, q.Message.MessageID
	case w.MyChatMember != nil:
		c := w.MyChatMember
		if c.Chat.Type != "private" {
			return u, nil
		}
		switch c.NewChatMember.Status {
		case "kicked":
			u.Kind = KindKicked
		case "member":
			u.Kind = KindMember
		default:
			return u, nil
		}
		u.setUser(c.Chat.ID, c.From)
	}
	return u, nil
}

func (u *Update) setUser(chatID int64, from wireUser) {
	u.ChatID, u.UserID = chatID, from.ID
	u.FirstName, u.LastName, u.Username, u.LanguageCode = from.FirstName, from.LastName, from.Username, from.LanguageCode
}

// startCommand reports whether text is the /start command, and its payload
// when that payload is a valid deep-link payload.
func startCommand(text string) (payload string, ok bool) {
	cmd, rest, _ := strings.Cut(text, " ")
	if name, _, _ := strings.Cut(cmd, "@"); name != "/start" {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if len(rest) == 0 || len(rest) > MaxPayload {
		return "", true
	}
	for i := 0; i < len(rest); i++ {
		if !isTokenChar(rest[i]) {
			return "", true
		}
	}
	return rest, true
}
