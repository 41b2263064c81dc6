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
// The calls are written on net/http rather than with github.com/go-telegram/bot
// (which resolves and would accept a custom HTTP client and server URL). Five
// calls are a few dozen lines, while the library's errors would not give the
// classification above on their own: failures of the transport and non-JSON
// answers (a proxy's 502) come back as untyped, formatted errors that wrap the
// transport's *url.Error, whose URL holds the token, so every error would have
// to be re-parsed and redacted anyway. Writing the calls directly also keeps
// the requests plain JSON through the egress client and adds no dependency.
//
// Package telegramtest is the matching fake Bot API for tests.
package telegram
