package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tunnels/tunnels/shared/fields"
	"github.com/tunnels/tunnels/shared/render"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// ActionFunc runs one action of an action block. The Outcome says what it
// did; a returned error is transient and makes the step retry.
type ActionFunc func(ctx context.Context, ac *ActionContext) (Outcome, error)

// ActionContext is what an action runs with.
type ActionContext struct {
	Step       Step
	Tunnel     *tunnel.Tunnel
	Block      *tunnel.Block
	Action     tunnel.Action
	Subscriber *Subscriber
	// Now is when this attempt began; FirstAt when the first attempt began
	// (stable across retries: use it for anything a retry must write again
	// identically, such as a chat item's time).
	Now     time.Time
	FirstAt time.Time
	// Attempt counts deliveries of the step; FinalAttempt is true on the last
	// one the queue allows before the dead-letter queue.
	Attempt      int
	FinalAttempt bool
	// Prepared is what the action type's PrepareFunc answered for this step
	// when its batch began (nil: none, or it ran unprepared).
	Prepared any

	render func(ctx context.Context, text string, escape func(string) string) (string, error)
}

// Render fills the placeholders of text for this step's subscriber.
func (ac *ActionContext) Render(ctx context.Context, text string) (string, error) {
	return ac.render(ctx, text, nil)
}

// RenderEscaped fills placeholders, escaping every substituted value.
func (ac *ActionContext) RenderEscaped(ctx context.Context, text string, escape func(string) string) (string, error) {
	return ac.render(ctx, text, escape)
}

// Outcome is what a step did.
type Outcome struct {
	Status string // StatusDone, StatusSkipped or StatusFailed
	Reason string
	Detail map[string]any
	// Continue, when not empty, replaces the block's next blocks once the
	// block is done (an external request's on_error); the block's remaining
	// actions still run.
	Continue []string
	// Spawn holds first steps of other runs this step began (START).
	Spawn []Outgoing
	// RunDelta moves the run's pending count beyond this step and its
	// children: a wait for the subscriber holds one count, which the step
	// that ends the wait takes over.
	RunDelta int
	// Chat is the chat message the step sent (a message block on a chat
	// run), stored with the step's record.
	Chat *ChatMessage
}

// Done, Skipped and Failed build outcomes.
func Done(detail map[string]any) Outcome { return Outcome{Status: StatusDone, Detail: detail} }

// Skipped is an outcome for an action that could not run for a reason in the data.
func Skipped(reason string) Outcome { return Outcome{Status: StatusSkipped, Reason: reason} }

// Failed is an outcome for a permanent failure.
func Failed(reason string) Outcome { return Outcome{Status: StatusFailed, Reason: reason} }

// Variables reads the workspace's variables for placeholders.
type Variables interface {
	Variables(ctx context.Context, ws string) (map[string]string, error)
}

// DefaultMaxStepsWithoutWait is the bound on steps between waits when the
// deployment sets none: far above any funnel a person reads through, far
// below a bill.
const DefaultMaxStepsWithoutWait = 100

// PauseRecheck is how often a message held by a paused subscriber looks
// whether the pause ended.
const PauseRecheck = time.Minute

// ResendDelay is how long a duplicate of a finished step waits before its
// copies of the step's unclaimed children are delivered.
const ResendDelay = 30 * time.Second

// stopMargin puts a STOP marker's time past the moment its write lands: a
// step that read the profile just before the marker existed was pending when
// the STOP ran, and its children (stamped with that step's earlier time) are
// dropped. Later sendings are told apart by their generation, not by time.
const stopMargin = 2 * time.Second

// Processor runs the steps of one kind.
type Processor struct {
	Kind      Kind
	Store     Store
	Queue     Queue
	Tunnels   Tunnels
	Vars      Variables
	Messenger Messenger
	// Actions run action types by name; a type with no entry is recorded
	// failed "not implemented" once and the block goes on.
	Actions map[string]ActionFunc
	// EmailMessage sends a message block's email content on an email run.
	EmailMessage ActionFunc
	// Prepare holds, by action type, what runs over a batch's steps of that
	// type before any runs (see BeforeBatch).
	Prepare map[string]PrepareFunc
	// Fields stores replies in custom fields (reply.field); nil leaves them
	// unstored.
	Fields FieldWriter
	// Stats takes each finished step's counts (nil: none are kept).
	Stats StatsSink
	// MaxAttempts is the queue's maxReceiveCount.
	MaxAttempts int
	// MaxStepsWithoutWait bounds the steps a run may take without waiting
	// (TUNNELS_MAX_STEPS_WITHOUT_WAIT; 0 means DefaultMaxStepsWithoutWait).
	// The step past it is recorded failed, naming the loop, and its branch
	// ends. It takes the place of Lambda's recursive loop detection, which
	// the template turns off for the step functions.
	MaxStepsWithoutWait int
	// Lease is how long a claim lasts when the context has no deadline.
	Lease time.Duration
	Now   func() time.Time
	Log   *slog.Logger
}

