package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/amocrm/amotest"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// memCRM is CRMStore in memory.
type memCRM struct {
	mu       sync.Mutex
	tags     map[string]string
	contacts map[string]int64
	leads    map[string][]int64
	intents  map[string][2]int64 // step -> lead, contact
	markers  map[string]string
	fail     error // every call fails with it when set
}

func newMemCRM() *memCRM {
	return &memCRM{
		tags:     map[string]string{"lead": "Lead", "vip": "VIP client"},
		contacts: map[string]int64{}, leads: map[string][]int64{},
		intents: map[string][2]int64{}, markers: map[string]string{},
	}
}

func (m *memCRM) TagNames(ctx context.Context, ws string) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tags, m.fail
}

func (m *memCRM) SetAmoContact(ctx context.Context, ws, sub string, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.contacts[sub] = id
	return m.fail
}

func (m *memCRM) AddAmoLead(ctx context.Context, ws, sub string, leadID, contactID int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if !slices.Contains(m.leads[sub], leadID) {
		m.leads[sub] = append(m.leads[sub], leadID)
	}
	if contactID != 0 {
		m.contacts[sub] = contactID
	}
	return nil
}

func (m *memCRM) BeginAmoDeal(ctx context.Context, ws, stepID, marker string) (bool, int64, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, 0, 0, m.fail
	}
	if _, ok := m.markers[stepID]; ok {
		r := m.intents[stepID]
		return true, r[0], r[1], nil
	}
	m.markers[stepID] = marker
	return false, 0, 0, nil
}

func (m *memCRM) FinishAmoDeal(ctx context.Context, ws, stepID string, leadID, contactID int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.intents[stepID] = [2]int64{leadID, contactID}
	return m.fail
}

var amoQuiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// amoAccount is a local amoCRM account with the client the actions use.
type amoAccount struct {
	srv    *amotest.Server
	tokens *amocrm.MemoryTokenStore
	client *amocrm.Client
}

func newAmoAccount(t *testing.T, opts amotest.Options) *amoAccount {
	t.Helper()
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	srv := amotest.New(opts)
	t.Cleanup(srv.Close)
	ts := amocrm.NewMemoryTokenStore(srv.IssueTokens())
	return &amoAccount{srv: srv, tokens: ts, client: &amocrm.Client{
		BaseURL: srv.URL, Tokens: ts, Logger: amoQuiet, Limiter: rate.NewLimiter(rate.Inf, 1),
		Creds: amocrm.Credentials{ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), RedirectURI: srv.RedirectURI()},
	}}
}

func (a *amoAccount) clients(ctx context.Context, ws, id string) (*amocrm.Client, error) {
	if id != "amo" {
		return nil, fmt.Errorf("integration %q: %w", id, engine.ErrNotFound)
	}
	return a.client, nil
}

func amoAnn() *engine.Subscriber {
	return &engine.Subscriber{ID: "sub1", WS: "ws1", FirstName: "Ann", LastName: "Lee",
		Phone: "+15550001", Email: "ann@example.com", Tags: []string{"lead", "vip", "deleted-tag"}}
}

func amoActionCtx(sub *engine.Subscriber, stepID string, a tunnel.Action) *engine.ActionContext {
	return &engine.ActionContext{
		Step:   engine.Step{V: 1, ID: stepID, WS: sub.WS, Sub: sub.ID, Tunnel: "webinar", Channel: "chat", Gen: 1, Block: "act"},
		Tunnel: &tunnel.Tunnel{Name: "Webinar"}, Action: a, Subscriber: sub, Now: time.Now(), Attempt: 1,
	}
}

var (
	contactAction = tunnel.Action{Type: "amo_contact", Integration: "amo"}
	dealAction    = tunnel.Action{Type: "amo_deal", Integration: "amo", PipelineID: 7001, StatusID: 7002}
)

