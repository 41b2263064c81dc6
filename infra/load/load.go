// Package load drives a local system (infra/devstack) on loopback with many
// subscribers through a 10-step tunnel and measures it: throughput, the
// latency from an accepted event to the last step of its run, the AWS calls
// the functions made, and every error (none is expected). It is bounded in
// count (Config.Subscribers) and time (Config.Timeout). The load test
// (TUNNELS_LOAD=1 go test ./infra/load) and `make bench` use it.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnels/tunnels/infra/devstack"
	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/connector"
)

// Tunnel is the tunnel every subscriber runs: 10 steps — six messages, three
// tag actions (two in one block) and a 1-second delay — in one line, so each
// step but the last has one child.
const Tunnel = `{"name": "Load", "entry": "m1", "blocks": [
	{"id": "m1", "type": "message", "text": "Hello {{subscriber.first_name}}", "next": ["t1"]},
	{"id": "t1", "type": "action", "actions": [{"type": "add_tags", "tags": ["lead"]}], "next": ["m2"]},
	{"id": "m2", "type": "message", "text": "Step two", "next": ["wait"]},
	{"id": "wait", "type": "delay", "seconds": 1, "next": ["m3"]},
	{"id": "m3", "type": "message", "text": "Step three", "next": ["t2"]},
	{"id": "t2", "type": "action", "actions": [{"type": "add_tags", "tags": ["engaged"]}, {"type": "remove_tags", "tags": ["lead"]}], "next": ["m4"]},
	{"id": "m4", "type": "message", "text": "Step four", "next": ["m5"]},
	{"id": "m5", "type": "message", "text": "Step five", "next": ["m6"]},
	{"id": "m6", "type": "message", "text": "Bye {{subscriber.first_name}}"}]}`

// StepsPerRun and MessagesPerRun describe Tunnel; lastBlock ends a run.
const (
	StepsPerRun    = 10
	MessagesPerRun = 6
	lastBlock      = "m6"
)

