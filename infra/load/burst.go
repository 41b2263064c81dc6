package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnels/tunnels/infra/localstack"
)

// BurstTunnel is the broadcast of the burst: every subscriber joins one
// sales plan (evenly over BurstOperators), then gets a welcome message.
const BurstTunnel = `{"name": "Burst", "entry": "join", "blocks": [
	{"id": "join", "type": "action", "actions": [{"type": "add_to_sales_plan", "plan": "burst"}], "next": ["welcome"]},
	{"id": "welcome", "type": "message", "text": "Welcome {{subscriber.first_name}}"}]}`

// BurstOperators are the burst plan's operators; BurstStepsPerRun the steps
// of BurstTunnel.
var BurstOperators = []string{"anna", "boris", "carl"}

const BurstStepsPerRun = 2

// BurstConfig bounds a burst.
type BurstConfig struct {
	Subscribers int           // default 10,000
	Concurrency int           // events posted at once (default 16)
	Timeout     time.Duration // default 20 min
	Progress    func(format string, args ...any)
}

// BurstResult is what a burst measured.
type BurstResult struct {
	Subscribers int
	// Recorded is the tunnel's count of subscribers; Deals the plan's deals
	// and PerOperator how they went round the operators.
	Recorded    int
	Deals       int
	PerOperator map[string]int
	Welcomes    int // messages of the last block at the gateway
	// Elapsed runs from the first event posted to the last welcome.
	Elapsed time.Duration
	// Conflicts are DynamoDB writes refused for a condition or cancelled
	// transactions (conflicts included), by every function, over the burst;
	// Steps the steps it ran (subscribers x BurstStepsPerRun).
	Conflicts    int64
	Steps        int
	EventRetries int
	Errors       []string
	Calls        map[localstack.CallKey]localstack.CallStats `json:"-"` // (struct keys: no JSON)
}

// Spread is the largest difference of deals between two operators.
func (r *BurstResult) Spread() int {
	lo, hi := -1, 0
	for _, op := range BurstOperators {
		n := r.PerOperator[op]
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	return hi - max(lo, 0)
}

// ConflictsPerStep is Conflicts over Steps.
func (r *BurstResult) ConflictsPerStep() float64 {
	if r.Steps == 0 {
		return 0
	}
	return float64(r.Conflicts) / float64(r.Steps)
}

// Burst subscribes cfg.Subscribers subscribers to BurstTunnel as fast as
// cfg.Concurrency clients can, waits for every welcome, and reads back the
// tunnel's count and the plan's deals.
func (e *Env) Burst(ctx context.Context, cfg BurstConfig) (*BurstResult, error) {
	if cfg.Subscribers <= 0 {
		cfg.Subscribers = 10000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Minute
	}
	progress := cfg.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency * 2}, Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	c, _, err := e.workspace(ctx, hc, "Burst")
	if err != nil {
		return nil, err
	}
	for _, op := range BurstOperators {
		if err := c.do(ctx, http.MethodPut, "/v1/operators/"+op, map[string]string{"name": op}, http.StatusOK, nil); err != nil {
			return nil, err
		}
	}
	if err := c.do(ctx, http.MethodPut, "/v1/sales-plans/burst", map[string]any{"name": "Burst", "statuses": []string{"new", "won"},
		"operators": BurstOperators, "distribution": "evenly"}, http.StatusOK, nil); err != nil {
		return nil, err
	}
	if err := c.do(ctx, http.MethodPut, "/v1/tunnels/burst", json.RawMessage(BurstTunnel), http.StatusOK, nil); err != nil {
		return nil, err
	}

	n := cfg.Subscribers
	res := &BurstResult{Subscribers: n, PerOperator: map[string]int{}}
	var errMu sync.Mutex
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(res.Errors) < 100 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
	}
	welcomesBefore := e.Gateway.DeliveriesOf("welcome")
	before := e.Counter.Snapshot()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				err := c.do(ctx, http.MethodPost, "/v1/events", map[string]any{
					"event_id": fmt.Sprintf("burst-%d", i), "type": "subscribe", "tunnel": "burst",
					"subscriber": map[string]string{"channel": "telegram", "external_id": fmt.Sprintf("burst-%d", i), "first_name": fmt.Sprintf("B%d", i)},
				}, http.StatusAccepted, nil)
				if err != nil {
					fail("event %d: %v", i, err)
				}
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				progress("burst: %d/%d welcomed (%s)", e.Gateway.DeliveriesOf("welcome")-welcomesBefore, n, time.Since(start).Round(time.Second))
			}
		}
	}()
	wg.Wait()
	for e.Gateway.DeliveriesOf("welcome")-welcomesBefore < n && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	res.Elapsed = time.Since(start)
	res.Welcomes = e.Gateway.DeliveriesOf("welcome") - welcomesBefore
	time.Sleep(time.Second) // the welcomes record themselves just after
	res.Calls = localstack.Diff(e.Counter.Snapshot(), before)
	for k, v := range res.Calls {
		if strings.EqualFold(k.Service, "dynamodb") {
			res.Conflicts += v.ConditionFailed
		}
	}
	res.Steps = n * BurstStepsPerRun
	res.EventRetries = int(c.retries.Load())
	if ctx.Err() != nil {
		fail("timed out after %s: %d of %d welcomed", cfg.Timeout, res.Welcomes, n)
	}

	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer rcancel()
	var tunnel struct {
		Subscribers int `json:"subscribers"`
	}
	if err := c.do(rctx, http.MethodGet, "/v1/tunnels/burst", nil, http.StatusOK, &tunnel); err != nil {
		return nil, err
	}
	res.Recorded = tunnel.Subscribers
	cursor := ""
	for {
		var page struct {
			Deals []struct {
				Operator *string `json:"operator"`
			} `json:"deals"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := c.do(rctx, http.MethodGet, "/v1/sales-plans/burst/deals?limit=500&cursor="+cursor, nil, http.StatusOK, &page); err != nil {
			return nil, err
		}
		for _, d := range page.Deals {
			res.Deals++
			if d.Operator != nil {
				res.PerOperator[*d.Operator]++
			}
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	return res, nil
}

// Summary is a few lines for people.
func (r *BurstResult) Summary() string {
	return fmt.Sprintf("%d subscriptions in %s: recorded %d, deals %d %v (spread %d), welcomes %d; %d conflicts over %d steps = %.4f per step; %d event retries, %d errors",
		r.Subscribers, r.Elapsed.Round(time.Millisecond), r.Recorded, r.Deals, r.PerOperator, r.Spread(), r.Welcomes,
		r.Conflicts, r.Steps, r.ConflictsPerStep(), r.EventRetries, len(r.Errors))
}
