package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// fakeFields is the catalog's field types and the card's values.
type fakeFields struct {
	mu     sync.Mutex
	types  map[string]string
	values map[string]any
}

func (f *fakeFields) FieldType(ctx context.Context, ws, id string) (string, error) {
	if t, ok := f.types[id]; ok {
		return t, nil
	}
	return "", ErrNotFound
}

func (f *fakeFields) SetFields(ctx context.Context, ws, sub string, values map[string]any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range values {
		f.values[k] = v
	}
	return nil
}

// askTunnel asks for an email with a "later" button, waiting 10 minutes.
func askTunnel() map[string]*tunnel.Tunnel {
	return map[string]*tunnel.Tunnel{"ask": {Name: "Ask", Entry: "q", Blocks: []tunnel.Block{
		{ID: "q", Type: "message", Text: "Your email?",
			Buttons: []tunnel.Button{{ID: "later", Text: "Later", Next: []string{"later"}}},
			Reply: &tunnel.Reply{Field: "email_answer", Validate: "email", TimeoutSeconds: 600,
				OnTimeout: []string{"gone"}, Next: []string{"thanks"}}},
		{ID: "thanks", Type: "message", Text: "Thanks"},
		{ID: "later", Type: "message", Text: "OK, later"},
		{ID: "gone", Type: "message", Text: "Still there?"},
	}}}
}

func newAskHarness(t *testing.T) (*harness, *fakeFields) {
	h := newHarness(t, askTunnel())
	f := &fakeFields{types: map[string]string{"email_answer": "string"}, values: map[string]any{}}
	for _, p := range h.procs {
		p.Fields = f
	}
	return h, f
}

// ask runs the asking step and answers the open wait and the queued timeout.
func (h *harness) ask() (Wait, Outgoing) {
	h.t.Helper()
	h.startRun("ask", "q")
	if _, ok := h.processNext(); !ok {
		h.t.Fatal("nothing queued")
	}
	w, ok := h.store.sub(testWS, testSub).Waits[WaitKey("ask", "q")]
	if !ok || !w.Open() {
		h.t.Fatalf("no open wait after the ask: %+v", w)
	}
	q := h.queue.take()
	if len(q) != 1 || q[0].Step.Phase != PhaseTimeout || q[0].Step.Due == nil || !q[0].Step.Due.Equal(w.AskedAt.Add(10*time.Minute)) {
		h.t.Fatalf("queued after the ask: %+v", q)
	}
	if w.Until == nil || !w.Until.Equal(*q[0].Step.Due) {
		h.t.Fatalf("wait until %v, timeout due %v", w.Until, q[0].Step.Due)
	}
	return w, q[0]
}

func (h *harness) answer(event string, w Wait, in Input) Outgoing {
	h.t.Helper()
	o := Outgoing{Kind: KindFlow, Step: ReplyStep(testWS, testSub, event, w, in)}
	if err := h.process(o, 1); err != nil {
		h.t.Fatal(err)
	}
	return o
}

func (h *harness) last() StepRecord {
	j := h.store.journeyCopy()
	return j[len(j)-1]
}

func TestButtonPressResumesOnce(t *testing.T) {
	h, _ := newAskHarness(t)
	w, timeout := h.ask()
	if d := h.msgr.deliveries[0]; len(d.Buttons) != 1 || d.Buttons[0] != (ChatButton{ID: "later", Text: "Later"}) {
		t.Fatalf("delivery buttons: %+v", d.Buttons)
	}
	h.answer("e1", w, Input{Button: "later"})
	if r := h.last(); r.Status != StatusDone || r.Detail["button"] != "later" || r.Detail["phase"] != PhaseReply {
		t.Fatalf("button step: %+v", r)
	}
	// A second press, and the same text typed, resume nothing more.
	h.answer("e2", w, Input{Button: "later"})
	if r := h.last(); r.Status != StatusSkipped || !strings.Contains(r.Reason, "already pressed") {
		t.Fatalf("second press: %+v", r)
	}
	h.answer("e3", w, Input{Text: "my@mail.com"})
	if r := h.last(); r.Status != StatusSkipped {
		t.Fatalf("reply after the press: %+v", r)
	}
	// The timeout fires and finds the wait answered.
	if err := h.process(timeout, 1); err != nil {
		t.Fatal(err)
	}
	if r := h.last(); r.Status != StatusSkipped || r.Reason != "a button of this message was already pressed" {
		t.Fatalf("timeout after the press: %+v", r)
	}
	h.drain()
	if got := strings.Join(h.msgr.texts(), "|"); got != "ask/q: Your email?|ask/later: OK, later" {
		t.Fatalf("messages: %s", got)
	}
	if r := h.store.run("ask", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending = %d, want 0", r.Pending)
	}
}

