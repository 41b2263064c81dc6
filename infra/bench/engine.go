package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunnels/tunnels/infra/load"
	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// The engine in process: the real engine.Processor and the real tag actions
// over ports kept in memory (below), steps passed through a channel in their
// wire form (encoded and decoded, as SQS carries them). What it measures is
// the engine's own cost per step; the local stack's figure adds DynamoDB,
// SQS and HTTP. Delays are not waited out (a delayed step is handed on at
// once): this counts work, not time.

// engineResult is what the in-process run measured.
type engineResult struct {
	Runs        int
	Steps       int64
	Workers     int
	Procs       int // GOMAXPROCS while it ran
	Elapsed     time.Duration
	StepsPerSec float64
	WarmUp      float64   // steps/s of the first run in this process (same size), not counted
	Repeats     []float64 // steps/s of each timed run when there were several (StepsPerSec: their median)
}

func runEngine(ctx context.Context, runs, workers int) (engineResult, error) {
	res, _, err := runEngineWith(ctx, runs, workers)
	return res, err
}

// runEngineOneCore is the engine on one core: GOMAXPROCS 1 (the garbage
// collector shares that core), one worker, as one Lambda sandbox with at most
// one vCPU runs a batch; GOMAXPROCS is restored after. A run of the same size
// goes first and is not counted: a warm process, whose heap has grown to its size once
// (the in-memory store keeps every step; a fresh process pays the page faults
// of that memory, which on AWS is DynamoDB's). Then repeats timed runs; the
// median is the figure.
func runEngineOneCore(ctx context.Context, runs, repeats int) (engineResult, error) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	first, err := runEngine(ctx, runs, 1)
	if err != nil {
		return engineResult{}, err
	}
	var all []engineResult
	for range max(repeats, 1) {
		res, err := runEngine(ctx, runs, 1)
		if err != nil {
			return engineResult{}, err
		}
		all = append(all, res)
	}
	slices.SortFunc(all, func(a, b engineResult) int { return cmp.Compare(a.StepsPerSec, b.StepsPerSec) })
	med := all[len(all)/2]
	med.WarmUp = first.StepsPerSec
	if len(all) > 1 {
		for _, r := range all {
			med.Repeats = append(med.Repeats, r.StepsPerSec)
		}
	}
	return med, nil
}

func runEngineWith(ctx context.Context, runs, workers int) (engineResult, *memStore, error) {
	t, errs := tunnel.Parse([]byte(load.Tunnel))
	if len(errs) > 0 {
		return engineResult{}, nil, fmt.Errorf("load tunnel: %v", errs)
	}
	st := newMemStore([]string{"lead", "engaged"}, runs)
	q := &memQueue{ch: make(chan queued, runs*2+64)}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	tunnels := memTunnels{"load": t}
	procs := map[engine.Kind]*engine.Processor{}
	for _, k := range []engine.Kind{engine.KindFlow, engine.KindTags} {
		p := &engine.Processor{
			Kind: k, Store: st, Queue: q, Tunnels: tunnels, Messenger: memMessenger{},
			MaxAttempts: 5, Log: discard, Lease: 30 * time.Second,
		}
		if k == engine.KindTags {
			p.Actions = actions.Tags(st)
		}
		procs[k] = p
	}

	const ws = "ws_bench"
	now := time.Now().UTC()
	for i := range runs {
		sub := fmt.Sprintf("sub%07d", i)
		st.put(&engine.Subscriber{
			ID: sub, WS: ws, FirstName: "Bench", Channels: []engine.Identity{{Channel: "telegram", ExternalID: sub}},
			Runs: map[string]engine.Run{engine.RunKey("load", engine.ChannelChat): {
				Tunnel: "load", Channel: engine.ChannelChat, Gen: 1, Recorded: true, Pending: 1, StartedAt: now, StartedBy: "ev" + sub,
			}},
			Stops: map[string][]engine.StopMarker{}, Fields: map[string]any{},
		})
	}
	want := int64(runs * load.StepsPerRun)
	runtime.GC() // the setup's garbage is not the run's
	start := time.Now()
	for i := range runs {
		sub := fmt.Sprintf("sub%07d", i)
		first := engine.Step{V: engine.MessageVersion, ID: engine.DeriveID(ws, "event", sub), WS: ws, Sub: sub,
			Tunnel: "load", Channel: engine.ChannelChat, Gen: 1, Block: t.Entry, At: now}
		if err := q.Send(ctx, now, []engine.Outgoing{{Kind: engine.StepKind(t, first), Step: first}}); err != nil {
			return engineResult{}, nil, err
		}
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case m := <-q.ch:
					s, err := engine.Decode(m.body)
					if err != nil {
						failed.Add(1)
						continue
					}
					if err := procs[m.kind].Process(ctx, s, 1); err != nil {
						failed.Add(1)
						q.ch <- m // retried, as the queue would
					}
				}
			}
		}()
	}
	for st.completed.Load() < want {
		if ctx.Err() != nil {
			close(done)
			wg.Wait()
			return engineResult{}, nil, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	close(done)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return engineResult{}, nil, fmt.Errorf("%d step deliveries failed in memory", n)
	}
	return engineResult{Runs: runs, Steps: want, Workers: workers, Procs: runtime.GOMAXPROCS(0), Elapsed: elapsed, StepsPerSec: float64(want) / elapsed.Seconds()}, st, nil
}

