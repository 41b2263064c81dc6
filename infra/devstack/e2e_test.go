package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

type journeyStep struct {
	StepID     string         `json:"step_id"`
	Tunnel     string         `json:"tunnel"`
	Channel    string         `json:"channel"`
	Generation int            `json:"generation"`
	Block      string         `json:"block"`
	Action     *int           `json:"action"`
	Type       string         `json:"type"`
	Status     string         `json:"status"`
	Reason     string         `json:"reason"`
	Attempts   int            `json:"attempts"`
	StartedAt  time.Time      `json:"started_at"`
	FinishedAt time.Time      `json:"finished_at"`
	Detail     map[string]any `json:"detail"`
}

func (a *api) journey(sub string) []journeyStep {
	a.t.Helper()
	var all []journeyStep
	cursor := ""
	for {
		var page struct {
			Steps      []journeyStep `json:"steps"`
			NextCursor *string       `json:"next_cursor"`
		}
		a.must(http.MethodGet, "/v1/subscribers/"+sub+"/journey?limit=4&cursor="+cursor, nil, http.StatusOK, &page)
		all = append(all, page.Steps...)
		if page.NextCursor == nil {
			return all
		}
		cursor = *page.NextCursor
	}
}

func find(steps []journeyStep, tunnel, block string, action int) (journeyStep, bool) {
	for _, s := range steps {
		if s.Tunnel == tunnel && s.Block == block && (s.Action == nil && action < 0 || s.Action != nil && *s.Action == action) {
			return s, true
		}
	}
	return journeyStep{}, false
}

func describe(steps []journeyStep) string {
	var b strings.Builder
	for _, s := range steps {
		a := "-"
		if s.Action != nil {
			a = fmt.Sprint(*s.Action)
		}
		fmt.Fprintf(&b, "\n  %s %s/%s#%s %s %s %q", s.StartedAt.Format("15:04:05.000"), s.Tunnel, s.Block, a, s.Type, s.Status, s.Reason)
	}
	return b.String()
}

type card struct {
	ID       string   `json:"id"`
	Tags     []string `json:"tags"`
	Channels []struct {
		Channel    string `json:"channel"`
		ExternalID string `json:"external_id"`
	} `json:"channels"`
	Runs []struct {
		Tunnel     string `json:"tunnel"`
		Channel    string `json:"channel"`
		Generation int    `json:"generation"`
		Recorded   bool   `json:"recorded"`
		Status     string `json:"status"`
	} `json:"runs"`
}

func (a *api) card(sub string) card {
	a.t.Helper()
	var c card
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	return c
}

