package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// CachedTunnels keeps tunnel definitions in memory for a short time. A step
// never needs a fresh copy to be correct (a removed block is re-checked
// against the source), only to be fast.
type CachedTunnels struct {
	Source Tunnels
	TTL    time.Duration

	mu      sync.Mutex
	entries map[string]cachedTunnel
}

type cachedTunnel struct {
	t       *tunnel.Tunnel
	err     error
	expires time.Time
}

// Tunnel answers a definition from the cache or the source.
func (c *CachedTunnels) Tunnel(ctx context.Context, ws, id string) (*tunnel.Tunnel, error) {
	k := ws + "/" + id
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.t, e.err
	}
	t, err := c.Source.Tunnel(ctx, ws, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cachedTunnel{}
	}
	c.entries[k] = cachedTunnel{t: t, err: err, expires: now.Add(ttl)}
	c.mu.Unlock()
	return t, err
}

// Fresh reads past the cache: for the moment a cached copy says a block is gone.
func (c *CachedTunnels) Fresh(ctx context.Context, ws, id string) (*tunnel.Tunnel, error) {
	c.mu.Lock()
	delete(c.entries, ws+"/"+id)
	c.mu.Unlock()
	return c.Tunnel(ctx, ws, id)
}
