package telegram

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The kinds of failure a Client call returns, for errors.Is. Every error a
// Client returns wraps exactly one of them (a *RetryAfterError wraps
// ErrTransient), so the step runner can decide what to do without parsing text.
var (
	// ErrUnauthorized: Telegram refused the token (401): it is wrong or was
	// revoked in @BotFather. Nothing sent with this token can succeed.
	ErrUnauthorized = errors.New("telegram: unauthorized bot token")
	// ErrBlocked: the chat cannot be reached — the user blocked the bot,
	// deleted their account, or the chat does not exist (any 403, and a 400
	// that says the chat or user is not found). Retrying will not help; the
	// subscriber is unreachable on this bot.
	ErrBlocked = errors.New("telegram: chat unreachable")
	// ErrTransient: the call may succeed later (network error, timeout, 5xx,
	// a 429 without retry_after). A sendMessage that failed this way may
	// nevertheless have been delivered.
	ErrTransient = errors.New("telegram: transient failure")
	// ErrPermanent: retrying the same call will not help (another 4xx, an
	// invalid argument caught before sending, a refused destination). The
	// *APIError in the chain carries Telegram's description.
	ErrPermanent = errors.New("telegram: permanent failure")
)

// APIError is an answer {"ok": false} from the Bot API. It wraps the kind of
// failure (ErrUnauthorized, ErrBlocked, ErrTransient or ErrPermanent); get it
// with errors.As for Telegram's code and description.
type APIError struct {
	Method      string // e.g. "sendMessage"
	Code        int    // Telegram's error_code, or the HTTP status when the body had none
	Description string // Telegram's description, e.g. "Forbidden: bot was blocked by the user"
	kind        error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("telegram %s: %d %s", e.Method, e.Code, e.Description)
}

// Unwrap returns the kind of failure, so errors.Is(err, ErrBlocked) etc. hold.
func (e *APIError) Unwrap() error { return e.kind }

// RetryAfterError is a 429 "Too Many Requests" answer: the bot must not send
// before After has passed (Telegram's parameters.retry_after). The Client never
// waits or retries by itself; the caller holds the whole bot back. It wraps
// ErrTransient, so test for it with errors.As before testing ErrTransient.
type RetryAfterError struct {
	Method string
	After  time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("telegram %s: 429 too many requests, retry after %s", e.Method, e.After)
}

// Unwrap makes errors.Is(err, ErrTransient) hold.
func (e *RetryAfterError) Unwrap() error { return ErrTransient }

// unreachable are the descriptions of a 400 answer that mean the chat itself
// cannot be reached (rather than that the request was wrong). Telegram's texts
// are not a stable contract, so they are matched loosely, lower-cased.
var unreachable = []string{
	"chat not found",
	"user not found",
	"peer_id_invalid",
	"user is deactivated",
	"bot was blocked by the user",
	"bot was kicked",
	"bot is not a member",
}

// classify gives the kind of failure of an {"ok": false} answer.
func classify(code int, description string) error {
	switch {
	case code == 401:
		return ErrUnauthorized
	case code == 403:
		// Every 403 of the Bot API is about the peer: blocked, deactivated,
		// kicked, "can't initiate conversation", "can't send messages to bots".
		return ErrBlocked
	case code == 400 && containsAny(strings.ToLower(description), unreachable):
		return ErrBlocked
	case code == 429, code >= 500:
		return ErrTransient
	default:
		return ErrPermanent
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// redactedError stands for an error whose text contained the token. It keeps
// only the redacted text and whether it was a timeout: unwrapping to the
// original would hand the token back to whoever prints the chain.
type redactedError struct {
	msg     string
	timeout bool
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Timeout() bool { return e.timeout }