func (p *Processor) now() time.Time {
	if p.Now != nil {
		return p.Now().UTC()
	}
	return time.Now().UTC()
}

// stepLogger writes a step's log lines with the step's identity. The
// attributes are put together only for a line that is written (slog's With
// formats them up front, for every step: an eighth of the engine's time).
type stepLogger struct {
	ctx context.Context
	l   *slog.Logger
	s   *Step
}

func (sl stepLogger) log(lvl slog.Level, msg string, args ...any) {
	if !sl.l.Enabled(sl.ctx, lvl) {
		return
	}
	s := sl.s
	attrs := make([]slog.Attr, 0, 5+len(args)/2)
	attrs = append(attrs, slog.String("step_id", s.ID), slog.String("subscriber", s.Sub), slog.String("tunnel", s.Tunnel),
		slog.String("block", s.Block), slog.Int("action", s.Action))
	for i := 0; i+1 < len(args); i += 2 {
		k, _ := args[i].(string)
		attrs = append(attrs, slog.Any(k, args[i+1]))
	}
	sl.l.LogAttrs(sl.ctx, lvl, msg, attrs...)
}

func (sl stepLogger) Info(msg string, args ...any) { sl.log(slog.LevelInfo, msg, args...) }
func (sl stepLogger) Warn(msg string, args ...any) { sl.log(slog.LevelWarn, msg, args...) }

