package engine

// In-memory fakes of the engine's ports, for the engine's own tests only. They
// follow the contracts in ports.go the way the DynamoDB store does (claims with
// leases and tokens, completion that moves the run's pending count only while
// the run is still the step's generation, one release per priority join), so
// the engine's behaviour over them is the behaviour it has in production.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// t0 is the start of every scenario: a minute boundary, so buckets are easy to read.
var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

const (
	testWS  = "ws1"
	testSub = "sub1"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stepItem is the fake's step record: in progress (with a lease) or finished.
type stepItem struct {
	inProgress bool
	token      string
	leaseUntil time.Time
	attempts   int
	startedAt  time.Time
	firstAt    time.Time
	rec        StepRecord
}

type joinItem struct {
	done       map[string]bool
	releasedBy string
}

type timerItem struct {
	bucket time.Time
	sk     string
	o      Outgoing
}

// fakeStore implements Store and TimerStore in memory.
type fakeStore struct {
	mu      sync.Mutex
	subs    map[string]*Subscriber
	steps   map[string]*stepItem
	joins   map[string]*joinItem
	chats   map[string]ChatMessage
	timers  map[string]timerItem // by pk|sk
	cursor  *time.Time
	journey []StepRecord // completed steps, in completion order
	tokens  int

	// Fault injection and observation.
	failComplete  int    // CompleteStep calls that fail with a transient error
	crashed       bool   // the invocation died: no ReleaseStep gets through
	loseComplete  bool   // CompleteStep reports another owner
	beforePut     func() // runs before PutTimer stores its timer
	pendingTrace  map[string][]int
	peekCalls     int
	moveCalls     int
	failMove      int // MoveRun calls that fail transiently
	claimCalls    int
	releaseCalls  int
	joinCalls     int
	startRunCalls int
	ended         map[string]bool // runs marked ended, by sub/tunnel/channel/gen
}

func newStore() *fakeStore {
	return &fakeStore{
		subs: map[string]*Subscriber{}, steps: map[string]*stepItem{}, joins: map[string]*joinItem{},
		chats: map[string]ChatMessage{}, timers: map[string]timerItem{}, pendingTrace: map[string][]int{},
	}
}

func subKey(ws, id string) string { return ws + "/" + id }

func (f *fakeStore) putSubscriber(s *Subscriber) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[subKey(s.WS, s.ID)] = copySubscriber(s)
}

// sub is the stored subscriber (a copy).
func (f *fakeStore) sub(ws, id string) *Subscriber {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copySubscriber(f.subs[subKey(ws, id)])
}

func (f *fakeStore) run(tunnelID, channel string) Run {
	return f.sub(testWS, testSub).Runs[RunKey(tunnelID, channel)]
}

func copySubscriber(s *Subscriber) *Subscriber {
	if s == nil {
		return nil
	}
	c := *s
	c.Channels = slices.Clone(s.Channels)
	c.Tags = slices.Clone(s.Tags)
	c.Fields = map[string]any{}
	for k, v := range s.Fields {
		c.Fields[k] = v
	}
	c.Runs = map[string]Run{}
	for k, v := range s.Runs {
		c.Runs[k] = v
	}
	c.Stops = map[string][]StopMarker{}
	for k, v := range s.Stops {
		c.Stops[k] = slices.Clone(v)
	}
	c.Waits = map[string]Wait{}
	for k, v := range s.Waits {
		v.Invalid = slices.Clone(v.Invalid)
		c.Waits[k] = v
	}
	return &c
}

func (f *fakeStore) OpenWait(ctx context.Context, ws, subID string, w Wait, prev string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return ErrNotFound
	}
	if sub.Waits == nil {
		sub.Waits = map[string]Wait{}
	}
	key := WaitKey(w.Tunnel, w.Block)
	old, had := sub.Waits[key]
	if w.Replaced && (!had || old.ID != prev || !old.Open()) || !w.Replaced && had && (old.Open() || old.ID == w.ID) {
		return errors.New("the block's wait changed")
	}
	sub.Waits[key] = w
	return nil
}

