package devstack_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestPublicPathsAndAuth(t *testing.T) {
	needSystem(t)
	anon := &api{t: t}
	var health map[string]string
	anon.must(http.MethodGet, "/v1/health", nil, http.StatusOK, &health)
	if health["status"] != "ok" {
		t.Errorf("health = %v", health)
	}
	status, doc := anon.do(http.MethodGet, "/v1/openapi.json", nil)
	var d map[string]any
	if status != http.StatusOK || json.Unmarshal(doc, &d) != nil || d["openapi"] != "3.1.0" {
		t.Errorf("openapi.json = %d %.80s", status, doc)
	}
	anon.problem(http.MethodGet, "/v1/tags", nil, http.StatusUnauthorized, "unauthorized")
	(&api{t: t, key: "tk_not-a-key"}).problem(http.MethodGet, "/v1/tags", nil, http.StatusUnauthorized, "unauthorized")
	(&api{t: t, key: "wrong-admin"}).problem(http.MethodPost, "/v1/workspaces", map[string]string{"name": "x"}, http.StatusUnauthorized, "unauthorized")
	// A workspace key is not the admin token.
	a := newWorkspace(t, "Auth")
	a.problem(http.MethodPost, "/v1/workspaces", map[string]string{"name": "x"}, http.StatusUnauthorized, "unauthorized")
	// The dev workspace's key works.
	(&api{t: t, key: sys.APIKey}).must(http.MethodGet, "/v1/tunnels", nil, http.StatusOK, nil)
}

func TestWorkspacesAreIsolated(t *testing.T) {
	needSystem(t)
	a, b := newWorkspace(t, "A"), newWorkspace(t, "B")
	a.must(http.MethodPut, "/v1/tags/vip", map[string]string{"name": "VIP"}, http.StatusOK, nil)
	var ev struct {
		SubscriberID string `json:"subscriber_id"`
	}
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "e", "type": "message", "text": "hello",
		"subscriber": map[string]string{"channel": "telegram", "external_id": "1"}}, http.StatusAccepted, &ev)
	for _, path := range []string{"/v1/tags/vip", "/v1/subscribers/" + ev.SubscriberID, "/v1/subscribers/" + ev.SubscriberID + "/journey", "/v1/subscribers/" + ev.SubscriberID + "/chat"} {
		b.problem(http.MethodGet, path, nil, http.StatusNotFound, "not_found")
	}
	b.problem(http.MethodDelete, "/v1/tags/vip", nil, http.StatusNotFound, "not_found")
	var list struct {
		Tags []map[string]any `json:"tags"`
	}
	b.must(http.MethodGet, "/v1/tags", nil, http.StatusOK, &list)
	if len(list.Tags) != 0 {
		t.Errorf("workspace B sees %v", list.Tags)
	}
	a.must(http.MethodGet, "/v1/tags/vip", nil, http.StatusOK, nil)
	// B's own subscriber with the same channel identity is another person.
	var evB struct {
		SubscriberID string `json:"subscriber_id"`
	}
	b.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "e", "type": "message", "text": "hi",
		"subscriber": map[string]string{"channel": "telegram", "external_id": "1"}}, http.StatusAccepted, &evB)
	if evB.SubscriberID == ev.SubscriberID {
		t.Errorf("two workspaces share subscriber %s", ev.SubscriberID)
	}
}

