package amocrm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// fresh: usable without a refresh (not within RefreshSkew of expiry).
func (c *Client) fresh(t Tokens) bool {
	return t.ExpiresAt.IsZero() || c.now().Add(RefreshSkew).Before(t.ExpiresAt)
}

// usable: not yet expired.
func (c *Client) usable(t Tokens) bool {
	return t.AccessToken != "" && (t.ExpiresAt.IsZero() || c.now().Before(t.ExpiresAt))
}

// token answers an access token to use now, refreshing it first when it is
// about to expire.
func (c *Client) token(ctx context.Context) (Tokens, string, error) {
	c.mu.Lock()
	if c.haveCached && c.fresh(c.cached) {
		t, v := c.cached, c.cachedVer
		c.mu.Unlock()
		return t, v, nil
	}
	c.mu.Unlock()

	t, v, err := c.load(ctx)
	if err != nil {
		return Tokens{}, "", err
	}
	if c.fresh(t) {
		return t, v, nil
	}
	if t.RefreshToken == "" {
		// A long-lived token: nothing to refresh; use it to its last second.
		if c.usable(t) {
			return t, v, nil
		}
		return Tokens{}, "", c.revoke(ctx, "POST /oauth2/access_token", v, nil, "the long-lived amoCRM token has expired")
	}
	nt, nv, err := c.refresh(ctx, v)
	if err != nil {
		if !errors.Is(err, ErrReconnect) && c.usable(t) {
			// Refreshing early failed for now, but the token still works: use
			// it; the next call tries again.
			c.logger().WarnContext(ctx, "amocrm: early token refresh failed, using the current token", "error", err.Error())
			return t, v, nil
		}
		return Tokens{}, "", err
	}
	return nt, nv, nil
}

// renew answers the tokens to retry with after amoCRM refused `used` (version
// ver) with a 401.
func (c *Client) renew(ctx context.Context, ver string, used Tokens) (Tokens, string, error) {
	c.mu.Lock()
	if c.haveCached && c.cachedVer == ver {
		c.haveCached = false // the cached token is the refused one
	}
	c.mu.Unlock()
	if used.RefreshToken == "" {
		// Someone may have stored new tokens meanwhile (a reconnect).
		t, v, err := c.load(ctx)
		if err != nil {
			return Tokens{}, "", err
		}
		if v != ver && c.usable(t) {
			return t, v, nil
		}
		return Tokens{}, "", c.revoke(ctx, "POST /oauth2/access_token", v, nil, "amoCRM refused the long-lived token")
	}
	return c.refresh(ctx, ver)
}

// load reads the store and caches what it read.
func (c *Client) load(ctx context.Context) (Tokens, string, error) {
	t, v, err := c.Tokens.Load(ctx)
	if err != nil {
		if errors.Is(err, ErrReconnect) {
			return Tokens{}, "", &Error{Kind: ErrReconnect, Op: "load tokens", Detail: "reconnect the amoCRM integration", Err: err}
		}
		return Tokens{}, "", &Error{Kind: ErrTransient, Op: "load tokens", Detail: "token store", Err: ctxErrOr(ctx, err)}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.haveDead && c.deadVer == v {
		// A store that does not record MarkRevoked must not make every call
		// try the dead refresh token again.
		return Tokens{}, "", &Error{Kind: ErrReconnect, Op: "load tokens", Detail: "amoCRM refused these tokens; reconnect the amoCRM integration"}
	}
	c.cached, c.cachedVer, c.haveCached = t, v, true
	return t, v, nil
}

// refresh runs the refresh protocol of the package comment. seen is the
// version whose access token is expiring or was refused.
func (c *Client) refresh(ctx context.Context, seen string) (Tokens, string, error) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	wait := 100 * time.Millisecond
	for i := 0; ; i++ {
		t, v, err := c.load(ctx)
		if err != nil {
			return Tokens{}, "", err
		}
		if v != seen && c.usable(t) {
			return t, v, nil // someone refreshed (or reconnected): use theirs
		}
		seen = v
		if t.RefreshToken == "" {
			return Tokens{}, "", c.revoke(ctx, "POST /oauth2/access_token", v, nil, "the long-lived amoCRM token has expired or was refused")
		}
		ok, err := c.Tokens.BeginRefresh(ctx, v, RefreshLease)
		if err != nil {
			return Tokens{}, "", &Error{Kind: ErrTransient, Op: "begin token refresh", Detail: "token store", Err: ctxErrOr(ctx, err)}
		}
		if ok {
			return c.refreshHolding(ctx, v, t)
		}
		if i >= leaseWaits {
			return Tokens{}, "", &Error{Kind: ErrTransient, Op: "begin token refresh", Detail: "another process is refreshing the amoCRM token; try again shortly"}
		}
		if err := sleep(ctx, wait); err != nil {
			return Tokens{}, "", &Error{Kind: ErrTransient, Op: "begin token refresh", Detail: "waiting for another process's token refresh", Err: err}
		}
		wait = min(2*wait, time.Second)
	}
}

