package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/amocrm/amotest"
	"github.com/tunnels/tunnels/shared/engine"
)

const amoDoc = `{"kind":"amocrm","name":"Sales","base_url":"https://example.amocrm.ru","client_id":"c","redirect_uri":"https://app.example/cb"}`

func putAmo(t *testing.T, st *Store, ws, id, secret string, p TokenPatch) Integration {
	t.Helper()
	e := Entity{Kind: KindIntegration, ID: id, Doc: json.RawMessage(amoDoc)}
	if secret != "" {
		e.Secret = json.RawMessage(`{"client_secret":"` + secret + `"}`)
	}
	got, err := st.PutIntegration(t.Context(), ws, e, p)
	if err != nil {
		t.Fatalf("PutIntegration: %v", err)
	}
	return got
}

func TestPutIntegrationTokens(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	exp := t0.Add(24 * time.Hour)

	// Saved without tokens: not connected, the client secret kept apart.
	got := putAmo(t, st, ws, "amo", "s3cr3t", TokenPatch{})
	if got.Tokens != (TokenState{}) || strings.Contains(string(got.Entity.Doc), "s3cr3t") {
		t.Fatalf("no tokens: %+v doc %s", got.Tokens, got.Entity.Doc)
	}
	if _, _, err := st.AmoTokens(ws, "amo").Load(ctx); !errors.Is(err, amocrm.ErrReconnect) {
		t.Fatalf("Load without tokens: %v, want ErrReconnect", err)
	}

	// A connect: version 1.
	got = putAmo(t, st, ws, "amo", "", TokenPatch{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: exp})
	if want := (TokenState{Connected: true, ExpiresAt: exp, Version: 1}); got.Tokens != want {
		t.Fatalf("after connect: %+v, want %+v", got.Tokens, want)
	}
	tok, ver, err := st.AmoTokens(ws, "amo").Load(ctx)
	if err != nil || ver != "1" || tok.AccessToken != "a1" || tok.RefreshToken != "r1" || !tok.ExpiresAt.Equal(exp) {
		t.Fatalf("Load = %v %q %v", tok, ver, err)
	}
	acc, err := st.AmoAccount(ctx, ws, "amo")
	if err != nil || acc.ClientSecret != "s3cr3t" || acc.BaseURL != "https://example.amocrm.ru" || acc.ClientID != "c" || acc.RedirectURI != "https://app.example/cb" {
		t.Fatalf("AmoAccount = %#v, %v (client secret kept: %v)", acc, err, acc.ClientSecret == "s3cr3t")
	}
	if strings.Contains(acc.String()+acc.GoString(), "s3cr3t") {
		t.Fatal("AmoAccount prints its secret")
	}

	// The same tokens again change nothing: no new version.
	clock.Advance(time.Minute)
	got = putAmo(t, st, ws, "amo", "", TokenPatch{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: exp})
	if got.Tokens.Version != 1 {
		t.Fatalf("same tokens bumped the version to %d", got.Tokens.Version)
	}
	rev := acc.Rev
	if acc, _ = st.AmoAccount(ctx, ws, "amo"); acc.Rev == rev {
		t.Fatal("a save did not change the account's revision")
	}

	// A save without tokens keeps them; a new refresh token alone keeps the access token.
	got = putAmo(t, st, ws, "amo", "", TokenPatch{})
	if got.Tokens.Version != 1 || !got.Tokens.Connected {
		t.Fatalf("save without tokens: %+v", got.Tokens)
	}
	got = putAmo(t, st, ws, "amo", "", TokenPatch{RefreshToken: "r2"})
	tok, ver, _ = st.AmoTokens(ws, "amo").Load(ctx)
	if got.Tokens.Version != 2 || ver != "2" || tok.AccessToken != "a1" || tok.RefreshToken != "r2" || !tok.ExpiresAt.Equal(exp) {
		t.Fatalf("refresh token alone: %+v; Load %v %q", got.Tokens, tok, ver)
	}
	// A new access token without an expiry: unknown expiry.
	got = putAmo(t, st, ws, "amo", "", TokenPatch{AccessToken: "a3"})
	if got.Tokens.Version != 3 || !got.Tokens.ExpiresAt.IsZero() {
		t.Fatalf("access token without expiry: %+v", got.Tokens)
	}

	// Only a refresh token stored: Load makes the client refresh first.
	putAmo(t, st, ws, "only-refresh", "x", TokenPatch{RefreshToken: "r"})
	tok, _, err = st.AmoTokens(ws, "only-refresh").Load(ctx)
	if err != nil || tok.AccessToken != "" || !tok.ExpiresAt.Before(t0) {
		t.Fatalf("refresh-only Load = %v, %v; want an expired, empty access token", tok, err)
	}

	// The list carries the token state too.
	list, next, err := st.ListIntegrations(ctx, ws, Page{Limit: 1})
	if err != nil || next == nil || len(list) != 1 || list[0].Entity.ID != "amo" || list[0].Tokens.Version != 3 {
		t.Fatalf("ListIntegrations page 1 = %+v, %v, %v", list, next, err)
	}
	list, _, err = st.ListIntegrations(ctx, ws, Page{Limit: 1, Cursor: *next})
	if err != nil || len(list) != 1 || list[0].Entity.ID != "only-refresh" {
		t.Fatalf("ListIntegrations page 2 = %+v, %v, %v", list, next, err)
	}
	if _, err := st.GetIntegration(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("GetIntegration(missing) = %v", err)
	}
	if _, err := st.AmoAccount(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("AmoAccount(missing) = %v", err)
	}
	if _, _, err := st.AmoTokens(ws, "nope").Load(ctx); !errors.Is(err, amocrm.ErrReconnect) {
		t.Fatalf("Load(missing) = %v, want ErrReconnect", err)
	}
}