func TestAmoContactCreateThenUpdate(t *testing.T) {
	acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
	run := CRM(st, acc.clients)["amo_contact"]
	sub := amoAnn()
	out, err := run(t.Context(), amoActionCtx(sub, "s1", contactAction))
	if err != nil || out.Status != engine.StatusDone || out.Detail["contact"] != "created" {
		t.Fatalf("first run = %+v, %v", out, err)
	}
	cs := acc.srv.Contacts()
	if len(cs) != 1 {
		t.Fatalf("%d contacts, want 1", len(cs))
	}
	c := cs[0]
	if c.FirstName != "Ann" || c.LastName != "Lee" || c.Name != "Ann Lee" || len(c.Phones) != 1 || c.Phones[0].Value != "+15550001" ||
		len(c.Emails) != 1 || c.Emails[0].Value != "ann@example.com" || !slices.Equal(c.Tags, []string{"Lead", "VIP client"}) {
		t.Fatalf("contact at amoCRM = %+v; want Ann Lee, phone, email, tags by catalog name", c)
	}
	if st.contacts["sub1"] != c.ID || out.Detail["contact_id"] != c.ID {
		t.Fatalf("stored contact %d, detail %v; want %d", st.contacts["sub1"], out.Detail, c.ID)
	}

	// Linked now: the next run updates that contact with the current tags.
	sub.CRM.AmoContactID = c.ID
	sub.Tags = []string{"lead"}
	sub.LastName = "Lee-Smith"
	out, err = run(t.Context(), amoActionCtx(sub, "s2", contactAction))
	if err != nil || out.Detail["contact"] != "updated" || out.Detail["contact_id"] != c.ID {
		t.Fatalf("second run = %+v, %v", out, err)
	}
	got, _ := acc.srv.Contact(c.ID)
	if len(acc.srv.Contacts()) != 1 || got.LastName != "Lee-Smith" || !slices.Equal(got.Tags, []string{"Lead"}) {
		t.Fatalf("after update: %d contacts, %+v", len(acc.srv.Contacts()), got)
	}
}

func TestAmoContactFindsOrRecreates(t *testing.T) {
	acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
	run := CRM(st, acc.clients)["amo_contact"]
	// Someone already has this person in amoCRM (another phone spelling).
	existing := acc.srv.AddContact(amotest.Contact{Name: "A. Lee", Phones: []amotest.Value{{Value: "1 (555) 0001", EnumCode: "WORK"}}})
	acc.srv.AddContact(amotest.Contact{Name: "Other", Emails: []amotest.Value{{Value: "ann@example.com.au", EnumCode: "WORK"}}})
	sub := amoAnn()
	sub.Phone = "+1 555 0001"
	out, err := run(t.Context(), amoActionCtx(sub, "s1", contactAction))
	if err != nil || out.Detail["contact"] != "matched" || out.Detail["contact_id"] != existing {
		t.Fatalf("run = %+v, %v; want the existing contact %d matched", out, err, existing)
	}
	// A linked contact deleted in amoCRM: a new one is made.
	sub = amoAnn()
	sub.Phone, sub.Email = "", "nobody@example.com"
	sub.CRM.AmoContactID = 999999
	out, err = run(t.Context(), amoActionCtx(sub, "s2", contactAction))
	if err != nil || out.Detail["contact"] != "created" || out.Detail["contact_id"] == int64(999999) {
		t.Fatalf("run with a deleted link = %+v, %v", out, err)
	}
	// Neither name, phone nor email: still a usable name.
	sub = &engine.Subscriber{ID: "sub9", WS: "ws1"}
	out, err = run(t.Context(), amoActionCtx(sub, "s3", contactAction))
	if err != nil || out.Status != engine.StatusDone {
		t.Fatalf("anonymous = %+v, %v", out, err)
	}
	c, _ := acc.srv.Contact(out.Detail["contact_id"].(int64))
	if c.Name != "Subscriber sub9" {
		t.Fatalf("anonymous contact name %q", c.Name)
	}
}