// refreshHolding refreshes while holding the store's lease for version v.
func (c *Client) refreshHolding(ctx context.Context, v string, old Tokens) (Tokens, string, error) {
	const op = "POST /oauth2/access_token"
	// Detached from the caller: once the request may have reached amoCRM the
	// old refresh token may be spent, and abandoning the answer would lose the
	// only valid pair. refreshTimeout (< RefreshLease) still bounds it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	nt, err := c.grant(rctx, map[string]string{
		"client_id":     c.Creds.ClientID,
		"client_secret": c.Creds.ClientSecret,
		"grant_type":    "refresh_token",
		"refresh_token": old.RefreshToken,
		"redirect_uri":  c.Creds.RedirectURI,
	})
	cancel()
	if err != nil {
		var refused *grantRefused
		if !errors.As(err, &refused) {
			return Tokens{}, "", err // transient or rate-limited: the lease runs out, someone retries
		}
		// Tokens stored by another route meanwhile (a reconnect) are not dead.
		if t, nv, lerr := c.Tokens.Load(ctx); lerr == nil && nv != v && c.usable(t) {
			c.setCache(t, nv)
			return t, nv, nil
		}
		return Tokens{}, "", c.revoke(ctx, op, v, refused.e, "amoCRM refused the refresh token ("+refused.reason()+")")
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = old.RefreshToken // answer without a new one: the old one is all we have
	}
	// The old refresh token is spent now. Store the new pair before anything
	// else, even if our caller has given up meanwhile: losing it kills the
	// integration until the user reconnects.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	var serr error
	for i := 0; i < 3; i++ {
		nv, err := c.Tokens.SaveRefreshed(sctx, v, nt)
		if err == nil {
			c.setCache(nt, nv)
			c.logger().InfoContext(ctx, "amocrm: tokens refreshed", "expires_at", nt.ExpiresAt)
			return nt, nv, nil
		}
		serr = err
		if errors.Is(err, ErrLeaseLost) || sleep(sctx, time.Duration(100<<i)*time.Millisecond) != nil {
			break
		}
	}
	if t, nv, lerr := c.Tokens.Load(sctx); lerr == nil && nv != v && c.usable(t) {
		return t, nv, nil // another route stored tokens; ours are surplus
	}
	c.logger().ErrorContext(ctx, "amocrm: refreshed tokens could not be stored; the integration may need reconnecting", "error", serr.Error())
	return Tokens{}, "", &Error{Kind: ErrTransient, Op: "store refreshed tokens",
		Detail: "amoCRM issued new tokens but they could not be stored; if this persists, reconnect the amoCRM integration", Err: serr}
}

func (c *Client) setCache(t Tokens, v string) {
	c.mu.Lock()
	c.cached, c.cachedVer, c.haveCached = t, v, true
	c.mu.Unlock()
}

