package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// subscribe sends a subscribe event and answers the subscriber id.
func (a *api) subscribe(event, tunnel, externalID, firstName string) string {
	a.t.Helper()
	var ev struct {
		SubscriberID string `json:"subscriber_id"`
	}
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": event, "type": "subscribe", "tunnel": tunnel,
		"subscriber": map[string]string{"channel": "telegram", "external_id": externalID, "first_name": firstName, "phone": "+1555" + externalID}},
		http.StatusAccepted, &ev)
	return ev.SubscriberID
}

// finished waits until a tunnel's run of the subscriber is no longer active.
func (a *api) finished(sub, tunnel string) []journeyStep {
	a.t.Helper()
	eventually(a.t, 30*time.Second, tunnel+" run to finish", func() (bool, string) {
		for _, r := range a.card(sub).Runs {
			if r.Tunnel == tunnel && r.Status != "active" {
				return true, ""
			}
		}
		return false, describe(a.journey(sub))
	})
	return a.journey(sub)
}

func TestSetField(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Fields")
	for id, typ := range map[string]string{"age": "number", "vip": "boolean", "born": "date", "note": "string"} {
		a.must(http.MethodPut, "/v1/fields/"+id, map[string]string{"name": id, "type": typ}, http.StatusOK, nil)
	}
	a.must(http.MethodPut, "/v1/tunnels/f", json.RawMessage(`{"name": "F", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "set_field", "field": "age", "value": "42"},
			{"type": "set_field", "field": "vip", "value": "yes"},
			{"type": "set_field", "field": "born", "value": "1990-05-17"},
			{"type": "set_field", "field": "note", "value": "Hi {{subscriber.first_name|friend}} ({{field.age}})"},
			{"type": "set_field", "field": "age", "value": "forty"}]}]}`), http.StatusOK, nil)
	sub := a.subscribe("f-1", "f", "1", "Ann")
	j := a.finished(sub, "f")
	statuses := map[int]string{}
	for _, s := range j {
		if s.Action != nil {
			statuses[*s.Action] = s.Status + " " + s.Reason
		}
	}
	for i := 0; i < 4; i++ {
		if statuses[i] != "done " {
			t.Errorf("set_field #%d = %q", i, statuses[i])
		}
	}
	if statuses[4] != `failed field "age" (number): "forty" is not a number` {
		t.Errorf("a value that does not convert: %q", statuses[4])
	}
	var c map[string]any
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	want := map[string]any{"age": 42.0, "vip": true, "born": "1990-05-17", "note": "Hi Ann (42)"}
	if got := c["fields"]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields = %v, want %v (the failed step must leave age at 42)", got, want)
	}
}