// queued is a message in the in-memory queue: the step's SQS body, and its
// kind (which queue: on AWS each kind has its own).
type queued struct {
	kind engine.Kind
	body []byte
}

type memQueue struct{ ch chan queued }

func (q *memQueue) Send(ctx context.Context, now time.Time, out []engine.Outgoing) error {
	for _, o := range out {
		q.ch <- queued{o.Kind, o.Step.Encode()}
	}
	return nil
}

type memTunnels map[string]*tunnel.Tunnel

func (m memTunnels) Tunnel(ctx context.Context, ws, id string) (*tunnel.Tunnel, error) {
	if t, ok := m[id]; ok {
		return t, nil
	}
	return nil, engine.ErrNotFound
}

type memMessenger struct{}

func (memMessenger) Deliver(ctx context.Context, ws string, d engine.ChatDelivery) (map[string]any, error) {
	return map[string]any{"connector_status": 202}, nil
}

// memStore keeps the engine's state in memory, sharded by subscriber so
// workers on different subscribers do not wait for one lock. It follows the
// store's contract (claims with leases and tokens, completion that moves the
// run's pending count while the run is the step's generation).
//
// It is cheap where a real store's cost is the network and the database,
// not the engine's: a profile is an immutable snapshot (every change makes a
// new one, copying only what it changes), so a read hands out the snapshot
// as DynamoDB hands out a fresh item, without copying it; a finished step
// keeps what a duplicate delivery needs (its children), not the whole
// record; a chat item only its id.
type memStore struct {
	shards    [64]shard
	tags      map[string]bool
	completed atomic.Int64
	tokens    atomic.Int64
}

type shard struct {
	mu    sync.Mutex
	subs  map[string]*engine.Subscriber // snapshots: never changed once stored
	steps map[string]*memStep
	joins map[string]map[string]bool
	chats map[string]struct{}
}

type memStep struct {
	inProgress bool
	token      string
	leaseUntil time.Time
	attempts   int
	firstAt    time.Time
	children   []engine.Outgoing // of the completed step
}

// newMemStore makes a store sized for runs of the load tunnel (its tables
// do not grow while the engine is timed, as DynamoDB's do not).
func newMemStore(tags []string, runs int) *memStore {
	st := &memStore{tags: map[string]bool{}}
	for _, t := range tags {
		st.tags[t] = true
	}
	n := runs/len(st.shards) + 1
	for i := range st.shards {
		st.shards[i] = shard{subs: make(map[string]*engine.Subscriber, n), steps: make(map[string]*memStep, n*load.StepsPerRun),
			joins: map[string]map[string]bool{}, chats: make(map[string]struct{}, n*load.MessagesPerRun)}
	}
	return st
}

// shard picks the subscriber's shard: FNV-1a of ws, "/", sub.
func (st *memStore) shard(ws, sub string) *shard {
	h := uint32(2166136261)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint32(s[i])) * 16777619
		}
	}
	add(ws)
	add("/")
	add(sub)
	return &st.shards[h%uint32(len(st.shards))]
}

