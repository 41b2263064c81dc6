// Package amocrm is a client for the part of the amoCRM (Kommo) REST API v4
// that Tunnels uses: pipelines, contacts and leads, with OAuth 2.0 tokens
// shared by every process of a deployment. The contract it follows is
// amocrm-api.md; package amotest is a local server that follows it too.
//
// # Tokens and the refresh protocol
//
// amoCRM's refresh token is single use: a refresh answers a new pair and the
// old refresh token stops working. Two processes refreshing with the same
// token therefore cannot both win, and if the winner's new pair is lost the
// integration is dead until the user reconnects. So the tokens live in a
// TokenStore shared by all processes (DynamoDB in the deployment,
// MemoryTokenStore in tests), which versions them and hands out a short
// refresh lease, and every Client follows this protocol:
//
//  1. Before a call, if the access token expires within RefreshSkew (60 s),
//     or after amoCRM answered a call with 401, refresh:
//  2. Load the tokens again. If the version differs from the one we loaded
//     (or whose token amoCRM refused), someone else refreshed: use theirs.
//  3. Otherwise BeginRefresh(version, RefreshLease). Refused means another
//     process is refreshing: wait briefly and go back to 2 — a bounded number
//     of times (about 5 s), then give up with ErrTransient (the queue retries).
//  4. Granted: POST /oauth2/access_token with grant_type refresh_token.
//     ExpiresAt is computed from the answer's expires_in (never a hard-coded
//     lifetime), and SaveRefreshed runs IMMEDIATELY — before the API call and
//     even if the caller's context was cancelled meanwhile — because the old
//     refresh token is already dead. (The OAuth call itself is detached from
//     the caller's cancellation too, bounded by a timeout shorter than the
//     lease, so nobody else can start a refresh while ours is in flight.)
//  5. If amoCRM refuses the refresh (401 "Token has been revoked", 400
//     invalid_grant), the store is loaded once more (a reconnect may have
//     stored new tokens meanwhile); if not, MarkRevoked records it and the
//     call fails with an error wrapping ErrReconnect that tells the user to
//     reconnect the integration. From then on Load answers ErrReconnect, so no
//     process tries the dead token again: no refresh storm.
//
// A failed early refresh (step 1, token not yet expired) is not fatal: the
// current token is used while it lasts. A Client caches what it loaded and
// goes back to the store when the token nears expiry or amoCRM refuses it.
// A long-lived token (private integration, no refresh token) is used until its
// ExpiresAt; expired or refused, it is ErrReconnect. A zero ExpiresAt means
// unknown: the token is used until amoCRM answers 401.
//
// # Rate limit
//
// amoCRM allows 7 requests per second per account (over it: 429, and repeated
// violations get the address blocked with a 403 HTML page). Each Client paces
// itself with a token-bucket limiter, by default one request every
// DefaultInterval (150 ms, just under 7/s, burst 1). The limit is the
// account's, not the process's: with N concurrent function instances talking
// to one account each needs 7/N — NewLimiter(N). Refresh calls are paced too.
//
// # Errors and retries
//
// The Client retries nothing except one token refresh and one retry after a
// 401 on an API call. Everything else comes back as an *Error wrapping one of
// ErrRateLimited (429; RetryAfter), ErrTransient (5xx, timeouts, connection
// failures, the 403 block page), ErrValidation (400 with amoCRM's
// validation-errors, whose detail and paths the message carries), ErrAccount
// (lapsed subscription, missing rights: not retryable, not the subscriber's
// data), ErrReconnect or ErrNotFound, so the caller's queue decides, with
// back-off. Errors carry amoCRM's X-Request-Id and never a token or secret.
//
// # Idempotency
//
// amoCRM has no idempotency key. A create whose answer was lost (timeout,
// crash) may have happened: the caller records what it created before it
// acknowledges its step, and on a replay looks the deal up (FindLeads by a
// marker in the name, FindContactByPhoneOrEmail) before creating again.
package amocrm