func TestSalesPlans(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Plans")
	for _, op := range []string{"anna", "boris", "carl"} {
		a.must(http.MethodPut, "/v1/operators/"+op, map[string]string{"name": op}, http.StatusOK, nil)
	}
	a.must(http.MethodPut, "/v1/sales-plans/q4", map[string]any{"name": "Q4", "statuses": []string{"new", "talking", "won"},
		"operators": []string{"anna", "boris", "carl"}, "distribution": "evenly"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/sales-plans/solo", map[string]any{"name": "Solo", "statuses": []string{"new"}, "distribution": "none"}, http.StatusOK, nil)
	// The plan is visited twice in one run: the second visit adds nothing.
	a.must(http.MethodPut, "/v1/tunnels/p", json.RawMessage(`{"name": "P", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "add_to_sales_plan", "plan": "q4"}, {"type": "add_to_sales_plan", "plan": "solo"},
			{"type": "add_to_sales_plan", "plan": "q4"}]}]}`), http.StatusOK, nil)

	// Nine subscribers at once: round-robin stays even under concurrency.
	subs := make([]string, 9)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subs[i] = a.subscribe(fmt.Sprintf("p-%d", i), "p", fmt.Sprint(200+i), fmt.Sprintf("S%d", i))
		}()
	}
	wg.Wait()
	for _, sub := range subs {
		a.finished(sub, "p")
	}
	type deal struct {
		SubscriberID string  `json:"subscriber_id"`
		Status       string  `json:"status"`
		Operator     *string `json:"operator"`
	}
	listAll := func(plan string) []deal {
		var all []deal
		cursor := ""
		for {
			var page struct {
				Deals      []deal  `json:"deals"`
				NextCursor *string `json:"next_cursor"`
			}
			a.must(http.MethodGet, "/v1/sales-plans/"+plan+"/deals?limit=4&cursor="+cursor, nil, http.StatusOK, &page)
			all = append(all, page.Deals...)
			if page.NextCursor == nil {
				return all
			}
			cursor = *page.NextCursor
		}
	}
	deals := listAll("q4")
	per := map[string]int{}
	for _, d := range deals {
		if d.Status != "new" || d.Operator == nil {
			t.Errorf("deal %+v", d)
			continue
		}
		per[*d.Operator]++
	}
	if len(deals) != 9 || per["anna"] != 3 || per["boris"] != 3 || per["carl"] != 3 {
		t.Errorf("%d deals, per operator %v; want 9, 3 each", len(deals), per)
	}
	if solo := listAll("solo"); len(solo) != 9 || solo[0].Operator != nil {
		t.Errorf("solo deals %+v", solo)
	}
	// The second visit is done with nothing added.
	j := a.journey(subs[0])
	if s, ok := find(j, "p", "act", 2); !ok || s.Status != "done" || s.Detail["already"] != true {
		t.Errorf("second visit: %+v", s)
	}
	// A duplicate delivery of the first join (the same step), and another
	// step running the same action, add nothing either.
	first, _ := find(j, "p", "act", 0)
	q, _ := sys.Resources.Get("TagsQueue")
	for _, id := range []string{first.StepID, first.StepID + "-other"} {
		body, _ := json.Marshal(map[string]any{"v": 1, "id": id, "ws": a.ws, "sub": subs[0], "tunnel": "p",
			"channel": "chat", "gen": 1, "block": "act", "action": 0, "at": first.StartedAt})
		if _, err := sys.Clients.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(string(body))}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "the other step to run", func() (bool, string) {
		for _, s := range a.journey(subs[0]) {
			if s.StepID == first.StepID+"-other" {
				return s.Status == "done" && s.Detail["already"] == true, fmt.Sprint(s)
			}
		}
		return false, "not yet"
	})
	if n := len(listAll("q4")); n != 9 {
		t.Errorf("after more deliveries the plan has %d deals", n)
	}
	// The other step runs the block's three actions again (each done, adding
	// nothing); the duplicate of the finished step adds no entry at all.
	if n := len(a.journey(subs[0])); n != len(j)+3 {
		t.Errorf("journey has %d entries, want %d: the duplicate must add none", n, len(j)+3)
	}

	// The card shows the memberships; a deal moves to another status.
	var c struct {
		SalesPlans []struct {
			Plan     string  `json:"plan"`
			Status   string  `json:"status"`
			Operator *string `json:"operator"`
		} `json:"sales_plans"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+subs[0], nil, http.StatusOK, &c)
	if len(c.SalesPlans) != 2 || c.SalesPlans[0].Plan != "q4" || c.SalesPlans[1].Plan != "solo" {
		t.Fatalf("card sales plans %+v", c.SalesPlans)
	}
	var moved deal
	a.must(http.MethodPatch, "/v1/sales-plans/q4/deals/"+subs[0], map[string]string{"status": "won"}, http.StatusOK, &moved)
	if moved.Status != "won" {
		t.Errorf("moved %+v", moved)
	}
	a.must(http.MethodGet, "/v1/subscribers/"+subs[0], nil, http.StatusOK, &c)
	if c.SalesPlans[0].Status != "won" {
		t.Errorf("card after the move %+v", c.SalesPlans)
	}
	p := a.problem(http.MethodPatch, "/v1/sales-plans/q4/deals/"+subs[0], map[string]string{"status": "lost"}, http.StatusBadRequest, "validation_failed")
	if p.Errors[0].Pointer != "/status" {
		t.Errorf("errors %+v", p.Errors)
	}
	a.problem(http.MethodPatch, "/v1/sales-plans/q4/deals/nobody", map[string]string{"status": "won"}, http.StatusNotFound, "not_found")
	a.problem(http.MethodGet, "/v1/sales-plans/ghost/deals", nil, http.StatusNotFound, "not_found")
}

func TestFewestOpenDeals(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Fewest")
	for _, op := range []string{"anna", "boris"} {
		a.must(http.MethodPut, "/v1/operators/"+op, map[string]string{"name": op}, http.StatusOK, nil)
	}
	a.must(http.MethodPut, "/v1/sales-plans/f", map[string]any{"name": "F", "statuses": []string{"new", "closed"},
		"operators": []string{"anna", "boris"}, "distribution": "fewest"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/t", json.RawMessage(`{"name": "T", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "add_to_sales_plan", "plan": "f"}]}]}`), http.StatusOK, nil)
	operatorOf := func(sub string) string {
		var d struct {
			Operator *string `json:"operator"`
		}
		a.must(http.MethodPatch, "/v1/sales-plans/f/deals/"+sub, map[string]string{"status": "new"}, http.StatusOK, &d)
		return *d.Operator
	}
	s1 := a.subscribe("f1", "t", "1", "A")
	a.finished(s1, "t")
	s2 := a.subscribe("f2", "t", "2", "B")
	a.finished(s2, "t")
	if o1, o2 := operatorOf(s1), operatorOf(s2); o1 != "anna" || o2 != "boris" {
		t.Fatalf("first two deals went to %s and %s", o1, o2)
	}
	// Anna closes hers: she now has the fewest open deals.
	a.must(http.MethodPatch, "/v1/sales-plans/f/deals/"+s1, map[string]string{"status": "closed"}, http.StatusOK, nil)
	s3 := a.subscribe("f3", "t", "3", "C")
	a.finished(s3, "t")
	if o3 := operatorOf(s3); o3 != "anna" {
		t.Errorf("third deal went to %s, want anna (0 open against boris's 1)", o3)
	}
}

func TestMentionsAndMarkUnread(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Mentions")
	a.must(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/m", json.RawMessage(`{"name": "M", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "mention", "operator": "anna", "comment": "Call {{subscriber.first_name}} back"},
			{"type": "mark_unread"}]}]}`), http.StatusOK, nil)
	// Without an inbound message, mark_unread is skipped.
	quiet := a.subscribe("m-1", "m", "1", "Quiet")
	j := a.finished(quiet, "m")
	if s, _ := find(j, "m", "act", 1); s.Status != "skipped" || s.Reason != "the subscriber has not sent any message" {
		t.Errorf("mark_unread without inbound: %+v", s)
	}
	var tab struct {
		Chats []struct {
			SubscriberID string `json:"subscriber_id"`
		} `json:"chats"`
	}
	a.must(http.MethodGet, "/v1/chats?filter=unread", nil, http.StatusOK, &tab)
	if len(tab.Chats) != 0 {
		t.Errorf("unread tab %+v", tab.Chats)
	}
	// A subscriber who wrote, whose chat was read, is marked unread again.
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "in-1", "type": "message", "text": "hi there",
		"subscriber": map[string]string{"channel": "telegram", "external_id": "2", "first_name": "Talker"}}, http.StatusAccepted, nil)
	talker := a.subscribe("m-2", "m", "2", "Talker")
	a.must(http.MethodPatch, "/v1/subscribers/"+talker+"/chat", map[string]bool{"unread": false}, http.StatusOK, nil)
	// Run the tunnel again for the talker now that the chat is read.
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "m-3", "type": "start", "tunnel": "m",
		"subscriber": map[string]string{"channel": "telegram", "external_id": "2"}}, http.StatusAccepted, nil)
	eventually(t, 20*time.Second, "the chat back on the unread tab", func() (bool, string) {
		a.must(http.MethodGet, "/v1/chats?filter=unread", nil, http.StatusOK, &tab)
		return len(tab.Chats) == 1 && tab.Chats[0].SubscriberID == talker, fmt.Sprint(tab.Chats)
	})

	// Mentions: newest first, with the chat reference; the comment is in the chat.
	var ms struct {
		Mentions []struct {
			ID            string `json:"id"`
			Operator      string `json:"operator"`
			SubscriberID  string `json:"subscriber_id"`
			Comment       string `json:"comment"`
			ChatMessageID string `json:"chat_message_id"`
		} `json:"mentions"`
		NextCursor *string `json:"next_cursor"`
	}
	eventually(t, 10*time.Second, "three mentions", func() (bool, string) {
		a.must(http.MethodGet, "/v1/operators/anna/mentions", nil, http.StatusOK, &ms)
		return len(ms.Mentions) == 3, fmt.Sprint(ms.Mentions)
	})
	var subsInOrder []string
	for _, m := range ms.Mentions {
		subsInOrder = append(subsInOrder, m.SubscriberID)
		if m.Operator != "anna" || m.ChatMessageID == "" {
			t.Errorf("mention %+v", m)
		}
	}
	if !slices.Equal(subsInOrder, []string{talker, talker, quiet}) || ms.Mentions[2].Comment != "Call Quiet back" {
		t.Errorf("mentions newest first = %v / %+v", subsInOrder, ms.Mentions)
	}
	var page struct {
		Mentions   []map[string]any `json:"mentions"`
		NextCursor *string          `json:"next_cursor"`
	}
	a.must(http.MethodGet, "/v1/operators/anna/mentions?limit=2", nil, http.StatusOK, &page)
	if len(page.Mentions) != 2 || page.NextCursor == nil {
		t.Fatalf("first page %+v", page)
	}
	a.must(http.MethodGet, "/v1/operators/anna/mentions?limit=2&cursor="+*page.NextCursor, nil, http.StatusOK, &page)
	if len(page.Mentions) != 1 || page.NextCursor != nil || page.Mentions[0]["subscriber_id"] != quiet {
		t.Errorf("second page %+v", page)
	}
	var chat struct {
		Messages []struct {
			Direction string `json:"direction"`
			Text      string `json:"text"`
			Operator  string `json:"operator"`
		} `json:"messages"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+quiet+"/chat", nil, http.StatusOK, &chat)
	if len(chat.Messages) != 1 || chat.Messages[0].Direction != "comment" || chat.Messages[0].Operator != "anna" {
		t.Errorf("quiet's chat %+v", chat.Messages)
	}
	a.problem(http.MethodGet, "/v1/operators/ghost/mentions", nil, http.StatusNotFound, "not_found")
}