func (st *memStore) put(s *engine.Subscriber) {
	sh := st.shard(s.WS, s.ID)
	sh.mu.Lock()
	sh.subs[s.ID] = s
	sh.mu.Unlock()
}

// update replaces the subscriber's snapshot by a shallow copy that change
// edits; change must copy any slice or map it modifies (the old snapshot may
// be in a reader's hands). The shard's lock is held.
func (sh *shard) update(id string, change func(c *engine.Subscriber)) bool {
	s, ok := sh.subs[id]
	if !ok {
		return false
	}
	c := *s
	change(&c)
	sh.subs[id] = &c
	return true
}

func (st *memStore) Subscriber(ctx context.Context, ws, id string) (*engine.Subscriber, error) {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	s, ok := sh.subs[id]
	sh.mu.Unlock()
	if !ok {
		return nil, engine.ErrNotFound
	}
	return s, nil
}

func (st *memStore) ClaimStep(ctx context.Context, s engine.Step, now, leaseUntil time.Time) (engine.Claim, error) {
	sh := st.shard(s.WS, s.Sub)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it, ok := sh.steps[s.ID]
	switch {
	case !ok:
		it = &memStep{firstAt: now}
		sh.steps[s.ID] = it
	case !it.inProgress:
		return engine.Claim{State: engine.Completed, Record: &engine.StepRecord{Step: s, Children: it.children}}, nil
	case !it.leaseUntil.Before(now):
		return engine.Claim{State: engine.Busy}, nil
	}
	it.inProgress = true
	it.token = strconv.FormatInt(st.tokens.Add(1), 10)
	it.leaseUntil = leaseUntil
	it.attempts++
	return engine.Claim{State: engine.Claimed, Token: it.token, Attempts: it.attempts, StartedAt: now, FirstAt: it.firstAt}, nil
}

func (st *memStore) PeekStep(ctx context.Context, s engine.Step, now time.Time) (engine.Claim, error) {
	sh := st.shard(s.WS, s.Sub)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it, ok := sh.steps[s.ID]
	switch {
	case !ok || (it.inProgress && it.leaseUntil.Before(now)):
		return engine.Claim{State: engine.Claimed}, nil
	case it.inProgress:
		return engine.Claim{State: engine.Busy}, nil
	}
	return engine.Claim{State: engine.Completed, Record: &engine.StepRecord{Step: s, Children: it.children}}, nil
}

func (st *memStore) StepsRecorded(ctx context.Context, ws, sub string, steps []engine.Step) (map[string]bool, error) {
	sh := st.shard(ws, sub)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	seen := make(map[string]bool, len(steps))
	for _, s := range steps {
		if _, ok := sh.steps[s.ID]; ok {
			seen[s.ID] = true
		}
	}
	return seen, nil
}

func (st *memStore) ReleaseStep(ctx context.Context, s engine.Step, token string) error {
	sh := st.shard(s.WS, s.Sub)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if it, ok := sh.steps[s.ID]; ok && it.inProgress && it.token == token {
		it.leaseUntil = time.Time{}
	}
	return nil
}

func (st *memStore) CompleteStep(ctx context.Context, rec engine.StepRecord, token string) (bool, error) {
	s := rec.Step
	sh := st.shard(s.WS, s.Sub)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	it, ok := sh.steps[s.ID]
	if token == "" { // a step that ran without a claim: recorded once
		if ok && (!it.inProgress || !it.leaseUntil.Before(rec.StartedAt)) {
			return false, nil
		}
		it, ok = &memStep{inProgress: true}, true
		sh.steps[s.ID] = it
	}
	if !ok || !it.inProgress || it.token != token {
		return false, nil
	}
	it.inProgress, it.token, it.children = false, "", rec.Children
	st.completed.Add(1 + int64(len(rec.Inline))) // the delays that ran within it are steps too
	return true, nil
}

func (st *memStore) MoveRun(ctx context.Context, ws, id string, m engine.RunMove) (bool, error) {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	k := engine.RunKey(m.Tunnel, m.Channel)
	if sub := sh.subs[id]; sub != nil {
		if r, ok := sub.Runs[k]; ok && r.Gen == m.Gen {
			r.Pending += m.Delta
			sh.update(id, func(c *engine.Subscriber) {
				c.Runs = maps.Clone(c.Runs)
				c.Runs[k] = r
			})
		}
	}
	return false, nil // the bench keeps no stats
}

