package telegramtest

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Update is a Telegram Update object as the Bot API posts it to a webhook,
// with the fields the builders below fill. UpdateID 0 lets Deliver assign the
// next id, as Telegram numbers a bot's updates.
type Update struct {
	UpdateID      int64          `json:"update_id"`
	Message       *Message       `json:"message,omitempty"`
	EditedMessage *Message       `json:"edited_message,omitempty"`
	CallbackQuery *CallbackQuery `json:"callback_query,omitempty"`
	MyChatMember  *ChatMember    `json:"my_chat_member,omitempty"`
}

// User is a Telegram User.
type User struct {
	ID           int64  `json:"id"`
	IsBot        bool   `json:"is_bot"`
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name,omitempty"`
	Username     string `json:"username,omitempty"`
	LanguageCode string `json:"language_code,omitempty"`
}

// Chat is a Telegram Chat; Type is "private", "group", "supergroup" or "channel".
type Chat struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Title     string `json:"title,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Username  string `json:"username,omitempty"`
}

// Message is a Telegram Message.
type Message struct {
	MessageID   int64           `json:"message_id"`
	From        *User           `json:"from,omitempty"`
	Chat        Chat            `json:"chat"`
	Date        int64           `json:"date"`
	Text        string          `json:"text,omitempty"`
	Entities    []MessageEntity `json:"entities,omitempty"`
	ReplyMarkup *InlineKeyboard `json:"reply_markup,omitempty"`
}

// MessageEntity marks e.g. a bot command in a message's text.
type MessageEntity struct {
	Type   string `json:"type"`
	Offset int    `json:"offset"`
	Length int    `json:"length"`
}

// InlineKeyboard is a reply_markup of type InlineKeyboardMarkup.
type InlineKeyboard struct {
	InlineKeyboard [][]InlineButton `json:"inline_keyboard"`
}

// InlineButton is an InlineKeyboardButton with callback data.
type InlineButton struct {
	Text         string `json:"text"`
	CallbackData string `json:"callback_data,omitempty"`
	URL          string `json:"url,omitempty"`
}

// CallbackQuery is a press of an inline button.
type CallbackQuery struct {
	ID           string   `json:"id"`
	From         User     `json:"from"`
	Message      *Message `json:"message,omitempty"`
	ChatInstance string   `json:"chat_instance"`
	Data         string   `json:"data,omitempty"`
}

// ChatMember is a ChatMemberUpdated: the bot's membership in a chat changed
// (in a private chat, "kicked" means the user blocked the bot).
type ChatMember struct {
	Chat          Chat         `json:"chat"`
	From          User         `json:"from"`
	Date          int64        `json:"date"`
	OldChatMember MemberStatus `json:"old_chat_member"`
	NewChatMember MemberStatus `json:"new_chat_member"`
}

// MemberStatus is a ChatMember: whose status it is and what it is.
type MemberStatus struct {
	User   User   `json:"user"`
	Status string `json:"status"`
}

// builderBot is the bot user the builders put in my_chat_member updates; a
// webhook cannot tell it from the real bot, which it never looks up.
var builderBot = User{ID: 1, IsBot: true, FirstName: "Test bot", Username: "test_bot"}

// userMessageID numbers the user messages the builders make. Real message ids
// are per chat; unique ones are just as valid.
var userMessageID atomic.Int64

// callbackID numbers callback query ids.
var callbackID atomic.Int64

// privateChat is the chat of a user with the bot: same id as the user.
func privateChat(chatID int64, firstName string) (User, Chat) {
	u := User{ID: chatID, FirstName: firstName, LanguageCode: "en"}
	return u, Chat{ID: chatID, Type: "private", FirstName: firstName}
}

// StartUpdate is the user pressing Start, or opening t.me/<bot>?start=<payload>:
// the message "/start" or "/start <payload>".
func StartUpdate(chatID int64, firstName, payload string) Update {
	text := "/start"
	if payload != "" {
		text += " " + payload
	}
	u := TextUpdate(chatID, text)
	u.Message.From.FirstName = firstName
	u.Message.Chat.FirstName = firstName
	u.Message.Entities = []MessageEntity{{Type: "bot_command", Offset: 0, Length: len("/start")}}
	return u
}

// TextUpdate is the user sending text in the private chat.
func TextUpdate(chatID int64, text string) Update {
	from, chat := privateChat(chatID, "Test")
	return Update{Message: &Message{
		MessageID: userMessageID.Add(1),
		From:      &from,
		Chat:      chat,
		Date:      time.Now().Unix(),
		Text:      text,
	}}
}

// CallbackUpdate is the user pressing the button with callback data data under
// the bot's message messageID.
func CallbackUpdate(chatID, messageID int64, data string) Update {
	from, chat := privateChat(chatID, "Test")
	bot := builderBot
	return Update{CallbackQuery: &CallbackQuery{
		ID:           strconv.FormatInt(1_000_000+callbackID.Add(1), 10),
		From:         from,
		Message:      &Message{MessageID: messageID, From: &bot, Chat: chat, Date: time.Now().Unix()},
		ChatInstance: strconv.FormatInt(chatID*7919, 10),
		Data:         data,
	}}
}

// KickedUpdate is the user blocking the bot.
func KickedUpdate(chatID int64) Update {
	return memberUpdate(chatID, "member", "kicked")
}

// MemberUpdate is the user unblocking the bot (restarting it).
func MemberUpdate(chatID int64) Update {
	return memberUpdate(chatID, "kicked", "member")
}

func memberUpdate(chatID int64, from, to string) Update {
	user, chat := privateChat(chatID, "Test")
	return Update{MyChatMember: &ChatMember{
		Chat:          chat,
		From:          user,
		Date:          time.Now().Unix(),
		OldChatMember: MemberStatus{User: builderBot, Status: from},
		NewChatMember: MemberStatus{User: builderBot, Status: to},
	}}
}