// revoke records that version v is dead (in the store and here) and answers
// the ErrReconnect error the user sees.
func (c *Client) revoke(ctx context.Context, op, v string, cause *Error, reason string) error {
	c.mu.Lock()
	c.deadVer, c.haveDead = v, true
	c.haveCached = false
	c.mu.Unlock()
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
	defer cancel()
	if err := c.Tokens.MarkRevoked(mctx, reason); err != nil {
		c.logger().ErrorContext(ctx, "amocrm: recording the revoked token failed", "error", err.Error())
	}
	c.logger().WarnContext(ctx, "amocrm: integration needs reconnecting", "reason", reason)
	e := &Error{Kind: ErrReconnect, Op: op, Detail: reason + "; reconnect the amoCRM integration in the integration settings"}
	if cause != nil {
		e.Status, e.RequestID = cause.Status, cause.RequestID
	}
	return e
}

// grantRefused: the OAuth endpoint refused the grant itself (400/401), as
// opposed to failing transiently.
type grantRefused struct{ e *Error }

func (g *grantRefused) Error() string { return g.e.Error() }
func (g *grantRefused) Unwrap() error { return g.e }
func (g *grantRefused) reason() string {
	if g.e.Detail != "" {
		return g.e.Detail
	}
	return "HTTP " + http.StatusText(g.e.Status)
}

// tokenAnswer is the OAuth endpoint's 200 body.
type tokenAnswer struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ServerTime   int64  `json:"server_time"`
}

// grant posts to /oauth2/access_token. ExpiresAt comes from expires_in,
// measured from before the request left, so it errs early.
func (c *Client) grant(ctx context.Context, form map[string]string) (Tokens, error) {
	const op = "POST /oauth2/access_token"
	payload, err := json.Marshal(form)
	if err != nil {
		return Tokens{}, &Error{Kind: ErrValidation, Op: op, Detail: "encoding the request"}
	}
	start := c.now()
	a, err := c.send(ctx, http.MethodPost, "/oauth2/access_token", "", payload, "")
	if err != nil {
		return Tokens{}, err
	}
	if a.status == http.StatusBadRequest || a.status == http.StatusUnauthorized {
		e := classify(op, a)
		e.Kind = ErrReconnect
		return Tokens{}, &grantRefused{e: e}
	}
	if a.status != http.StatusOK {
		return Tokens{}, classify(op, a)
	}
	var ta tokenAnswer
	if err := json.Unmarshal(a.body, &ta); err != nil || ta.AccessToken == "" {
		return Tokens{}, &Error{Kind: ErrTransient, Op: op, Status: a.status, RequestID: a.requestID, Detail: "unreadable token answer"}
	}
	if ta.TokenType != "" && !strings.EqualFold(ta.TokenType, "bearer") {
		return Tokens{}, &Error{Kind: ErrTransient, Op: op, Status: a.status, RequestID: a.requestID, Detail: "unexpected token type " + ta.TokenType}
	}
	t := Tokens{AccessToken: ta.AccessToken, RefreshToken: ta.RefreshToken}
	if ta.ExpiresIn > 0 {
		t.ExpiresAt = start.Add(time.Duration(ta.ExpiresIn) * time.Second)
	}
	return t, nil
}

// ExchangeCode trades the authorization code of the OAuth redirect for
// tokens (first connect or reconnect). It does not touch Tokens: the caller
// stores the answer (as a reconnect, clearing any revoked mark). A refused
// code answers an error wrapping ErrReconnect.
func (c *Client) ExchangeCode(ctx context.Context, code string) (Tokens, error) {
	t, err := c.grant(ctx, map[string]string{
		"client_id":     c.Creds.ClientID,
		"client_secret": c.Creds.ClientSecret,
		"grant_type":    "authorization_code",
		"code":          code,
		"redirect_uri":  c.Creds.RedirectURI,
	})
	var refused *grantRefused
	if errors.As(err, &refused) {
		e := refused.e
		e.Detail = "amoCRM refused the authorization code (" + refused.reason() + "); connect the amoCRM integration again"
		return Tokens{}, e
	}
	return t, err
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
