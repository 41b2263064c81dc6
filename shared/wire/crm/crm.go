// Package crm wires the crm function: amo_contact and amo_deal, through one
// cached amoCRM client per integration.
package crm

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/time/rate"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/egress"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/stepbatch"
	"github.com/tunnels/tunnels/shared/store"
	"github.com/tunnels/tunnels/shared/wire"
)

// Concurrency is the crm function's ScalingConfig.MaximumConcurrency in
// template.yaml: how many instances may talk to one amoCRM account at once.
// Each instance paces itself to amoCRM's 7 requests per second divided by it.
const Concurrency = 2

// Handler builds the crm function's SQS batch handler.
func Handler(d wire.Deps) *stepbatch.Handler {
	st := d.Store()
	ac := NewAmoClients(st, egress.Policy{Allow: d.Config.EgressAllow}, d.Log)
	return wire.StepHandler(d, st, engine.KindCRM, wire.Kind{Actions: actions.CRM(st, ac.Client)})
}

// AmoClients builds and keeps the amoCRM clients of one process, so an
// instance reuses an integration's client (its cached token and its pacing)
// across invocations. A client is rebuilt when its integration is saved
// again; requests to one account share one limiter.
type AmoClients struct {
	st   *store.Store
	http *http.Client
	log  *slog.Logger

	mu       sync.Mutex
	clients  map[string]cachedClient // workspace + integration id
	limiters map[string]*rate.Limiter
}

type cachedClient struct {
	rev    string
	client *amocrm.Client
}

// maxCached bounds the cache: a function instance serves few integrations,
// and an evicted client is only rebuilt (its tokens live in the store).
const maxCached = 64

// NewAmoClients makes the cache. Every client sends through the egress policy.
func NewAmoClients(st *store.Store, p egress.Policy, log *slog.Logger) *AmoClients {
	if log == nil {
		log = slog.Default()
	}
	return &AmoClients{
		st: st, log: log,
		// amoCRM answers pages of up to 250 entities; the egress default of 1 MiB may be short.
		http:    egress.NewClient(p, egress.Options{MaxBody: 8 << 20}),
		clients: map[string]cachedClient{}, limiters: map[string]*rate.Limiter{},
	}
}

// Client implements actions.AmoClients: one read of the integration's
// settings, then the cached client if the integration was not saved since.
func (a *AmoClients) Client(ctx context.Context, ws, id string) (*amocrm.Client, error) {
	acc, err := a.st.AmoAccount(ctx, ws, id)
	if err != nil {
		return nil, fmt.Errorf("read integration %q: %w", id, err)
	}
	k := ws + "\x00" + id
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[k]; ok && c.rev == acc.Rev {
		return c.client, nil
	}
	if len(a.clients) >= maxCached {
		clear(a.clients)
	}
	if len(a.limiters) >= maxCached {
		clear(a.limiters)
	}
	account := accountKey(acc.BaseURL)
	lim, ok := a.limiters[account]
	if !ok {
		lim = amocrm.NewLimiter(Concurrency)
		a.limiters[account] = lim
	}
	c := &amocrm.Client{
		BaseURL: acc.BaseURL,
		HTTP:    a.http,
		Creds:   amocrm.Credentials{ClientID: acc.ClientID, ClientSecret: acc.ClientSecret, RedirectURI: acc.RedirectURI},
		Tokens:  a.st.AmoTokens(ws, id),
		Limiter: lim,
		Logger:  a.log.With("integration", id),
	}
	a.clients[k] = cachedClient{rev: acc.Rev, client: c}
	return c, nil
}

// accountKey is the account an address names (its host): amoCRM's limit is
// per account, so integrations of one account share a limiter.
func accountKey(baseURL string) string {
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		return strings.ToLower(u.Host)
	}
	return baseURL
}
