package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func windowTunnel(w *tunnel.Window, seconds int) map[string]*tunnel.Tunnel {
	return map[string]*tunnel.Tunnel{"drip": {Name: "Drip", Entry: "wait", Blocks: []tunnel.Block{
		{ID: "wait", Type: "delay", Seconds: seconds, Window: w, Next: []string{"hello"}},
		{ID: "hello", Type: "message", Text: "Good morning"},
	}}}
}

// flush moves every stored timer to the queue (as the scheduler does when
// their time comes; the queue hands them out at their due time).
func (h *harness) flush() int {
	h.store.mu.Lock()
	var out []Outgoing
	for k, ti := range h.store.timers {
		out = append(out, ti.o)
		delete(h.store.timers, k)
	}
	h.store.mu.Unlock()
	if len(out) > 0 {
		if err := h.queue.Send(context.Background(), h.clock.Now(), out); err != nil {
			h.t.Fatal(err)
		}
	}
	return len(out)
}

// run processes queued steps and timers until none is left.
func (h *harness) runAll() []Outgoing {
	var all []Outgoing
	for {
		all = append(all, h.drain()...)
		if h.flush() == 0 {
			return all
		}
	}
}

// sendTime runs the tunnel and answers when the message went out.
func (h *harness) sendTime() time.Time {
	h.t.Helper()
	for _, o := range h.runAll() {
		if o.Step.Block == "hello" {
			r, ok := h.store.stepState(o.Step.ID)
			if !ok {
				h.t.Fatal("the message step has no record")
			}
			return r.startedAt
		}
	}
	h.t.Fatal("the message never went out")
	return time.Time{}
}

func TestDelayWindowWaitsForOpeningHours(t *testing.T) {
	h := newHarness(t, windowTunnel(&tunnel.Window{Timezone: "Europe/Moscow", Hours: []string{"09:00", "21:00"}}, 60))
	h.clock.Set(time.Date(2026, 11, 24, 23, 30, 0, 0, time.UTC)) // 02:30 in Moscow
	h.startRun("drip", "wait")
	sent := h.sendTime()
	// The harness delivers each step a second after it is due.
	if open := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC); sent.Before(open) || sent.After(open.Add(5*time.Second)) { // 09:00 in Moscow
		t.Fatalf("sent at %s, want just after %s", sent, open)
	}
	j := h.store.journeyCopy()
	if j[0].Detail["timezone"] != "Europe/Moscow" || j[1].Detail["phase"] != PhaseWake {
		t.Fatalf("journey: %+v / %+v", j[0].Detail, j[1].Detail)
	}
	if r := h.store.run("drip", ChannelChat); r.Pending != 0 {
		t.Fatalf("run pending = %d", r.Pending)
	}
}

func TestDelayWindowInsideGoesOnAtOnce(t *testing.T) {
	h := newHarness(t, windowTunnel(&tunnel.Window{Timezone: "UTC", Weekdays: []string{"tue"}}, 0))
	h.clock.Set(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)) // a Tuesday
	h.startRun("drip", "wait")
	h.drain()
	j := h.store.journeyCopy()
	if len(j) != 2 || j[0].Detail["window"] != "open" {
		t.Fatalf("journey: %+v", entries(j))
	}
}

func TestDelayWindowClosedWhileWaiting(t *testing.T) {
	// The wake-up was due before 21:00 but is delivered at 21:01 (the queue was
	// late, or the window was narrowed): it waits for the next opening.
	h := newHarness(t, windowTunnel(&tunnel.Window{Timezone: "UTC", Hours: []string{"09:00", "21:00"}}, 3540))
	h.clock.Set(time.Date(2026, 11, 24, 19, 59, 0, 0, time.UTC))
	h.startRun("drip", "wait")
	h.processNext() // the delay: wake-up due at 20:59
	h.flush()
	wake := h.queue.take()
	if len(wake) != 1 || wake[0].Step.Phase != PhaseWake || wake[0].Step.Due.Hour() != 20 {
		t.Fatalf("wake-up: %+v", wake)
	}
	h.clock.Set(time.Date(2026, 11, 24, 21, 1, 0, 0, time.UTC))
	if err := h.process(wake[0], 1); err != nil {
		t.Fatal(err)
	}
	h.flush()
	again := h.queue.take()
	if len(again) != 1 || again[0].Step.Phase != PhaseWake || !again[0].Step.Due.Equal(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("after the window closed: %+v", again)
	}
	if r := h.last(); r.Detail["window"] != "closed" {
		t.Fatalf("journey: %+v", r.Detail)
	}
}

func TestDelayWindowInTheSubscribersZone(t *testing.T) {
	h := newHarness(t, windowTunnel(&tunnel.Window{Timezone: "subscriber", Hours: []string{"09:00", "10:00"}}, 60))
	sub := h.store.sub(testWS, testSub)
	sub.Timezone = "America/New_York"
	h.store.putSubscriber(sub)
	h.clock.Set(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)) // 07:00 in New York
	h.startRun("drip", "wait")
	if sent, open := h.sendTime(), time.Date(2026, 11, 24, 14, 0, 0, 0, time.UTC); sent.Before(open) || sent.After(open.Add(5*time.Second)) {
		t.Fatalf("sent at %s, want 09:00 in New York", sent)
	}
}

func TestDelayUntilADateField(t *testing.T) {
	defs := map[string]*tunnel.Tunnel{"webinar": {Name: "W", Entry: "wait", Blocks: []tunnel.Block{
		{ID: "wait", Type: "delay", Until: &tunnel.Until{Field: "webinar_at", OffsetSeconds: -3600}, Next: []string{"hello"}},
		{ID: "hello", Type: "message", Text: "Starts in an hour"},
	}}}
	cases := []struct {
		name, value string
		want        time.Time
		reason      string
	}{
		{"an hour before", "2026-11-24T18:00:00.000Z", time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC), ""},
		{"passed: at once", "2026-11-24T09:00:00.000Z", t0, ""},
		{"not set", "", time.Time{}, `field "webinar_at" is not set`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, defs)
			if c.value != "" {
				sub := h.store.sub(testWS, testSub)
				sub.Fields["webinar_at"] = c.value
				h.store.putSubscriber(sub)
			}
			h.startRun("webinar", "wait")
			h.processNext()
			r := h.store.journeyCopy()[0]
			if c.reason != "" {
				if r.Status != StatusSkipped || !strings.Contains(r.Reason, c.reason) {
					t.Fatalf("delay: %+v", r)
				}
				if q := h.queue.take(); len(q) != 0 {
					t.Fatalf("the branch went on: %+v", q)
				}
				return
			}
			h.flush()
			q := h.queue.take()
			if len(q) != 1 || q[0].Step.Due == nil || !q[0].Step.Due.Equal(c.want) && !(c.want.Equal(t0) && !q[0].Step.Due.After(h.clock.Now())) {
				t.Fatalf("next step: %+v, want due %s", q, c.want)
			}
		})
	}
}