func TestValidReplyIsStoredAndTheTimeoutIsSkipped(t *testing.T) {
	h, f := newAskHarness(t)
	w, timeout := h.ask()
	o := h.answer("e1", w, Input{Text: "ann@example.org"})
	if r := h.last(); r.Status != StatusDone || r.Detail["value"] != "ann@example.org" || r.Detail["valid"] != true {
		t.Fatalf("reply: %+v", r)
	}
	if f.values["email_answer"] != "ann@example.org" {
		t.Fatalf("field: %+v", f.values)
	}
	// The same reply delivered again is a duplicate step: nothing runs twice.
	before := len(h.store.journeyCopy())
	if err := h.process(o, 2); err != nil {
		t.Fatal(err)
	}
	if len(h.store.journeyCopy()) != before {
		t.Fatal("a duplicate reply was recorded again")
	}
	if err := h.process(timeout, 1); err != nil {
		t.Fatal(err)
	}
	if r := h.last(); r.Status != StatusSkipped || r.Reason != "this message was already answered" {
		t.Fatalf("timeout: %+v", r)
	}
	if r := h.store.run("ask", ChannelChat); r.Pending != 1 {
		t.Fatalf("run pending = %d, want 1 (the thanks message)", r.Pending)
	}
	h.drain()
	if r := h.store.run("ask", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending = %d after the run ended, want 0", r.Pending)
	}
}

// The wait keeps the run active while nobody answered: with no timeout, the
// asking step's own count stays until a reply takes it.
func TestWaitWithoutTimeoutKeepsTheRunActive(t *testing.T) {
	defs := askTunnel()
	defs["ask"].Blocks[0].Reply.TimeoutSeconds = 0
	defs["ask"].Blocks[0].Reply.OnTimeout = nil
	h := newHarness(t, defs)
	h.startRun("ask", "q")
	h.drain()
	if r := h.store.run("ask", ChannelChat); r.Pending != 1 {
		t.Fatalf("run pending while waiting = %d, want 1", r.Pending)
	}
	w := h.store.sub(testWS, testSub).Waits[WaitKey("ask", "q")]
	h.answer("e1", w, Input{Button: "later"})
	h.drain()
	if r := h.store.run("ask", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending after the answer = %d, want 0", r.Pending)
	}
}

func TestInvalidRepliesReaskThenTakeOnTimeout(t *testing.T) {
	h, f := newAskHarness(t)
	w, timeout := h.ask()
	for i, text := range []string{"no", "still no", "nope"} {
		h.answer("bad"+string(rune('0'+i)), w, Input{Text: text})
		r := h.last()
		if r.Status != StatusDone || r.Detail["valid"] != false || r.Detail["invalid_replies"] != i+1 {
			t.Fatalf("invalid reply %d: %+v", i+1, r)
		}
		if i < 2 && r.Detail["took"] != "reask" || i == 2 && r.Detail["took"] != "on_timeout" {
			t.Fatalf("invalid reply %d took %v", i+1, r.Detail["took"])
		}
		h.drain()
	}
	// Asked once, re-asked twice, then on_timeout.
	want := "ask/q: Your email?|ask/q: Your email?|ask/q: Your email?|ask/gone: Still there?"
	if got := strings.Join(h.msgr.texts(), "|"); got != want {
		t.Fatalf("messages:\n%s\nwant\n%s", got, want)
	}
	if len(f.values) != 0 {
		t.Fatalf("an invalid reply was stored: %+v", f.values)
	}
	if err := h.process(timeout, 1); err != nil {
		t.Fatal(err)
	}
	if r := h.last(); r.Status != StatusSkipped {
		t.Fatalf("the timeout ran after on_timeout was taken: %+v", r)
	}
	if r := h.store.run("ask", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending = %d, want 0", r.Pending)
	}
}

