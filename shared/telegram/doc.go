// Package telegram is the Telegram Bot API as Tunnels needs it for a built-in
// Telegram channel: a Client for the few outbound calls (getMe, setWebhook,
// deleteWebhook, sendMessage, answerCallbackQuery), ParseUpdate to turn a
// webhook's Update JSON into a small domain Update, and the helpers around the
// bot token and the webhook's secret header (VerifySecret, NewSecretToken,
// BotID, ValidToken, RedactToken).
//
// The Client classifies every failure for the step runner: ErrUnauthorized
// (bad token), ErrBlocked (the chat cannot be reached; stop, do not retry),
// *RetryAfterError (429: hold the whole bot back for After), ErrTransient
// (retry later) and ErrPermanent (fail the step; *APIError has Telegram's
// description). It never sleeps or retries by itself: per-bot and per-chat
// rate limits hold across concurrent Lambda functions, so they live in the
// store, not in one process.
//
// The bot token is a secret and travels in the request path
// (/bot<token>/method). No error the Client returns contains it — the
// *url.Error of a failed request is rebuilt with the token redacted — and
// BotID gives the public part to log and key on instead.
//
// The calls are written on net/http rather than with github.com/go-telegram/bot.
// Its v1.19.0 resolves and would fit Lambda (WithHTTPClient, WithServerURL,
// WithSkipGetMe, no polling unless Start is called), but its typed errors stop
// at the 4xx codes: a 5xx, or a non-JSON answer from a proxy, comes back as an
// untyped formatted error (holding the whole body), and "chat not found" is a
// generic bad request, so telling transient from permanent from unreachable
// would mean matching its message text. It also reports some failures through
// a handler that logs by default. Five calls on net/http are a few dozen lines,
// keep the classification and the redaction in one place we test, and add no
// dependency (the module is not in the project's list of vetted modules).
//
// Package telegramtest is the matching fake Bot API for tests.
package telegram
