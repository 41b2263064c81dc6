package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestCachedTunnels(t *testing.T) {
	ctx := context.Background()
	v1 := &tunnel.Tunnel{Name: "v1", Entry: "a", Blocks: []tunnel.Block{{ID: "a", Type: "message", Text: "1"}}}
	v2 := &tunnel.Tunnel{Name: "v2", Entry: "a", Blocks: []tunnel.Block{{ID: "a", Type: "message", Text: "2"}}}
	src := newTunnels(map[string]*tunnel.Tunnel{"t": v1})
	c := &CachedTunnels{Source: src, TTL: time.Hour}

	got, err := c.Tunnel(ctx, testWS, "t")
	if err != nil || got != v1 || src.reads != 1 {
		t.Fatalf("first read = %v, %v (source reads %d)", got, err, src.reads)
	}
	src.set("t", v2)
	got, err = c.Tunnel(ctx, testWS, "t")
	if err != nil || got != v1 || src.reads != 1 {
		t.Fatalf("within the TTL = %v (name %q), source reads %d; want the cached v1 and no read", got, got.Name, src.reads)
	}
	// Another workspace's tunnel of the same id is another entry.
	if _, err := c.Tunnel(ctx, "ws2", "t"); !errors.Is(err, ErrNotFound) || src.reads != 2 {
		t.Fatalf("ws2/t = %v (reads %d), want not found from the source", err, src.reads)
	}
	got, err = c.Fresh(ctx, testWS, "t")
	if err != nil || got != v2 || src.reads != 3 {
		t.Fatalf("Fresh = %v, %v (reads %d); want v2 from the source", got, err, src.reads)
	}
	if got, _ := c.Tunnel(ctx, testWS, "t"); got != v2 || src.reads != 3 {
		t.Fatalf("after Fresh the cache holds %v (reads %d), want v2", got, src.reads)
	}

	// An expired entry is read again.
	src.set("t", v1)
	c.mu.Lock()
	e := c.entries[testWS+"/t"]
	e.expires = time.Now().Add(-time.Millisecond)
	c.entries[testWS+"/t"] = e
	c.mu.Unlock()
	if got, _ := c.Tunnel(ctx, testWS, "t"); got != v1 || src.reads != 4 {
		t.Fatalf("after expiry = %v (reads %d), want v1 from the source", got, src.reads)
	}
}

func TestCachedTunnelsErrors(t *testing.T) {
	ctx := context.Background()
	src := newTunnels(nil)
	c := &CachedTunnels{Source: src}

	// Not found is an answer: cached like a definition.
	for i := 0; i < 2; i++ {
		if _, err := c.Tunnel(ctx, testWS, "gone"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("read %d = %v, want ErrNotFound", i, err)
		}
	}
	if src.reads != 1 {
		t.Fatalf("source reads = %d, want 1 (not found is cached)", src.reads)
	}
	// The default TTL is five seconds.
	before := time.Now()
	c.Fresh(ctx, testWS, "gone")
	exp := c.entries[testWS+"/gone"].expires
	if exp.Before(before.Add(5*time.Second)) || exp.After(time.Now().Add(5*time.Second)) {
		t.Fatalf("entry expires %s after the read, want 5s", exp.Sub(before))
	}

	// Other errors are not cached: the next read asks again.
	src.err = errors.New("throttled")
	for i := 0; i < 2; i++ {
		if _, err := c.Tunnel(ctx, testWS, "x"); err == nil || err.Error() != "throttled" {
			t.Fatalf("read %d = %v, want the source's error", i, err)
		}
	}
	if src.reads != 4 {
		t.Fatalf("source reads = %d, want 4 (errors are not cached)", src.reads)
	}
}