// The conditions of the refresh protocol, step by step.
func TestAmoTokenStoreProtocol(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	putAmo(t, st, ws, "amo", "s", TokenPatch{AccessToken: "a1", RefreshToken: "r1", ExpiresAt: t0.Add(time.Hour)})
	p1, p2 := st.AmoTokens(ws, "amo"), st.AmoTokens(ws, "amo") // two processes

	for _, p := range []*AmoTokenStore{p1, p2} {
		if _, v, err := p.Load(ctx); err != nil || v != "1" {
			t.Fatalf("Load = %q, %v", v, err)
		}
	}
	if ok, err := p1.BeginRefresh(ctx, "1", 30*time.Second); !ok || err != nil {
		t.Fatalf("first BeginRefresh = %v, %v; want granted", ok, err)
	}
	if ok, err := p2.BeginRefresh(ctx, "1", 30*time.Second); ok || err != nil {
		t.Fatalf("BeginRefresh during a live lease = %v, %v; want refused", ok, err)
	}
	if _, err := p2.SaveRefreshed(ctx, "0", amocrm.Tokens{AccessToken: "x"}); err == nil {
		t.Fatal("SaveRefreshed of version 0 succeeded")
	}
	// The lease ran out (the holder may have crashed): the other may refresh.
	clock.Advance(31 * time.Second)
	if ok, err := p2.BeginRefresh(ctx, "1", 30*time.Second); !ok || err != nil {
		t.Fatalf("BeginRefresh after the lease ran out = %v, %v; want granted", ok, err)
	}
	v, err := p2.SaveRefreshed(ctx, "1", amocrm.Tokens{AccessToken: "a2", RefreshToken: "r2", ExpiresAt: t0.Add(25 * time.Hour)})
	if err != nil || v != "2" {
		t.Fatalf("SaveRefreshed = %q, %v", v, err)
	}
	// The first holder's late save loses: the version moved on.
	if _, err := p1.SaveRefreshed(ctx, "1", amocrm.Tokens{AccessToken: "a2'", RefreshToken: "r2'"}); !errors.Is(err, amocrm.ErrLeaseLost) {
		t.Fatalf("late SaveRefreshed = %v, want ErrLeaseLost", err)
	}
	// SaveRefreshed without a lease for the version is refused too.
	if _, err := p1.SaveRefreshed(ctx, "2", amocrm.Tokens{AccessToken: "a3"}); !errors.Is(err, amocrm.ErrLeaseLost) {
		t.Fatalf("SaveRefreshed without a lease = %v, want ErrLeaseLost", err)
	}
	if ok, _ := p1.BeginRefresh(ctx, "1", 30*time.Second); ok {
		t.Fatal("BeginRefresh of an old version granted")
	}
	tok, v, err := p1.Load(ctx)
	if err != nil || v != "2" || tok.AccessToken != "a2" || tok.RefreshToken != "r2" || !tok.ExpiresAt.Equal(t0.Add(25*time.Hour)) {
		t.Fatalf("Load after refresh = %v %q %v", tok, v, err)
	}
	// The spent refresh token cannot be put back by a stale PUT.
	if _, err := st.PutIntegration(ctx, ws, Entity{Kind: KindIntegration, ID: "amo", Doc: json.RawMessage(amoDoc)},
		TokenPatch{AccessToken: "a1", RefreshToken: "r1"}); !errors.Is(err, ErrSpentToken) {
		t.Fatalf("PUT of a spent refresh token = %v, want ErrSpentToken", err)
	}
	if _, v, _ := p1.Load(ctx); v != "2" {
		t.Fatalf("the refused PUT changed the version to %s", v)
	}

	// Revoked: Load answers ErrReconnect everywhere, no lease is granted.
	if err := p1.MarkRevoked(ctx, "amoCRM refused the refresh token (Token has been revoked)"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p2.Load(ctx); !errors.Is(err, amocrm.ErrReconnect) || !strings.Contains(err.Error(), "Token has been revoked") {
		t.Fatalf("Load after MarkRevoked = %v", err)
	}
	if ok, _ := p2.BeginRefresh(ctx, "2", time.Second); ok {
		t.Fatal("BeginRefresh granted on revoked tokens")
	}
	got, _ := st.GetIntegration(ctx, ws, "amo")
	if got.Tokens.Connected || !got.Tokens.Revoked {
		t.Fatalf("state after revocation = %+v", got.Tokens)
	}
	// A reconnect clears the mark with a new version.
	got = putAmo(t, st, ws, "amo", "", TokenPatch{AccessToken: "a9", RefreshToken: "r9"})
	if !got.Tokens.Connected || got.Tokens.Revoked || got.Tokens.Version != 3 {
		t.Fatalf("after reconnect: %+v", got.Tokens)
	}
	// A refusal of the old version, arriving late, does not mark the new tokens.
	if err := p2.MarkRevoked(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	if tok, v, err := p1.Load(ctx); err != nil || v != "3" || tok.AccessToken != "a9" {
		t.Fatalf("Load after a stale MarkRevoked = %v %q %v", tok, v, err)
	}
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func amoClient(srv *amotest.Server, ts amocrm.TokenStore) *amocrm.Client {
	return &amocrm.Client{
		BaseURL: srv.URL,
		Creds:   amocrm.Credentials{ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), RedirectURI: srv.RedirectURI()},
		Tokens:  ts, Limiter: rate.NewLimiter(rate.Inf, 1), Logger: quietLog,
	}
}

// Several processes (each its own token store and client) find the token
// expired at once: exactly one refresh reaches amoCRM, everyone ends up with
// its tokens, and the stored pair works.
func TestAmoConcurrentRefreshAcrossProcesses(t *testing.T) {
	for _, how := range []string{"expired in the store", "refused by amoCRM (401)"} {
		t.Run(how, func(t *testing.T) {
			st, _, ws := newStore(t)
			srv := amotest.New(amotest.Options{RateLimit: -1})
			t.Cleanup(srv.Close)
			tok := srv.IssueTokens()
			if how == "expired in the store" {
				tok.ExpiresAt = time.Now().Add(-time.Minute)
			}
			putAmo(t, st, ws, "amo", srv.ClientSecret(), TokenPatch{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt})
			srv.Expire()
			const procs = 4
			errs := make([]error, procs)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range procs {
				c := amoClient(srv, st.AmoTokens(ws, "amo"))
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, errs[i] = c.Pipelines(context.Background())
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("process %d: %v", i, err)
				}
			}
			if n := srv.RefreshCalls(); n != 1 {
				t.Fatalf("%d refreshes reached amoCRM, want 1", n)
			}
			stored, v, err := st.AmoTokens(ws, "amo").Load(t.Context())
			if err != nil || v != "2" || !srv.AccessValid(stored.AccessToken) || stored.RefreshToken == tok.RefreshToken {
				t.Fatalf("stored after refresh: version %q, access valid %v, rotated %v, %v",
					v, srv.AccessValid(stored.AccessToken), stored.RefreshToken != tok.RefreshToken, err)
			}
		})
	}
}

// A refresh token amoCRM refuses: one refresh attempt, the integration is
// marked revoked, and other processes then fail without calling amoCRM.
func TestAmoRevokedNoStorm(t *testing.T) {
	st, _, ws := newStore(t)
	srv := amotest.New(amotest.Options{RateLimit: -1})
	t.Cleanup(srv.Close)
	tok := srv.IssueTokens()
	putAmo(t, st, ws, "amo", srv.ClientSecret(), TokenPatch{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt})
	srv.RevokeAll()
	_, err := amoClient(srv, st.AmoTokens(ws, "amo")).Pipelines(t.Context())
	if !errors.Is(err, amocrm.ErrReconnect) || strings.Contains(err.Error(), tok.RefreshToken) {
		t.Fatalf("err = %v, want ErrReconnect without the token", err)
	}
	got, _ := st.GetIntegration(t.Context(), ws, "amo")
	if !got.Tokens.Revoked {
		t.Fatal("not marked revoked")
	}
	seen := len(srv.Requests())
	for range 3 {
		if _, err := amoClient(srv, st.AmoTokens(ws, "amo")).Pipelines(t.Context()); !errors.Is(err, amocrm.ErrReconnect) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := len(srv.Requests()) - seen; n != 0 || srv.RefreshCalls() != 1 {
		t.Fatalf("%d requests after the revocation, %d refreshes; want 0 and 1", n, srv.RefreshCalls())
	}
}

func TestAmoProfileLinks(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	if err := st.SetAmoContact(ctx, ws, sub, 31); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ lead, contact int64 }{{21, 31}, {21, 31}, {22, 0}, {23, 32}, {22, 0}} {
		if err := st.AddAmoLead(ctx, ws, sub, step.lead, step.contact); err != nil {
			t.Fatalf("AddAmoLead(%d, %d): %v", step.lead, step.contact, err)
		}
	}
	got := mustSubscriber(t, st, ws, sub).CRM
	if got.AmoContactID != 32 || !slices.Equal(got.AmoLeadIDs, []int64{21, 22, 23}) {
		t.Fatalf("CRM = %+v, want contact 32, leads [21 22 23]", got)
	}
	if err := st.AddAmoLead(ctx, ws, "nobody", 1, 0); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("AddAmoLead(missing) = %v", err)
	}
	if err := st.AddAmoLead(ctx, ws, "nobody", 1, 2); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("AddAmoLead(missing, contact) = %v", err)
	}
	if err := st.SetAmoContact(ctx, ws, "nobody", 1); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("SetAmoContact(missing) = %v", err)
	}
}