func TestBadInputIsRefusedAndNothingIsWritten(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Bad input")
	p := a.problem(http.MethodPut, "/v1/tags/t1", `{"name": "x",`, http.StatusBadRequest, "invalid_json")
	if !strings.Contains(p.Detail, "JSON") {
		t.Errorf("detail %q", p.Detail)
	}
	p = a.problem(http.MethodPut, "/v1/fields/f1", `{"name": 7, "type": "color", "extra": true}`, http.StatusBadRequest, "validation_failed")
	pointers := map[string]bool{}
	for _, e := range p.Errors {
		pointers[e.Pointer] = true
	}
	if !pointers["/name"] || !pointers["/extra"] {
		t.Errorf("errors %+v; want /name and /extra", p.Errors)
	}
	p = a.problem(http.MethodPut, "/v1/fields/f1", `{"name": "Color", "type": "color"}`, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/type" {
		t.Errorf("errors %+v; want one at /type", p.Errors)
	}
	a.problem(http.MethodGet, "/v1/fields/f1", nil, http.StatusNotFound, "not_found")
	a.problem(http.MethodGet, "/v1/tags/t1", nil, http.StatusNotFound, "not_found")

	big := `{"name": "` + strings.Repeat("x", 300<<10) + `"}`
	a.problem(http.MethodPut, "/v1/tags/big", big, http.StatusRequestEntityTooLarge, "body_too_large")
	a.problem(http.MethodGet, "/v1/tags/big", nil, http.StatusNotFound, "not_found")

	// A tunnel reports every problem at once, each with its pointer.
	p = a.problem(http.MethodPut, "/v1/tunnels/broken", json.RawMessage(`{"name": "Broken", "entry": "a", "blocks": [
		{"id": "a", "type": "message", "text": "Hi {{subscriber.nickname}}", "next": ["ghost"]},
		{"id": "b", "type": "action", "actions": [{"type": "add_tags", "tags": ["nope"]}, {"type": "add_to_sales_plan", "plan": "q4"}]},
		{"id": "c", "type": "delay", "seconds": 99999999}]}`), http.StatusBadRequest, "validation_failed")
	pointers = map[string]bool{}
	for _, e := range p.Errors {
		pointers[e.Pointer] = true
	}
	for _, want := range []string{"/blocks/0/text", "/blocks/0/next/0", "/blocks/1/actions/0/tags/0", "/blocks/1/actions/1/plan", "/blocks/2/seconds"} {
		if !pointers[want] {
			t.Errorf("no error at %s in %+v", want, p.Errors)
		}
	}
	a.problem(http.MethodGet, "/v1/tunnels/broken", nil, http.StatusNotFound, "not_found")

	// Events: what and where.
	p = a.problem(http.MethodPost, "/v1/events", map[string]any{"event_id": "", "type": "wave", "subscriber": map[string]any{"channel": 5}}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) == 0 || p.Errors[0].Pointer != "/subscriber/channel" {
		t.Errorf("errors %+v", p.Errors)
	}
	p = a.problem(http.MethodPost, "/v1/events", map[string]any{"event_id": "x", "type": "subscribe", "tunnel": "ghost",
		"subscriber": map[string]string{"channel": "tg", "external_id": "1"}}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/tunnel" {
		t.Errorf("errors %+v", p.Errors)
	}
	// The default tunnel cannot be deleted; an unknown path is a problem too.
	a.problem(http.MethodDelete, "/v1/tunnels/default", nil, http.StatusConflict, "conflict")
	a.problem(http.MethodGet, "/v1/limits", nil, http.StatusNotFound, "not_found")
	a.problem(http.MethodGet, "/v1/tags?limit=0", nil, http.StatusBadRequest, "validation_failed")
	a.problem(http.MethodGet, "/v1/tags?limit=501", nil, http.StatusBadRequest, "validation_failed")
	a.problem(http.MethodGet, "/v1/tags?cursor=garbage", nil, http.StatusBadRequest, "validation_failed")
}