func (f *fakeStore) EndWait(ctx context.Context, ws, subID, key, id, by, how string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return false, ErrNotFound
	}
	w, ok := sub.Waits[key]
	if !ok || w.ID != id || (w.By != "" && w.By != by) {
		return false, nil
	}
	w.By, w.How = by, how
	sub.Waits[key] = w
	return true, nil
}

func (f *fakeStore) EndRun(ctx context.Context, ws, subID, tunnelID, channel string, gen int, superseded bool) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return false, ErrNotFound
	}
	if f.ended == nil {
		f.ended = map[string]bool{}
	}
	k := fmt.Sprintf("%s/%s/%s/%d", subKey(ws, subID), tunnelID, channel, gen)
	if f.ended[k] {
		return false, nil
	}
	r := sub.Runs[RunKey(tunnelID, channel)]
	if !superseded && (r.Gen != gen || r.Pending > 0) {
		return false, nil
	}
	f.ended[k] = true
	return true, nil
}

func (f *fakeStore) CountInvalid(ctx context.Context, ws, subID, key, id, by string) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return 0, false, ErrNotFound
	}
	w, ok := sub.Waits[key]
	if !ok || w.ID != id || w.By != "" {
		return 0, false, nil
	}
	if !slices.Contains(w.Invalid, by) {
		w.Invalid = append(w.Invalid, by)
	}
	sub.Waits[key] = w
	return len(w.Invalid), true, nil
}

func (f *fakeStore) Subscriber(ctx context.Context, ws, id string) (*Subscriber, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.subs[subKey(ws, id)]
	if !ok {
		return nil, ErrNotFound
	}
	return copySubscriber(s), nil
}

func stepKey(s Step) string { return s.WS + "/" + s.Sub + "/" + s.ID }

func (f *fakeStore) ClaimStep(ctx context.Context, s Step, now, leaseUntil time.Time) (Claim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claimCalls++
	it, ok := f.steps[stepKey(s)]
	switch {
	case !ok:
		it = &stepItem{firstAt: now}
		f.steps[stepKey(s)] = it
	case !it.inProgress:
		rec := it.rec
		rec.Children = slices.Clone(it.rec.Children)
		return Claim{State: Completed, Record: &rec}, nil
	case !it.leaseUntil.Before(now):
		return Claim{State: Busy}, nil
	}
	f.tokens++
	it.inProgress = true
	it.token = fmt.Sprintf("tok%d", f.tokens)
	it.leaseUntil = leaseUntil
	it.attempts++
	it.startedAt = now
	return Claim{State: Claimed, Token: it.token, Attempts: it.attempts, StartedAt: now, FirstAt: it.firstAt}, nil
}

func (f *fakeStore) PeekStep(ctx context.Context, s Step, now time.Time) (Claim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peekCalls++
	it, ok := f.steps[stepKey(s)]
	switch {
	case !ok || (it.inProgress && it.leaseUntil.Before(now)):
		return Claim{State: Claimed}, nil
	case it.inProgress:
		return Claim{State: Busy}, nil
	}
	rec := it.rec
	rec.Children = slices.Clone(it.rec.Children)
	return Claim{State: Completed, Record: &rec}, nil
}

func (f *fakeStore) StepsRecorded(ctx context.Context, ws, sub string, steps []Step) (map[string]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range steps {
		if _, ok := f.steps[stepKey(Step{WS: ws, Sub: sub, ID: s.ID})]; ok {
			seen[s.ID] = true
		}
	}
	return seen, nil
}

func (f *fakeStore) ReleaseStep(ctx context.Context, s Step, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.crashed {
		f.crashed = false
		return errors.New("crashed")
	}
	f.releaseCalls++
	if it, ok := f.steps[stepKey(s)]; ok && it.inProgress && it.token == token {
		it.leaseUntil = time.Time{}
	}
	return nil
}

