package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/tunnel"
)

// Issue 14: a run that never waits must end, and long funnels must run.

func startTunnel(target string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"name": "Loop", "entry": "go", "blocks": [
		{"id": "go", "type": "action", "actions": [{"type": "start", "tunnel": %q}]}]}`, target))
}

func TestStartLoopAcrossTunnels(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := newWorkspace(t, "Loops")
	a.must(http.MethodPut, "/v1/tunnels/loop-a", json.RawMessage(`{"name": "A", "entry": "go", "blocks": [
		{"id": "go", "type": "message", "text": "placeholder"}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/loop-b", startTunnel("loop-a"), http.StatusOK, nil)

	// Closing the loop is refused when it is saved, naming the loop.
	p := a.problem(http.MethodPut, "/v1/tunnels/loop-a", startTunnel("loop-b"), http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/blocks/0/actions/0/tunnel" ||
		!strings.Contains(p.Errors[0].Detail, `"loop-a"/"go" -> "loop-b"/"go" -> "loop-a"/"go"`) {
		t.Fatalf("errors = %+v", p.Errors)
	}
	var stored struct {
		Blocks []struct {
			Type string `json:"type"`
		} `json:"blocks"`
	}
	a.must(http.MethodGet, "/v1/tunnels/loop-a", nil, http.StatusOK, &stored)
	if len(stored.Blocks) != 1 || stored.Blocks[0].Type != "message" {
		t.Fatalf("the refused save changed the stored tunnel: %+v", stored)
	}

	// A loop stored before this check existed (written straight to the
	// table) is ended by the engine's guard.
	var def tunnel.Tunnel
	if err := json.Unmarshal(startTunnel("loop-b"), &def); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Store.PutTunnel(context.Background(), a.ws, "loop-a", &def); err != nil {
		t.Fatal(err)
	}
	sub := a.subscribe("loop-1", "loop-a", "7001", "Lou")
	var j []journeyStep
	eventually(t, 90*time.Second, "the loop to end with a failed step", func() (bool, string) {
		j = a.journey(sub)
		for _, s := range j {
			if s.Status == "failed" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d steps so far", len(j))
	})
	time.Sleep(3 * time.Second) // anything still moving would show now
	j = a.journey(sub)
	failed := 0
	for _, s := range j {
		switch s.Status {
		case "failed":
			failed++
			// The 101st step (spin 100) is at loop-a again.
			for _, want := range []string{"100 steps ran without a wait", `"loop-a"/"go" -> "loop-b"/"go" -> "loop-a"/"go"`} {
				if !strings.Contains(s.Reason, want) {
					t.Errorf("reason %q lacks %q", s.Reason, want)
				}
			}
		case "done":
		default:
			t.Errorf("step %s/%s: %s %s", s.Tunnel, s.Block, s.Status, s.Reason)
		}
	}
	if failed != 1 || len(j) != 101 {
		t.Fatalf("journey: %d steps, %d failed; want 100 done and 1 failed\n%s", len(j), failed, describe(j))
	}
	for _, r := range a.card(sub).Runs {
		if r.Status == "active" {
			t.Errorf("run %s/%s is still active after the loop ended", r.Tunnel, r.Channel)
		}
	}
}

// A funnel of 60 steps without a delay (messages and action blocks
// alternating) runs to its end: Lambda's loop detection would have cut it
// after ~16, the engine's guard allows 100.
func TestLongFunnelWithoutDelay(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := newWorkspace(t, "Long funnel")
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL(), "secret": connectorSecret}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tags/seen", map[string]string{"name": "Seen"}, http.StatusOK, nil)
	var blocks []map[string]any
	for i := 0; i < 60; i++ {
		b := map[string]any{"id": fmt.Sprintf("b%d", i), "type": "message", "text": fmt.Sprintf("step %d", i)}
		if i%2 == 1 {
			b = map[string]any{"id": fmt.Sprintf("b%d", i), "type": "action",
				"actions": []map[string]any{{"type": "add_tags", "tags": []string{"seen"}}}}
		}
		if i < 59 {
			b["next"] = []string{fmt.Sprintf("b%d", i+1)}
		}
		blocks = append(blocks, b)
	}
	a.must(http.MethodPut, "/v1/tunnels/long", map[string]any{"name": "Long", "entry": "b0", "blocks": blocks}, http.StatusOK, nil)
	sub := a.subscribe("long-1", "long", "7002", "Len")
	j := a.finished(sub, "long")
	if len(j) != 60 {
		t.Fatalf("journey has %d steps, want 60\n%s", len(j), describe(j))
	}
	for _, s := range j {
		if s.Status != "done" {
			t.Fatalf("step %s: %s %s", s.Block, s.Status, s.Reason)
		}
	}
	if got := len(gateway.forSubscriber(sub)); got != 30 {
		t.Errorf("the gateway got %d messages, want 30", got)
	}
}

// A loop through a 60 s delay is a drip: it keeps going, once a minute, until
// a STOP ends it.
func TestDripLoopKeepsGoingUntilStop(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := newWorkspace(t, "Drip")
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL(), "secret": connectorSecret}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/drip-a", json.RawMessage(`{"name": "A", "entry": "tick", "blocks": [
		{"id": "tick", "type": "message", "text": "tick"}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/drip-b", json.RawMessage(`{"name": "B", "entry": "wait", "blocks": [
		{"id": "wait", "type": "delay", "seconds": 60, "next": ["back"]},
		{"id": "back", "type": "action", "actions": [{"type": "start", "tunnel": "drip-a"}]}]}`), http.StatusOK, nil)
	// The loop passes a minute's delay: it saves.
	a.must(http.MethodPut, "/v1/tunnels/drip-a", json.RawMessage(`{"name": "A", "entry": "tick", "blocks": [
		{"id": "tick", "type": "message", "text": "tick", "next": ["go"]},
		{"id": "go", "type": "action", "actions": [{"type": "start", "tunnel": "drip-b"}]}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/halt", json.RawMessage(`{"name": "Halt", "entry": "stop", "blocks": [
		{"id": "stop", "type": "action", "actions": [{"type": "stop", "tunnel": "drip-a"}, {"type": "stop", "tunnel": "drip-b"}]}]}`), http.StatusOK, nil)

	sub := a.subscribe("drip-1", "drip-a", "7003", "Dee")
	ticks := func() int { return len(gateway.forSubscriber(sub)) }
	eventually(t, 200*time.Second, "a second tick a minute after the first", func() (bool, string) {
		return ticks() >= 2, fmt.Sprintf("%d ticks", ticks())
	})
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "drip-stop", "type": "start", "tunnel": "halt",
		"subscriber": map[string]string{"channel": "telegram", "external_id": "7003"}}, http.StatusAccepted, nil)
	before := ticks()
	// The step waiting out the delay is dropped when it comes due.
	eventually(t, 100*time.Second, "the pending delay to be dropped by the STOP", func() (bool, string) {
		for _, s := range a.journey(sub) {
			if s.Tunnel == "drip-b" && s.Block == "back" && s.Status == "skipped" && s.Reason == "stopped" {
				return true, ""
			}
		}
		return false, describe(a.journey(sub))
	})
	time.Sleep(3 * time.Second) // a tick that went out anyway would show now
	if got := ticks(); got != before {
		t.Errorf("ticks went on after the STOP: %d then %d", before, got)
	}
	for _, s := range a.journey(sub) {
		if s.Status == "failed" {
			t.Errorf("step %s/%s failed: %s", s.Tunnel, s.Block, s.Reason)
		}
	}
}