func (p *Processor) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// Process runs one delivery of a step. A nil error acknowledges it; an error
// asks for a retry later.
func (p *Processor) Process(ctx context.Context, s Step, attempt int) error {
	now := p.now()
	log := stepLogger{ctx: ctx, l: p.log(), s: &s}

	t, err := p.tunnel(ctx, s)
	if err != nil {
		return fmt.Errorf("read tunnel: %w", err)
	}
	s.InChat = ChatRecord(t, s)
	if t != nil {
		if k := StepKind(t, s); k != p.Kind {
			// The tunnel was edited and the step now belongs to another kind:
			// hand it over untouched.
			return p.Queue.Send(ctx, now, []Outgoing{{Kind: k, Step: s}})
		}
	}
	sub, err := p.Store.Subscriber(ctx, s.WS, s.Sub)
	if errors.Is(err, ErrNotFound) {
		log.Warn("subscriber no longer exists; step dropped")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read subscriber: %w", err)
	}
	if sub.PausedUntil.After(now) && sendsChat(t, s) {
		// An operator has the conversation: the message waits, unclaimed,
		// until the pause ends. It looks again at least every PauseRecheck,
		// so a resume lets it go within that.
		due := sub.PausedUntil
		if next := now.Add(PauseRecheck); next.Before(due) {
			due = next
		}
		s.Wait = &due
		log.Info("subscriber paused; message held", "until", due)
		return p.emit(ctx, now, []Outgoing{{Kind: p.Kind, Step: s}})
	}

	lease := now.Add(p.leaseFor())
	if d, ok := ctx.Deadline(); ok {
		lease = d
	}
	free := claimFree(t, s)
	var claim Claim
	if free {
		claim, err = p.Store.PeekStep(ctx, s, now)
		if claim.State == Claimed {
			claim.Attempts, claim.StartedAt, claim.FirstAt = max(attempt, 1), now, now
		}
	} else {
		claim, err = p.Store.ClaimStep(ctx, s, now, lease)
	}
	if err != nil {
		return fmt.Errorf("claim step: %w", err)
	}
	switch claim.State {
	case Completed:
		if err := p.finishMove(ctx, s, sub, claim.Record); err != nil {
			return err
		}
		// A duplicate: no effect again, but make sure the children were sent
		// (see resendUnclaimed).
		return p.resendUnclaimed(ctx, s, now, claim.Record.Children)
	case Busy:
		return ErrBusy
	}

	rec := StepRecord{Step: s, Type: stepType(t, s), Attempts: claim.Attempts, StartedAt: claim.StartedAt}
	release := func() {
		if claim.Token == "" {
			return // nothing was claimed
		}
		if rerr := p.Store.ReleaseStep(ctx, s, claim.Token); rerr != nil {
			log.Warn("release step", "error", rerr)
		}
	}
	out, children, err := p.run(ctx, s, t, sub, claim, attempt)
	if err != nil {
		release()
		return err
	}
	rec.Status, rec.Reason, rec.Detail = out.Status, out.Reason, out.Detail
	if out.Chat != nil {
		if s.InChat {
			rec.Chat = out.Chat // one item: the record is the chat message
		} else if err := p.Store.SaveChatMessage(ctx, s.WS, s.Sub, *out.Chat); err != nil {
			release()
			return fmt.Errorf("store chat message: %w", err)
		}
	}
	if s.Phase != "" {
		if rec.Detail == nil {
			rec.Detail = map[string]any{}
		}
		rec.Detail["phase"] = s.Phase // which part of the block's work: reply, timeout, reask, wake
	}
	rec.FinishedAt = p.now()
	counted := children // the children as the step made them, for its counts
	inline, inlined, children := p.inlineDelays(ctx, t, s, sub, children, claim.StartedAt, rec.FinishedAt)
	rec.Inline = inline
	rec.Children = children
	delta := -1
	if s.Phase == PhaseReply {
		delta = 0 // an answer comes from outside: nothing counted it as pending
	}
	delta += out.RunDelta
	for _, c := range children {
		if c.Step.Tunnel == s.Tunnel && c.Step.Channel == s.Channel && c.Step.Gen == s.Gen {
			delta++
		}
	}
	rec.RunDelta = delta
	ok, err := p.Store.CompleteStep(ctx, rec, claim.Token)
	if err != nil {
		release()
		return fmt.Errorf("complete step: %w", err)
	}
	if !ok {
		if free {
			log.Info("a copy of the step ran at the same time and recorded it first")
		} else {
			log.Warn("step was completed by another invocation after our lease ran out")
		}
		// The copy that recorded the step may yet fail to send its children,
		// and its retry is the same queue message this one acknowledges: see
		// to them as a duplicate of a finished step does.
		again, err := p.Store.PeekStep(ctx, s, p.now())
		if err != nil {
			return fmt.Errorf("look at the step recorded by another copy: %w", err)
		}
		if again.State != Completed || again.Record == nil {
			return ErrBusy
		}
		return p.resendUnclaimed(ctx, s, now, again.Record.Children)
	}
	// The run's count moves after the record, in a write of its own (half
	// the price of one transaction over both): a crash in between leaves the
	// record, and the next delivery finds it and finishes the move.
	ended := false
	if delta != 0 {
		seen := sub.Runs[RunKey(s.Tunnel, s.Channel)]
		ended, err = p.Store.MoveRun(ctx, s.WS, s.Sub, RunMove{
			Tunnel: s.Tunnel, Channel: s.Channel, Gen: s.Gen, By: s.ID, Delta: delta, Seen: &seen,
		})
		if err != nil {
			return fmt.Errorf("move the run's count: %w", err)
		}
	}
	log.Info("step", "type", rec.Type, "status", rec.Status, "reason", rec.Reason, "children", len(children), "inline", len(inline))
	p.countStep(ctx, s, sub, rec, out, counted, ended)
	for _, d := range inlined {
		p.countStep(ctx, d.rec.Step, sub, d.rec, d.out, d.rec.Children, false)
	}
	// Delays count from the send (a queue delay is whole seconds, rounded
	// up: counted from the step's start, a slow step's children would wait
	// a second more).
	return p.emit(ctx, p.now(), children)
}

// maxInline bounds the delays run within one step (a delay right after a
// delay runs within it too).
const maxInline = 4

// inlineRun is a delay step that ran within its parent: its record (with
// its children as it made them) and outcome, for its counts.
type inlineRun struct {
	rec StepRecord
	out Outcome
}

// inlineDelays runs within step s the children that are plain delays of the
// same run and kind, due now: a delay has no effect but computing when its
// own children are due, so it needs no queue hop, claim or item of its own.
// Its record (its own step id, type, status and detail) goes in s's item,
// shown as finished when s finished, and its children replace it among s's;
// its move of the run's count is part of s's. The record of s holds its
// delays or not as a whole, and only the copy of s that records it sends and
// counts anything, so a delay still runs once in effect.
//
// The delay runs as of s's start (started): it saw the subscriber s read
// then, so its children carry that time, and a STOP that came while s ran
// (whose marker is later) still covers them when they arrive.
func (p *Processor) inlineDelays(ctx context.Context, t *tunnel.Tunnel, s Step, sub *Subscriber, children []Outgoing, started, finished time.Time) ([]StepRecord, []inlineRun, []Outgoing) {
	if t == nil || p.Kind != KindFlow {
		return nil, nil, children
	}
	var runs []inlineRun
	out := make([]Outgoing, 0, len(children))
	queue := children
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if len(runs) >= maxInline || !p.inlinable(t, s, c, started) {
			out = append(out, c)
			continue
		}
		claim := Claim{State: Claimed, Attempts: 1, StartedAt: started, FirstAt: started}
		dout, dchildren, err := p.run(ctx, c.Step, t, sub, claim, 1)
		if err != nil {
			out = append(out, c) // it runs apart, as it would have
			continue
		}
		rec := StepRecord{Step: c.Step, Type: tunnel.BlockDelay, Status: dout.Status, Reason: dout.Reason, Detail: dout.Detail,
			Attempts: 1, StartedAt: finished, FinishedAt: finished, Children: dchildren}
		runs = append(runs, inlineRun{rec: rec, out: dout})
		queue = append(slices.Clone(dchildren), queue...) // a delay after the delay may run within it too
	}
	recs := make([]StepRecord, len(runs))
	for i, r := range runs {
		recs[i] = r.rec
	}
	return recs, runs, out
}