func (f *fakeStore) MoveRun(ctx context.Context, ws, subID string, m RunMove) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moveCalls++
	if f.failMove > 0 {
		f.failMove--
		return false, errors.New("throttled")
	}
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return false, ErrNotFound
	}
	k := RunKey(m.Tunnel, m.Channel)
	r, ok := sub.Runs[k]
	if !ok || r.Gen != m.Gen || r.Ended || slices.Contains(r.Moved, m.By) {
		return false, nil
	}
	r.Pending += m.Delta
	r.Moved = append(r.Moved, m.By)
	ended := false
	if r.Pending <= 0 {
		if f.ended == nil {
			f.ended = map[string]bool{}
		}
		f.ended[fmt.Sprintf("%s/%s/%s/%d", subKey(ws, subID), m.Tunnel, m.Channel, m.Gen)] = true
		r.Ended, r.Moved, ended = true, nil, true
	}
	sub.Runs[k] = r
	f.pendingTrace[k] = append(f.pendingTrace[k], r.Pending)
	return ended, nil
}

func (f *fakeStore) CompleteStep(ctx context.Context, rec StepRecord, token string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failComplete > 0 {
		f.failComplete--
		return false, errors.New("throttled")
	}
	it, ok := f.steps[stepKey(rec.Step)]
	if token == "" && !f.loseComplete {
		// A step without a claim: its record is created once.
		if ok && (!it.inProgress || !it.leaseUntil.Before(rec.StartedAt)) {
			return false, nil
		}
		it = &stepItem{firstAt: rec.StartedAt, inProgress: true, attempts: rec.Attempts, startedAt: rec.StartedAt}
		f.steps[stepKey(rec.Step)] = it
		ok = true
	}
	if !ok || !it.inProgress || it.token != token || f.loseComplete {
		return false, nil
	}
	it.inProgress = false
	it.token = ""
	it.rec = rec
	it.rec.Children = slices.Clone(rec.Children)
	f.journey = append(f.journey, it.rec)
	f.journey = append(f.journey, it.rec.Inline...) // as the store's journey shows them: steps of their own
	if rec.Chat != nil {
		if !rec.Step.InChat {
			return false, errors.New("a chat message recorded with a step that is not a chat record")
		}
		if _, ok := f.chats[rec.Chat.ID]; !ok {
			f.chats[rec.Chat.ID] = *rec.Chat
		}
	}
	if rec.RunDelta == 0 {
		if sub := f.subs[subKey(rec.Step.WS, rec.Step.Sub)]; sub != nil {
			k := RunKey(rec.Step.Tunnel, rec.Step.Channel)
			f.pendingTrace[k] = append(f.pendingTrace[k], sub.Runs[k].Pending)
		}
	}
	return true, nil
}

func (f *fakeStore) StartRun(ctx context.Context, ws, subID string, r RunStart) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startRunCalls++
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return 0, ErrNotFound
	}
	k := RunKey(r.Tunnel, r.Channel)
	old, exists := sub.Runs[k]
	if exists && old.StartedBy == r.By {
		return old.Gen, nil
	}
	sub.Runs[k] = Run{
		Tunnel: r.Tunnel, Channel: r.Channel, Gen: old.Gen + 1, Recorded: old.Recorded || r.Recorded,
		Pending: r.Pending, StartedAt: r.At, StartedBy: r.By,
	}
	return old.Gen + 1, nil
}

func (f *fakeStore) AddStop(ctx context.Context, ws, subID, tunnelID string, m StopMarker) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[subKey(ws, subID)]
	if !ok {
		return ErrNotFound
	}
	for _, old := range sub.Stops[tunnelID] {
		if m.StepID != "" && old.StepID == m.StepID {
			return nil
		}
	}
	sub.Stops[tunnelID] = append(sub.Stops[tunnelID], m)
	return nil
}

