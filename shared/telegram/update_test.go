package telegram_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/telegram"
	"github.com/tunnels/tunnels/shared/telegram/telegramtest"
)

func TestParseUpdateFixtures(t *testing.T) {
	anna := telegram.Update{ChatID: 5012345678, UserID: 5012345678, FirstName: "Anna", LastName: "Petrova", Username: "anna_p", LanguageCode: "ru"}
	bob := telegram.Update{ChatID: 7001, UserID: 7001, FirstName: "Bob"}
	with := func(base telegram.Update, f func(*telegram.Update)) telegram.Update {
		f(&base)
		return base
	}
	tests := []struct {
		file string
		want telegram.Update
	}{
		{"start_payload.json", with(anna, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.Payload, u.MessageID = 815220301, telegram.KindStart, "/start landing", "landing", 1
		})},
		{"start_plain.json", with(bob, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.MessageID, u.LanguageCode = 815220302, telegram.KindStart, "/start", 2, "en"
		})},
		{"start_botname.json", with(bob, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.Payload, u.MessageID, u.Username = 815220303, telegram.KindStart,
				"/start@tunnels_demo_bot spring-sale_2026", "spring-sale_2026", 3, "bobby"
		})},
		{"start_bad_payload.json", with(bob, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.MessageID = 815220304, telegram.KindStart, "/start hello world", 4
		})},
		{"start_long_payload.json", with(bob, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.MessageID = 815220305, telegram.KindStart, "/start "+strings.Repeat("a", 65), 5
		})},
		{"text.json", with(anna, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.MessageID = 815220310, telegram.KindText, "Сколько стоит курс? /start", 12
		})},
		{"startish_text.json", with(bob, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.Text, u.MessageID = 815220311, telegram.KindText, "/started already", 13
		})},
		{"callback.json", with(anna, func(u *telegram.Update) {
			u.UpdateID, u.Kind, u.CallbackID, u.CallbackData, u.MessageID = 815220320, telegram.KindButton, "4382bfdwdsb323b2d9", "btn_yes", 14
		})},
		{"callback_inline.json", telegram.Update{UpdateID: 815220321, Kind: telegram.KindIgnored, CallbackID: "4382bfdwdsb323b2e0"}},
		{"kicked.json", with(anna, func(u *telegram.Update) { u.UpdateID, u.Kind = 815220330, telegram.KindKicked })},
		{"member.json", telegram.Update{UpdateID: 815220331, Kind: telegram.KindMember, ChatID: 5012345678, UserID: 5012345678, FirstName: "Anna", LanguageCode: "ru"}},
		{"group_added.json", telegram.Update{UpdateID: 815220332}},
		{"edited_message.json", telegram.Update{UpdateID: 815220340}},
		{"group_message.json", telegram.Update{UpdateID: 815220341}},
		{"sticker.json", telegram.Update{UpdateID: 815220342}},
		{"channel_post.json", telegram.Update{UpdateID: 815220343}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := telegram.ParseUpdate(body)
			if err != nil {
				t.Fatalf("ParseUpdate: %v", err)
			}
			if got != tt.want {
				t.Fatalf("ParseUpdate =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseUpdateMalformed(t *testing.T) {
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		body []byte
	}{
		{"missing update_id", fixture("missing_update_id.json")},
		{"truncated", fixture("truncated.json")},
		{"empty", nil},
		{"null", []byte("null")},
		{"array", []byte(`[{"update_id":1}]`)},
		{"zero update_id", []byte(`{"update_id":0,"message":{"text":"hi"}}`)},
		{"negative update_id", []byte(`{"update_id":-5}`)},
		{"string update_id", []byte(`{"update_id":"12"}`)},
		{"trailing garbage", []byte(`{"update_id":12} x`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := telegram.ParseUpdate(tt.body)
			if !errors.Is(err, telegram.ErrMalformedUpdate) {
				t.Fatalf("err = %v, want ErrMalformedUpdate", err)
			}
		})
	}
}

// TestParseUpdateOfFakeUpdates checks that the fake Bot API's builders and the
// parser agree on the wire format, so tests that deliver them mean something.
func TestParseUpdateOfFakeUpdates(t *testing.T) {
	tests := []struct {
		name   string
		update telegramtest.Update
		check  func(telegram.Update) bool
	}{
		{"start with payload", telegramtest.StartUpdate(42, "Ann", "landing"), func(u telegram.Update) bool {
			return u.Kind == telegram.KindStart && u.Payload == "landing" && u.FirstName == "Ann" && u.ChatID == 42 && u.UserID == 42
		}},
		{"start without payload", telegramtest.StartUpdate(42, "Ann", ""), func(u telegram.Update) bool {
			return u.Kind == telegram.KindStart && u.Payload == "" && u.Text == "/start"
		}},
		{"text", telegramtest.TextUpdate(42, "hello"), func(u telegram.Update) bool {
			return u.Kind == telegram.KindText && u.Text == "hello" && u.MessageID > 0
		}},
		{"callback", telegramtest.CallbackUpdate(42, 7, "btn_1"), func(u telegram.Update) bool {
			return u.Kind == telegram.KindButton && u.CallbackData == "btn_1" && u.MessageID == 7 && u.CallbackID != ""
		}},
		{"kicked", telegramtest.KickedUpdate(42), func(u telegram.Update) bool {
			return u.Kind == telegram.KindKicked && u.ChatID == 42
		}},
		{"member", telegramtest.MemberUpdate(42), func(u telegram.Update) bool {
			return u.Kind == telegram.KindMember && u.ChatID == 42
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.update.UpdateID = 99
			body, err := json.Marshal(tt.update)
			if err != nil {
				t.Fatal(err)
			}
			got, err := telegram.ParseUpdate(body)
			if err != nil || got.UpdateID != 99 || !tt.check(got) {
				t.Fatalf("ParseUpdate(%s) = %+v, %v", body, got, err)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[telegram.Kind]string{telegram.KindStart: "start", telegram.KindIgnored: "ignored", telegram.KindMember: "member", telegram.Kind(42): "Kind(42)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}
