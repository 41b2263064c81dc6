package mail

import (
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"reflect"
	"strings"
	"testing"
)

func TestFromHeader(t *testing.T) {
	tests := []struct {
		s    Sender
		want string
	}{
		{Sender{Address: "a@x.example.com"}, "a@x.example.com"},
		{Sender{Address: "a@x.example.com", Name: "Tunnels"}, `"Tunnels" <a@x.example.com>`},
		{Sender{Address: "a@x.example.com", Name: `Acme, Inc. "Best"`}, `"Acme, Inc. \"Best\"" <a@x.example.com>`},
		{Sender{Address: "a@x.example.com", Name: "Анна"}, "=?utf-8?q?=D0=90=D0=BD=D0=BD=D0=B0?= <a@x.example.com>"},
	}
	for _, tt := range tests {
		got := tt.s.FromHeader()
		if got != tt.want {
			t.Errorf("FromHeader(%+v) = %q, want %q", tt.s, got, tt.want)
		}
		// Whatever the form, a mail reader gets the name and address back.
		a, err := mail.ParseAddress(got)
		if err != nil || a.Name != tt.s.Name || a.Address != tt.s.Address {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %q <%s>", got, a, err, tt.s.Name, tt.s.Address)
		}
	}
}

func TestEncodedSubject(t *testing.T) {
	tests := []struct {
		subject, want string
	}{
		{"Welcome, Ann", "Welcome, Ann"},
		{"Café ready", "=?UTF-8?q?Caf=C3=A9_ready?="},
		{"Привет", "=?UTF-8?b?0J/RgNC40LLQtdGC?="},
	}
	for _, tt := range tests {
		got := Message{Subject: tt.subject}.EncodedSubject()
		if got != tt.want {
			t.Errorf("EncodedSubject(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
	// A long unicode subject becomes several words, ASCII only, that decode back.
	long := strings.Repeat("Тоннели и воронки 🎉 ", 8)
	enc := Message{Subject: long}.EncodedSubject()
	if !printableASCII(strings.ReplaceAll(enc, " ", "")) {
		t.Errorf("encoded subject is not ASCII: %q", enc)
	}
	dec, err := new(mime.WordDecoder).DecodeHeader(enc)
	if err != nil || dec != long {
		t.Errorf("decode(%q) = %q, %v; want %q", enc, dec, err, long)
	}
}

func TestHeaders(t *testing.T) {
	m := validMessage()
	if hs := m.Headers(); len(hs) != 0 {
		t.Errorf("Headers() of a plain message = %v, want none", hs)
	}
	m.ListUnsubscribe = "https://t.example.com/u/1"
	m.ListUnsubscribePost = true
	m.IdempotencyKey = "step-1"
	want := []Header{
		{"List-Unsubscribe", "<https://t.example.com/u/1>"},
		{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
		{"X-Tunnels-Idempotency-Key", "step-1"},
	}
	if got := m.Headers(); !reflect.DeepEqual(got, want) {
		t.Errorf("Headers() = %v, want %v", got, want)
	}
	m.ListUnsubscribe = ""
	m.IdempotencyKey = ""
	if hs := m.Headers(); len(hs) != 0 {
		t.Errorf("Headers() with Post but no URL = %v, want none", hs)
	}
}

func TestPlainText(t *testing.T) {
	m := Message{HTML: "<p>Hi <b>Ann</b></p>"}
	if got := m.PlainText(); got != "Hi Ann" {
		t.Errorf("derived PlainText() = %q", got)
	}
	m.Text = "Given text"
	if got := m.PlainText(); got != "Given text" {
		t.Errorf("PlainText() = %q, want the given text", got)
	}
}

func TestEscapeHTML(t *testing.T) {
	got := EscapeHTML(`<script>alert("x")</script> & 'y'`)
	want := "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;y&#39;"
	if got != want {
		t.Errorf("EscapeHTML = %q, want %q", got, want)
	}
}

func TestSendErrorKinds(t *testing.T) {
	cause := errors.New("boom")
	tests := []struct {
		err                            error
		throttled, transient, rejected bool
		text                           string
	}{
		{Throttled("TooManyRequestsException", cause), true, true, false, "mail: send throttled (TooManyRequestsException): boom"},
		{Transient("", cause), false, true, false, "mail: send transient: boom"},
		{Rejected("MessageRejected", cause), false, false, true, "mail: send rejected (MessageRejected): boom"},
	}
	for _, tt := range tests {
		wrapped := fmt.Errorf("email step: %w", tt.err)
		if errors.Is(wrapped, ErrThrottled) != tt.throttled || errors.Is(wrapped, ErrTransient) != tt.transient ||
			errors.Is(wrapped, ErrRejected) != tt.rejected || Retryable(wrapped) != tt.transient {
			t.Errorf("%v: throttled/transient/rejected = %v/%v/%v, want %v/%v/%v", tt.err,
				errors.Is(wrapped, ErrThrottled), errors.Is(wrapped, ErrTransient), errors.Is(wrapped, ErrRejected),
				tt.throttled, tt.transient, tt.rejected)
		}
		if !errors.Is(wrapped, cause) {
			t.Errorf("%v does not unwrap to its cause", tt.err)
		}
		if errors.Is(wrapped, ErrInvalid) {
			t.Errorf("%v matches ErrInvalid", tt.err)
		}
		if tt.err.Error() != tt.text {
			t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.text)
		}
		var se *SendError
		if !errors.As(wrapped, &se) || se.Err != cause {
			t.Errorf("errors.As(%v, *SendError) failed", tt.err)
		}
	}
}