func (f *fakeStore) JoinBlock(ctx context.Context, ws, subID, join, block string, total int, by string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joinCalls++
	k := ws + "/" + subID + "/" + join
	j, ok := f.joins[k]
	if !ok {
		j = &joinItem{done: map[string]bool{}}
		f.joins[k] = j
	}
	j.done[block] = true
	if len(j.done) < total {
		return false, nil
	}
	if j.releasedBy == "" {
		j.releasedBy = by
	}
	return j.releasedBy == by, nil
}

func (f *fakeStore) SaveChatMessage(ctx context.Context, ws, subID string, m ChatMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.chats[m.ID]; !ok {
		f.chats[m.ID] = m
	}
	return nil
}

func (f *fakeStore) PutTimer(ctx context.Context, o Outgoing) error {
	if f.beforePut != nil {
		f.beforePut()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if o.Step.NotBefore() == nil {
		return errors.New("timer without due time")
	}
	due := o.Step.NotBefore().UTC()
	b := due.Truncate(time.Minute)
	sk := due.Format(time.RFC3339Nano) + "#" + o.Step.ID
	f.timers[b.Format(time.RFC3339)+"|"+sk] = timerItem{bucket: b, sk: sk, o: o}
	return nil
}

func (f *fakeStore) DueTimers(ctx context.Context, bucket time.Time) ([]Timer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Timer
	for k, ti := range f.timers {
		if ti.bucket.Equal(bucket) {
			out = append(out, Timer{Key: k, Outgoing: ti.o})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (f *fakeStore) DeleteTimer(ctx context.Context, t Timer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.timers, t.Key)
	return nil
}

func (f *fakeStore) SchedulerCursor(ctx context.Context) (time.Time, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cursor == nil {
		return time.Time{}, false, nil
	}
	return *f.cursor, true, nil
}

func (f *fakeStore) SetSchedulerCursor(ctx context.Context, bucket time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cursor == nil || f.cursor.Before(bucket) { // never back, like the real store
		b := bucket
		f.cursor = &b
	}
	return nil
}

// timerSteps lists the ids of the steps waiting in timers, sorted.
func (f *fakeStore) timerSteps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, ti := range f.timers {
		ids = append(ids, ti.o.Step.ID)
	}
	sort.Strings(ids)
	return ids
}

func (f *fakeStore) journeyCopy() []StepRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.journey)
}

// stepState is the fake's record of one step id.
func (f *fakeStore) stepState(id string) (stepItem, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.steps[testWS+"/"+testSub+"/"+id]
	if !ok {
		return stepItem{}, false
	}
	return *it, true
}

// sent is one Outgoing as the queue received it.
type sent struct {
	seq int
	now time.Time
	o   Outgoing
}

// fakeQueue records what was sent; the test takes steps off it to process.
type fakeQueue struct {
	mu      sync.Mutex
	seq     int
	log     []sent // everything ever sent
	pending []sent // not yet taken
	err     error
}

func (q *fakeQueue) Send(ctx context.Context, now time.Time, out []Outgoing) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return q.err
	}
	for _, o := range out {
		q.seq++
		s := sent{seq: q.seq, now: now, o: o}
		q.log = append(q.log, s)
		q.pending = append(q.pending, s)
	}
	return nil
}

// take removes and returns everything queued, in send order.
func (q *fakeQueue) take() []Outgoing {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Outgoing, 0, len(q.pending))
	for _, s := range q.pending {
		out = append(out, s.o)
	}
	q.pending = nil
	return out
}

// next removes the queued step that is ready first (its due time, or when it
// was sent), the earliest sent among equals, and says when it is ready.
func (q *fakeQueue) next() (Outgoing, time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return Outgoing{}, time.Time{}, false
	}
	ready := func(s sent) time.Time {
		if d := s.o.Step.NotBefore(); d != nil && d.After(s.now) {
			return *d
		}
		return s.now
	}
	best := 0
	for i := range q.pending {
		if ready(q.pending[i]).Before(ready(q.pending[best])) {
			best = i
		}
	}
	s := q.pending[best]
	q.pending = slices.Delete(q.pending, best, best+1)
	return s.o, ready(s), true
}