// inlinable tells whether child c of s can run within s: a delay (not its
// wake), of the same tunnel, run and kind, due now and holding no siblings.
func (p *Processor) inlinable(t *tunnel.Tunnel, s Step, c Outgoing, now time.Time) bool {
	cs := c.Step
	// The same run: its move of the run's count is then part of s's.
	sameRun := cs.WS == s.WS && cs.Sub == s.Sub && cs.Tunnel == s.Tunnel && cs.Channel == s.Channel && cs.Gen == s.Gen
	if c.Kind != p.Kind || !sameRun || cs.Phase != "" || cs.Hold != nil {
		return false
	}
	if d := cs.NotBefore(); d != nil && d.After(now) {
		return false
	}
	b, ok := t.Block(cs.Block)
	return ok && b.Type == tunnel.BlockDelay
}

// finishMove moves the run's count for a recorded step whose delivery died
// before it did (nothing when the move is remembered, the run went on to
// another generation, or it ended).
func (p *Processor) finishMove(ctx context.Context, s Step, sub *Subscriber, rec *StepRecord) error {
	if rec == nil || rec.RunDelta == 0 {
		return nil
	}
	r, ok := sub.Runs[RunKey(s.Tunnel, s.Channel)]
	if !ok || r.Gen != s.Gen || r.Ended || slices.Contains(r.Moved, s.ID) {
		return nil
	}
	ended, err := p.Store.MoveRun(ctx, s.WS, s.Sub, RunMove{Tunnel: s.Tunnel, Channel: s.Channel, Gen: s.Gen, By: s.ID, Delta: rec.RunDelta})
	if err != nil {
		return fmt.Errorf("move the run's count: %w", err)
	}
	if ended && p.Stats != nil {
		p.Stats.Count(s.WS, s.Tunnel, map[string]int64{"ended": 1})
	}
	return nil
}

// resendUnclaimed makes sure a finished step's children were sent (the
// delivery that recorded the step may have died between its record and its
// enqueue). A child already claimed was sent: sending it again would only
// multiply copies down the tunnel when duplicates are frequent. The delivery
// that recorded the step may still be sending its children, or may have
// failed to: this copy cannot tell. It re-sends the children nobody claimed
// yet, delayed by ResendDelay, by when a healthy first delivery's children
// have long been claimed, so the late copies are no-ops.
func (p *Processor) resendUnclaimed(ctx context.Context, s Step, now time.Time, recorded []Outgoing) error {
	children, err := p.unclaimed(ctx, s, recorded)
	if err != nil {
		return err
	}
	later := now.Add(ResendDelay)
	for i := range children {
		if d := children[i].Step.NotBefore(); d == nil || d.Before(later) {
			children[i].Step.Wait = &later
		}
	}
	return p.emit(ctx, now, children)
}

// tunnel reads the step's tunnel (nil when it was deleted). When a cached copy
// lacks the step's block, the source is asked before calling the block removed.
func (p *Processor) tunnel(ctx context.Context, s Step) (*tunnel.Tunnel, error) {
	t, err := p.Tunnels.Tunnel(ctx, s.WS, s.Tunnel)
	if fr, ok := p.Tunnels.(interface {
		Fresh(ctx context.Context, ws, id string) (*tunnel.Tunnel, error)
	}); ok && (errors.Is(err, ErrNotFound) || (err == nil && !hasStep(t, s))) {
		t, err = fr.Fresh(ctx, s.WS, s.Tunnel)
	}
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return t, err
}

func hasBlock(t *tunnel.Tunnel, id string) bool {
	if id == "" {
		return true
	}
	_, ok := t.Block(id)
	return ok
}

func hasStep(t *tunnel.Tunnel, s Step) bool {
	b, ok := t.Block(s.Block)
	return ok && (b.Type != "action" || s.Action < len(b.Actions))
}