// A crash after amoCRM created the contact (its answer lost): the replay
// finds it by phone and email instead of creating a second one.
func TestAmoContactReplayAfterLostAnswer(t *testing.T) {
	acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
	run := CRM(st, acc.clients)["amo_contact"]
	var dropped sync.Once
	acc.srv.SetAfterCreate(func(amotest.Created) bool {
		drop := false
		dropped.Do(func() { drop = true })
		return drop
	})
	_, err := run(t.Context(), amoActionCtx(amoAnn(), "s1", contactAction))
	if !amocrm.Retryable(err) {
		t.Fatalf("lost answer: err = %v, want a retryable error", err)
	}
	out, err := run(t.Context(), amoActionCtx(amoAnn(), "s1", contactAction))
	if err != nil || out.Detail["contact"] != "matched" || len(acc.srv.Contacts()) != 1 {
		t.Fatalf("replay = %+v, %v; %d contacts, want 1", out, err, len(acc.srv.Contacts()))
	}
}

func TestAmoDealWithNewContact(t *testing.T) {
	acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
	run := CRM(st, acc.clients)["amo_deal"]
	out, err := run(t.Context(), amoActionCtx(amoAnn(), "step-1", dealAction))
	if err != nil || out.Status != engine.StatusDone || out.Detail["deal"] != "created" {
		t.Fatalf("deal = %+v, %v", out, err)
	}
	leads, contacts := acc.srv.Leads(), acc.srv.Contacts()
	if len(leads) != 1 || len(contacts) != 1 {
		t.Fatalf("%d leads, %d contacts; want 1 and 1", len(leads), len(contacts))
	}
	l, c := leads[0], contacts[0]
	marker := DealMarker("ws1", "step-1")
	if l.PipelineID != 7001 || l.StatusID != 7002 || !slices.Equal(l.ContactIDs, []int64{c.ID}) || l.Name != "Webinar: Ann ["+marker+"]" {
		t.Fatalf("lead = %+v (contact %d)", l, c.ID)
	}
	if c.Name != "Ann Lee" || !slices.Equal(c.Tags, []string{"Lead", "VIP client"}) || len(c.Phones) != 1 || len(c.Emails) != 1 {
		t.Fatalf("contact = %+v", c)
	}
	if out.Detail["lead_id"] != l.ID || out.Detail["contact_id"] != c.ID || !slices.Equal(st.leads["sub1"], []int64{l.ID}) || st.contacts["sub1"] != c.ID {
		t.Fatalf("detail %v; stored leads %v contact %d", out.Detail, st.leads["sub1"], st.contacts["sub1"])
	}
	if st.intents["step-1"] != [2]int64{l.ID, c.ID} {
		t.Fatalf("intent result %v", st.intents["step-1"])
	}
	// The same step again (a duplicate the engine let through): nothing new.
	before := len(acc.srv.Requests())
	out, err = run(t.Context(), amoActionCtx(amoAnn(), "step-1", dealAction))
	if err != nil || out.Detail["deal"] != "recorded" || out.Detail["lead_id"] != l.ID || len(acc.srv.Leads()) != 1 {
		t.Fatalf("repeat = %+v, %v; %d leads", out, err, len(acc.srv.Leads()))
	}
	if n := len(acc.srv.Requests()) - before; n != 0 {
		t.Fatalf("a recorded deal made %d requests, want 0", n)
	}
}

func TestAmoDealLinkedContact(t *testing.T) {
	acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
	run := CRM(st, acc.clients)["amo_deal"]
	sub := amoAnn()
	sub.CRM.AmoContactID = acc.srv.AddContact(amotest.Contact{Name: "Ann Lee"})
	a := dealAction
	a.Name = "Consulting"
	out, err := run(t.Context(), amoActionCtx(sub, "step-1", a))
	if err != nil || out.Detail["contact_id"] != sub.CRM.AmoContactID {
		t.Fatalf("deal = %+v, %v", out, err)
	}
	if acc.srv.Count("POST", "/api/v4/leads") != 1 || acc.srv.Count("POST", "/api/v4/leads/complex") != 0 || len(acc.srv.Contacts()) != 1 {
		t.Fatalf("want one POST /leads linked to the contact, no complex call, no new contact: %v", acc.srv.Requests())
	}
	l := acc.srv.Leads()[0]
	if !slices.Equal(l.ContactIDs, []int64{sub.CRM.AmoContactID}) || !strings.HasPrefix(l.Name, "Consulting [tn-") {
		t.Fatalf("lead = %+v", l)
	}
	// A linked contact amoCRM no longer has: the deal comes with a new one.
	sub.CRM.AmoContactID = 424242
	out, err = run(t.Context(), amoActionCtx(sub, "step-2", a))
	if err != nil || out.Status != engine.StatusDone || out.Detail["contact_id"] == int64(424242) || len(acc.srv.Contacts()) != 2 {
		t.Fatalf("deal with a dead link = %+v, %v; %d contacts", out, err, len(acc.srv.Contacts()))
	}
}