func (q *fakeQueue) sentLog() []sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.log)
}

// fakeMessenger records chat deliveries.
type fakeMessenger struct {
	mu         sync.Mutex
	deliveries []ChatDelivery
	err        error  // returned (once per call) when set
	during     func() // runs (once) while a delivery is under way
}

func (m *fakeMessenger) Deliver(ctx context.Context, ws string, d ChatDelivery) (map[string]any, error) {
	if f := m.during; f != nil {
		m.during = nil
		f()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return map[string]any{"status": 500}, m.err
	}
	m.deliveries = append(m.deliveries, d)
	return map[string]any{"status": 200}, nil
}

func (m *fakeMessenger) texts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, d := range m.deliveries {
		out = append(out, d.Tunnel+"/"+d.Block+": "+d.Text)
	}
	return out
}

// fakeTunnels serves tunnel definitions from a map and counts reads.
type fakeTunnels struct {
	mu    sync.Mutex
	defs  map[string]*tunnel.Tunnel // by ws/id
	reads int
	err   error
}

func newTunnels(defs map[string]*tunnel.Tunnel) *fakeTunnels {
	f := &fakeTunnels{defs: map[string]*tunnel.Tunnel{}}
	for id, t := range defs {
		f.defs[testWS+"/"+id] = t
	}
	return f
}

func (f *fakeTunnels) set(id string, t *tunnel.Tunnel) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t == nil {
		delete(f.defs, testWS+"/"+id)
		return
	}
	f.defs[testWS+"/"+id] = t
}

func (f *fakeTunnels) Tunnel(ctx context.Context, ws, id string) (*tunnel.Tunnel, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	t, ok := f.defs[ws+"/"+id]
	if !ok {
		return nil, ErrNotFound
	}
	return t, nil
}

// harness wires one Processor per kind over shared fakes, as the deployed
// functions share one table and one set of queues.
type harness struct {
	t       *testing.T
	clock   *fakeClock
	store   *fakeStore
	queue   *fakeQueue
	tunnels *fakeTunnels
	msgr    *fakeMessenger
	procs   map[Kind]*Processor

	mu          sync.Mutex
	tagCalls    []string // step ids add_tags ran for (every call, failed ones too)
	failTags    int      // add_tags calls that fail transiently
	duringTags  func()   // runs once inside the next add_tags call, before its effect
	tagAttempts []int    // ActionContext.Attempt of each add_tags call
	final       []bool   // ActionContext.FinalAttempt of each add_tags call
	emails      []string // step ids EmailMessage ran for
}