// unclaimed keeps the children that have no step record yet (steps of this
// subscriber only: a START's first step of another tunnel is too).
func (p *Processor) unclaimed(ctx context.Context, s Step, children []Outgoing) ([]Outgoing, error) {
	if len(children) == 0 {
		return nil, nil
	}
	steps := make([]Step, 0, len(children))
	for _, c := range children {
		cs := c.Step
		t, err := p.tunnel(ctx, cs)
		if err != nil {
			return nil, fmt.Errorf("read tunnel: %w", err)
		}
		cs.InChat = ChatRecord(t, cs) // where the child's record lives
		steps = append(steps, cs)
	}
	seen, err := p.Store.StepsRecorded(ctx, s.WS, s.Sub, steps)
	if err != nil {
		return nil, fmt.Errorf("look up children: %w", err)
	}
	out := children[:0:0]
	for _, c := range children {
		if !seen[c.Step.ID] {
			out = append(out, c)
		}
	}
	return out, nil
}

// claimFree answers whether a step may run without claiming it first: its
// effect, if any, is idempotent by itself, so two copies running at once do
// no harm, and the conditional creation of its record lets one of them go
// on. Such a step costs one write (its record) instead of two. It reads its
// record first (PeekStep) so a late duplicate does not apply the effect
// again over later changes. Everything that talks to the outside world
// (messages, email, CRM, HTTP), starts runs, opens waits or draws from
// shared state keeps its claim.
func claimFree(t *tunnel.Tunnel, s Step) bool {
	if t == nil {
		return true // recorded skipped: the tunnel was removed
	}
	b, ok := t.Block(s.Block)
	if !ok {
		return true // recorded skipped: the block was removed
	}
	switch b.Type {
	case tunnel.BlockDelay, tunnel.BlockCondition, tunnel.BlockSplit:
		return true
	case "action":
		if s.Action >= len(b.Actions) {
			return true
		}
		switch b.Actions[s.Action].Type {
		case tunnel.ActionAddTags, tunnel.ActionRemoveTags:
			return true // set additions and removals
		}
	}
	return false
}

func (p *Processor) leaseFor() time.Duration {
	if p.Lease > 0 {
		return p.Lease
	}
	return 30 * time.Second
}

// run decides what the step does and which steps follow.
func (p *Processor) run(ctx context.Context, s Step, t *tunnel.Tunnel, sub *Subscriber, claim Claim, attempt int) (Outcome, []Outgoing, error) {
	if t == nil {
		return Skipped("tunnel removed"), nil, nil
	}
	b, ok := t.Block(s.Block)
	if !ok || (b.Type == "action" && s.Action >= len(b.Actions)) {
		return p.endBranch(ctx, t, s, Skipped("block removed"))
	}
	if r, ok := sub.Runs[RunKey(s.Tunnel, s.Channel)]; ok && r.Gen > s.Gen {
		return Skipped(fmt.Sprintf("superseded by generation %d of this tunnel", r.Gen)), nil, nil
	}
	if _, stopped := Stopped(t, s, sub.Stops[s.Tunnel]); stopped {
		return p.endBranch(ctx, t, s, Skipped("stopped"))
	}
	if max := p.maxSpin(); s.Spin >= max {
		return p.endBranch(ctx, t, s, p.spinning(ctx, s, max))
	}

	ac := &ActionContext{
		Step: s, Tunnel: t, Block: b, Subscriber: sub, Now: claim.StartedAt, FirstAt: claim.FirstAt,
		Attempt: attempt, FinalAttempt: p.MaxAttempts > 0 && attempt >= p.MaxAttempts,
		Prepared: preparedFor(ctx, s.ID),
	}
	ac.render = func(ctx context.Context, text string, escape func(string) string) (string, error) {
		return p.render(ctx, s, sub, text, escape)
	}
	var out Outcome
	var err error
	switch b.Type {
	case tunnel.BlockMessage:
		switch {
		case s.Phase == PhaseReply:
			return p.reply(ctx, ac, claim)
		case s.Phase == PhaseTimeout:
			return p.replyTimeout(ctx, ac, claim)
		case b.WaitsForSubscriber() && s.Channel == ChannelChat:
			return p.ask(ctx, ac, claim)
		}
		out, err = p.message(ctx, ac, claim)
	case tunnel.BlockDelay:
		out, children := p.delay(ac, claim)
		return out, children, nil
	case tunnel.BlockCondition:
		out, children := p.condition(ac, claim)
		return out, children, nil
	case tunnel.BlockSplit:
		out, children := p.split(ac, claim)
		return out, children, nil
	case "action":
		ac.Action = b.Actions[s.Action]
		out, err = p.action(ctx, ac)
	default:
		out = Failed(fmt.Sprintf("unknown block type %q", b.Type))
	}
	if err != nil {
		return Outcome{}, nil, err
	}
	children, err := p.follow(ctx, t, s, b, out, claim.StartedAt)
	if err != nil {
		return Outcome{}, nil, err
	}
	return out, append(children, out.Spawn...), nil
}

