package devstack_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// Issue 11: operators answer, and a pause holds the tunnels' messages.

func TestOperatorAnswersAndPause(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Operators")
	a.must(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/drip", json.RawMessage(`{"name": "Drip", "entry": "hi", "blocks": [
		{"id": "hi", "type": "message", "text": "Hi", "next": ["wait"]},
		{"id": "wait", "type": "delay", "seconds": 3, "next": ["more"]},
		{"id": "more", "type": "message", "text": "More"}]}`), http.StatusOK, nil)
	sub := a.subscribe("op-1", "drip", "8601", "Olga")
	a.waitForTexts(sub, "Hi")

	// Pause before the delay ends: "More" is held, not dropped.
	var paused struct {
		PausedUntil string `json:"paused_until"`
	}
	a.must(http.MethodPost, "/v1/subscribers/"+sub+"/pause", map[string]int{"minutes": 30}, http.StatusOK, &paused)
	if until, err := time.Parse(time.RFC3339, paused.PausedUntil); err != nil || time.Until(until) < 29*time.Minute {
		t.Fatalf("paused until %q", paused.PausedUntil)
	}
	a.problem(http.MethodPost, "/v1/subscribers/"+sub+"/pause", map[string]int{"minutes": 0}, http.StatusBadRequest, "validation_failed")

	// The operator answers meanwhile, through the same channel.
	var msg struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Operator  string `json:"operator"`
		Delivery  string `json:"delivery"`
	}
	a.must(http.MethodPost, "/v1/subscribers/"+sub+"/chat", map[string]string{"text": "Anna here, how can I help?", "operator": "anna"}, http.StatusCreated, &msg)
	if msg.Direction != "outbound" || msg.Operator != "anna" || msg.Delivery != "delivered" {
		t.Fatalf("operator message: %+v", msg)
	}
	p := a.problem(http.MethodPost, "/v1/subscribers/"+sub+"/chat", map[string]string{"text": " ", "operator": "boris"}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 2 {
		t.Fatalf("errors: %+v", p.Errors)
	}
	time.Sleep(6 * time.Second) // the delay is over: without the pause "More" would be out
	a.waitForTexts(sub, "Hi", "Anna here, how can I help?")
	var c struct {
		PausedUntil *string `json:"paused_until"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	if c.PausedUntil == nil {
		t.Fatal("the card does not show the pause")
	}

	// Resuming lets the held message go (it looks again within a minute).
	a.must(http.MethodDelete, "/v1/subscribers/"+sub+"/pause", nil, http.StatusNoContent, nil)
	eventually(t, 90*time.Second, "the held message after the resume", func() (bool, string) {
		got := gatewayTexts(sub)
		return len(got) == 3 && got[2] == "More", describe(a.journey(sub))
	})
	j := a.finished(sub, "drip")
	if s, _ := find(j, "drip", "more", -1); s.Status != "done" || s.Attempts != 1 {
		t.Fatalf("held step: %+v", s)
	}
}