func newHarness(t *testing.T, defs map[string]*tunnel.Tunnel) *harness {
	t.Helper()
	h := &harness{
		t: t, clock: newClock(t0), store: newStore(), queue: &fakeQueue{},
		tunnels: newTunnels(defs), msgr: &fakeMessenger{}, procs: map[Kind]*Processor{},
	}
	h.store.putSubscriber(&Subscriber{
		ID: testSub, WS: testWS, FirstName: "Ann", Email: "ann@example.com",
		Channels: []Identity{{Channel: "telegram", ExternalID: "123456"}},
		Runs:     map[string]Run{}, Stops: map[string][]StopMarker{},
	})
	addTags := func(ctx context.Context, ac *ActionContext) (Outcome, error) {
		if d := h.duringTags; d != nil {
			h.duringTags = nil
			d() // another delivery runs while this one is inside the effect
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.tagCalls = append(h.tagCalls, ac.Step.ID)
		h.tagAttempts = append(h.tagAttempts, ac.Attempt)
		h.final = append(h.final, ac.FinalAttempt)
		if h.failTags > 0 {
			h.failTags--
			return Outcome{}, errors.New("tag store timed out")
		}
		return Done(map[string]any{"added": ac.Action.Tags}), nil
	}
	email := func(ctx context.Context, ac *ActionContext) (Outcome, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.emails = append(h.emails, ac.Step.ID)
		return Done(map[string]any{"subject": ac.Block.Email.Subject}), nil
	}
	for _, k := range Kinds {
		h.procs[k] = &Processor{
			Kind: k, Store: h.store, Queue: h.queue, Tunnels: h.tunnels, Messenger: h.msgr,
			Actions:      map[string]ActionFunc{"add_tags": addTags, "mark_unread": addTags},
			EmailMessage: email,
			MaxAttempts:  5,
			Now:          h.clock.Now,
			Log:          slog.New(slog.DiscardHandler),
		}
	}
	return h
}

// startRun records the subscriber in a tunnel's chat run (generation 1) and
// queues its first step at block, as the API does for a subscribe event.
func (h *harness) startRun(tunnelID, block string) Step {
	h.t.Helper()
	ctx := context.Background()
	gen, err := h.store.StartRun(ctx, testWS, testSub, RunStart{
		Tunnel: tunnelID, Channel: ChannelChat, Recorded: true, By: "evt-1", At: h.clock.Now(), Pending: 1,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	s := Step{
		V: MessageVersion, ID: DeriveID("evt-1", "entry"), WS: testWS, Sub: testSub, Tunnel: tunnelID,
		Channel: ChannelChat, Gen: gen, Block: block, At: h.clock.Now(),
	}
	t, _ := h.tunnels.Tunnel(ctx, testWS, tunnelID)
	if err := h.queue.Send(ctx, h.clock.Now(), []Outgoing{{Kind: StepKind(t, s), Step: s}}); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// process delivers one step to the function of its kind.
func (h *harness) process(o Outgoing, attempt int) error {
	p := h.procs[o.Kind]
	if p == nil {
		h.t.Fatalf("no processor for kind %q", o.Kind)
	}
	return p.Process(context.Background(), o.Step, attempt)
}

// drain processes queued steps until none is left, each one second after the
// last (or at its due time), and returns them in processing order.
func (h *harness) drain() []Outgoing {
	h.t.Helper()
	var done []Outgoing
	for i := 0; ; i++ {
		if i > 200 {
			h.t.Fatal("drain: the run does not end")
		}
		o, ok := h.processNext()
		if !ok {
			return done
		}
		done = append(done, o)
	}
}

// processNext processes the next queued step one second after the last (or
// at its due time); false when the queue is empty.
func (h *harness) processNext() (Outgoing, bool) {
	h.t.Helper()
	o, ready, ok := h.queue.next()
	if !ok {
		return Outgoing{}, false
	}
	now := h.clock.Now()
	if ready.After(now) {
		now = ready
	}
	h.clock.Set(now.Add(time.Second))
	if err := h.process(o, 1); err != nil {
		h.t.Fatalf("process %s/%s#%d: %v", o.Step.Tunnel, o.Step.Block, o.Step.Action, err)
	}
	return o, true
}

// entry is the part of a journey record the tests compare.
type entry struct {
	ID      string
	Tunnel  string
	Block   string
	Action  int
	Type    string
	Status  string
	Reason  string
	Attempt int
}

func entries(recs []StepRecord) []entry {
	out := make([]entry, 0, len(recs))
	for _, r := range recs {
		out = append(out, entry{
			ID: r.Step.ID, Tunnel: r.Step.Tunnel, Block: r.Step.Block, Action: r.Step.Action,
			Type: r.Type, Status: r.Status, Reason: r.Reason, Attempt: r.Attempts,
		})
	}
	return out
}

// ids lists the step ids of outgoing steps.
func ids(out []Outgoing) []string {
	r := make([]string, 0, len(out))
	for _, o := range out {
		r = append(r, o.Step.ID)
	}
	return r
}

func tp(t time.Time) *time.Time { return &t }