func (p *Processor) maxSpin() int {
	if p.MaxStepsWithoutWait > 0 {
		return p.MaxStepsWithoutWait
	}
	return DefaultMaxStepsWithoutWait
}

// spinning is the outcome of a step reached after max steps without a wait:
// failed for good (a retry would spin again), naming the loop it went round
// as the tunnels stand now, so the marketer sees where to put a delay.
func (p *Processor) spinning(ctx context.Context, s Step, max int) Outcome {
	here := tunnel.Node{Tunnel: s.Tunnel, Block: s.Block}
	cache := map[string]*tunnel.Tunnel{}
	loop := tunnel.LoopThrough(here, func(id string) *tunnel.Tunnel {
		if t, ok := cache[id]; ok {
			return t
		}
		t, err := p.Tunnels.Tunnel(ctx, s.WS, id)
		if err != nil {
			t = nil // unknown or unreadable: the loop is not followed there
		}
		cache[id] = t
		return t
	})
	detail := map[string]any{"steps_without_wait": s.Spin, "limit": max}
	reason := fmt.Sprintf("%d steps ran without a wait (the limit is %d) and block %q of tunnel %q came round again; "+
		"the branch ends here: put a delay of at least %d seconds in the loop", s.Spin, max, s.Block, s.Tunnel, tunnel.MinWaitSeconds)
	if loop != nil {
		nodes := make([]string, len(loop))
		for i, n := range loop {
			nodes[i] = n.String()
		}
		detail["loop"] = nodes
		reason = fmt.Sprintf("%d steps ran without a wait (the limit is %d) round the loop %s; "+
			"the branch ends here: put a delay of at least %d seconds in the loop", s.Spin, max, tunnel.FormatLoop(loop), tunnel.MinWaitSeconds)
	}
	out := Failed(reason)
	out.Detail = detail
	return out
}

// endBranch ends a branch early. An action block that was holding siblings
// back still counts as finished at their join, so blocks the STOP (or the
// edit) did not cover are not stranded; if the STOP covers them too, they are
// dropped when they arrive.
func (p *Processor) endBranch(ctx context.Context, t *tunnel.Tunnel, s Step, out Outcome) (Outcome, []Outgoing, error) {
	children, err := p.release(ctx, t, s)
	return out, children, err
}

// release starts the held blocks if s completes its priority join.
func (p *Processor) release(ctx context.Context, t *tunnel.Tunnel, s Step) ([]Outgoing, error) {
	h := s.Hold
	if h == nil {
		return nil, nil
	}
	done := len(h.Actions) == 1
	if !done {
		var err error
		done, err = p.Store.JoinBlock(ctx, s.WS, s.Sub, h.Join, s.Block, len(h.Actions), s.ID)
		if err != nil {
			return nil, fmt.Errorf("priority join: %w", err)
		}
	}
	if !done {
		return nil, nil
	}
	return Release(t, s, h, s.At), nil
}

// follow makes the steps after a message or action step.
func (p *Processor) follow(ctx context.Context, t *tunnel.Tunnel, s Step, b *tunnel.Block, out Outcome, now time.Time) ([]Outgoing, error) {
	next := b.Next
	if s.Next != nil {
		next = s.Next // an earlier action of the block took its on_error path
	}
	if len(out.Continue) > 0 {
		next = out.Continue
	}
	if b.Type != "action" {
		return Advance(t, s, next, now, nil), nil
	}
	if s.Action+1 < len(b.Actions) {
		// The block runs its remaining actions either way; an on_error
		// path replaces where the block goes when it is done.
		n := NextAction(t, s)
		if len(out.Continue) > 0 {
			n.Step.Next = out.Continue
		}
		return []Outgoing{n}, nil
	}
	// The action block is complete. Its continuation keeps the block's origin
	// time, so a STOP issued while the block ran also covers what follows it.
	held, err := p.release(ctx, t, s)
	if err != nil {
		return nil, err
	}
	return append(Advance(t, s, next, s.At, nil), held...), nil
}

func (p *Processor) action(ctx context.Context, ac *ActionContext) (Outcome, error) {
	switch ac.Action.Type {
	case "start":
		return p.start(ctx, ac)
	case "stop":
		return p.stop(ctx, ac)
	}
	f := p.Actions[ac.Action.Type]
	if f == nil {
		return Failed(fmt.Sprintf("action %q is not implemented in this deployment", ac.Action.Type)), nil
	}
	return f(ctx, ac)
}