// Config bounds one run.
type Config struct {
	Subscribers int // default 5,000
	Concurrency int // events posted at once (default 16)
	// Rate paces the events (per second); 0 posts them as fast as
	// Concurrency allows, which is faster than the local stack runs them.
	Rate    float64
	Timeout time.Duration // the whole run, journeys included (default 10 min)
	// Progress, when set, receives a line every few seconds.
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Subscribers <= 0 {
		c.Subscribers = 5000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
}

// Latency percentiles.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// Result is what a run measured.
type Result struct {
	Subscribers int
	Steps       int // journey entries recorded
	// Elapsed runs from the first event posted to the last step finished;
	// IngestElapsed from the first event posted to the last one accepted.
	Elapsed       time.Duration
	IngestElapsed time.Duration
	StepsPerSec   float64
	EventsPerSec  float64
	// Elapsed99 runs from the first event posted to when 99% of the runs
	// had finished, StepsPerSec99 is their steps over it: a figure one
	// straggler cannot drag (a receive whose answer was lost hides its
	// messages for the queue's whole visibility timeout, 3 minutes).
	Elapsed99     time.Duration
	StepsPerSec99 float64
	// Latency: event accepted (its 202) -> the run's last step finished
	// (the journey's latest finished_at). It includes the tunnel's 1 s delay.
	Latency Latency
	// EventRetries are posts answered 5xx or cut, then retried (the event
	// id makes that safe); Errors lists everything that went wrong.
	EventRetries int
	Errors       []string
	// Deliveries counts messages the bot gateway received (MessagesPerRun
	// per subscriber expected).
	Deliveries int
	// Calls are the AWS calls made while the runs went through (from the
	// first event to the last step), by function, service and operation.
	Calls map[localstack.CallKey]localstack.CallStats
	// WorkspaceID, APIKey and SubscriberIDs name what the run made, for
	// whoever wants to drive more work at it (a local key, never printed).
	WorkspaceID   string
	APIKey        string `json:"-"`
	SubscriberIDs []string
}

// Env is a local system with a bot gateway it may call, and a call counter.
type Env struct {
	Sys     *devstack.System
	Gateway *Gateway
	Counter *localstack.CallCounter
	LogPath string
}

// Options configure Start.
type Options struct {
	// LogPath receives the system's log (warnings and errors); default a
	// new temporary file.
	LogPath string
	// Faults, when on, runs the load under fault injection.
	Faults localstack.Faults
}

// Start brings up a local system whose functions are counted, with a bot
// gateway on loopback it is allowed to reach.
func Start(ctx context.Context, opts Options) (*Env, error) {
	gw, err := NewGateway()
	if err != nil {
		return nil, err
	}
	var f *os.File
	if opts.LogPath != "" {
		f, err = os.Create(opts.LogPath)
	} else {
		f, err = os.CreateTemp("", "tunnels-load-*.log")
	}
	if err != nil {
		gw.Close()
		return nil, err
	}
	counter := localstack.NewCallCounter()
	counter.Capacity = true
	sys, err := devstack.Start(ctx, devstack.Options{
		HTTPAddr:    "127.0.0.1:0",
		AdminToken:  "load-admin",
		EgressAllow: gw.HostPort(),
		CountCalls:  counter,
		Faults:      opts.Faults,
		Log:         slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		gw.Close()
		f.Close()
		return nil, err
	}
	return &Env{Sys: sys, Gateway: gw, Counter: counter, LogPath: f.Name()}, nil
}

// Close stops the system and the gateway.
func (e *Env) Close() error {
	err := e.Sys.Close()
	e.Gateway.Close()
	return err
}

// client is a workspace's API client with retries on 5xx and cut connections.
type client struct {
	http    *http.Client
	url     string
	key     string
	retries atomic.Int64
}

func (c *client) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var raw []byte
	if body != nil {
		if r, ok := body.(json.RawMessage); ok {
			raw = r
		} else {
			var err error
			if raw, err = json.Marshal(body); err != nil {
				return err
			}
		}
	}
	var last error
	for attempt := range 6 {
		if attempt > 0 {
			c.retries.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*200) * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(raw))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last = err
			continue
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode >= 500 {
			last = fmt.Errorf("%s %s = %d %s", method, path, res.StatusCode, truncate(b))
			continue
		}
		if res.StatusCode != want {
			return fmt.Errorf("%s %s = %d %s, want %d", method, path, res.StatusCode, truncate(b), want)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s %s: %v", method, path, err)
			}
		}
		return nil
	}
	return fmt.Errorf("%s %s kept failing: %w", method, path, last)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// workspace makes a workspace whose chat channel is the gateway, and answers
// its API client and id.
func (e *Env) workspace(ctx context.Context, hc *http.Client, name string) (*client, string, error) {
	admin := &client{http: hc, url: e.Sys.APIURL, key: e.Sys.AdminToken}
	var ws struct {
		WorkspaceID string `json:"workspace_id"`
		APIKey      string `json:"api_key"`
	}
	if err := admin.do(ctx, http.MethodPost, "/v1/workspaces", map[string]string{"name": name}, http.StatusCreated, &ws); err != nil {
		return nil, "", err
	}
	c := &client{http: hc, url: e.Sys.APIURL, key: ws.APIKey}
	if err := c.do(ctx, http.MethodPut, "/v1/channel", map[string]string{"url": e.Gateway.URL(), "secret": e.Gateway.Secret}, http.StatusOK, nil); err != nil {
		return nil, "", err
	}
	return c, ws.WorkspaceID, nil
}

