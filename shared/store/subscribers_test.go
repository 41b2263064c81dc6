package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tunnels/tunnels/shared/engine"
)

func TestUpsertSubscriber(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	tg := engine.Identity{Channel: "telegram", ExternalID: "100"}

	id, err := st.UpsertSubscriber(ctx, ws, tg, Profile{FirstName: "Ann", Email: "ann@example.com"})
	if err != nil {
		t.Fatalf("UpsertSubscriber: %v", err)
	}
	if len(id) != 26 {
		t.Errorf("id %q: want 26 characters", id)
	}
	sub := mustSubscriber(t, st, ws, id)
	if sub.ID != id || sub.WS != ws || sub.FirstName != "Ann" || sub.LastName != "" || sub.Email != "ann@example.com" || sub.Phone != "" ||
		!reflect.DeepEqual(sub.Channels, []engine.Identity{tg}) || len(sub.Tags) != 0 || len(sub.Runs) != 0 || len(sub.Stops) != 0 || sub.InboundMessages != 0 {
		t.Errorf("new subscriber = %+v", sub)
	}

	// The same identity again: the same subscriber; only the given fields change.
	clock.Advance(time.Minute)
	again, err := st.UpsertSubscriber(ctx, ws, tg, Profile{LastName: "Lee"})
	if err != nil || again != id {
		t.Fatalf("UpsertSubscriber(repeat) = %q, %v; want %q", again, err, id)
	}
	again, err = st.UpsertSubscriber(ctx, ws, tg, Profile{Email: "ann@new.example", Phone: "+100"})
	if err != nil || again != id {
		t.Fatalf("UpsertSubscriber(repeat 2) = %q, %v; want %q", again, err, id)
	}
	sub = mustSubscriber(t, st, ws, id)
	if sub.FirstName != "Ann" || sub.LastName != "Lee" || sub.Email != "ann@new.example" || sub.Phone != "+100" ||
		!reflect.DeepEqual(sub.Channels, []engine.Identity{tg}) {
		t.Errorf("after repeats = %+v", sub)
	}

	// A second and third identity of the same subscriber (the store has no
	// method that links one, so the identity item is written as
	// UpsertSubscriber writes it): channels accumulate, the primary first
	// although "email" and "apple" sort before "telegram".
	for _, other := range []engine.Identity{{Channel: "email", ExternalID: "ann@example.com"}, {Channel: "apple", ExternalID: "a1"}} {
		item := key(identityPK(ws, other.Channel, other.ExternalID), "IDENTITY")
		item["sub"] = s(id)
		item["created_at"] = s(ts(t0))
		putRaw(t, item)
		got, err := st.UpsertSubscriber(ctx, ws, other, Profile{})
		if err != nil || got != id {
			t.Fatalf("UpsertSubscriber(%v) = %q, %v; want %q", other, got, err, id)
		}
	}
	sub = mustSubscriber(t, st, ws, id)
	want := []engine.Identity{tg, {Channel: "apple", ExternalID: "a1"}, {Channel: "email", ExternalID: "ann@example.com"}}
	if !reflect.DeepEqual(sub.Channels, want) {
		t.Errorf("channels = %v, want %v", sub.Channels, want)
	}
	if sub.FirstName != "Ann" || sub.Email != "ann@new.example" {
		t.Errorf("an upsert without profile fields changed the profile: %+v", sub)
	}

	// Another identity is another subscriber; a workspace is its own namespace.
	other, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "telegram", ExternalID: "200"}, Profile{})
	if err != nil || other == id || other == "" {
		t.Errorf("UpsertSubscriber(other identity) = %q, %v; want a new id", other, err)
	}
	elsewhere, err := st.UpsertSubscriber(ctx, ws+"-other", tg, Profile{})
	if err != nil || elsewhere == id || elsewhere == "" {
		t.Errorf("UpsertSubscriber(other workspace) = %q, %v; want a new id", elsewhere, err)
	}
	if _, err := st.Subscriber(ctx, ws+"-other", id); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Subscriber from another workspace: error = %v, want ErrNotFound", err)
	}
	if _, err := st.Subscriber(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Subscriber(missing) error = %v, want ErrNotFound", err)
	}
}