// start begins a chat run of another tunnel (or this one) at a block. It is a
// redirect: the subscriber is not recorded in that tunnel.
func (p *Processor) start(ctx context.Context, ac *ActionContext) (Outcome, error) {
	a, s := ac.Action, ac.Step
	target, err := p.Tunnels.Tunnel(ctx, s.WS, a.Tunnel)
	if fr, ok := p.Tunnels.(interface {
		Fresh(ctx context.Context, ws, id string) (*tunnel.Tunnel, error)
	}); ok && (errors.Is(err, ErrNotFound) || (err == nil && !hasBlock(target, a.Block))) {
		target, err = fr.Fresh(ctx, s.WS, a.Tunnel) // a cached copy may predate the block
	}
	if errors.Is(err, ErrNotFound) {
		return Skipped(fmt.Sprintf("tunnel %q no longer exists", a.Tunnel)), nil
	}
	if err != nil {
		return Outcome{}, err
	}
	block := a.Block
	if block == "" {
		block = target.Entry
	}
	if _, ok := target.Block(block); !ok {
		return Skipped(fmt.Sprintf("block %q no longer exists in tunnel %q", block, a.Tunnel)), nil
	}
	if a.Tunnel == s.Tunnel && s.Channel == ChannelChat {
		// A START into the tunnel being run is a jump: "the current run goes
		// on", so the started branch joins this run instead of superseding it.
		first := Step{
			V: MessageVersion, ID: DeriveID(s.ID, "start", a.Tunnel, block), WS: s.WS, Sub: s.Sub,
			Tunnel: s.Tunnel, Channel: s.Channel, Gen: s.Gen, Block: block, At: ac.Now, Spin: s.Spin + 1,
		}
		out := Done(map[string]any{"tunnel": a.Tunnel, "block": block, "channel": ChannelChat, "generation": s.Gen})
		out.Spawn = []Outgoing{{Kind: StepKind(target, first), Step: first}}
		return out, nil
	}
	gen, err := p.Store.StartRun(ctx, s.WS, s.Sub, RunStart{
		Tunnel: a.Tunnel, Channel: ChannelChat, Recorded: false, By: s.ID, At: ac.Now, Pending: 1,
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("start run: %w", err)
	}
	first := Step{
		V: MessageVersion, ID: DeriveID(s.ID, "start", a.Tunnel, block), WS: s.WS, Sub: s.Sub,
		Tunnel: a.Tunnel, Channel: ChannelChat, Gen: gen, Block: block, At: ac.Now, Spin: s.Spin + 1,
	}
	out := Done(map[string]any{"tunnel": a.Tunnel, "block": block, "channel": ChannelChat, "generation": gen})
	out.Spawn = []Outgoing{{Kind: StepKind(target, first), Step: first}}
	return out, nil
}

// stop cancels what is pending of a tunnel from a block on, once.
func (p *Processor) stop(ctx context.Context, ac *ActionContext) (Outcome, error) {
	a, s := ac.Action, ac.Step
	target := a.Tunnel
	if target == "" {
		target = s.Tunnel
	}
	m := StopMarker{
		At: p.now().Add(stopMargin), Block: a.Block, StepID: s.ID,
		ByTunnel: s.Tunnel, ByBlock: s.Block, ByGen: s.Gen, ByAction: s.Action, ByChan: s.Channel,
		Gens: map[string]int{},
	}
	for _, ch := range []string{ChannelChat, ChannelEmail} {
		if r, ok := ac.Subscriber.Runs[RunKey(target, ch)]; ok {
			m.Gens[ch] = r.Gen
		}
	}
	if err := p.Store.AddStop(ctx, s.WS, s.Sub, target, m); err != nil {
		return Outcome{}, fmt.Errorf("record stop: %w", err)
	}
	detail := map[string]any{"tunnel": target}
	if a.Block != "" {
		detail["block"] = a.Block
	}
	return Done(detail), nil
}

// message delivers a message block's content for the run's channel.
func (p *Processor) message(ctx context.Context, ac *ActionContext, claim Claim) (Outcome, error) {
	s, b, sub := ac.Step, ac.Block, ac.Subscriber
	if s.Channel == ChannelEmail {
		if b.Email == nil {
			return Skipped("the block has no email content"), nil
		}
		if p.EmailMessage == nil {
			return Failed("email runs are not implemented in this deployment"), nil
		}
		return p.EmailMessage(ctx, ac)
	}
	if b.Text == "" {
		return Skipped("the block has no chat text"), nil
	}
	text, err := ac.Render(ctx, b.Text)
	if err != nil {
		return Outcome{}, err
	}
	var id Identity
	if len(sub.Channels) > 0 {
		id = sub.Channels[0]
	}
	msg := ChatMessage{
		ID: "m" + s.ID, Direction: "outbound", Text: text, Tunnel: s.Tunnel, Block: s.Block,
		StepID: s.ID, CreatedAt: claim.FirstAt,
	}
	if sub.Unreachable[id.Channel] {
		err = ErrUnreachable
	}
	var detail map[string]any
	if err == nil {
		detail, err = p.Messenger.Deliver(ctx, s.WS, ChatDelivery{
			StepID: s.ID, SubscriberID: sub.ID, Channel: id.Channel, ExternalID: id.ExternalID,
			Tunnel: s.Tunnel, Block: s.Block, Text: text, Buttons: chatButtons(b),
		})
	}
	var out Outcome
	switch {
	case err == nil:
		msg.Delivery = "delivered"
		out = Done(detail)
	case errors.Is(err, ErrNoChannel):
		msg.Delivery = "no_channel"
		out = Skipped(err.Error())
	case errors.Is(err, ErrUnreachable):
		msg.Delivery = "unreachable"
		out = Skipped(fmt.Sprintf("channel %q: %s", id.Channel, ErrUnreachable.Error()))
	case errors.Is(err, ErrPermanent):
		msg.Delivery = "failed"
		out = Failed(err.Error())
		out.Detail = detail
	default:
		return Outcome{}, err
	}
	if out.Detail == nil {
		out.Detail = map[string]any{}
	}
	out.Detail["message_id"] = msg.ID
	out.Detail["text"] = text
	out.Chat = &msg
	return out, nil
}

func chatButtons(b *tunnel.Block) []ChatButton {
	if len(b.Buttons) == 0 {
		return nil
	}
	out := make([]ChatButton, len(b.Buttons))
	for i, bt := range b.Buttons {
		out[i] = ChatButton{ID: bt.ID, Text: bt.Text}
	}
	return out
}

// render fills placeholders for a subscriber; variables are read only when
// the text uses them.
func (p *Processor) render(ctx context.Context, s Step, sub *Subscriber, text string, escape func(string) string) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	d := SubscriberData(sub, s.Tunnel)
	if strings.Contains(text, "var.") && p.Vars != nil {
		vars, err := p.Vars.Variables(ctx, s.WS)
		if err != nil {
			return "", fmt.Errorf("read variables: %w", err)
		}
		d.Vars = vars
	}
	if escape != nil {
		return render.RenderEscaped(text, d, escape), nil
	}
	return render.Render(text, d), nil
}