// Run creates a workspace with Tunnel, subscribes cfg.Subscribers
// subscribers to it through POST /v1/events and waits for every run to
// reach its last message at the gateway, then reads every journey.
func (e *Env) Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency * 2}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	c, wsID, err := e.workspace(ctx, hc, "Load")
	if err != nil {
		return nil, err
	}
	for _, tag := range []string{"lead", "engaged"} {
		if err := c.do(ctx, http.MethodPut, "/v1/tags/"+tag, map[string]string{"name": tag}, http.StatusOK, nil); err != nil {
			return nil, err
		}
	}
	if err := c.do(ctx, http.MethodPut, "/v1/tunnels/load", json.RawMessage(Tunnel), http.StatusOK, nil); err != nil {
		return nil, err
	}

	n := cfg.Subscribers
	res := &Result{Subscribers: n, WorkspaceID: wsID, APIKey: c.key}
	var errMu sync.Mutex
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(res.Errors) < 1000 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
	}
	subs := make([]string, n)
	accepted := make([]time.Time, n)
	before := e.Counter.Snapshot()
	deliveredBefore, finishedBefore := e.Gateway.Deliveries(), e.Gateway.Finished()
	start := time.Now()
	idx := make(chan int)
	go func() {
		defer close(idx)
		var tick <-chan time.Time
		if cfg.Rate > 0 {
			t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
			defer t.Stop()
			tick = t.C
		}
		for i := range n {
			if tick != nil && i > 0 {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
			select {
			case idx <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				var ans struct {
					SubscriberID string `json:"subscriber_id"`
				}
				err := c.do(ctx, http.MethodPost, "/v1/events", map[string]any{
					"event_id": fmt.Sprintf("load-%d", i), "type": "subscribe", "tunnel": "load",
					"subscriber": map[string]string{"channel": "telegram", "external_id": fmt.Sprintf("load-%d", i), "first_name": fmt.Sprintf("Sub%d", i)},
				}, http.StatusAccepted, &ans)
				if err != nil {
					fail("event %d: %v", i, err)
					continue
				}
				subs[i], accepted[i] = ans.SubscriberID, time.Now()
			}
		}()
	}
	progress := func(stage string, done, of int) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "  load: %s %d/%d (%s)\n", stage, done, of, time.Since(start).Round(time.Second))
		}
	}
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				progress("runs finished", e.Gateway.Finished()-finishedBefore, n)
			}
		}
	}()
	wg.Wait()
	res.IngestElapsed = time.Since(start)
	res.EventRetries = int(c.retries.Load())
	want := 0
	for _, s := range subs {
		if s != "" {
			want++
		}
	}

	// Wait for every run's last message at the gateway.
	for e.Gateway.FinishedOf(subs) < want && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	close(stopProgress)
	// The last steps record themselves just after their message arrived.
	time.Sleep(time.Second)
	res.Calls = localstack.Diff(e.Counter.Snapshot(), before)
	res.Deliveries = e.Gateway.Deliveries() - deliveredBefore
	if ctx.Err() != nil {
		fail("timed out after %s: %d of %d runs finished", cfg.Timeout, e.Gateway.FinishedOf(subs), want)
	}

	// Read every journey (a fresh bound: the runs may have used the first).
	jctx, jcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer jcancel()
	lat := make([]time.Duration, 0, n)
	var last time.Time
	var ends []time.Time
	var mu sync.Mutex
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || jctx.Err() != nil {
					return
				}
				if subs[i] == "" {
					continue
				}
				var page struct {
					Steps []struct {
						StepID     string    `json:"step_id"`
						Block      string    `json:"block"`
						Status     string    `json:"status"`
						Reason     string    `json:"reason"`
						FinishedAt time.Time `json:"finished_at"`
					} `json:"steps"`
				}
				if err := c.do(jctx, http.MethodGet, "/v1/subscribers/"+subs[i]+"/journey?limit=100", nil, http.StatusOK, &page); err != nil {
					fail("journey %d: %v", i, err)
					continue
				}
				var end time.Time
				for _, s := range page.Steps {
					if s.Status != "done" {
						fail("subscriber %s: step %s is %s %q", subs[i], s.Block, s.Status, s.Reason)
					}
					if s.FinishedAt.After(end) {
						end = s.FinishedAt
					}
				}
				if len(page.Steps) != StepsPerRun {
					fail("subscriber %s: %d journey entries, want %d", subs[i], len(page.Steps), StepsPerRun)
				}
				if got := e.Gateway.DeliveriesFor(subs[i]); got != MessagesPerRun {
					fail("subscriber %s: the gateway received %d messages, want %d", subs[i], got, MessagesPerRun)
				}
				mu.Lock()
				res.Steps += len(page.Steps)
				if !end.IsZero() {
					ends = append(ends, end)
					lat = append(lat, end.Sub(accepted[i]))
					if end.After(last) {
						last = end
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if jctx.Err() != nil {
		fail("reading the journeys timed out")
	}
	if bad := e.Gateway.Rejected(); bad > 0 {
		fail("%d messages with bad signatures at the gateway", bad)
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(start)
		res.StepsPerSec = float64(res.Steps) / res.Elapsed.Seconds()
		sort.Slice(ends, func(i, j int) bool { return ends[i].Before(ends[j]) })
		k := max(1, len(ends)*99/100)
		res.Elapsed99 = ends[k-1].Sub(start)
		res.StepsPerSec99 = float64(k*StepsPerRun) / res.Elapsed99.Seconds()
	}
	res.EventsPerSec = float64(want) / res.IngestElapsed.Seconds()
	for _, s := range subs {
		if s != "" {
			res.SubscriberIDs = append(res.SubscriberIDs, s)
		}
	}
	res.Latency = percentiles(lat)
	return res, nil
}

// percentiles by nearest rank.
func percentiles(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: s[len(s)-1]}
}

