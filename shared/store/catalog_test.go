package store

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/connector"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestWorkspaces(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	apiKey := "key-" + ws

	if err := st.CreateWorkspace(ctx, ws, "Acme", apiKey); err != nil {
		t.Fatalf("CreateWorkspace: %v", err)
	}
	got, err := st.WorkspaceForKey(ctx, apiKey)
	if err != nil || got != ws {
		t.Fatalf("WorkspaceForKey = %q, %v; want %q", got, err, ws)
	}
	def, err := st.GetTunnel(ctx, ws, "default")
	if err != nil {
		t.Fatalf("GetTunnel(default): %v", err)
	}
	if def.ID != "default" || def.Def.Name != "Default tunnel" || len(def.Def.Blocks) != 0 || def.Version != 1 || def.Subscribers != 0 {
		t.Errorf("default tunnel = %+v (def %+v), want id default, name %q, no blocks, version 1, 0 subscribers",
			def, def.Def, "Default tunnel")
	}
	sameTime(t, "default tunnel created_at", def.CreatedAt, t0)
	sameTime(t, "default tunnel updated_at", def.UpdatedAt, t0)

	if _, err := st.WorkspaceForKey(ctx, "unknown-"+apiKey); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("WorkspaceForKey(unknown) error = %v, want ErrNotFound", err)
	}

	// The same key for a second workspace: refused, and nothing of it written.
	other := ws + "-other"
	if err := st.CreateWorkspace(ctx, other, "Other", apiKey); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateWorkspace(same key) error = %v, want ErrConflict", err)
	}
	if _, err := st.GetTunnel(ctx, other, "default"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("refused workspace's default tunnel: error = %v, want ErrNotFound", err)
	}
	if got, _ := st.WorkspaceForKey(ctx, apiKey); got != ws {
		t.Errorf("after the refused create the key belongs to %q, want %q", got, ws)
	}

	// The same workspace id with a new key: refused, and the key not registered.
	if err := st.CreateWorkspace(ctx, ws, "Again", apiKey+"-b"); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateWorkspace(same id) error = %v, want ErrConflict", err)
	}
	if _, err := st.WorkspaceForKey(ctx, apiKey+"-b"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("key of the refused workspace: error = %v, want ErrNotFound", err)
	}
}