// amoCRM created the deal but the answer was lost (a crash or a dropped
// connection after the side effect): the replay finds the lead by its marker.
func TestAmoDealReplayAfterLostAnswer(t *testing.T) {
	for _, linked := range []bool{false, true} {
		t.Run(fmt.Sprint("linked=", linked), func(t *testing.T) {
			acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
			run := CRM(st, acc.clients)["amo_deal"]
			sub := amoAnn()
			if linked {
				sub.CRM.AmoContactID = acc.srv.AddContact(amotest.Contact{Name: "Ann"})
			}
			var once sync.Once
			acc.srv.SetAfterCreate(func(amotest.Created) bool {
				drop := false
				once.Do(func() { drop = true })
				return drop
			})
			if _, err := run(t.Context(), amoActionCtx(sub, "step-1", dealAction)); !amocrm.Retryable(err) {
				t.Fatalf("lost answer: %v, want retryable", err)
			}
			out, err := run(t.Context(), amoActionCtx(sub, "step-1", dealAction))
			leads := acc.srv.Leads()
			if err != nil || out.Detail["deal"] != "found" || len(leads) != 1 || out.Detail["lead_id"] != leads[0].ID {
				t.Fatalf("replay = %+v, %v; leads %+v", out, err, leads)
			}
			if out.Detail["contact_id"] != leads[0].ContactIDs[0] || st.contacts["sub1"] != leads[0].ContactIDs[0] {
				t.Fatalf("contact: detail %v, stored %d, lead's %v", out.Detail["contact_id"], st.contacts["sub1"], leads[0].ContactIDs)
			}
			// A replay whose first attempt never reached amoCRM creates the deal.
			st.markers["step-2"] = DealMarker("ws1", "step-2")
			out, err = run(t.Context(), amoActionCtx(sub, "step-2", dealAction))
			if err != nil || out.Detail["deal"] != "created" || len(acc.srv.Leads()) != 2 {
				t.Fatalf("resumed without a lead = %+v, %v", out, err)
			}
		})
	}
}