// Gateway is the bot gateway on loopback: it checks each signed message
// and counts it per subscriber, and when a run's last message arrived.
type Gateway struct {
	Secret string

	srv      *http.Server
	ln       net.Listener
	mu       sync.Mutex
	perSub   map[string]int
	perBlock map[string]int
	finished map[string]bool
	total    int
	bad      int
}

// NewGateway listens on a free loopback port.
func NewGateway() (*Gateway, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &Gateway{Secret: "load-connector-secret-0123456789", ln: ln, perSub: map[string]int{}, perBlock: map[string]int{}, finished: map[string]bool{}}
	g.srv = &http.Server{Handler: http.HandlerFunc(g.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("load gateway stopped", "error", err)
		}
	}()
	return g, nil
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := connector.Verify(g.Secret, r.Header, body, time.Now(), time.Minute); err != nil {
		g.mu.Lock()
		g.bad++
		g.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var m connector.Message
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.total++
	g.perSub[m.SubscriberID]++
	g.perBlock[m.Block]++
	if m.Block == lastBlock {
		g.finished[m.SubscriberID] = true
	}
	g.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// URL is where the channel connector posts.
func (g *Gateway) URL() string { return "http://" + g.ln.Addr().String() + "/bot" }

// HostPort is the address to allow in TUNNELS_EGRESS_ALLOW.
func (g *Gateway) HostPort() string { return g.ln.Addr().String() }

// Close stops the gateway.
func (g *Gateway) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = g.srv.Shutdown(ctx)
}

// Deliveries counts every message received.
func (g *Gateway) Deliveries() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// DeliveriesFor counts the messages of one subscriber.
func (g *Gateway) DeliveriesFor(sub string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.perSub[sub]
}

// DeliveriesOf counts the messages of one block.
func (g *Gateway) DeliveriesOf(block string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.perBlock[block]
}

// Finished counts subscribers whose last message arrived.
func (g *Gateway) Finished() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.finished)
}

// FinishedOf counts the subscribers of subs whose last message arrived.
func (g *Gateway) FinishedOf(subs []string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range subs {
		if s != "" && g.finished[s] {
			n++
		}
	}
	return n
}

// Rejected counts messages with bad signatures.
func (g *Gateway) Rejected() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bad
}

// Summary is a few lines for people.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d subscribers x %d steps: %d steps in %s = %.0f steps/s (99%% of the runs in %s = %.0f steps/s); ingest %.0f events/s (%s)\n",
		r.Subscribers, StepsPerRun, r.Steps, r.Elapsed.Round(time.Millisecond), r.StepsPerSec, r.Elapsed99.Round(time.Millisecond), r.StepsPerSec99,
		r.EventsPerSec, r.IngestElapsed.Round(time.Millisecond))
	fmt.Fprintf(&b, "latency event accepted -> last step finished: p50 %s p90 %s p99 %s max %s\n",
		r.Latency.P50.Round(time.Millisecond), r.Latency.P90.Round(time.Millisecond), r.Latency.P99.Round(time.Millisecond), r.Latency.Max.Round(time.Millisecond))
	fmt.Fprintf(&b, "errors: %d; event retries: %d; gateway deliveries: %d\n", len(r.Errors), r.EventRetries, r.Deliveries)
	for _, e := range r.Errors[:min(5, len(r.Errors))] {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}