func TestUpsertSubscriberConcurrent(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	idn := engine.Identity{Channel: "telegram", ExternalID: "777"}
	const n = 10
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], errs[i] = st.UpsertSubscriber(ctx, ws, idn, Profile{FirstName: "Bob"})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("upsert %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("ids disagree: %v", ids)
		}
	}
	sub := mustSubscriber(t, st, ws, ids[0])
	if !reflect.DeepEqual(sub.Channels, []engine.Identity{idn}) || sub.FirstName != "Bob" {
		t.Errorf("subscriber = %+v", sub)
	}
}

func TestTags(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "100")
	tags := func() []string { return mustSubscriber(t, st, ws, sub).Tags }

	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"add with a duplicate", func() error { return st.AddTags(ctx, ws, sub, []string{"vip", "new", "vip"}) }, []string{"new", "vip"}},
		{"add present", func() error { return st.AddTags(ctx, ws, sub, []string{"vip"}) }, []string{"new", "vip"}},
		{"add nothing", func() error { return st.AddTags(ctx, ws, sub, nil) }, []string{"new", "vip"}},
		{"remove one and an absent one", func() error { return st.RemoveTags(ctx, ws, sub, []string{"new", "absent", "new"}) }, []string{"vip"}},
		{"remove the last", func() error { return st.RemoveTags(ctx, ws, sub, []string{"vip"}) }, nil},
		{"remove from none", func() error { return st.RemoveTags(ctx, ws, sub, []string{"vip"}) }, nil},
		{"add again", func() error { return st.AddTags(ctx, ws, sub, []string{"z", "a"}) }, []string{"a", "z"}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := tags(); !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: tags = %#v, want %#v", s.name, got, s.want)
		}
	}

	if err := st.AddTags(ctx, ws, "nope", []string{"vip"}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("AddTags(missing subscriber) error = %v, want ErrNotFound", err)
	}
	if err := st.RemoveTags(ctx, ws, "nope", []string{"vip"}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("RemoveTags(missing subscriber) error = %v, want ErrNotFound", err)
	}
	if _, err := st.Subscriber(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("tagging a missing subscriber created it: error = %v", err)
	}
}

func TestSaveChatMessage(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "100")
	m := engine.ChatMessage{
		ID: "m1", Direction: "outbound", Text: "Hello", Tunnel: "webinar", Block: "b1", StepID: "s1",
		Delivery: "delivered", CreatedAt: t0.Add(time.Second),
	}
	for range 2 {
		if err := st.SaveChatMessage(ctx, ws, sub, m); err != nil {
			t.Fatalf("SaveChatMessage: %v", err)
		}
	}
	changed := m
	changed.Text = "Changed"
	if err := st.SaveChatMessage(ctx, ws, sub, changed); err != nil {
		t.Fatalf("SaveChatMessage(repeat): %v", err)
	}
	chat, next, err := st.Chat(ctx, ws, sub, Page{})
	if err != nil || next != nil || len(chat) != 1 {
		t.Fatalf("Chat = %+v, %v, %v; want one message", chat, next, err)
	}
	sameTime(t, "created_at", chat[0].CreatedAt, m.CreatedAt)
	chat[0].CreatedAt = m.CreatedAt
	if chat[0] != m {
		t.Errorf("stored %+v, want %+v", chat[0], m)
	}
	last, err := st.LastChatMessage(ctx, ws, sub)
	if err != nil || last == nil || last.ID != "m1" {
		t.Errorf("LastChatMessage = %+v, %v", last, err)
	}
	other := newSubscriber(t, st, ws, "200")
	if last, err := st.LastChatMessage(ctx, ws, other); err != nil || last != nil {
		t.Errorf("LastChatMessage(no chat) = %+v, %v; want nil, nil", last, err)
	}
}

// The engine's port promises "idempotent on its id": a repeat that carries
// another time (an API retry stamps the message with its own clock) must not
// store the message twice.
func TestSaveChatMessageIdempotentOnID(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "100")
	// The engine repeats a message with the same (first claim) time: once.
	out := engine.ChatMessage{ID: "m-step1", Direction: "outbound", Text: "Hi", CreatedAt: t0}
	for range 2 {
		if err := st.SaveChatMessage(ctx, ws, sub, out); err != nil {
			t.Fatal(err)
		}
	}
	// An inbound message retried with another time: once too.
	in := engine.ChatMessage{ID: "in-ev1", Direction: "inbound", Text: "Hello", CreatedAt: t0.Add(time.Second)}
	if err := st.RecordInbound(ctx, ws, sub, in); err != nil {
		t.Fatal(err)
	}
	in.CreatedAt = t0.Add(3 * time.Second)
	if err := st.RecordInbound(ctx, ws, sub, in); err != nil {
		t.Fatal(err)
	}
	chat, _, err := st.Chat(ctx, ws, sub, Page{})
	if err != nil || len(chat) != 2 {
		t.Errorf("Chat after repeats = %d messages (%+v), %v; want 2", len(chat), chat, err)
	}
}