func TestAmoDealIntent(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	resumed, l, c, err := st.BeginAmoDeal(ctx, ws, "step-1", "tn-abc")
	if err != nil || resumed || l != 0 || c != 0 {
		t.Fatalf("first BeginAmoDeal = %v %d %d %v", resumed, l, c, err)
	}
	resumed, l, c, err = st.BeginAmoDeal(ctx, ws, "step-1", "tn-abc")
	if err != nil || !resumed || l != 0 || c != 0 {
		t.Fatalf("replayed BeginAmoDeal = %v %d %d %v; want resumed without a result", resumed, l, c, err)
	}
	if err := st.FinishAmoDeal(ctx, ws, "step-1", 21, 31); err != nil {
		t.Fatal(err)
	}
	resumed, l, c, err = st.BeginAmoDeal(ctx, ws, "step-1", "tn-abc")
	if err != nil || !resumed || l != 21 || c != 31 {
		t.Fatalf("BeginAmoDeal after the result = %v %d %d %v", resumed, l, c, err)
	}
	if resumed, _, _, _ := st.BeginAmoDeal(ctx, ws, "step-2", "tn-def"); resumed {
		t.Fatal("another step resumed step-1's intent")
	}
	if err := st.FinishAmoDeal(ctx, ws, "step-3", 1, 1); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("FinishAmoDeal without an intent = %v", err)
	}
}

func TestTagNames(t *testing.T) {
	st, _, ws := newStore(t)
	for id, name := range map[string]string{"vip": "VIP client", "lead": "Lead"} {
		if _, err := st.PutEntity(t.Context(), ws, Entity{Kind: KindTag, ID: id, Doc: json.RawMessage(`{"name":"` + name + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.TagNames(t.Context(), ws)
	if err != nil || len(got) != 2 || got["vip"] != "VIP client" || got["lead"] != "Lead" {
		t.Fatalf("TagNames = %v, %v", got, err)
	}
}