func TestEntities(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()

	e, err := st.PutEntity(ctx, ws, Entity{Kind: KindTag, ID: "vip", Doc: json.RawMessage(`{"name":"VIP"}`)})
	if err != nil {
		t.Fatalf("PutEntity: %v", err)
	}
	if e.Kind != KindTag || e.ID != "vip" || string(e.Doc) != `{"name":"VIP"}` || e.Secret != nil {
		t.Errorf("PutEntity = %+v", e)
	}
	sameTime(t, "created_at", e.CreatedAt, t0)
	sameTime(t, "updated_at", e.UpdatedAt, t0)

	// A replace keeps created_at and moves updated_at.
	clock.Advance(time.Minute)
	e, err = st.PutEntity(ctx, ws, Entity{Kind: KindTag, ID: "vip", Doc: json.RawMessage(`{"name":"V.I.P."}`)})
	if err != nil {
		t.Fatalf("PutEntity(replace): %v", err)
	}
	if string(e.Doc) != `{"name":"V.I.P."}` {
		t.Errorf("replaced doc = %s", e.Doc)
	}
	sameTime(t, "created_at after replace", e.CreatedAt, t0)
	sameTime(t, "updated_at after replace", e.UpdatedAt, t0.Add(time.Minute))
	got, err := st.GetEntity(ctx, ws, KindTag, "vip")
	if err != nil {
		t.Fatalf("GetEntity: %v", err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Errorf("GetEntity = %+v, want %+v", got, e)
	}

	// Secrets live apart from the public body; a replace without one keeps it.
	const secret = `{"client_secret":"s3cr3t"}`
	e, err = st.PutEntity(ctx, ws, Entity{Kind: KindIntegration, ID: "amo", Doc: json.RawMessage(`{"domain":"x.amocrm.ru"}`), Secret: json.RawMessage(secret)})
	if err != nil {
		t.Fatalf("PutEntity(secret): %v", err)
	}
	if string(e.Secret) != secret || strings.Contains(string(e.Doc), "s3cr3t") {
		t.Errorf("PutEntity(secret) = doc %s, secret %s", e.Doc, e.Secret)
	}
	e, err = st.PutEntity(ctx, ws, Entity{Kind: KindIntegration, ID: "amo", Doc: json.RawMessage(`{"domain":"y.amocrm.ru"}`)})
	if err != nil {
		t.Fatalf("PutEntity(no secret): %v", err)
	}
	if string(e.Doc) != `{"domain":"y.amocrm.ru"}` || string(e.Secret) != secret {
		t.Errorf("replace without secret = doc %s, secret %s; want the new doc and the old secret", e.Doc, e.Secret)
	}
	if _, err := st.PutEntity(ctx, ws, Entity{Kind: KindIntegration, ID: "amo", Doc: e.Doc, Secret: json.RawMessage(`{"client_secret":"new"}`)}); err != nil {
		t.Fatal(err)
	}
	got, err = st.GetEntity(ctx, ws, KindIntegration, "amo")
	if err != nil || string(got.Secret) != `{"client_secret":"new"}` || string(got.Doc) != `{"domain":"y.amocrm.ru"}` {
		t.Errorf("GetEntity(amo) = %+v, %v; want the new secret", got, err)
	}

	// Not found, delete.
	if _, err := st.GetEntity(ctx, ws, KindTag, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetEntity(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := st.GetEntity(ctx, ws, KindField, "vip"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetEntity(other kind) error = %v, want ErrNotFound", err)
	}
	if err := st.DeleteEntity(ctx, ws, KindTag, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("DeleteEntity(missing) error = %v, want ErrNotFound", err)
	}
	if err := st.DeleteEntity(ctx, ws, KindTag, "vip"); err != nil {
		t.Errorf("DeleteEntity: %v", err)
	}
	if _, err := st.GetEntity(ctx, ws, KindTag, "vip"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetEntity(deleted) error = %v, want ErrNotFound", err)
	}
	if err := st.DeleteEntity(ctx, ws, KindTag, "vip"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("DeleteEntity(deleted) error = %v, want ErrNotFound", err)
	}

	// A list holds its kind only; an empty one ends at once.
	list, next, err := st.ListEntities(ctx, ws, KindIntegration, Page{})
	if err != nil || next != nil || len(list) != 1 || list[0].ID != "amo" || list[0].Kind != KindIntegration {
		t.Errorf("ListEntities(INTEG) = %+v, %v, %v; want [amo], nil cursor", list, next, err)
	}
	list, next, err = st.ListEntities(ctx, ws, KindTag, Page{Limit: 2})
	if err != nil || next != nil || len(list) != 0 {
		t.Errorf("ListEntities(TAG, empty) = %+v, %v, %v; want nothing, nil cursor", list, next, err)
	}
	// Another workspace sees none of it.
	if _, err := st.GetEntity(ctx, ws+"-other", KindIntegration, "amo"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetEntity(other workspace) error = %v, want ErrNotFound", err)
	}
}

func putTags(t *testing.T, st *Store, ws string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := st.PutEntity(t.Context(), ws, Entity{Kind: KindTag, ID: id, Doc: json.RawMessage(`{"name":"` + id + `"}`)}); err != nil {
			t.Fatalf("PutEntity(%s): %v", id, err)
		}
	}
}

func entityIDs(es []Entity) []string {
	ids := make([]string, 0, len(es))
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestListEntitiesPaging(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	putTags(t, st, ws, "t3", "t1", "t5", "t2", "t4") // written out of order
	putTags(t, st, ws+"-other", "t0", "t6")          // another workspace's tags

	var pages [][]string
	var cursors []*string
	p := Page{Limit: 2}
	for i := 0; i < 10; i++ {
		list, next, err := st.ListEntities(ctx, ws, KindTag, p)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		pages = append(pages, entityIDs(list))
		cursors = append(cursors, next)
		if next == nil {
			break
		}
		p.Cursor = *next
	}
	want := [][]string{{"t1", "t2"}, {"t3", "t4"}, {"t5"}}
	if !reflect.DeepEqual(pages, want) {
		t.Fatalf("pages = %v, want %v", pages, want)
	}
	if cursors[0] == nil || cursors[1] == nil || cursors[2] != nil {
		t.Errorf("cursors nil-ness = %v %v %v, want set, set, nil", cursors[0] != nil, cursors[1] != nil, cursors[2] != nil)
	}
}

func TestListEntitiesStablePaging(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	putTags(t, st, ws, "b", "d", "f", "h", "j")

	list, next, err := st.ListEntities(ctx, ws, KindTag, Page{Limit: 2})
	if err != nil || next == nil {
		t.Fatalf("first page: %v, cursor %v", err, next)
	}
	seen := entityIDs(list)
	if !reflect.DeepEqual(seen, []string{"b", "d"}) {
		t.Fatalf("first page = %v, want [b d]", seen)
	}
	// Between calls: items land before the cursor (a, c), just after it (e)
	// and past the end (k), and the item the cursor points at goes away.
	putTags(t, st, ws, "a", "c", "e", "k")
	if err := st.DeleteEntity(ctx, ws, KindTag, "d"); err != nil {
		t.Fatal(err)
	}
	for i := 0; next != nil; i++ {
		if i > 10 {
			t.Fatal("paging does not end")
		}
		list, next, err = st.ListEntities(ctx, ws, KindTag, Page{Limit: 2, Cursor: *next})
		if err != nil {
			t.Fatalf("page: %v", err)
		}
		seen = append(seen, entityIDs(list)...)
	}
	// Every item that existed is seen exactly once, in id order; what was
	// added after the cursor shows up, what was added before it does not.
	want := []string{"b", "d", "e", "f", "h", "j", "k"}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("ids seen = %v, want %v", seen, want)
	}
}

func TestListEntitiesBadCursor(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	putTags(t, st, ws, "a", "b", "c")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, c := range map[string]string{
		"not base64":   "garbage!!",
		"not json":     b64("not json"),
		"json array":   b64(`["pk","sk"]`),
		"sk missing":   b64(`{"pk":"WS#` + ws + `"}`),
		"padded std64": base64.StdEncoding.EncodeToString([]byte(`{"pk":"x","sk":"y"}`)) + "=",
	} {
		list, next, err := st.ListEntities(ctx, ws, KindTag, Page{Limit: 2, Cursor: c})
		if !errors.Is(err, ErrBadCursor) {
			t.Errorf("%s: ListEntities = %v, %v, %v; want ErrBadCursor", name, list, next, err)
		}
	}
	if _, _, err := st.ListTunnels(ctx, ws, Page{Cursor: "garbage!!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("ListTunnels(garbage) error = %v, want ErrBadCursor", err)
	}
	if _, _, err := st.Journey(ctx, ws, "sub", Page{Cursor: "garbage!!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("Journey(garbage) error = %v, want ErrBadCursor", err)
	}
}

// A cursor this API gave out for one list, handed to another list, is not a
// cursor of that list: the client's mistake (ErrBadCursor, a 400), not a
// DynamoDB ValidationException (a 500).
func TestListEntitiesCursorOfAnotherList(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	putTags(t, st, ws, "a", "b", "c")
	putTags(t, st, ws+"-other", "a", "b", "c")
	if _, err := st.PutEntity(ctx, ws, Entity{Kind: KindField, ID: "f1", Doc: json.RawMessage(`{"type":"string"}`)}); err != nil {
		t.Fatal(err)
	}
	_, next, err := st.ListEntities(ctx, ws, KindTag, Page{Limit: 1})
	if err != nil || next == nil {
		t.Fatalf("first page: %v, cursor %v", err, next)
	}
	if list, _, err := st.ListEntities(ctx, ws+"-other", KindTag, Page{Limit: 2, Cursor: *next}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("tag cursor on another workspace's tags = %v, %v; want ErrBadCursor", entityIDs(list), err)
	}
	if list, _, err := st.ListEntities(ctx, ws, KindField, Page{Limit: 2, Cursor: *next}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("tag cursor on the field list = %v, %v; want ErrBadCursor", entityIDs(list), err)
	}
}

func TestCatalog(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	if err := st.CreateWorkspace(ctx, ws, "Acme", "key-"+ws); err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entity{
		{Kind: KindTag, ID: "vip", Doc: json.RawMessage(`{"name":"VIP"}`)},
		{Kind: KindTag, ID: "new", Doc: json.RawMessage(`{"name":"New"}`)},
		{Kind: KindField, ID: "age", Doc: json.RawMessage(`{"name":"Age","type":"number"}`)},
		{Kind: KindField, ID: "city", Doc: json.RawMessage(`{"name":"City","type":"string"}`)},
		{Kind: KindVariable, ID: "promo", Doc: json.RawMessage(`{"value":"SALE20"}`)},
		{Kind: KindVariable, ID: "empty", Doc: json.RawMessage(`{}`)},
		{Kind: KindSalesPlan, ID: "plan1", Doc: json.RawMessage(`{}`)},
		{Kind: KindOperator, ID: "anna", Doc: json.RawMessage(`{}`)},
		{Kind: KindEmailBot, ID: "bot1", Doc: json.RawMessage(`{}`)},
		{Kind: KindLeadSource, ID: "ls1", Doc: json.RawMessage(`{"tunnel":"webinar"}`)},
		{Kind: KindIntegration, ID: "amo", Doc: json.RawMessage(`{}`), Secret: json.RawMessage(`{"client_secret":"x"}`)},
		{Kind: KindChannel, ID: "default", Doc: json.RawMessage(`{"url":"https://bot.example/hook"}`), Secret: json.RawMessage(`{"secret":"shh"}`)},
	} {
		if _, err := st.PutEntity(ctx, ws, e); err != nil {
			t.Fatalf("PutEntity(%s %s): %v", e.Kind, e.ID, err)
		}
	}
	webinar := &tunnel.Tunnel{Name: "Webinar", Entry: "hello", Blocks: []tunnel.Block{
		{ID: "hello", Type: "message", Text: "Hi", Next: []string{"wait"}},
		{ID: "wait", Type: "delay", Seconds: 60, Next: []string{"bye"}},
		{ID: "bye", Type: "message", Text: "Bye"},
	}}
	if _, err := st.PutTunnel(ctx, ws, "webinar", webinar); err != nil {
		t.Fatal(err)
	}

	c, err := st.Catalog(ctx, ws)
	if err != nil {
		t.Fatalf("Catalog: %v", err)
	}
	for id, blocks := range c.Tunnels {
		sort.Strings(blocks) // a string set: order is the database's
		c.Tunnels[id] = blocks
	}
	// The stored definitions, for START loops across tunnels: only a save reads them.
	if c.Saved != nil {
		t.Errorf("Catalog read the tunnel definitions: %v", c.Saved)
	}
	forSave, err := st.CatalogForSave(ctx, ws)
	if err != nil {
		t.Fatalf("CatalogForSave: %v", err)
	}
	if got := forSave.Saved["webinar"]; !reflect.DeepEqual(got, webinar) {
		t.Errorf("Saved[webinar] = %+v, want %+v", got, webinar)
	}
	if got := forSave.Saved["default"]; got == nil || len(got.Blocks) != 0 || len(forSave.Saved) != 2 {
		t.Errorf("Saved = %+v, want webinar and the empty default tunnel", forSave.Saved)
	}
	want := tunnel.Catalog{
		Tags:         map[string]bool{"vip": true, "new": true},
		Fields:       map[string]string{"age": "number", "city": "string"},
		Variables:    map[string]bool{"promo": true, "empty": true},
		SalesPlans:   map[string]bool{"plan1": true},
		Operators:    map[string]bool{"anna": true},
		EmailBots:    map[string]bool{"bot1": true},
		LeadSources:  map[string]bool{"ls1": true},
		Integrations: map[string]bool{"amo": true},
		Tunnels:      map[string][]string{"default": nil, "webinar": {"bye", "hello", "wait"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Catalog =\n  %+v\nwant\n  %+v", c, want)
	}

	vars, err := st.Variables(ctx, ws)
	if err != nil || !reflect.DeepEqual(vars, map[string]string{"promo": "SALE20", "empty": ""}) {
		t.Errorf("Variables = %v, %v", vars, err)
	}
	tags, err := st.TagIDs(ctx, ws)
	if err != nil || !reflect.DeepEqual(tags, map[string]bool{"vip": true, "new": true}) {
		t.Errorf("TagIDs = %v, %v", tags, err)
	}
	ch, err := st.Channel(ctx, ws)
	if err != nil || ch != (connector.Channel{URL: "https://bot.example/hook", Secret: "shh"}) {
		t.Errorf("Channel = %+v, %v", ch, err)
	}

	// An empty workspace: empty maps, and no channel.
	empty := ws + "-empty"
	c, err = st.Catalog(ctx, empty)
	if err != nil || len(c.Tags)+len(c.Fields)+len(c.Variables)+len(c.Tunnels) != 0 || c.Tags == nil || c.Tunnels == nil {
		t.Errorf("Catalog(empty) = %+v, %v; want empty, non-nil maps", c, err)
	}
	if vars, err := st.Variables(ctx, empty); err != nil || len(vars) != 0 {
		t.Errorf("Variables(empty) = %v, %v", vars, err)
	}
	if tags, err := st.TagIDs(ctx, empty); err != nil || len(tags) != 0 {
		t.Errorf("TagIDs(empty) = %v, %v", tags, err)
	}
	if _, err := st.Channel(ctx, empty); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Channel(none) error = %v, want ErrNotFound", err)
	}
}

func TestTunnels(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	if err := st.CreateWorkspace(ctx, ws, "Acme", "key-"+ws); err != nil {
		t.Fatal(err)
	}
	v1 := &tunnel.Tunnel{Name: "Webinar", Entry: "a", Blocks: []tunnel.Block{
		{ID: "a", Type: "message", Text: "Hi", Next: []string{"b"}},
		{ID: "b", Type: "message", Text: "Bye", Email: &tunnel.EmailContent{Subject: "S", HTML: "<p>x</p>"}},
	}}
	r, err := st.PutTunnel(ctx, ws, "webinar", v1)
	if err != nil {
		t.Fatalf("PutTunnel: %v", err)
	}
	if r.ID != "webinar" || r.Version != 1 || r.Subscribers != 0 || !reflect.DeepEqual(r.Def, v1) {
		t.Errorf("PutTunnel = %+v (def %+v), want version 1, 0 subscribers, the definition", r, r.Def)
	}
	sameTime(t, "created_at", r.CreatedAt, t0)

	// A recorded subscriber counts; a new version keeps the count.
	sub := newSubscriber(t, st, ws, "100")
	if _, err := st.StartRun(ctx, ws, sub, engine.RunStart{Tunnel: "webinar", Channel: engine.ChannelChat, Recorded: true, By: "ev1", At: t0, Pending: 1}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	v2 := &tunnel.Tunnel{Name: "Webinar 2", Entry: "c", Blocks: []tunnel.Block{{ID: "c", Type: "message", Text: "New"}}}
	r, err = st.PutTunnel(ctx, ws, "webinar", v2)
	if err != nil {
		t.Fatalf("PutTunnel(v2): %v", err)
	}
	if r.Version != 2 || r.Subscribers != 1 || !reflect.DeepEqual(r.Def, v2) {
		t.Errorf("PutTunnel(v2) = %+v (def %+v), want version 2, 1 subscriber, the new definition", r, r.Def)
	}
	sameTime(t, "created_at after v2", r.CreatedAt, t0)
	sameTime(t, "updated_at after v2", r.UpdatedAt, t0.Add(time.Hour))
	got, err := st.GetTunnel(ctx, ws, "webinar")
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("GetTunnel = %+v, %v; want %+v", got, err, r)
	}
	def, err := st.Tunnel(ctx, ws, "webinar")
	if err != nil || !reflect.DeepEqual(def, v2) {
		t.Errorf("Tunnel = %+v, %v", def, err)
	}
	if c, err := st.Catalog(ctx, ws); err != nil || !reflect.DeepEqual(c.Tunnels["webinar"], []string{"c"}) {
		t.Errorf("Catalog blocks of v2 = %v, %v; want [c]", c.Tunnels["webinar"], err)
	}
	// A version without blocks drops the block list.
	r, err = st.PutTunnel(ctx, ws, "webinar", &tunnel.Tunnel{Name: "Empty"})
	if err != nil || r.Version != 3 || r.Subscribers != 1 {
		t.Errorf("PutTunnel(v3) = %+v, %v; want version 3, 1 subscriber", r, err)
	}
	if c, err := st.Catalog(ctx, ws); err != nil || c.Tunnels["webinar"] != nil {
		t.Errorf("Catalog blocks of v3 = %v, %v; want none", c.Tunnels["webinar"], err)
	}
	if _, err := st.GetTunnel(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetTunnel(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := st.Tunnel(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Tunnel(missing) error = %v, want ErrNotFound", err)
	}

	// Paging: default, t1..t4, webinar in id order.
	for _, id := range []string{"t3", "t1", "t4", "t2"} {
		if _, err := st.PutTunnel(ctx, ws, id, &tunnel.Tunnel{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	p := Page{Limit: 4}
	var cursors []bool
	for i := 0; i < 5; i++ {
		list, next, err := st.ListTunnels(ctx, ws, p)
		if err != nil {
			t.Fatalf("ListTunnels: %v", err)
		}
		for _, r := range list {
			seen = append(seen, r.ID+"/"+r.Def.Name)
		}
		cursors = append(cursors, next != nil)
		if next == nil {
			break
		}
		p.Cursor = *next
	}
	want := []string{"default/Default tunnel", "t1/t1", "t2/t2", "t3/t3", "t4/t4", "webinar/Empty"}
	if !reflect.DeepEqual(seen, want) || !slices.Equal(cursors, []bool{true, false}) {
		t.Errorf("ListTunnels pages = %v (cursor after each page: %v), want %v in 2 pages", seen, cursors, want)
	}

	// Delete.
	if err := st.DeleteTunnel(ctx, ws, "webinar"); err != nil {
		t.Fatalf("DeleteTunnel: %v", err)
	}
	if _, err := st.GetTunnel(ctx, ws, "webinar"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetTunnel(deleted) error = %v, want ErrNotFound", err)
	}
	if err := st.DeleteTunnel(ctx, ws, "webinar"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("DeleteTunnel(deleted) error = %v, want ErrNotFound", err)
	}
	if c, err := st.Catalog(ctx, ws); err != nil || len(c.Tunnels) != 5 {
		t.Errorf("Catalog tunnels after delete = %v, %v; want 5", c.Tunnels, err)
	} else if _, ok := c.Tunnels["webinar"]; ok {
		t.Errorf("Catalog still lists the deleted tunnel")
	}
}
