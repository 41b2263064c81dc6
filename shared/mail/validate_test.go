package mail

import (
	"errors"
	"strings"
	"testing"
)

func validMessage() Message {
	return Message{
		From:    Sender{Address: "news@tunnels.example.com", Name: "Tunnels News", ReplyTo: "help@tunnels.example.com"},
		To:      "ann@example.org",
		Subject: "Welcome, Ann",
		HTML:    "<p>Hi Ann</p>",
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Message)
	}{
		{"minimal", func(m *Message) {}},
		{"no name, no reply-to", func(m *Message) { m.From.Name, m.From.ReplyTo = "", "" }},
		{"unicode name and subject", func(m *Message) {
			m.From.Name, m.Subject = "Школа «Тоннели»", "Привет, Анна! 🎉"
		}},
		{"name with specials", func(m *Message) { m.From.Name = `Acme, Inc. "Best" <sales>` }},
		{"plus and dots in address", func(m *Message) { m.To = "ann.lee+promo@mail.example.co.uk" }},
		{"one-click unsubscribe", func(m *Message) {
			m.ListUnsubscribe, m.ListUnsubscribePost = "https://t.example.com/u/abc?s=1&t=2", true
		}},
		{"tags and key", func(m *Message) {
			m.Tags = map[string]string{"workspace": "ws_1", "step-kind": "send-email"}
			m.IdempotencyKey = "step:01J9ZX#a/b=="
		}},
		{"subject at the line limit", func(m *Message) { m.Subject = strings.Repeat("a", 998-len("Subject: ")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMessage()
			tt.edit(&m)
			if err := m.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateRefuses(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Message)
		field string // of the first FieldError
		says  string // in its Problem
	}{
		{"CRLF in subject", func(m *Message) { m.Subject = "Hi\r\nBcc: victim@example.org" }, "subject", "line break"},
		{"LF in subject", func(m *Message) { m.Subject = "Hi\nthere" }, "subject", "line break"},
		{"CR in name", func(m *Message) { m.From.Name = "Shop\rBcc: x@example.org" }, "from.name", "line break"},
		{"LF in to", func(m *Message) { m.To = "ann@example.org\nBcc: x@example.org" }, "to", "line break"},
		{"CRLF in from", func(m *Message) { m.From.Address = "a@example.com\r\nX: y" }, "from.address", "line break"},
		{"CRLF in reply-to", func(m *Message) { m.From.ReplyTo = "a@example.com\r\n" }, "from.reply_to", "line break"},
		{"CRLF in unsubscribe", func(m *Message) { m.ListUnsubscribe = "https://x.example.com/u\r\nBcc: a@b.co" }, "list_unsubscribe", "line break"},
		{"CRLF in key", func(m *Message) { m.IdempotencyKey = "k\r\nBcc: a@b.co" }, "idempotency_key", "line break"},
		{"tab in subject", func(m *Message) { m.Subject = "a\tb" }, "subject", "control"},
		{"NUL in name", func(m *Message) { m.From.Name = "a\x00b" }, "from.name", "control"},
		{"NEL in subject", func(m *Message) { m.Subject = "a\u0085b" }, "subject", "control"},
		{"display name in to", func(m *Message) { m.To = "Ann <ann@example.org>" }, "to", "bare address"},
		{"spoofing display name", func(m *Message) { m.To = `"boss@bank.example" <evil@example.net>` }, "to", "bare address"},
		{"angle brackets only", func(m *Message) { m.To = "<ann@example.org>" }, "to", "bare address"},
		{"comment", func(m *Message) { m.To = "ann@example.org(x)" }, "to", "bare address"},
		{"two addresses", func(m *Message) { m.To = "ann@example.org,bob@example.org" }, "to", "not an email address"},
		{"group", func(m *Message) { m.To = "team:ann@example.org;" }, "to", ""},
		{"quoted local part", func(m *Message) { m.To = `"ann"@example.org` }, "to", "bare address"},
		{"no domain dot", func(m *Message) { m.To = "ann@localhost" }, "to", "domain"},
		{"address literal", func(m *Message) { m.To = "ann@[192.0.2.1]" }, "to", ""},
		{"unicode local part", func(m *Message) { m.To = "анна@example.org" }, "to", "ASCII"},
		{"unicode domain", func(m *Message) { m.To = "ann@пример.рф" }, "to", "punycode"},
		{"missing to", func(m *Message) { m.To = "" }, "to", "required"},
		{"missing from", func(m *Message) { m.From.Address = "" }, "from.address", "required"},
		{"bad reply-to", func(m *Message) { m.From.ReplyTo = "Help <help@example.com>" }, "from.reply_to", "bare address"},
		{"space in address", func(m *Message) { m.To = "ann lee@example.org" }, "to", "printable ASCII"},
		{"too long address", func(m *Message) {
			m.To = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example.com"
		}, "to", "254"},
		{"blank name", func(m *Message) { m.From.Name = "   " }, "from.name", "blank"},
		{"missing subject", func(m *Message) { m.Subject = "" }, "subject", "required"},
		{"blank subject", func(m *Message) { m.Subject = "   " }, "subject", "required"},
		{"subject over the line", func(m *Message) { m.Subject = strings.Repeat("a", 998-len("Subject: ")+1) }, "subject", "998"},
		{"unicode subject over the line once encoded", func(m *Message) { m.Subject = strings.Repeat("я", 400) }, "subject", "998"},
		{"invalid utf-8 subject", func(m *Message) { m.Subject = "a\xffb" }, "subject", "UTF-8"},
		{"missing html", func(m *Message) { m.HTML = " \n" }, "html", "required"},
		{"invalid utf-8 text", func(m *Message) { m.Text = "\xc3" }, "text", "UTF-8"},
		{"http unsubscribe", func(m *Message) { m.ListUnsubscribe = "http://t.example.com/u" }, "list_unsubscribe", "https"},
		{"mailto unsubscribe", func(m *Message) { m.ListUnsubscribe = "mailto:u@example.com" }, "list_unsubscribe", "https"},
		{"unsubscribe with bracket", func(m *Message) { m.ListUnsubscribe = "https://t.example.com/u>,<https://evil.example" }, "list_unsubscribe", "'<'"},
		{"relative unsubscribe", func(m *Message) { m.ListUnsubscribe = "/u/1" }, "list_unsubscribe", "https"},
		{"post without url", func(m *Message) { m.ListUnsubscribePost = true }, "list_unsubscribe", "needs"},
		{"bad tag name", func(m *Message) { m.Tags = map[string]string{"a b": "x"} }, "tags", "name"},
		{"bad tag value", func(m *Message) { m.Tags = map[string]string{"ab": "x.y"} }, "tags", "value"},
		{"key with space", func(m *Message) { m.IdempotencyKey = "a b" }, "idempotency_key", "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validMessage()
			tt.edit(&m)
			err := m.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrRejected) || errors.Is(err, ErrTransient) {
				t.Errorf("error %v: want ErrInvalid and ErrRejected, not ErrTransient", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Problem, tt.says) {
				t.Errorf("first problem = %s: %q, want %s containing %q", fe.Field, fe.Problem, tt.field, tt.says)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name the field %s", err, tt.field)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	m := Message{Subject: "a\nb", HTML: ""}
	err := m.Validate()
	for _, field := range []string{"from.address", "to", "subject", "html"} {
		if !strings.Contains(err.Error(), "mail: "+field+":") {
			t.Errorf("error %q lacks %s", err, field)
		}
	}
}