func TestTimeoutFiresOnceAndLateRepliesResumeNothing(t *testing.T) {
	h, f := newAskHarness(t)
	w, timeout := h.ask()
	h.clock.Set(*timeout.Step.Due)
	if err := h.process(timeout, 1); err != nil {
		t.Fatal(err)
	}
	if r := h.last(); r.Status != StatusDone || r.Detail["timeout"] != true {
		t.Fatalf("timeout: %+v", r)
	}
	if err := h.process(timeout, 2); err != nil { // a duplicate of the timeout
		t.Fatal(err)
	}
	h.answer("late", w, Input{Text: "ann@example.org"})
	if r := h.last(); r.Status != StatusSkipped || r.Reason != "the wait had already timed out" {
		t.Fatalf("late reply: %+v", r)
	}
	if len(f.values) != 0 {
		t.Fatal("a late reply was stored")
	}
	h.drain()
	if r := h.store.run("ask", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending = %d, want 0", r.Pending)
	}
}

func TestReplyToAnAskReplacedByALaterAsk(t *testing.T) {
	h, _ := newAskHarness(t)
	w, _ := h.ask()
	// The block asks again (a loop, or START at it): the old wait is replaced.
	later := w
	later.ID, later.Replaced = "another-ask", true
	if err := h.store.OpenWait(context.Background(), testWS, testSub, later, w.ID); err != nil {
		t.Fatal(err)
	}
	h.answer("e1", w, Input{Text: "ann@example.org"})
	if r := h.last(); r.Status != StatusSkipped || !strings.Contains(r.Reason, "no longer waits") {
		t.Fatalf("reply to the replaced ask: %+v", r)
	}
}

func TestStopCoversAWait(t *testing.T) {
	h, _ := newAskHarness(t)
	w, _ := h.ask()
	h.clock.Advance(time.Minute)
	if err := h.store.AddStop(context.Background(), testWS, testSub, "ask", StopMarker{At: h.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	h.answer("e1", w, Input{Text: "ann@example.org"})
	if r := h.last(); r.Status != StatusSkipped || r.Reason != "stopped" {
		t.Fatalf("reply after STOP: %+v", r)
	}
}

func TestUndeliveredQuestionWaitsForNothing(t *testing.T) {
	h, _ := newAskHarness(t)
	h.msgr.err = errors.Join(ErrPermanent, errors.New("connector answered 400"))
	h.startRun("ask", "q")
	h.processNext()
	w := h.store.sub(testWS, testSub).Waits[WaitKey("ask", "q")]
	if w.Open() || w.How != "undelivered" {
		t.Fatalf("wait after a failed delivery: %+v", w)
	}
	if q := h.queue.take(); len(q) != 0 {
		t.Fatalf("a timeout was queued for a question nobody saw: %+v", q)
	}
}

func TestCrashBetweenReplyRecordAndEnqueue(t *testing.T) {
	h, _ := newAskHarness(t)
	w, _ := h.ask()
	o := Outgoing{Kind: KindFlow, Step: ReplyStep(testWS, testSub, "e1", w, Input{Text: "ann@example.org"})}
	h.queue.err = errors.New("sqs unavailable") // the reply is recorded, its child cannot be sent
	if err := h.process(o, 1); err == nil {
		t.Fatal("the enqueue failure was not reported")
	}
	h.queue.err = nil
	if err := h.process(o, 2); err != nil { // the queue delivers the reply again
		t.Fatal(err)
	}
	q := h.queue.take()
	if len(q) != 1 || q[0].Step.Block != "thanks" {
		t.Fatalf("re-sent after the crash: %+v", q)
	}
}
