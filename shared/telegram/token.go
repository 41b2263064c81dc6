package telegram

import (
	"crypto/rand"
	"crypto/subtle"
	"net/url"
	"strings"
)

// HeaderSecretToken is the header in which Telegram sends, with every webhook
// update, the secret_token given to setWebhook.
const HeaderSecretToken = "X-Telegram-Bot-Api-Secret-Token"

// secretLen is the length of NewSecretToken's tokens: 64 characters of a
// 64-symbol alphabet carry 384 bits, far more than guessing can reach, and stay
// well inside Telegram's 1–256 limit.
const secretLen = 64

// secretAlphabet is exactly the set Telegram allows in a secret_token.
const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// NewSecretToken returns a random secret_token for setWebhook: 64 characters
// of [A-Za-z0-9_-], as Telegram requires (1–256 of those).
func NewSecretToken() (string, error) {
	b := make([]byte, secretLen)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	// 256 is a multiple of the 64-symbol alphabet, so b%64 has no bias.
	for i := range b {
		b[i] = secretAlphabet[int(b[i])%len(secretAlphabet)]
	}
	return string(b), nil
}

// ValidSecretToken reports whether s is acceptable to Telegram as a
// secret_token: 1–256 characters of [A-Za-z0-9_-].
func ValidSecretToken(s string) bool {
	if len(s) < 1 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// VerifySecret reports whether the X-Telegram-Bot-Api-Secret-Token header of a
// webhook request equals the secret registered with setWebhook. The comparison
// takes the same time wherever the first difference is, so the secret cannot
// be found byte by byte. An empty want or header never matches: a channel
// without a secret must not accept every caller.
func VerifySecret(header, want string) bool {
	if header == "" || want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(header), []byte(want)) == 1
}

// BotID returns the numeric bot id that starts a token ("123456" for
// "123456:AA..."). It is public (it is the bot's user id), so it is safe to log
// and to key records on. It returns "" when the token is malformed.
func BotID(token string) string {
	id, _, ok := strings.Cut(token, ":")
	if !ok || !isDigits(id) || len(id) > 19 {
		return ""
	}
	return id
}

// ValidToken reports whether token has the shape of a bot token from
// @BotFather: "<bot id>:<secret>", the secret being 30–50 characters of
// [A-Za-z0-9_-] (35 today; the range leaves room for Telegram to change it).
// Only Telegram can say whether the token is live (GetMe).
func ValidToken(token string) bool {
	_, secret, ok := strings.Cut(token, ":")
	if !ok || BotID(token) == "" || len(secret) < 30 || len(secret) > 50 {
		return false
	}
	for i := 0; i < len(secret); i++ {
		if !isTokenChar(secret[i]) {
			return false
		}
	}
	return true
}

// RedactToken replaces every occurrence of token in s, verbatim or
// percent-encoded, with "<bot id>:REDACTED" (and its secret part on its own
// with "REDACTED"), so that a message about a bot
// still says which bot it was. An empty token leaves s unchanged.
func RedactToken(s, token string) string {
	if token == "" {
		return s
	}
	repl := "REDACTED"
	if id := BotID(token); id != "" {
		repl = id + ":REDACTED"
	}
	s = strings.ReplaceAll(s, token, repl)
	for _, enc := range []string{url.PathEscape(token), url.QueryEscape(token)} {
		if enc != token {
			s = strings.ReplaceAll(s, enc, repl)
		}
	}
	// The part after ':' is the actual secret; replacing it alone also covers
	// spellings of the colon that the encoders above do not produce (%3a).
	if _, secret, ok := strings.Cut(token, ":"); ok && len(secret) >= 8 {
		s = strings.ReplaceAll(s, secret, "REDACTED")
	}
	return s
}

func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