// TestWalkingSkeleton drives the tunnel of issue 2 through the HTTP API and
// checks, through the API and at the bot gateway: the journey order, the
// priority rule, tags, START not recorded, STOP dropping a pending delayed
// step, the connector receiving signed messages, and a duplicated SQS
// message doing nothing twice.
func TestWalkingSkeleton(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Walking skeleton")
	a.must(http.MethodPut, "/v1/tags/lead", map[string]string{"name": "Lead"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL(), "secret": connectorSecret}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/second", json.RawMessage(`{"name": "Second", "entry": "b0", "blocks": [
		{"id": "b0", "type": "message", "text": "Zero", "next": ["b1"]},
		{"id": "b1", "type": "message", "text": "Second {{subscriber.first_name}}"}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/third", json.RawMessage(`{"name": "Third", "entry": "t1", "blocks": [
		{"id": "t1", "type": "message", "text": "Third one", "next": ["t-wait"]},
		{"id": "t-wait", "type": "delay", "seconds": 6, "next": ["t2"]},
		{"id": "t2", "type": "message", "text": "Third two"}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/main", json.RawMessage(`{"name": "Main", "entry": "hello", "blocks": [
		{"id": "hello", "type": "message", "text": "Hi {{subscriber.first_name|friend}}!", "next": ["act", "side"]},
		{"id": "act", "type": "action", "actions": [
			{"type": "add_tags", "tags": ["lead"]},
			{"type": "start", "tunnel": "second", "block": "b1"},
			{"type": "stop", "tunnel": "third"}], "next": ["wait"]},
		{"id": "side", "type": "message", "text": "Side"},
		{"id": "wait", "type": "delay", "seconds": 2, "next": ["bye"]},
		{"id": "bye", "type": "message", "text": "Bye"}]}`), http.StatusOK, nil)

	subscriber := map[string]string{"channel": "telegram", "external_id": "777", "first_name": "Ann", "email": "ann@example.com"}
	var first struct {
		SubscriberID string `json:"subscriber_id"`
		Run          struct {
			Tunnel     string `json:"tunnel"`
			Channel    string `json:"channel"`
			Generation int    `json:"generation"`
		} `json:"run"`
	}
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "third-1", "type": "subscribe", "tunnel": "third", "subscriber": subscriber}, http.StatusAccepted, &first)
	sub := first.SubscriberID
	// third is now waiting in its delay, t2 pending on the queue.
	eventually(t, 20*time.Second, "third's delay to start", func() (bool, string) {
		j := a.journey(sub)
		_, ok := find(j, "third", "t-wait", -1)
		return ok, describe(j)
	})

	var answer struct {
		SubscriberID string `json:"subscriber_id"`
		Run          struct {
			Tunnel     string `json:"tunnel"`
			Channel    string `json:"channel"`
			Generation int    `json:"generation"`
		} `json:"run"`
	}
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "main-1", "type": "subscribe", "tunnel": "main", "subscriber": subscriber}, http.StatusAccepted, &answer)
	if answer.SubscriberID != sub || answer.Run.Tunnel != "main" || answer.Run.Channel != "chat" || answer.Run.Generation != 1 {
		t.Fatalf("event answer %+v", answer)
	}
	var j []journeyStep
	eventually(t, 30*time.Second, "main's last message and third's dropped step", func() (bool, string) {
		j = a.journey(sub)
		_, bye := find(j, "main", "bye", -1)
		_, t2 := find(j, "third", "t2", -1)
		return bye && t2, describe(j)
	})

	get := func(tunnel, block string, action int) journeyStep {
		s, ok := find(j, tunnel, block, action)
		if !ok {
			t.Fatalf("no journey entry for %s/%s#%d:%s", tunnel, block, action, describe(j))
		}
		return s
	}
	hello, tags, start, stop := get("main", "hello", -1), get("main", "act", 0), get("main", "act", 1), get("main", "act", 2)
	side, wait, bye := get("main", "side", -1), get("main", "wait", -1), get("main", "bye", -1)
	for _, s := range []journeyStep{hello, tags, start, stop, side, wait, bye} {
		if s.Status != "done" || s.Attempts < 1 || s.Generation != 1 || s.Channel != "chat" {
			t.Errorf("%s/%s: %+v, want done", s.Tunnel, s.Block, s)
		}
	}
	if tags.Type != "add_tags" || start.Type != "start" || stop.Type != "stop" || hello.Type != "message" || wait.Type != "delay" {
		t.Errorf("types: %s %s %s %s %s", tags.Type, start.Type, stop.Type, hello.Type, wait.Type)
	}
	// Journey order and the priority rule: side, a message sibling of the
	// action block, starts only after the block's last action finished.
	order := []journeyStep{hello, tags, start, stop}
	for i := 1; i < len(order); i++ {
		if order[i].StartedAt.Before(order[i-1].FinishedAt) {
			t.Errorf("%s#%v started %s before %s#%v finished %s", order[i].Block, *order[i].Action, order[i].StartedAt, order[i-1].Block, order[i-1].Action, order[i-1].FinishedAt)
		}
	}
	if side.StartedAt.Before(stop.FinishedAt) {
		t.Errorf("priority rule broken: side started %s before the action block finished %s", side.StartedAt, stop.FinishedAt)
	}
	if bye.StartedAt.Sub(wait.StartedAt) < 2*time.Second {
		t.Errorf("bye started %s after the delay began; want at least 2s", bye.StartedAt.Sub(wait.StartedAt))
	}
	idx := func(s journeyStep) int {
		return slices.IndexFunc(j, func(x journeyStep) bool { return x.StepID == s.StepID })
	}
	if !(idx(hello) < idx(tags) && idx(tags) < idx(start) && idx(start) < idx(stop) && idx(stop) < idx(side) && idx(wait) < idx(bye)) {
		t.Errorf("journey order wrong:%s", describe(j))
	}

	// STOP dropped third's pending delayed step; START ran second from b1.
	t2 := get("third", "t2", -1)
	if t2.Status != "skipped" || t2.Reason != "stopped" {
		t.Errorf("third/t2 = %s %q, want skipped stopped", t2.Status, t2.Reason)
	}
	b1 := func() journeyStep {
		var s journeyStep
		eventually(t, 10*time.Second, "second/b1", func() (bool, string) {
			j = a.journey(sub)
			var ok bool
			s, ok = find(j, "second", "b1", -1)
			return ok, describe(j)
		})
		return s
	}()
	if b1.Status != "done" {
		t.Errorf("second/b1 = %+v", b1)
	}
	if _, ok := find(j, "second", "b0", -1); ok {
		t.Errorf("START at b1 also ran the entry block b0:%s", describe(j))
	}

	// Tags, runs and recording.
	c := a.card(sub)
	if !slices.Equal(c.Tags, []string{"lead"}) {
		t.Errorf("tags = %v", c.Tags)
	}
	runs := map[string]string{}
	for _, r := range c.Runs {
		runs[r.Tunnel] = fmt.Sprintf("%s gen%d recorded=%v %s", r.Channel, r.Generation, r.Recorded, r.Status)
	}
	want := map[string]string{
		"main":   "chat gen1 recorded=true done",
		"second": "chat gen1 recorded=false done",
		"third":  "chat gen1 recorded=true stopped",
	}
	for k, v := range want {
		if runs[k] != v {
			t.Errorf("run %s = %q, want %q (all %v)", k, runs[k], v, runs)
		}
	}
	counts := map[string]int{}
	for _, id := range []string{"main", "second", "third"} {
		var tv struct {
			Subscribers int `json:"subscribers"`
		}
		a.must(http.MethodGet, "/v1/tunnels/"+id, nil, http.StatusOK, &tv)
		counts[id] = tv.Subscribers
	}
	if counts["main"] != 1 || counts["third"] != 1 || counts["second"] != 0 {
		t.Errorf("tunnel subscriber counts = %v; START must not record", counts)
	}

	// The bot gateway got every message once, signed, keyed by its step.
	texts := func() []string {
		var out []string
		for _, m := range gateway.forSubscriber(sub) {
			out = append(out, m.Msg.Text)
		}
		slices.Sort(out)
		return out
	}
	wantTexts := []string{"Bye", "Hi Ann!", "Second Ann", "Side", "Third one"}
	if got := texts(); !slices.Equal(got, wantTexts) {
		t.Errorf("gateway received %q, want %q", got, wantTexts)
	}
	for _, m := range gateway.forSubscriber(sub) {
		if m.IdempotencyKey != m.Msg.StepID || m.Msg.Channel != "telegram" || m.Msg.ExternalID != "777" {
			t.Errorf("gateway message %+v", m)
		}
	}
	if bad := gateway.rejected(); len(bad) > 0 {
		t.Errorf("messages with bad signatures: %v", bad)
	}

	// A duplicated SQS message of a finished step: no second delivery, no
	// second journey entry. A duplicate is the same body, "at" (the step's
	// birth, fixed by its parent or event) included; a chat message step
	// files its record under that time, which the test reads off the item.
	body, _ := json.Marshal(map[string]any{"v": 1, "id": hello.StepID, "ws": a.ws, "sub": sub, "tunnel": "main",
		"channel": "chat", "gen": 1, "block": "hello", "action": 0, "at": chatRecordTime(t, a.ws, sub, hello.StepID)})
	q, _ := sys.Resources.Get("FlowQueue")
	if _, err := sys.Clients.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	// The replay re-emits hello's children; they dedupe too. Give it time.
	time.Sleep(4 * time.Second)
	if got := texts(); !slices.Equal(got, wantTexts) {
		t.Errorf("after a duplicate delivery the gateway has %q, want still %q", got, wantTexts)
	}
	if again := a.journey(sub); len(again) != len(j) {
		t.Errorf("journey grew from %d to %d entries after a duplicate:%s", len(j), len(again), describe(again))
	}

	// A repeated event answers the first answer and starts nothing.
	var repeat map[string]any
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "main-1", "type": "subscribe", "tunnel": "main", "subscriber": subscriber}, http.StatusAccepted, &repeat)
	if repeat["subscriber_id"] != sub || repeat["run"].(map[string]any)["generation"].(float64) != 1 {
		t.Errorf("repeated event answered %v", repeat)
	}
	for _, r := range a.card(sub).Runs {
		if r.Tunnel == "main" && r.Generation != 1 {
			t.Errorf("a repeated event started generation %d", r.Generation)
		}
	}
}

// chatRecordTime answers the time a chat message step's record is filed
// under (its key: CHAT#<time>#m<step id>): the step's "at".
func chatRecordTime(t *testing.T, ws, sub, stepID string) time.Time {
	t.Helper()
	table, _ := sys.Resources.Get("Table")
	out, err := sys.Clients.DynamoDB.Query(context.Background(), &dynamodb.QueryInput{
		TableName:              aws.String(table.Name),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":pk": &ddbtypes.AttributeValueMemberS{Value: "WS#" + ws + "#SUB#" + sub}, ":p": &ddbtypes.AttributeValueMemberS{Value: "CHAT#"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		sk := it["sk"].(*ddbtypes.AttributeValueMemberS).Value
		if at, ok := strings.CutSuffix(strings.TrimPrefix(sk, "CHAT#"), "#m"+stepID); ok {
			when, err := time.Parse(time.RFC3339Nano, at)
			if err != nil {
				t.Fatalf("chat record key %q: %v", sk, err)
			}
			return when
		}
	}
	t.Fatalf("no chat record of step %s", stepID)
	return time.Time{}
}
