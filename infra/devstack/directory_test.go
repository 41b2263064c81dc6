package devstack_test

import (
	"net/http"
	"net/url"
	"testing"
)

// Issue 10 item 6: GET /v1/subscribers searches the directory.
func TestSearchSubscribers(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := newWorkspace(t, "Directory")
	a.must(http.MethodPut, "/v1/tags/vip", map[string]string{"name": "VIP"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/tagger", map[string]any{"name": "Tagger", "entry": "t", "blocks": []map[string]any{
		{"id": "t", "type": "action", "actions": []map[string]any{{"type": "add_tags", "tags": []string{"vip"}}}}}}, http.StatusOK, nil)
	olga := a.subscribe("dir-1", "default", "9101", "Olga")
	a.subscribe("dir-2", "default", "9102", "Oleg")
	vip := a.subscribe("dir-3", "tagger", "9103", "Pavel")
	a.finished(vip, "tagger")
	type page struct {
		Subscribers []struct {
			ID        string   `json:"id"`
			FirstName string   `json:"first_name"`
			Tags      []string `json:"tags"`
		} `json:"subscribers"`
		NextCursor *string `json:"next_cursor"`
	}
	search := func(query string) page {
		var p page
		a.must(http.MethodGet, "/v1/subscribers?"+query, nil, http.StatusOK, &p)
		return p
	}
	if p := search("q=OL"); len(p.Subscribers) != 2 || p.Subscribers[0].FirstName != "Oleg" || p.Subscribers[1].ID != olga {
		t.Fatalf("q=OL: %+v", p.Subscribers)
	}
	if p := search("q=" + url.QueryEscape("telegram:9101")); len(p.Subscribers) != 1 || p.Subscribers[0].ID != olga {
		t.Fatalf("by channel identity: %+v", p.Subscribers)
	}
	if p := search("q=5559102"); len(p.Subscribers) != 1 || p.Subscribers[0].FirstName != "Oleg" {
		t.Fatalf("by phone: %+v", p.Subscribers)
	}
	if p := search("tag=vip"); len(p.Subscribers) != 1 || p.Subscribers[0].ID != vip || len(p.Subscribers[0].Tags) != 1 {
		t.Fatalf("by tag: %+v", p.Subscribers)
	}
	first := search("limit=2")
	if len(first.Subscribers) != 2 || first.NextCursor == nil {
		t.Fatalf("first page: %+v", first)
	}
	rest := search("limit=2&cursor=" + url.QueryEscape(*first.NextCursor))
	if len(rest.Subscribers) != 1 || rest.NextCursor != nil || rest.Subscribers[0].ID != olga {
		t.Fatalf("second page: %+v", rest)
	}
	a.problem(http.MethodGet, "/v1/subscribers?tag=no%20such", nil, http.StatusBadRequest, "validation_failed")
}