func (st *memStore) StartRun(ctx context.Context, ws, id string, r engine.RunStart) (int, error) {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sub, ok := sh.subs[id]
	if !ok {
		return 0, engine.ErrNotFound
	}
	k := engine.RunKey(r.Tunnel, r.Channel)
	old := sub.Runs[k]
	if old.StartedBy == r.By && old.Gen > 0 {
		return old.Gen, nil
	}
	sh.update(id, func(c *engine.Subscriber) {
		c.Runs = maps.Clone(c.Runs)
		if c.Runs == nil {
			c.Runs = map[string]engine.Run{}
		}
		c.Runs[k] = engine.Run{Tunnel: r.Tunnel, Channel: r.Channel, Gen: old.Gen + 1, Recorded: old.Recorded || r.Recorded,
			Pending: r.Pending, StartedAt: r.At, StartedBy: r.By}
	})
	return old.Gen + 1, nil
}

func (st *memStore) AddStop(ctx context.Context, ws, id, tunnelID string, m engine.StopMarker) error {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sub, ok := sh.subs[id]
	if !ok {
		return engine.ErrNotFound
	}
	for _, old := range sub.Stops[tunnelID] {
		if old.StepID == m.StepID {
			return nil
		}
	}
	sh.update(id, func(c *engine.Subscriber) {
		c.Stops = maps.Clone(c.Stops)
		if c.Stops == nil {
			c.Stops = map[string][]engine.StopMarker{}
		}
		c.Stops[tunnelID] = append(slices.Clip(c.Stops[tunnelID]), m)
	})
	return nil
}

func (st *memStore) JoinBlock(ctx context.Context, ws, id, join, block string, total int, by string) (bool, error) {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	j := sh.joins[join]
	if j == nil {
		j = map[string]bool{}
		sh.joins[join] = j
	}
	j[block] = true
	if len(j) < total {
		return false, nil
	}
	if j["#released"] {
		return false, nil
	}
	j["#released"] = true
	return true, nil
}

func (st *memStore) SaveChatMessage(ctx context.Context, ws, id string, m engine.ChatMessage) error {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.chats[m.ID] = struct{}{} // a retry writes the same item again
	return nil
}

func (st *memStore) PutTimer(ctx context.Context, o engine.Outgoing) error {
	return fmt.Errorf("the in-process bench has no timers (step %s due %v)", o.Step.ID, o.Step.Due)
}

// The tag actions' store.

func (st *memStore) TagIDs(ctx context.Context, ws string) (map[string]bool, error) {
	return st.tags, nil
}

func (st *memStore) AddTags(ctx context.Context, ws, id string, tags []string) error {
	return st.changeTags(ws, id, tags, true)
}

func (st *memStore) RemoveTags(ctx context.Context, ws, id string, tags []string) error {
	return st.changeTags(ws, id, tags, false)
}

func (st *memStore) changeTags(ws, id string, tags []string, add bool) error {
	sh := st.shard(ws, id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.update(id, func(c *engine.Subscriber) {
		c.Tags = slices.Clone(c.Tags)
		for _, t := range tags {
			has := slices.Contains(c.Tags, t)
			switch {
			case add && !has:
				c.Tags = append(c.Tags, t)
			case !add && has:
				c.Tags = slices.DeleteFunc(c.Tags, func(x string) bool { return x == t })
			}
		}
	}) {
		return engine.ErrNotFound
	}
	return nil
}

// The bench's tunnel has no message that waits for the subscriber.
var errNoWaits = errors.New("bench: the in-process store keeps no waits")

func (st *memStore) OpenWait(ctx context.Context, ws, id string, w engine.Wait, prev string) error {
	return errNoWaits
}

func (st *memStore) EndWait(ctx context.Context, ws, id, key, wait, by, how string) (bool, error) {
	return false, errNoWaits
}

func (st *memStore) CountInvalid(ctx context.Context, ws, id, key, wait, by string) (int, bool, error) {
	return 0, false, errNoWaits
}

func (st *memStore) EndRun(ctx context.Context, ws, id, tunnelID, channel string, gen int, superseded bool) (bool, error) {
	return false, nil // the bench keeps no stats
}