var millis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestCatalogSecretsAndTimestamps(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Catalog")
	var ch map[string]any
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL(), "secret": "a-very-long-channel-secret"}, http.StatusOK, &ch)
	raw, _ := json.Marshal(ch)
	if strings.Contains(string(raw), "a-very-long-channel-secret") || ch["has_secret"] != true {
		t.Errorf("channel answer %s", raw)
	}
	// Replacing without the secret keeps it.
	a.must(http.MethodPut, "/v1/channel", map[string]string{"url": gateway.URL()}, http.StatusOK, &ch)
	if ch["has_secret"] != true {
		t.Errorf("secret lost on replace: %v", ch)
	}
	// Addresses the deployment calls: https public, or an allowed host:port.
	p := a.problem(http.MethodPut, "/v1/channel", map[string]string{"url": "http://169.254.169.254/latest", "secret": "another-long-secret-123"}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/url" {
		t.Errorf("errors %+v", p.Errors)
	}
	var created, replaced map[string]any
	a.must(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna", "email": "anna@example.com"}, http.StatusOK, &created)
	a.must(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna K", "email": "anna@example.com"}, http.StatusOK, &replaced)
	for _, k := range []string{"created_at", "updated_at"} {
		if !millis.MatchString(fmt.Sprint(replaced[k])) {
			t.Errorf("%s = %v, want RFC 3339 UTC with milliseconds", k, replaced[k])
		}
	}
	if replaced["created_at"] != created["created_at"] || replaced["name"] != "Anna K" {
		t.Errorf("replace: %v then %v", created, replaced)
	}
	a.must(http.MethodDelete, "/v1/operators/anna", nil, http.StatusNoContent, nil)
	a.problem(http.MethodGet, "/v1/operators/anna", nil, http.StatusNotFound, "not_found")
}

// Lists page by cursor and never skip or repeat an item when items are added
// between calls.
func TestListsPageByCursor(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Paging")
	for i := range 7 {
		a.must(http.MethodPut, fmt.Sprintf("/v1/tags/t%d", i*2), map[string]string{"name": "T"}, http.StatusOK, nil)
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		var out struct {
			Tags       []struct{ ID string } `json:"tags"`
			NextCursor *string               `json:"next_cursor"`
		}
		a.must(http.MethodGet, "/v1/tags?limit=3&cursor="+cursor, nil, http.StatusOK, &out)
		for _, tg := range out.Tags {
			seen = append(seen, tg.ID)
		}
		if page == 0 {
			// Concurrent writers add tags before and after the cursor.
			var wg sync.WaitGroup
			for _, id := range []string{"t1", "t9", "t13", "t99"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a.must(http.MethodPut, "/v1/tags/"+id, map[string]string{"name": "T"}, http.StatusOK, nil)
				}()
			}
			wg.Wait()
		}
		if out.NextCursor == nil {
			break
		}
		cursor = *out.NextCursor
		if page > 10 {
			t.Fatal("paging does not end")
		}
	}
	for _, id := range []string{"t0", "t2", "t4", "t6", "t8", "t10", "t12"} {
		if slices.Index(seen, id) < 0 {
			t.Errorf("%s skipped: %v", id, seen)
		}
	}
	sorted := slices.Clone(seen)
	slices.Sort(sorted)
	if !slices.Equal(sorted, seen) || len(slices.Compact(sorted)) != len(seen) {
		t.Errorf("pages out of order or repeated: %v", seen)
	}
}

func TestInboundMessagesAndTheUnreadTab(t *testing.T) {
	needSystem(t)
	a := newWorkspace(t, "Inbox")
	var ids []string
	for i, name := range []string{"Ann", "Bob", "Cid"} {
		var ev struct {
			SubscriberID string `json:"subscriber_id"`
			Run          any    `json:"run"`
		}
		a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": "m" + name, "type": "message", "text": "hello " + name,
			"subscriber": map[string]string{"channel": "telegram", "external_id": fmt.Sprint(100 + i), "first_name": name}}, http.StatusAccepted, &ev)
		if ev.Run != nil {
			t.Errorf("a message event answered run %v", ev.Run)
		}
		ids = append(ids, ev.SubscriberID)
	}
	var tab struct {
		Chats []struct {
			SubscriberID string `json:"subscriber_id"`
			FirstName    string `json:"first_name"`
			LastMessage  struct {
				Text      string `json:"text"`
				Direction string `json:"direction"`
			} `json:"last_message"`
		} `json:"chats"`
	}
	a.must(http.MethodGet, "/v1/chats?filter=unread", nil, http.StatusOK, &tab)
	var got []string
	for _, c := range tab.Chats {
		got = append(got, c.SubscriberID)
		if c.LastMessage.Direction != "inbound" || c.LastMessage.Text != "hello "+c.FirstName {
			t.Errorf("chat %+v", c)
		}
	}
	if want := []string{ids[2], ids[1], ids[0]}; !slices.Equal(got, want) {
		t.Errorf("unread tab = %v, want newest first %v", got, want)
	}
	a.must(http.MethodPatch, "/v1/subscribers/"+ids[1]+"/chat", map[string]bool{"unread": false}, http.StatusOK, nil)
	a.must(http.MethodGet, "/v1/chats?filter=unread", nil, http.StatusOK, &tab)
	if len(tab.Chats) != 2 {
		t.Errorf("after reading Bob's chat the tab has %d chats", len(tab.Chats))
	}
	var chat struct {
		Messages []struct {
			Text   string `json:"text"`
			Unread bool   `json:"unread"`
		} `json:"messages"`
	}
	a.must(http.MethodGet, "/v1/subscribers/"+ids[0]+"/chat", nil, http.StatusOK, &chat)
	if len(chat.Messages) != 1 || chat.Messages[0].Text != "hello Ann" || !chat.Messages[0].Unread {
		t.Errorf("Ann's chat %+v", chat)
	}
	a.problem(http.MethodGet, "/v1/chats", nil, http.StatusBadRequest, "validation_failed")
}