func TestInbox(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	subs := []string{newSubscriber(t, st, ws, "1"), newSubscriber(t, st, ws, "2"), newSubscriber(t, st, ws, "3")}
	inbound := func(sub, id string, at time.Time) engine.ChatMessage {
		t.Helper()
		m := engine.ChatMessage{ID: id, Direction: "inbound", Text: "text " + id, CreatedAt: at}
		if err := st.RecordInbound(ctx, ws, sub, m); err != nil {
			t.Fatalf("RecordInbound(%s): %v", id, err)
		}
		return m
	}
	unread := func(p Page) ([]string, *string) {
		t.Helper()
		list, next, err := st.UnreadChats(ctx, ws, p)
		if err != nil {
			t.Fatalf("UnreadChats: %v", err)
		}
		var ids []string
		for _, s := range list {
			ids = append(ids, s.ID)
		}
		return ids, next
	}

	m1 := inbound(subs[0], "a1", t0.Add(1*time.Minute))
	inbound(subs[0], "a1", t0.Add(1*time.Minute)) // a retry
	card, err := st.GetCard(ctx, ws, subs[0])
	if err != nil || !card.Unread || card.Subscriber.InboundMessages != 1 {
		t.Fatalf("card after one message (sent twice) = unread %v, inbound %d, %v; want true, 1", card.Unread, card.Subscriber.InboundMessages, err)
	}
	chat, _, err := st.Chat(ctx, ws, subs[0], Page{})
	if err != nil || len(chat) != 1 || chat[0].ID != "a1" || chat[0].Direction != "inbound" || chat[0].Text != m1.Text {
		t.Errorf("chat = %+v, %v", chat, err)
	}
	inbound(subs[0], "a2", t0.Add(2*time.Minute))
	if n := mustSubscriber(t, st, ws, subs[0]).InboundMessages; n != 2 {
		t.Errorf("inbound after two messages = %d, want 2", n)
	}
	last, err := st.LastChatMessage(ctx, ws, subs[0])
	if err != nil || last == nil || last.ID != "a2" {
		t.Errorf("LastChatMessage = %+v, %v; want a2", last, err)
	}

	inbound(subs[1], "b1", t0.Add(3*time.Minute))
	inbound(subs[2], "c1", t0.Add(4*time.Minute))

	// Newest first, paged.
	ids, next := unread(Page{Limit: 2})
	if !reflect.DeepEqual(ids, []string{subs[2], subs[1]}) || next == nil {
		t.Fatalf("unread page 1 = %v (cursor %v), want [3 2] and a cursor", ids, next)
	}
	ids, next = unread(Page{Limit: 2, Cursor: *next})
	if !reflect.DeepEqual(ids, []string{subs[0]}) || next != nil {
		t.Errorf("unread page 2 = %v (cursor %v), want [1] and no cursor", ids, next)
	}
	list, _, err := st.UnreadChats(ctx, ws, Page{Limit: 1})
	if err != nil || len(list) != 1 || list[0].FirstName != "First 3" || list[0].WS != ws {
		t.Errorf("unread subscriber = %+v, %v; want the profile of subscriber 3", list, err)
	}

	// Read: off the tab. A new message: back on top.
	if err := st.MarkRead(ctx, ws, subs[1]); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}
	if card, err := st.GetCard(ctx, ws, subs[1]); err != nil || card.Unread {
		t.Errorf("card after MarkRead: unread %v, %v", card.Unread, err)
	}
	if ids, _ := unread(Page{}); !reflect.DeepEqual(ids, []string{subs[2], subs[0]}) {
		t.Errorf("unread after MarkRead = %v, want [3 1]", ids)
	}
	clock.Advance(10 * time.Minute)
	inbound(subs[0], "a3", t0.Add(10*time.Minute))
	inbound(subs[1], "b2", t0.Add(11*time.Minute))
	if ids, _ := unread(Page{}); !reflect.DeepEqual(ids, []string{subs[1], subs[0], subs[2]}) {
		t.Errorf("unread after new messages = %v, want [2 1 3]", ids)
	}
	if err := st.MarkRead(ctx, ws, "nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("MarkRead(missing) error = %v, want ErrNotFound", err)
	}
	if ids, _ := unread(Page{}); len(ids) != 3 {
		t.Errorf("MarkRead(missing) changed the tab: %v", ids)
	}
	// Another workspace's tab is empty.
	if list, next, err := st.UnreadChats(ctx, ws+"-other", Page{}); err != nil || len(list) != 0 || next != nil {
		t.Errorf("UnreadChats(other workspace) = %v, %v, %v", list, next, err)
	}
}