// SubscriberData is the placeholder data of a subscriber (without variables).
func SubscriberData(sub *Subscriber, tunnelID string) render.Data {
	values := make(map[string]string, len(sub.Fields))
	for k, v := range sub.Fields {
		values[k] = fields.Format(v)
	}
	return render.Data{
		Subscriber: map[string]string{
			"first_name": sub.FirstName, "last_name": sub.LastName,
			"email": sub.Email, "phone": sub.Phone, "id": sub.ID,
		},
		Fields:   values,
		TunnelID: tunnelID,
	}
}

func stepType(t *tunnel.Tunnel, s Step) string {
	if t == nil {
		return "unknown"
	}
	b, ok := t.Block(s.Block)
	if !ok {
		return "unknown"
	}
	if b.Type == "action" && s.Action >= 0 && s.Action < len(b.Actions) {
		return b.Actions[s.Action].Type
	}
	return b.Type
}

// emit sends children to their queues, or to timers when due too far ahead.
func (p *Processor) emit(ctx context.Context, now time.Time, children []Outgoing) error {
	var queued []Outgoing
	for _, c := range children {
		if d := c.Step.NotBefore(); d != nil && d.Sub(now) > MaxQueueDelay {
			if err := p.Store.PutTimer(ctx, c); err != nil {
				return fmt.Errorf("store timer: %w", err)
			}
			continue
		}
		queued = append(queued, c)
	}
	if len(queued) == 0 {
		return nil
	}
	if err := p.Queue.Send(ctx, now, queued); err != nil {
		return fmt.Errorf("enqueue next steps: %w", err)
	}
	return nil
}

// ChatRecord reports whether step s keeps its record in the chat message it
// sends, so a chat message costs one item: a message block's first step or
// re-ask on a chat run. It depends on the block's type only, so every copy
// of a step agrees on where its record is.
func ChatRecord(t *tunnel.Tunnel, s Step) bool {
	if t == nil || s.Channel != ChannelChat || (s.Phase != "" && s.Phase != PhaseReask) {
		return false
	}
	b, ok := t.Block(s.Block)
	return ok && b.Type == tunnel.BlockMessage
}

// sendsChat reports whether step s sends a chat message: a message block's
// ask or re-ask on a chat run (a reply or a timeout sends nothing).
func sendsChat(t *tunnel.Tunnel, s Step) bool {
	if !ChatRecord(t, s) {
		return false
	}
	b, _ := t.Block(s.Block)
	return b.Text != ""
}
