package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// Issue 13: condition, split, buttons and replies, delay windows and until,
// end to end through the API, the queues and the bot gateway.

// gatewayTexts answers the texts the gateway received for a subscriber.
func gatewayTexts(sub string) []string {
	var out []string
	for _, m := range gateway.forSubscriber(sub) {
		out = append(out, m.Msg.Text)
	}
	return out
}

func (a *api) waitForTexts(sub string, want ...string) {
	a.t.Helper()
	eventually(a.t, 30*time.Second, fmt.Sprintf("the gateway to receive %q", want), func() (bool, string) {
		got := gatewayTexts(sub)
		return strings.Join(got, "|") == strings.Join(want, "|"), fmt.Sprintf("%q\n%s", got, describe(a.journey(sub)))
	})
}

// event posts an inbound event for the subscriber with the external id.
func (a *api) event(body map[string]any, externalID string) map[string]any {
	a.t.Helper()
	body["subscriber"] = map[string]string{"channel": "telegram", "external_id": externalID}
	var out map[string]any
	a.must(http.MethodPost, "/v1/events", body, http.StatusAccepted, &out)
	return out
}

func logicWorkspace(t *testing.T, name string) *api {
	a := newWorkspace(t, name)
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL(), "secret": connectorSecret}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tags/vip", map[string]string{"name": "VIP"}, http.StatusOK, nil)
	for id, typ := range map[string]string{"email_answer": "string", "age": "number", "webinar_at": "date"} {
		a.must(http.MethodPut, "/v1/fields/"+id, map[string]string{"name": id, "type": typ}, http.StatusOK, nil)
	}
	return a
}