// A retry of a message that is not the newest must not count it again.
func TestRecordInboundRetryOfOlderMessage(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub := newSubscriber(t, st, ws, "1")
	m1 := engine.ChatMessage{ID: "a1", Direction: "inbound", Text: "one", CreatedAt: t0.Add(time.Minute)}
	m2 := engine.ChatMessage{ID: "a2", Direction: "inbound", Text: "two", CreatedAt: t0.Add(2 * time.Minute)}
	for _, m := range []engine.ChatMessage{m1, m2, m1} {
		if err := st.RecordInbound(ctx, ws, sub, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := mustSubscriber(t, st, ws, sub).InboundMessages; n != 2 {
		t.Errorf("inbound after messages a1, a2 and a retry of a1 = %d, want 2", n)
	}
	list, _, err := st.UnreadChats(ctx, ws, Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("UnreadChats = %v, %v", list, err)
	}
	card, err := st.GetCard(ctx, ws, sub)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := str(card.Extra, "isk"), ts(m2.CreatedAt)+"#"+sub; got != want {
		t.Errorf("inbox position after the retry of a1 = %q, want that of a2 %q", got, want)
	}
}

// The store has no method that writes a mention yet: the comment is written
// here the way a mention would be (a chat item of the subscriber, on the
// operator's Inbox partition) to check what Mentions reads.
func TestMentions(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	sub1, sub2 := newSubscriber(t, st, ws, "1"), newSubscriber(t, st, ws, "2")
	mention := func(sub, id, op, text string, at time.Time) engine.ChatMessage {
		item := map[string]types.AttributeValue{
			"pk": s(subPK(ws, sub)), "sk": s(chatSK(at, id)), "id": s(id), "direction": s("comment"),
			"text": s(text), "operator": s(op), "tunnel": s("webinar"), "block": s("b1"), "step_id": s("step-" + id),
			"created_at": s(ts(at)), "ipk": s(mentionPK(ws, op)), "isk": s(ts(at) + "#" + id),
		}
		putRaw(t, item)
		return engine.ChatMessage{ID: id, Direction: "comment", Text: text, Tunnel: "webinar", Block: "b1", StepID: "step-" + id, Operator: op, CreatedAt: at}
	}
	c1 := mention(sub1, "c1", "anna", "New lead Ann", t0.Add(time.Minute))
	c2 := mention(sub2, "c2", "anna", "New lead Bob", t0.Add(2*time.Minute))
	mention(sub2, "c3", "boris", "For Boris", t0.Add(3*time.Minute))

	var got []Mention
	p := Page{Limit: 1}
	var cursors []bool
	for i := 0; i < 4; i++ {
		ms, next, err := st.Mentions(ctx, ws, "anna", p)
		if err != nil {
			t.Fatalf("Mentions: %v", err)
		}
		got = append(got, ms...)
		cursors = append(cursors, next != nil)
		if next == nil {
			break
		}
		p.Cursor = *next
	}
	want := []Mention{{Message: c2, SubscriberID: sub2}, {Message: c1, SubscriberID: sub1}}
	if len(got) != len(want) {
		t.Fatalf("Mentions(anna) = %+v, want %+v", got, want)
	}
	for i := range want {
		sameTime(t, "mention created_at", got[i].Message.CreatedAt, want[i].Message.CreatedAt)
		got[i].Message.CreatedAt = want[i].Message.CreatedAt
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Mentions(anna) = %+v, want %+v (newest first)", got, want)
	}
	// Limit 1 over 2 mentions: a cursor after the first page, none after the
	// second, which is the last (SPEC 6: null on the last page, even a full one).
	if !reflect.DeepEqual(cursors, []bool{true, false}) {
		t.Errorf("cursor after each page = %v, want [true false]", cursors)
	}
	if ms, _, err := st.Mentions(ctx, ws, "boris", Page{}); err != nil || len(ms) != 1 || ms[0].Message.ID != "c3" || ms[0].SubscriberID != sub2 {
		t.Errorf("Mentions(boris) = %+v, %v", ms, err)
	}
	// The comment is part of the subscriber's chat too.
	if chat, _, err := st.Chat(ctx, ws, sub1, Page{}); err != nil || len(chat) != 1 || chat[0].Direction != "comment" || chat[0].Operator != "anna" {
		t.Errorf("Chat(sub1) = %+v, %v", chat, err)
	}
}

func TestEvents(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	if _, err := st.GetEvent(ctx, ws, "ev1"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetEvent(missing) error = %v, want ErrNotFound", err)
	}
	step := engine.Step{V: 1, ID: "s1", WS: ws, Sub: "sub", Tunnel: "webinar", Channel: "chat", Gen: 1, Block: "b1", At: t0}
	first := EventRecord{Answer: json.RawMessage(`{"subscriber_id":"sub","run":{"generation":1}}`), Steps: []engine.Outgoing{{Kind: engine.KindFlow, Step: step}}}
	got, err := st.PutEvent(ctx, ws, "ev1", first)
	if err != nil {
		t.Fatalf("PutEvent: %v", err)
	}
	sameJSON(t, "PutEvent(first)", got, first)

	second := EventRecord{Answer: json.RawMessage(`{"subscriber_id":"other"}`)}
	got, err = st.PutEvent(ctx, ws, "ev1", second)
	if err != nil {
		t.Fatalf("PutEvent(second): %v", err)
	}
	sameJSON(t, "PutEvent(second writer)", got, first)
	got, err = st.GetEvent(ctx, ws, "ev1")
	if err != nil || got.Enqueued {
		t.Fatalf("GetEvent = %+v, %v; want not enqueued", got, err)
	}
	sameJSON(t, "GetEvent", got, first)

	if err := st.MarkEventEnqueued(ctx, ws, "ev1"); err != nil {
		t.Fatalf("MarkEventEnqueued: %v", err)
	}
	enq := first
	enq.Enqueued = true
	got, err = st.GetEvent(ctx, ws, "ev1")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "GetEvent(enqueued)", got, enq)
	got, err = st.PutEvent(ctx, ws, "ev1", second)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "PutEvent after enqueue", got, enq)

	// An event without steps; and the same id in another workspace is another event.
	none := EventRecord{Answer: json.RawMessage(`{"subscriber_id":"x"}`)}
	if got, err := st.PutEvent(ctx, ws+"-other", "ev1", none); err != nil {
		t.Fatal(err)
	} else {
		sameJSON(t, "PutEvent(other workspace)", got, none)
	}
	got, err = st.GetEvent(ctx, ws+"-other", "ev1")
	if err != nil || len(got.Steps) != 0 || string(got.Answer) != string(none.Answer) || got.Enqueued {
		t.Errorf("GetEvent(other workspace) = %+v, %v", got, err)
	}
}

// Marking an unknown event must not make a record out of nothing: the later
// PutEvent of that id would then answer a broken record.
func TestMarkEventEnqueuedUnknown(t *testing.T) {
	st, _, ws := newStore(t)
	ctx := t.Context()
	err := st.MarkEventEnqueued(ctx, ws, "ghost")
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("MarkEventEnqueued(unknown) error = %v, want nil or ErrNotFound", err)
	}
	if got, err := st.GetEvent(ctx, ws, "ghost"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("GetEvent after marking an unknown event = %+v, %v; want ErrNotFound", got, err)
	}
	rec := EventRecord{Answer: json.RawMessage(`{"subscriber_id":"x"}`)}
	got, err := st.PutEvent(ctx, ws, "ghost", rec)
	if err != nil {
		t.Errorf("PutEvent after marking an unknown event: %v", err)
	} else {
		sameJSON(t, "PutEvent after marking an unknown event", got, rec)
	}
}
