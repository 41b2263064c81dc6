package amocrm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Tokens is one OAuth token pair. RefreshToken is empty for a long-lived
// token of a private integration. A zero ExpiresAt means "unknown": the token
// is used until amoCRM refuses it.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
}

// String never shows the tokens themselves, so a Tokens value printed by
// mistake leaks nothing.
func (t Tokens) String() string {
	kind := "oauth"
	if t.RefreshToken == "" {
		kind = "long-lived"
	}
	return fmt.Sprintf("amocrm.Tokens{%s, expires %s}", kind, t.ExpiresAt.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the tokens too.
func (t Tokens) GoString() string { return t.String() }

// Credentials identify the integration (from the amoCRM integration card).
type Credentials struct {
	ClientID     string
	ClientSecret string
	RedirectURI  string
}

// String never shows the secret.
func (c Credentials) String() string {
	return fmt.Sprintf("amocrm.Credentials{ClientID: %q, RedirectURI: %q}", c.ClientID, c.RedirectURI)
}

// GoString keeps %#v from printing the secret.
func (c Credentials) GoString() string { return c.String() }

// TokenStore keeps one integration's tokens for every process that uses them.
// The refresh protocol of the package comment depends on its conditions, so an
// implementation must make them atomic (DynamoDB: conditional writes on one
// item).
type TokenStore interface {
	// Load answers the current tokens and an opaque version. After MarkRevoked
	// (and until new tokens are stored by a reconnect) it answers an error
	// wrapping ErrReconnect: that is what stops a refresh storm.
	Load(ctx context.Context) (Tokens, string, error)
	// BeginRefresh takes a short refresh lease if the stored version is still
	// `version` and no live lease exists; false if someone else is refreshing
	// or already did.
	BeginRefresh(ctx context.Context, version string, lease time.Duration) (bool, error)
	// SaveRefreshed stores rotated tokens (conditional on holding the lease),
	// releasing it, answering the new version. A failed condition answers an
	// error wrapping ErrLeaseLost.
	SaveRefreshed(ctx context.Context, version string, t Tokens) (string, error)
	// MarkRevoked records that the refresh token was refused (the user must
	// reconnect). It also drops any lease.
	MarkRevoked(ctx context.Context, reason string) error
}

// ErrLeaseLost is what SaveRefreshed answers when the stored version moved on
// or no lease was taken for it.
var ErrLeaseLost = errors.New("amocrm: token store: refresh lease lost or version changed")

// MemoryTokenStore is a TokenStore in memory, safe for concurrent use: for
// tests, examples and a single process. It keeps the same conditions a shared
// store must keep. The zero value holds no tokens; use NewMemoryTokenStore.
type MemoryTokenStore struct {
	mu           sync.Mutex
	tokens       Tokens
	version      uint64
	leaseVersion uint64    // the version a lease was taken for; 0: none
	leaseUntil   time.Time // when that lease stops blocking others
	revoked      bool
	reason       string
	saves        int

	// Now is the store's clock for leases; nil means time.Now.
	Now func() time.Time
}

// NewMemoryTokenStore answers a store holding t at version "1".
func NewMemoryTokenStore(t Tokens) *MemoryTokenStore {
	return &MemoryTokenStore{tokens: t, version: 1}
}

func (s *MemoryTokenStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Load implements TokenStore.
func (s *MemoryTokenStore) Load(ctx context.Context) (Tokens, string, error) {
	if err := ctx.Err(); err != nil {
		return Tokens{}, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version == 0 {
		return Tokens{}, "", fmt.Errorf("%w: no amoCRM tokens stored; connect the integration", ErrReconnect)
	}
	if s.revoked {
		return Tokens{}, "", fmt.Errorf("%w: %s", ErrReconnect, s.reason)
	}
	return s.tokens, strconv.FormatUint(s.version, 10), nil
}

// BeginRefresh implements TokenStore.
func (s *MemoryTokenStore) BeginRefresh(ctx context.Context, version string, lease time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked || strconv.FormatUint(s.version, 10) != version {
		return false, nil
	}
	now := s.now()
	if s.leaseVersion == s.version && now.Before(s.leaseUntil) {
		return false, nil
	}
	s.leaseVersion = s.version
	s.leaseUntil = now.Add(lease)
	return true, nil
}

// SaveRefreshed implements TokenStore. It succeeds when the version is
// unchanged and a lease was taken for it, even if that lease has run out:
// the tokens in hand are the only valid ones, since the old refresh token
// is spent.
func (s *MemoryTokenStore) SaveRefreshed(ctx context.Context, version string, t Tokens) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strconv.FormatUint(s.version, 10) != version || s.leaseVersion != s.version {
		return "", ErrLeaseLost
	}
	s.tokens = t
	s.version++
	s.leaseVersion, s.leaseUntil = 0, time.Time{}
	s.saves++
	return strconv.FormatUint(s.version, 10), nil
}

// MarkRevoked implements TokenStore.
func (s *MemoryTokenStore) MarkRevoked(ctx context.Context, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked = true
	s.reason = reason
	s.leaseVersion, s.leaseUntil = 0, time.Time{}
	return nil
}

// Replace stores new tokens from a (re)connect: it clears the revoked mark
// and any lease and answers the new version.
func (s *MemoryTokenStore) Replace(t Tokens) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = t
	s.version++
	s.revoked, s.reason = false, ""
	s.leaseVersion, s.leaseUntil = 0, time.Time{}
	return strconv.FormatUint(s.version, 10)
}

// Revoked reports whether MarkRevoked was called since the last Replace, and
// with which reason.
func (s *MemoryTokenStore) Revoked() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked, s.reason
}

// Saves counts successful SaveRefreshed calls.
func (s *MemoryTokenStore) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// Current answers the stored tokens and version without the revoked check
// (for tests and diagnostics).
func (s *MemoryTokenStore) Current() (Tokens, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens, strconv.FormatUint(s.version, 10)
}