func TestConditionAndSplit(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Condition and split")
	// Saving reports every problem of the rules at once.
	p := a.problem(http.MethodPut, "/v1/tunnels/logic", json.RawMessage(`{"name": "L", "entry": "check", "blocks": [
		{"id": "check", "type": "condition", "branches": [
			{"when": {"has_tag": "gold"}, "next": ["x"]},
			{"when": {"field": "age", "op": "contains", "value": "1"}, "next": ["x"]}], "else": ["x"]},
		{"id": "x", "type": "message", "text": "x"}]}`), http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 2 || p.Errors[0].Pointer != "/blocks/0/branches/0/when/has_tag" || p.Errors[1].Pointer != "/blocks/0/branches/1/when/op" {
		t.Fatalf("errors = %+v", p.Errors)
	}

	a.must(http.MethodPut, "/v1/tunnels/logic", json.RawMessage(`{"name": "Logic", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "set_field", "field": "age", "value": "{{subscriber.first_name}}"}], "next": ["check"]},
		{"id": "check", "type": "condition", "branches": [
			{"name": "vip", "when": {"has_tag": "vip"}, "next": ["vip"]},
			{"name": "adult", "when": {"all": [{"field": "age", "op": "gt", "value": 17}, {"subscriber": "phone", "op": "is_set"}]}, "next": ["ab"]}],
		 "else": ["young"]},
		{"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 1, "next": ["a"]}, {"name": "B", "weight": 1, "next": ["b"]}]},
		{"id": "vip", "type": "message", "text": "vip"},
		{"id": "young", "type": "message", "text": "young"},
		{"id": "a", "type": "message", "text": "A"},
		{"id": "b", "type": "message", "text": "B"}]}`), http.StatusOK, nil)

	// first_name holds the age the set_field action writes.
	young := a.subscribe("young-1", "logic", "8101", "15")
	adult := a.subscribe("adult-1", "logic", "8102", "40")
	jy := a.finished(young, "logic")
	if c, ok := find(jy, "logic", "check", -1); !ok || c.Detail["branch"] != "else" {
		t.Fatalf("young: %s", describe(jy))
	}
	ja := a.finished(adult, "logic")
	c, _ := find(ja, "logic", "check", -1)
	if c.Type != "condition" || c.Detail["branch"] != float64(1) || c.Detail["name"] != "adult" {
		t.Fatalf("adult condition entry: %+v", c)
	}
	why := fmt.Sprint(c.Detail["why"])
	for _, want := range []string{`has_tag "vip": no`, `field "age" ("40") gt 17: yes`, `subscriber phone ("+15558102") is_set: yes`} {
		if !strings.Contains(why, want) {
			t.Errorf("why %q lacks %q", why, want)
		}
	}
	s, _ := find(ja, "logic", "ab", -1)
	branch := s.Detail["name"]
	if s.Type != "split" || (branch != "A" && branch != "B") {
		t.Fatalf("split entry: %+v", s)
	}
	a.waitForTexts(young, "young")
	a.waitForTexts(adult, branch.(string))

	// Subscribing again is a new run, and the split keeps its branch.
	a.subscribe("adult-2", "logic", "8102", "40")
	eventually(t, 30*time.Second, "the second run's split", func() (bool, string) {
		n := 0
		for _, st := range a.journey(adult) {
			if st.Block == "ab" {
				n++
				if st.Detail["name"] != branch {
					t.Fatalf("the second run took branch %v, the first %v", st.Detail["name"], branch)
				}
			}
		}
		return n == 2, ""
	})
}

const askTunnel = `{"name": "Ask", "entry": "q", "blocks": [
	{"id": "q", "type": "message", "text": "Your email?",
	 "buttons": [{"id": "later", "text": "Later", "next": ["later"]}],
	 "reply": {"field": "email_answer", "validate": "email", "timeout_seconds": %d, "on_timeout": ["gone"], "next": ["thanks"]}},
	{"id": "thanks", "type": "message", "text": "Thanks, {{field.email_answer}}"},
	{"id": "later", "type": "message", "text": "OK, later"},
	{"id": "gone", "type": "message", "text": "Still there?"}]}`

func TestRepliesAndButtons(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Replies")
	a.must(http.MethodPut, "/v1/tunnels/ask", json.RawMessage(fmt.Sprintf(askTunnel, 3600)), http.StatusOK, nil)

	// A reply: an invalid one re-asks, a valid one is stored and goes on.
	sub := a.subscribe("r-1", "ask", "8201", "Ann")
	a.waitForTexts(sub, "Your email?")
	if b := gateway.forSubscriber(sub)[0].Msg.Buttons; len(b) != 1 || b[0].ID != "later" || b[0].Text != "Later" {
		t.Fatalf("buttons at the gateway: %+v", b)
	}
	var c struct {
		Waits []struct {
			Tunnel    string  `json:"tunnel"`
			Block     string  `json:"block"`
			TimeoutAt *string `json:"timeout_at"`
		} `json:"waits"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	if len(c.Waits) != 1 || c.Waits[0].Block != "q" || c.Waits[0].TimeoutAt == nil {
		t.Fatalf("card waits: %+v", c.Waits)
	}
	ans := a.event(map[string]any{"event_id": "r-1-bad", "type": "message", "text": "not an email"}, "8201")
	if run, _ := ans["run"].(map[string]any); run == nil || run["tunnel"] != "ask" {
		t.Fatalf("the reply resumed no run: %v", ans)
	}
	a.waitForTexts(sub, "Your email?", "Your email?")
	a.event(map[string]any{"event_id": "r-1-good", "type": "message", "text": "ann@example.org"}, "8201")
	a.waitForTexts(sub, "Your email?", "Your email?", "Thanks, ann@example.org")
	// The same event again, and a second answer, resume nothing more.
	a.event(map[string]any{"event_id": "r-1-good", "type": "message", "text": "ann@example.org"}, "8201")
	ans = a.event(map[string]any{"event_id": "r-1-again", "type": "message", "text": "bob@example.org"}, "8201")
	if ans["run"] != nil {
		t.Fatalf("an answer to a finished wait resumed a run: %v", ans)
	}
	j := a.finished(sub, "ask")
	time.Sleep(2 * time.Second)
	if got := gatewayTexts(sub); len(got) != 3 {
		t.Fatalf("gateway: %q", got)
	}
	var fields struct {
		Fields map[string]any `json:"fields"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &fields)
	if fields.Fields["email_answer"] != "ann@example.org" {
		t.Fatalf("fields: %v", fields.Fields)
	}
	replies := 0
	for _, s := range j {
		if s.Detail["phase"] == "reply" {
			replies++
		}
	}
	if replies != 2 {
		t.Fatalf("journey has %d reply steps, want 2:%s", replies, describe(j))
	}

	// A button press on another subscriber.
	sub2 := a.subscribe("r-2", "ask", "8202", "Bob")
	a.waitForTexts(sub2, "Your email?")
	a.event(map[string]any{"event_id": "r-2-press", "type": "button", "button": "later", "block": "q"}, "8202")
	a.waitForTexts(sub2, "Your email?", "OK, later")
	a.finished(sub2, "ask")
	var chat struct {
		Messages []struct {
			Direction string `json:"direction"`
			Text      string `json:"text"`
		} `json:"messages"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+sub2+"/chat", nil, http.StatusOK, &chat)
	found := false
	for _, m := range chat.Messages {
		found = found || m.Direction == "inbound" && m.Text == "Later"
	}
	if !found {
		t.Fatalf("the press is not in the chat as the button's label: %+v", chat.Messages)
	}
}

func TestReplyTimeoutFiresOnce(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Reply timeout")
	a.must(http.MethodPut, "/v1/tunnels/ask", json.RawMessage(fmt.Sprintf(askTunnel, 3)), http.StatusOK, nil)
	sub := a.subscribe("t-1", "ask", "8301", "Tim")
	a.waitForTexts(sub, "Your email?", "Still there?")
	// A reply after the timeout resumes nothing.
	ans := a.event(map[string]any{"event_id": "t-1-late", "type": "message", "text": "tim@example.org"}, "8301")
	if ans["run"] != nil {
		t.Fatalf("a late reply resumed a run: %v", ans)
	}
	j := a.finished(sub, "ask")
	time.Sleep(2 * time.Second)
	if got := gatewayTexts(sub); len(got) != 2 {
		t.Fatalf("gateway: %q", got)
	}
	timeouts := 0
	for _, s := range j {
		if s.Detail["phase"] == "timeout" && s.Status == "done" {
			timeouts++
		}
	}
	if timeouts != 1 {
		t.Fatalf("%d timeouts:%s", timeouts, describe(j))
	}
}

// The API records a reply's step with the event and then enqueues it; a crash
// between the two leaves the step recorded but not sent. The client's retry
// of the event sends it, and the run resumes once.
func TestReplyRecordedButNotEnqueued(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Reply crash")
	a.must(http.MethodPut, "/v1/tunnels/ask", json.RawMessage(fmt.Sprintf(askTunnel, 3600)), http.StatusOK, nil)
	sub := a.subscribe("c-1", "ask", "8401", "Cid")
	a.waitForTexts(sub, "Your email?")
	ctx := context.Background()
	s, err := sys.Store.Subscriber(ctx, a.ws, sub)
	if err != nil {
		t.Fatal(err)
	}
	w := s.Waits[engine.WaitKey("ask", "q")]
	step := engine.ReplyStep(a.ws, sub, "c-1-reply", w, engine.Input{Text: "cid@example.org"})
	answer, _ := json.Marshal(map[string]any{"subscriber_id": sub, "run": map[string]any{"tunnel": "ask", "channel": "chat", "generation": w.Gen}})
	if _, err := sys.Store.PutEvent(ctx, a.ws, "c-1-reply", store.EventRecord{Answer: answer,
		Steps: []engine.Outgoing{{Kind: engine.KindFlow, Step: step}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if got := gatewayTexts(sub); len(got) != 1 {
		t.Fatalf("the run went on before the retry: %q", got)
	}
	a.event(map[string]any{"event_id": "c-1-reply", "type": "message", "text": "cid@example.org"}, "8401")
	a.waitForTexts(sub, "Your email?", "Thanks, cid@example.org")

	// The queue delivering the reply step a second time changes nothing.
	q, _ := sys.Resources.Get("FlowQueue")
	if _, err := sys.Clients.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(string(step.Encode()))}); err != nil {
		t.Fatal(err)
	}
	a.finished(sub, "ask")
	time.Sleep(3 * time.Second)
	if got := gatewayTexts(sub); len(got) != 2 {
		t.Fatalf("gateway after a duplicate reply step: %q", got)
	}
}

func TestDelayWindowAndUntil(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := logicWorkspace(t, "Delay windows")
	now := time.Now().UTC()
	// A window open all day today and tomorrow (UTC), and one that opens two hours from now.
	today := strings.ToLower(now.Weekday().String()[:3])
	tomorrow := strings.ToLower(now.Add(24 * time.Hour).Weekday().String()[:3])
	from := now.Add(2 * time.Hour).Truncate(time.Hour)
	a.must(http.MethodPut, "/v1/tunnels/win", json.RawMessage(fmt.Sprintf(`{"name": "Win", "entry": "open", "blocks": [
		{"id": "open", "type": "delay", "seconds": 2, "window": {"timezone": "UTC", "weekdays": [%q, %q]}, "next": ["m1"]},
		{"id": "m1", "type": "message", "text": "inside", "next": ["until"]},
		{"id": "until", "type": "delay", "until": {"field": "webinar_at", "offset_seconds": -2}, "next": ["m2"]},
		{"id": "m2", "type": "message", "text": "soon", "next": ["closed"]},
		{"id": "closed", "type": "delay", "window": {"timezone": "UTC", "hours": [%q, %q]}, "next": ["m3"]},
		{"id": "m3", "type": "message", "text": "later"}]}`,
		today, tomorrow, from.Format("15:04"), from.Add(time.Hour).Format("15:04"))), http.StatusOK, nil)
	sub := a.subscribe("w-1", "win", "8501", "Wendy")
	ctx := context.Background()
	webinar := time.Now().UTC().Add(6 * time.Second).Format("2006-01-02T15:04:05.000Z")
	if err := sys.Store.SetFields(ctx, a.ws, sub, map[string]any{"webinar_at": webinar}); err != nil {
		t.Fatal(err)
	}
	a.waitForTexts(sub, "inside", "soon")
	var closed journeyStep
	eventually(t, 20*time.Second, "the closed window's delay", func() (bool, string) {
		var ok bool
		closed, ok = find(a.journey(sub), "win", "closed", -1)
		return ok, ""
	})
	due, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(closed.Detail["due_at"]))
	if !due.Equal(from) {
		t.Fatalf("the closed window waits until %v, want %v (%+v)", closed.Detail["due_at"], from, closed.Detail)
	}
	j := a.journey(sub)
	u, _ := find(j, "win", "until", -1)
	until, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(u.Detail["until"]))
	if want, _ := time.Parse("2006-01-02T15:04:05.000Z", webinar); !until.Equal(want.Add(-2 * time.Second)) {
		t.Fatalf("until %v, want two seconds before %s", u.Detail["until"], webinar)
	}
	m2, _ := find(j, "win", "m2", -1)
	if m2.StartedAt.Before(until) {
		t.Fatalf("the message went out at %s, before %s", m2.StartedAt, until)
	}
	for _, r := range a.card(sub).Runs {
		if r.Tunnel == "win" && r.Status != "active" {
			t.Fatalf("the run is %s while it waits for the window", r.Status)
		}
	}
}