func TestAmoErrors(t *testing.T) {
	t.Run("validation: failed with amoCRM's message", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		a := dealAction
		a.StatusID = 99999
		out, err := CRM(st, acc.clients)["amo_deal"](t.Context(), amoActionCtx(amoAnn(), "s", a))
		if err != nil || out.Status != engine.StatusFailed || !strings.Contains(out.Reason, "status_id") ||
			!strings.Contains(out.Reason, "The value you selected is not a valid choice.") {
			t.Fatalf("= %+v, %v", out, err)
		}
	})
	t.Run("429: retried after Retry-After", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		acc.srv.FailNext(429, 1)
		_, err := CRM(st, acc.clients)["amo_contact"](t.Context(), amoActionCtx(amoAnn(), "s", contactAction))
		var ra interface{ RetryAfter() time.Duration }
		if !errors.Is(err, amocrm.ErrRateLimited) || !errors.As(err, &ra) || ra.RetryAfter() != time.Second {
			t.Fatalf("err = %v, want rate limited with Retry-After 1s", err)
		}
	})
	t.Run("5xx: retried", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		acc.srv.FailNext(503, 1)
		if _, err := CRM(st, acc.clients)["amo_deal"](t.Context(), amoActionCtx(amoAnn(), "s", dealAction)); !errors.Is(err, amocrm.ErrTransient) {
			t.Fatalf("err = %v, want transient", err)
		}
	})
	t.Run("amoAccount: failed", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		acc.srv.SetAccountError("Account subscription has expired")
		out, err := CRM(st, acc.clients)["amo_contact"](t.Context(), amoActionCtx(amoAnn(), "s", contactAction))
		if err != nil || out.Status != engine.StatusFailed || !strings.Contains(out.Reason, "subscription has expired") {
			t.Fatalf("= %+v, %v", out, err)
		}
	})
	t.Run("revoked: failed with the reconnect message, once", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		acc.srv.RevokeAll()
		for i := range 3 {
			out, err := CRM(st, acc.clients)["amo_deal"](t.Context(), amoActionCtx(amoAnn(), fmt.Sprint("s", i), dealAction))
			if err != nil || out.Status != engine.StatusFailed || !strings.Contains(out.Reason, `amoCRM integration "amo" must be reconnected`) ||
				!strings.Contains(out.Reason, "reconnect the amoCRM integration") {
				t.Fatalf("run %d = %+v, %v", i, out, err)
			}
		}
		if n := acc.srv.RefreshCalls(); n != 1 {
			t.Fatalf("%d refresh attempts, want 1 (no storm)", n)
		}
	})
	t.Run("integration deleted: skipped", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		a := contactAction
		a.Integration = "gone"
		out, err := CRM(st, acc.clients)["amo_contact"](t.Context(), amoActionCtx(amoAnn(), "s", a))
		if err != nil || out.Status != engine.StatusSkipped || out.Reason != `integration "gone" no longer exists` {
			t.Fatalf("= %+v, %v", out, err)
		}
	})
	t.Run("store failure: retried", func(t *testing.T) {
		acc, st := newAmoAccount(t, amotest.Options{}), newMemCRM()
		st.fail = errors.New("dynamodb throttled")
		if _, err := CRM(st, acc.clients)["amo_deal"](t.Context(), amoActionCtx(amoAnn(), "s", dealAction)); err == nil || len(acc.srv.Leads()) != 0 {
			t.Fatalf("err = %v, leads %d; want an error before anything is created", err, len(acc.srv.Leads()))
		}
	})
}

func TestDealNameAndMarker(t *testing.T) {
	m := DealMarker("ws", "step")
	if len(m) != 15 || !strings.HasPrefix(m, "tn-") || m != DealMarker("ws", "step") || m == DealMarker("ws", "step2") || m == DealMarker("ws2", "step") {
		t.Fatalf("marker %q: want tn- and 12 chars, stable, distinct per step and workspace", m)
	}
	long := strings.Repeat("ж", 300)
	got := withMarker(long, m)
	if n := len([]rune(got)); n != maxLeadName || !strings.HasSuffix(got, "… ["+m+"]") {
		t.Fatalf("long name: %d runes, %q", n, got[len(got)-30:])
	}
	if got := withMarker("Webinar: Ann", m); got != "Webinar: Ann ["+m+"]" {
		t.Fatalf("short name: %q", got)
	}
	for _, c := range []struct {
		sub  engine.Subscriber
		name string
		want string
	}{
		{engine.Subscriber{ID: "s", FirstName: "Ann"}, "", "Webinar: Ann"},
		{engine.Subscriber{ID: "s", Email: "a@x"}, "", "Webinar: a@x"},
		{engine.Subscriber{ID: "s"}, "", "Webinar: s"},
		{engine.Subscriber{ID: "s", FirstName: "Ann"}, "  Plain name ", "Plain name"},
	} {
		ac := amoActionCtx(&c.sub, "x", tunnel.Action{Type: "amo_deal", Name: c.name})
		got, err := dealName(t.Context(), ac)
		if err != nil || got != c.want {
			t.Errorf("dealName(%+v, %q) = %q, %v; want %q", c.sub, c.name, got, err, c.want)
		}
	}
}
