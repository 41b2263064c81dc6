package telegram_test

import (
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/telegram"
)

func TestVerifySecret(t *testing.T) {
	tests := []struct {
		name, header, want string
		ok                 bool
	}{
		{"equal", "s3cret_-X", "s3cret_-X", true},
		{"different", "s3cret_-Y", "s3cret_-X", false},
		{"prefix", "s3cret", "s3cret_-X", false},
		{"longer", "s3cret_-XX", "s3cret_-X", false},
		{"case differs", "S3CRET_-X", "s3cret_-X", false},
		{"empty header", "", "s3cret", false},
		{"empty want", "s3cret", "", false},
		{"both empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := telegram.VerifySecret(tt.header, tt.want); got != tt.ok {
				t.Fatalf("VerifySecret(%q, %q) = %v", tt.header, tt.want, got)
			}
		})
	}
}

func TestNewSecretToken(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, err := telegram.NewSecretToken()
		if err != nil {
			t.Fatal(err)
		}
		if !telegram.ValidSecretToken(s) || len(s) < 32 {
			t.Fatalf("NewSecretToken() = %q: not 32-256 characters of [A-Za-z0-9_-]", s)
		}
		if seen[s] {
			t.Fatalf("NewSecretToken() repeated %q", s)
		}
		seen[s] = true
	}
}

func TestValidSecretToken(t *testing.T) {
	tests := map[string]bool{
		"a": true, "A-z_0-9": true, strings.Repeat("x", 256): true,
		"": false, strings.Repeat("x", 257): false, "a b": false, "a.b": false, "é": false, "a:b": false,
	}
	for s, want := range tests {
		if got := telegram.ValidSecretToken(s); got != want {
			t.Errorf("ValidSecretToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestBotIDAndValidToken(t *testing.T) {
	tests := []struct {
		token, id string
		valid     bool
	}{
		{testToken, "123456789", true},
		{"7000000001:AAFx-yz_0123456789abcdefghijklmnopq", "7000000001", true},
		{"123:" + strings.Repeat("a", 29), "123", false}, // secret too short
		{"123:" + strings.Repeat("a", 51), "123", false}, // secret too long
		{"123:" + strings.Repeat("a", 34) + "!", "123", false},
		{"abc:" + strings.Repeat("a", 35), "", false},
		{":" + strings.Repeat("a", 35), "", false},
		{"123" + strings.Repeat("a", 35), "", false}, // no colon
		{"-123:" + strings.Repeat("a", 35), "", false},
		{"12345678901234567890:" + strings.Repeat("a", 35), "", false}, // id overflows int64
		{"", "", false},
	}
	for _, tt := range tests {
		if got := telegram.BotID(tt.token); got != tt.id {
			t.Errorf("BotID(%q) = %q, want %q", tt.token, got, tt.id)
		}
		if got := telegram.ValidToken(tt.token); got != tt.valid {
			t.Errorf("ValidToken(%q) = %v, want %v", tt.token, got, tt.valid)
		}
	}
}

func TestRedactToken(t *testing.T) {
	secret := testToken[strings.Index(testToken, ":")+1:]
	tests := []struct {
		name, in, token, want string
	}{
		{"in a url", "Post \"https://api.telegram.org/bot" + testToken + "/sendMessage\": EOF", testToken,
			"Post \"https://api.telegram.org/bot123456789:REDACTED/sendMessage\": EOF"},
		{"twice", testToken + " " + testToken, testToken, "123456789:REDACTED 123456789:REDACTED"},
		{"query-escaped", "token=123456789%3A" + secret, testToken, "token=123456789:REDACTED"},
		{"lower-case escape", "token=123456789%3a" + secret, testToken, "token=123456789%3aREDACTED"},
		{"secret alone", "secret is " + secret, testToken, "secret is REDACTED"},
		{"absent", "nothing here", testToken, "nothing here"},
		{"empty token", "keep " + testToken, "", "keep " + testToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := telegram.RedactToken(tt.in, tt.token)
			if got != tt.want {
				t.Fatalf("RedactToken = %q, want %q", got, tt.want)
			}
			if tt.token != "" && strings.Contains(got, secret) {
				t.Fatalf("secret left in %q", got)
			}
		})
	}
}
