package devstack_test

// End-to-end tests of issue 5 (amoCRM): both actions through the whole local
// system against amotest, a local amoCRM account that follows the contract
// (single-use refresh tokens, 429 on bursts, validation errors), served on a
// loopback port the deployment is allowed to call.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/tunnels/tunnels/shared/actions"
	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/amocrm/amotest"
	"github.com/tunnels/tunnels/shared/app"
	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/store"
)

// amoPorts are allowed loopback addresses whose amoCRM server has closed: the
// next server listens there again, so these tests use few of the reserved
// ports however many servers they start.
var amoPorts struct {
	mu   sync.Mutex
	free []string
}

// allowedListener answers a listener on a port the deployment may call.
func allowedListener(t *testing.T) net.Listener {
	t.Helper()
	amoPorts.mu.Lock()
	for len(amoPorts.free) > 0 {
		addr := amoPorts.free[0]
		amoPorts.free = amoPorts.free[1:]
		if ln, err := net.Listen("tcp", addr); err == nil {
			amoPorts.mu.Unlock()
			return ln
		}
	}
	amoPorts.mu.Unlock()
	select {
	case ln := <-spare:
		return ln
	default:
		t.Fatal("no reserved loopback port left; raise spareCount")
		return nil
	}
}

func releasePort(addr string) {
	amoPorts.mu.Lock()
	amoPorts.free = append(amoPorts.free, addr)
	amoPorts.mu.Unlock()
}

// newAmo starts a local amoCRM account on an allowed port.
func newAmo(t *testing.T, opts amotest.Options) *amotest.Server {
	t.Helper()
	opts.Listener = allowedListener(t)
	srv := amotest.New(opts)
	addr := srv.Addr()
	t.Cleanup(func() {
		srv.Close()
		releasePort(addr)
	})
	return srv
}

// amoWorkspace is a workspace with an amoCRM integration "amo" connected to srv.
func amoWorkspace(t *testing.T, name string, srv *amotest.Server, tok amocrm.Tokens) *api {
	t.Helper()
	a := newWorkspace(t, name)
	a.must(http.MethodPut, "/v1/tags/lead", map[string]string{"name": "Lead"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tags/vip", map[string]string{"name": "VIP client"}, http.StatusOK, nil)
	a.putAmo(srv, tok)
	return a
}

// putAmo (re)connects the integration "amo" with tokens; it checks that no
// secret comes back.
func (a *api) putAmo(srv *amotest.Server, tok amocrm.Tokens) map[string]any {
	a.t.Helper()
	body := map[string]any{
		"kind": "amocrm", "name": "Sales", "base_url": srv.URL, "client_id": srv.ClientID(),
		"client_secret": srv.ClientSecret(), "redirect_uri": srv.RedirectURI(),
		"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken,
		"expires_at": tok.ExpiresAt.UTC().Format(time.RFC3339),
	}
	code, raw := a.do(http.MethodPut, "/v1/integrations/amo", body)
	if code != http.StatusOK {
		a.t.Fatalf("PUT /v1/integrations/amo = %d %s", code, raw)
	}
	for _, secret := range []string{srv.ClientSecret(), tok.AccessToken, tok.RefreshToken} {
		if strings.Contains(string(raw), secret) {
			a.t.Fatalf("PUT /v1/integrations/amo answered a secret: %s", raw)
		}
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

var amoSubscriberN struct {
	mu sync.Mutex
	n  int
}

// amoSubscribe subscribes a new person to a tunnel and answers the subscriber id.
func (a *api) amoSubscribe(tunnel, first string) string {
	a.t.Helper()
	amoSubscriberN.mu.Lock()
	amoSubscriberN.n++
	n := amoSubscriberN.n
	amoSubscriberN.mu.Unlock()
	var out struct {
		SubscriberID string `json:"subscriber_id"`
	}
	a.must(http.MethodPost, "/v1/events", map[string]any{
		"event_id": fmt.Sprintf("amo-%d", n), "type": "subscribe", "tunnel": tunnel,
		"subscriber": map[string]string{
			"channel": "telegram", "external_id": fmt.Sprintf("amo-%d", n), "first_name": first, "last_name": "Lee",
			"email": fmt.Sprintf("%s.%d@example.com", strings.ToLower(first), n), "phone": fmt.Sprintf("+1555%07d", n),
		},
	}, http.StatusAccepted, &out)
	return out.SubscriberID
}

// amoSubscribeMany subscribes n people at once (from the test goroutine's
// point of view: the events are sent concurrently).
func (a *api) amoSubscribeMany(tunnel, first string, n int) []string {
	a.t.Helper()
	subs := make([]string, n)
	errs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		amoSubscriberN.mu.Lock()
		amoSubscriberN.n++
		k := amoSubscriberN.n
		amoSubscriberN.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, raw := a.do(http.MethodPost, "/v1/events", map[string]any{
				"event_id": fmt.Sprintf("amo-%d", k), "type": "subscribe", "tunnel": tunnel,
				"subscriber": map[string]string{"channel": "telegram", "external_id": fmt.Sprintf("amo-%d", k),
					"first_name": fmt.Sprintf("%s%d", first, i), "email": fmt.Sprintf("p%d@example.com", k), "phone": fmt.Sprintf("+1555%07d", k)},
			})
			var out struct {
				SubscriberID string `json:"subscriber_id"`
			}
			if code != http.StatusAccepted || json.Unmarshal(raw, &out) != nil {
				errs[i] = fmt.Sprintf("event %d: %d %s", k, code, raw)
			}
			subs[i] = out.SubscriberID
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			a.t.Fatal(e)
		}
	}
	return subs
}

// amoStep waits for the journey entry of an action and answers it.
func (a *api) amoStep(sub, tunnel, block string, action int, within time.Duration) journeyStep {
	a.t.Helper()
	var s journeyStep
	eventually(a.t, within, fmt.Sprintf("%s/%s#%d in the journey", tunnel, block, action), func() (bool, string) {
		j := a.journey(sub)
		var ok bool
		s, ok = find(j, tunnel, block, action)
		return ok, describe(j)
	})
	return s
}

type crmCard struct {
	CRM struct {
		AmoContactID *int64  `json:"amo_contact_id"`
		AmoLeadIDs   []int64 `json:"amo_lead_ids"`
	} `json:"crm"`
	Tags []string `json:"tags"`
}

func (a *api) crmCard(sub string) crmCard {
	a.t.Helper()
	var c crmCard
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	return c
}

func amoNum(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// TestAmoContactAndDeal: both actions end to end — the contact with the
// subscriber's tag names, the deal linked to it, the ids on the card and in
// the journey; a deal for a subscriber with no contact comes with a new one;
// the pipelines endpoint; what PUT and a tunnel save refuse.
func TestAmoContactAndDeal(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	a := amoWorkspace(t, "amoCRM", srv, srv.IssueTokens())

	// The crm function paces itself for the template's concurrency.
	fn, ok := sys.Resources.Function("CrmFunction")
	if !ok || len(fn.SQS) != 1 || fn.SQS[0].MaximumConcurrency != app.CRMConcurrency {
		t.Fatalf("CrmFunction's MaximumConcurrency %+v, want app.CRMConcurrency = %d", fn.SQS, app.CRMConcurrency)
	}

	// Saving a tunnel with an unknown integration fails, at its pointer.
	p := a.problem(http.MethodPut, "/v1/tunnels/bad", json.RawMessage(`{"name": "Bad", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "amo_contact", "integration": "bitrix"}]}]}`), http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/blocks/0/actions/0/integration" || !strings.Contains(p.Errors[0].Detail, `unknown integration "bitrix"`) {
		t.Fatalf("unknown integration: %+v", p)
	}

	a.must(http.MethodPut, "/v1/tunnels/crm", json.RawMessage(`{"name": "Webinar", "entry": "tag", "blocks": [
		{"id": "tag", "type": "action", "actions": [{"type": "add_tags", "tags": ["lead", "vip"]}], "next": ["act"]},
		{"id": "act", "type": "action", "actions": [
			{"type": "amo_contact", "integration": "amo"},
			{"type": "amo_deal", "integration": "amo", "pipeline_id": 7001, "status_id": 7002, "name": "Webinar: {{subscriber.first_name}} {{subscriber.last_name}}"}]}]}`),
		http.StatusOK, nil)
	sub := a.amoSubscribe("crm", "Ann")
	contactStep := a.amoStep(sub, "crm", "act", 0, 30*time.Second)
	dealStep := a.amoStep(sub, "crm", "act", 1, 30*time.Second)
	if contactStep.Status != "done" || dealStep.Status != "done" {
		t.Fatalf("contact %s %q, deal %s %q", contactStep.Status, contactStep.Reason, dealStep.Status, dealStep.Reason)
	}
	contacts, leads := srv.Contacts(), srv.Leads()
	if len(contacts) != 1 || len(leads) != 1 {
		t.Fatalf("%d contacts, %d leads at amoCRM; want 1 and 1", len(contacts), len(leads))
	}
	c, l := contacts[0], leads[0]
	if c.FirstName != "Ann" || c.LastName != "Lee" || len(c.Phones) != 1 || len(c.Emails) != 1 || !strings.HasPrefix(c.Emails[0].Value, "ann.") {
		t.Errorf("contact at amoCRM: %+v", c)
	}
	if got := slices.Sorted(slices.Values(c.Tags)); !slices.Equal(got, []string{"Lead", "VIP client"}) {
		t.Errorf("contact tags %v, want the catalog names [Lead VIP client]", c.Tags)
	}
	marker := actions.DealMarker(a.ws, dealStep.StepID)
	if l.PipelineID != 7001 || l.StatusID != 7002 || !slices.Equal(l.ContactIDs, []int64{c.ID}) || l.Name != "Webinar: Ann Lee ["+marker+"]" {
		t.Errorf("lead at amoCRM: %+v (contact %d)", l, c.ID)
	}
	if srv.Count("POST", "/api/v4/leads") != 1 || srv.Count("POST", "/api/v4/leads/complex") != 0 {
		t.Errorf("the deal of a linked contact must be POST /leads, not complex")
	}
	if amoNum(contactStep.Detail["contact_id"]) != c.ID || contactStep.Detail["contact"] != "created" ||
		amoNum(dealStep.Detail["lead_id"]) != l.ID || amoNum(dealStep.Detail["contact_id"]) != c.ID || dealStep.Detail["deal"] != "created" {
		t.Errorf("journey details: contact %v, deal %v", contactStep.Detail, dealStep.Detail)
	}
	card := a.crmCard(sub)
	if card.CRM.AmoContactID == nil || *card.CRM.AmoContactID != c.ID || !slices.Equal(card.CRM.AmoLeadIDs, []int64{l.ID}) {
		t.Errorf("card crm = %+v, want contact %d, leads [%d]", card.CRM, c.ID, l.ID)
	}

	// No linked contact: the deal comes with a new contact in one call, and
	// the default name.
	a.must(http.MethodPut, "/v1/tunnels/deal", json.RawMessage(`{"name": "Consulting", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "amo_deal", "integration": "amo", "pipeline_id": 7101, "status_id": 7102}]}]}`),
		http.StatusOK, nil)
	sub2 := a.amoSubscribe("deal", "Bob")
	d2 := a.amoStep(sub2, "deal", "act", 0, 30*time.Second)
	if d2.Status != "done" || srv.Count("POST", "/api/v4/leads/complex") != 1 {
		t.Fatalf("deal without contact: %+v", d2)
	}
	l2, ok := srv.Contact(amoNum(d2.Detail["contact_id"]))
	if !ok || l2.FirstName != "Bob" {
		t.Errorf("the complex call's contact: %+v", l2)
	}
	card2 := a.crmCard(sub2)
	if card2.CRM.AmoContactID == nil || *card2.CRM.AmoContactID != l2.ID || len(card2.CRM.AmoLeadIDs) != 1 || card2.CRM.AmoLeadIDs[0] != amoNum(d2.Detail["lead_id"]) {
		t.Errorf("card2 crm = %+v, detail %v", card2.CRM, d2.Detail)
	}
	if got := srv.Leads()[1].Name; !strings.HasPrefix(got, "Consulting: Bob [tn-") {
		t.Errorf("default deal name %q", got)
	}

	// The account's pipelines and stages, for a tunnel editor.
	var pl struct {
		Pipelines []struct {
			ID       int64  `json:"id"`
			Name     string `json:"name"`
			Statuses []struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
				Sort int    `json:"sort"`
			} `json:"statuses"`
		} `json:"pipelines"`
	}
	a.must(http.MethodGet, "/v1/integrations/amo/pipelines", nil, http.StatusOK, &pl)
	var got []string
	for _, p := range pl.Pipelines {
		for _, s := range p.Statuses {
			got = append(got, fmt.Sprintf("%d %s/%d %s %d", p.ID, p.Name, s.ID, s.Name, s.Sort))
		}
	}
	want := []string{
		"7001 Sales/7000 Incoming leads 10", "7001 Sales/7002 New 20", "7001 Sales/7003 Negotiation 30",
		"7001 Sales/142 Won 10000", "7001 Sales/143 Lost 11000",
		"7101 Partners/7100 Incoming leads 10", "7101 Partners/7102 New 20", "7101 Partners/142 Won 10000", "7101 Partners/143 Lost 11000",
	}
	if !slices.Equal(got, want) {
		t.Errorf("pipelines =\n  %q\nwant\n  %q", got, want)
	}
	a.problem(http.MethodGet, "/v1/integrations/nope/pipelines", nil, http.StatusNotFound, "not_found")

	// GET never answers a secret either; connected, with the token's expiry.
	var integ map[string]any
	a.must(http.MethodGet, "/v1/integrations/amo", nil, http.StatusOK, &integ)
	if integ["connected"] != true || integ["expires_at"] == nil {
		t.Errorf("integration view %v", integ)
	}
	_, raw := a.do(http.MethodGet, "/v1/integrations", nil)
	if strings.Contains(string(raw), srv.ClientSecret()) || strings.Contains(string(raw), "access_token") || strings.Contains(string(raw), "refresh_token") {
		t.Errorf("the list answers secrets: %s", raw)
	}

	// What PUT refuses.
	valid := map[string]any{"kind": "amocrm", "name": "S", "base_url": srv.URL, "client_id": "c", "redirect_uri": "https://app.example/cb"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range valid {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	for _, c := range []struct {
		body    map[string]any
		pointer string
	}{
		{with("base_url", "http://169.254.169.254"), "/base_url"},
		{with("base_url", "https://10.0.0.7"), "/base_url"},
		{with("base_url", srv.URL+"/api/v4"), "/base_url"},
		{with("expires_at", "2030-01-01T00:00:00Z"), "/expires_at"},
		{with("refresh_token", "r-only"), "/client_secret"},
		{with("access_token", "two words"), "/access_token"},
		{with("redirect_uri", "not a url"), "/redirect_uri"},
	} {
		p := a.problem(http.MethodPut, "/v1/integrations/other", c.body, http.StatusBadRequest, "validation_failed")
		if len(p.Errors) == 0 || p.Errors[0].Pointer != c.pointer {
			t.Errorf("PUT %v: errors %+v, want one at %s", c.body, p.Errors, c.pointer)
		}
		if strings.Contains(p.Detail+fmt.Sprint(p.Errors), "two words") || strings.Contains(p.Detail+fmt.Sprint(p.Errors), "r-only") {
			t.Errorf("a refusal repeats the token: %+v", p)
		}
	}
	a.problem(http.MethodGet, "/v1/integrations/other", nil, http.StatusNotFound, "not_found")
}

// TestAmoPipelinesUnreachable: an account that does not answer, and one
// whose address the deployment does not allow (saved under another policy).
func TestAmoPipelinesUnreachable(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	a := amoWorkspace(t, "amoCRM unreachable", srv, srv.IssueTokens())
	srv.Close() // the allowed port answers nothing now
	p := a.problem(http.MethodGet, "/v1/integrations/amo/pipelines", nil, http.StatusUnprocessableEntity, "request_failed")
	if !strings.Contains(p.Detail, "could not be reached") {
		t.Errorf("detail %q", p.Detail)
	}
	for _, base := range []string{"https://10.1.2.3", "http://127.0.0.1:9"} {
		doc, _ := json.Marshal(map[string]string{"kind": "amocrm", "name": "Old", "base_url": base, "client_id": "c", "redirect_uri": "https://x/cb"})
		if _, err := sys.Store.PutIntegration(context.Background(), a.ws, store.Entity{Kind: store.KindIntegration, ID: "old", Doc: doc},
			store.TokenPatch{AccessToken: "a", RefreshToken: "r"}); err != nil {
			t.Fatal(err)
		}
		p = a.problem(http.MethodGet, "/v1/integrations/old/pipelines", nil, http.StatusUnprocessableEntity, "destination_refused")
		if !strings.Contains(p.Detail, "refused") {
			t.Errorf("%s: detail %q", base, p.Detail)
		}
	}
}

// TestAmoTokenExpiryMidRun: the access token expires between two steps; the
// second refreshes it once, stores the rotated pair, and the deal is made. A
// later PUT of the spent tokens is refused.
func TestAmoTokenExpiryMidRun(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	first := srv.IssueTokens()
	a := amoWorkspace(t, "amoCRM expiry", srv, first)
	a.must(http.MethodPut, "/v1/tunnels/exp", json.RawMessage(`{"name": "Expiry", "entry": "c", "blocks": [
		{"id": "c", "type": "action", "actions": [{"type": "amo_contact", "integration": "amo"}], "next": ["wait"]},
		{"id": "wait", "type": "delay", "seconds": 3, "next": ["d"]},
		{"id": "d", "type": "action", "actions": [{"type": "amo_deal", "integration": "amo", "pipeline_id": 7001, "status_id": 7003}]}]}`),
		http.StatusOK, nil)
	sub := a.amoSubscribe("exp", "Eve")
	if s := a.amoStep(sub, "exp", "c", 0, 30*time.Second); s.Status != "done" {
		t.Fatalf("contact step %+v", s)
	}
	srv.Expire() // mid-run
	var before map[string]any
	a.must(http.MethodGet, "/v1/integrations/amo", nil, http.StatusOK, &before)
	d := a.amoStep(sub, "exp", "d", 0, 30*time.Second)
	if d.Status != "done" || len(srv.Leads()) != 1 {
		t.Fatalf("deal after expiry: %+v, %d leads", d, len(srv.Leads()))
	}
	if n := srv.RefreshCalls(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	stored, ver, err := sys.Store.AmoTokens(a.ws, "amo").Load(context.Background())
	if err != nil || ver != "2" || !srv.AccessValid(stored.AccessToken) || stored.RefreshToken == first.RefreshToken {
		t.Fatalf("stored tokens: version %q, works %v, rotated %v, %v", ver, srv.AccessValid(stored.AccessToken), stored.RefreshToken != first.RefreshToken, err)
	}
	var after map[string]any
	a.must(http.MethodGet, "/v1/integrations/amo", nil, http.StatusOK, &after)
	if after["connected"] != true || after["expires_at"] == before["expires_at"] {
		t.Errorf("after the refresh the view says %v (before %v)", after, before)
	}
	// A script putting the first (spent) tokens back would kill the integration: refused.
	p := a.problem(http.MethodPut, "/v1/integrations/amo", map[string]any{
		"kind": "amocrm", "name": "Sales", "base_url": srv.URL, "client_id": srv.ClientID(), "redirect_uri": srv.RedirectURI(),
		"access_token": first.AccessToken, "refresh_token": first.RefreshToken,
	}, http.StatusBadRequest, "validation_failed")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/refresh_token" {
		t.Errorf("PUT of spent tokens: %+v", p)
	}
	if _, v, _ := sys.Store.AmoTokens(a.ws, "amo").Load(context.Background()); v != "2" {
		t.Errorf("the refused PUT moved the version to %s", v)
	}
}

// TestAmoConcurrentRefresh: the stored token has expired; two steps of the
// crm function and the API (another process: its own client and token
// store) need it at the same moment. One refresh reaches amoCRM; all succeed.
func TestAmoConcurrentRefresh(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	tok := srv.IssueTokens()
	srv.Expire()
	tok.ExpiresAt = time.Now().Add(-time.Minute)
	a := amoWorkspace(t, "amoCRM concurrent refresh", srv, tok)
	a.must(http.MethodPut, "/v1/tunnels/cc", json.RawMessage(`{"name": "CC", "entry": "c", "blocks": [
		{"id": "c", "type": "action", "actions": [{"type": "amo_contact", "integration": "amo"}]}]}`), http.StatusOK, nil)
	// A slow amoCRM keeps the first refresh in flight while the others arrive.
	srv.SetDelay(time.Second)
	subs := a.amoSubscribeMany("cc", "Con", 2)
	if code, raw := a.do(http.MethodGet, "/v1/integrations/amo/pipelines", nil); code != http.StatusOK {
		t.Errorf("pipelines during the refresh: %d %s", code, raw)
	}
	for _, sub := range subs {
		if s := a.amoStep(sub, "cc", "c", 0, 30*time.Second); s.Status != "done" {
			t.Errorf("%s: %+v", sub, s)
		}
	}
	if n := srv.RefreshCalls(); n != 1 {
		t.Errorf("%d refreshes reached amoCRM, want 1", n)
	}
	stored, ver, err := sys.Store.AmoTokens(a.ws, "amo").Load(context.Background())
	if err != nil || ver != "2" || !srv.AccessValid(stored.AccessToken) {
		t.Errorf("stored: version %q, works %v, %v", ver, srv.AccessValid(stored.AccessToken), err)
	}
}

// TestAmoRateLimit: amoCRM answers a burst of 429s: the step is retried
// through the queue after Retry-After and succeeds. Then a burst of our own
// (several subscribers at once) stays under the account's 7 requests per
// second: the function paces itself, so amoCRM has nothing to refuse.
func TestAmoRateLimit(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	a := amoWorkspace(t, "amoCRM 429", srv, srv.IssueTokens())
	a.must(http.MethodPut, "/v1/tunnels/rl", json.RawMessage(`{"name": "RL", "entry": "c", "blocks": [
		{"id": "c", "type": "action", "actions": [{"type": "amo_contact", "integration": "amo"}]}]}`), http.StatusOK, nil)
	srv.FailNext(http.StatusTooManyRequests, 3)
	sub := a.amoSubscribe("rl", "Rita")
	s := a.amoStep(sub, "rl", "c", 0, 60*time.Second)
	if s.Status != "done" || s.Attempts != 4 || len(srv.Contacts()) != 1 {
		t.Fatalf("after three 429s: %+v (want done on the 4th attempt), %d contacts", s, len(srv.Contacts()))
	}

	const burst = 6
	start := len(srv.Requests())
	began := time.Now()
	subs := a.amoSubscribeMany("rl", "Burst", burst)
	for _, sub := range subs {
		if s := a.amoStep(sub, "rl", "c", 0, 60*time.Second); s.Status != "done" {
			t.Errorf("%s: %+v", sub, s)
		}
	}
	reqs := srv.Requests()[start:]
	limited, peak := 0, 0
	for i, r := range reqs {
		if r.Status == http.StatusTooManyRequests {
			limited++
		}
		n := 0
		for _, q := range reqs[i:] {
			if q.Time.Sub(r.Time) < time.Second {
				n++
			}
		}
		peak = max(peak, n)
	}
	t.Logf("burst of %d subscribers: %d requests to amoCRM in %s, peak %d in one second, %d answered 429",
		burst, len(reqs), time.Since(began).Round(time.Millisecond), peak, limited)
	if limited != 0 || peak > amocrm.VendorRate {
		t.Errorf("%d requests answered 429, peak %d per second; want 0 and at most %d", limited, peak, amocrm.VendorRate)
	}
}

// TestAmoValidationFailed: amoCRM refuses the deal's data: the step is
// recorded failed, once, with amoCRM's own message, and the block goes on.
func TestAmoValidationFailed(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	a := amoWorkspace(t, "amoCRM validation", srv, srv.IssueTokens())
	a.must(http.MethodPut, "/v1/tunnels/val", json.RawMessage(`{"name": "Val", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "amo_deal", "integration": "amo", "pipeline_id": 7001, "status_id": 99999},
			{"type": "add_tags", "tags": ["lead"]}]}]}`), http.StatusOK, nil)
	sub := a.amoSubscribe("val", "Val")
	s := a.amoStep(sub, "val", "act", 0, 30*time.Second)
	if s.Status != "failed" || s.Attempts != 1 || !strings.Contains(s.Reason, "status_id") ||
		!strings.Contains(s.Reason, "The value you selected is not a valid choice.") {
		t.Fatalf("step %+v; want failed once with amoCRM's message", s)
	}
	if next := a.amoStep(sub, "val", "act", 1, 30*time.Second); next.Status != "done" {
		t.Errorf("the block did not go on: %+v", next)
	}
	if n := srv.Count("POST", "/api/v4/leads/complex"); n != 1 || len(srv.Leads()) != 0 {
		t.Errorf("%d complex calls, %d leads; want 1 and 0", n, len(srv.Leads()))
	}
}

// TestAmoDuplicateDelivery: the deal step arrives three times (two copies
// sent straight to the crm queue while the real one waits out a delay), and
// again after its completion was lost: one lead.
func TestAmoDuplicateDelivery(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	a := amoWorkspace(t, "amoCRM duplicates", srv, srv.IssueTokens())
	a.must(http.MethodPut, "/v1/tunnels/dup", json.RawMessage(`{"name": "Dup", "entry": "wait", "blocks": [
		{"id": "wait", "type": "delay", "seconds": 5, "next": ["deal"]},
		{"id": "deal", "type": "action", "actions": [{"type": "amo_deal", "integration": "amo", "pipeline_id": 7001, "status_id": 7002}]}]}`),
		http.StatusOK, nil)
	sub := a.amoSubscribe("dup", "Dan")
	wait := a.amoStep(sub, "dup", "wait", -1, 30*time.Second)
	// The deal step as the delay emitted it (its id derives from the delay's).
	stepID := engine.DeriveID(wait.StepID, "next", "deal")
	body, _ := json.Marshal(map[string]any{"v": 1, "id": stepID, "ws": a.ws, "sub": sub, "tunnel": "dup",
		"channel": "chat", "gen": 1, "block": "deal", "action": 0, "at": wait.StartedAt})
	q, _ := sys.Resources.Get("CrmQueue")
	if _, err := sys.Clients.SQS.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.URL),
		Entries: []sqstypes.SendMessageBatchRequestEntry{
			{Id: aws.String("1"), MessageBody: aws.String(string(body))},
			{Id: aws.String("2"), MessageBody: aws.String(string(body))},
		}}); err != nil {
		t.Fatal(err)
	}
	d := a.amoStep(sub, "dup", "deal", 0, 30*time.Second)
	if d.StepID != stepID || d.Status != "done" {
		t.Fatalf("deal step %+v, want %s done", d, stepID)
	}
	time.Sleep(7 * time.Second) // the delayed original arrives meanwhile
	if n := len(srv.Leads()); n != 1 {
		t.Fatalf("%d leads after duplicate deliveries, want 1", n)
	}
	j := a.journey(sub)
	deals := 0
	for _, s := range j {
		if s.Type == "amo_deal" {
			deals++
		}
	}
	if n := deals; n != 1 {
		t.Errorf("%d amo_deal journey entries, want 1:%s", n, describe(j))
	}
	if c := a.crmCard(sub); len(c.CRM.AmoLeadIDs) != 1 {
		t.Errorf("card leads %v", c.CRM.AmoLeadIDs)
	}

	// The completion is lost (the step record gone): the step runs again,
	// finds its recorded deal and creates nothing.
	table, _ := sys.Resources.Get("Table")
	if _, err := sys.Clients.DynamoDB.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String(table.Name),
		Key: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "WS#" + a.ws + "#SUB#" + sub},
			"sk": &ddbtypes.AttributeValueMemberS{Value: "STEP#" + stepID},
		}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.Clients.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(q.URL), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatal(err)
	}
	var again journeyStep
	eventually(t, 30*time.Second, "the re-run deal step", func() (bool, string) {
		j := a.journey(sub)
		s, ok := find(j, "dup", "deal", 0)
		again = s
		return ok && s.Detail["deal"] == "recorded", describe(j)
	})
	if n := len(srv.Leads()); n != 1 || amoNum(again.Detail["lead_id"]) != srv.Leads()[0].ID {
		t.Fatalf("%d leads after a lost completion, detail %v; want the 1 recorded", n, again.Detail)
	}
	if c := a.crmCard(sub); len(c.CRM.AmoLeadIDs) != 1 {
		t.Errorf("card leads %v after the re-run", c.CRM.AmoLeadIDs)
	}
}

// TestAmoCrashAfterSuccess: amoCRM creates the deal and its contact but the
// connection drops before the answer (as a crash after the side effect would
// lose it): the retry finds the deal by its marker. One lead, one contact.
func TestAmoCrashAfterSuccess(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	var drops atomic.Int32
	srv.SetAfterCreate(func(c amotest.Created) bool {
		return drops.CompareAndSwap(0, 1) // the first answer only
	})
	a := amoWorkspace(t, "amoCRM crash", srv, srv.IssueTokens())
	a.must(http.MethodPut, "/v1/tunnels/crash", json.RawMessage(`{"name": "Crash", "entry": "deal", "blocks": [
		{"id": "deal", "type": "action", "actions": [{"type": "amo_deal", "integration": "amo", "pipeline_id": 7001, "status_id": 7002}]}]}`),
		http.StatusOK, nil)
	sub := a.amoSubscribe("crash", "Cid")
	d := a.amoStep(sub, "crash", "deal", 0, 60*time.Second)
	leads, contacts := srv.Leads(), srv.Contacts()
	if drops.Load() != 1 || d.Status != "done" || d.Attempts != 2 || d.Detail["deal"] != "found" {
		t.Fatalf("deal step %+v after %d dropped answers; want done on attempt 2, found by its marker", d, drops.Load())
	}
	if len(leads) != 1 || len(contacts) != 1 || amoNum(d.Detail["lead_id"]) != leads[0].ID || amoNum(d.Detail["contact_id"]) != contacts[0].ID {
		t.Fatalf("%d leads, %d contacts, detail %v; want exactly one of each, recorded", len(leads), len(contacts), d.Detail)
	}
	if srv.Count("POST", "/api/v4/leads/complex") != 1 || srv.Count("GET", "/api/v4/leads") != 1 {
		t.Errorf("want one create and one look-up: %v", srv.Requests())
	}
	if c := a.crmCard(sub); c.CRM.AmoContactID == nil || *c.CRM.AmoContactID != contacts[0].ID || !slices.Equal(c.CRM.AmoLeadIDs, []int64{leads[0].ID}) {
		t.Errorf("card crm %+v", c.CRM)
	}
}

// TestAmoRevokedNeedsReconnect: the refresh token is revoked: the step fails
// with the reconnect message, later steps fail without calling amoCRM, and a
// reconnect (PUT with new tokens) brings it back.
func TestAmoRevokedNeedsReconnect(t *testing.T) {
	needSystem(t)
	srv := newAmo(t, amotest.Options{})
	a := amoWorkspace(t, "amoCRM revoked", srv, srv.IssueTokens())
	a.must(http.MethodPut, "/v1/tunnels/rv", json.RawMessage(`{"name": "RV", "entry": "c", "blocks": [
		{"id": "c", "type": "action", "actions": [{"type": "amo_contact", "integration": "amo"}]}]}`), http.StatusOK, nil)
	srv.RevokeAll()
	s := a.amoStep(a.amoSubscribe("rv", "Rex"), "rv", "c", 0, 30*time.Second)
	if s.Status != "failed" || s.Attempts != 1 || !strings.Contains(s.Reason, `amoCRM integration "amo" must be reconnected`) {
		t.Fatalf("step %+v; want failed with the reconnect message", s)
	}
	var integ map[string]any
	a.must(http.MethodGet, "/v1/integrations/amo", nil, http.StatusOK, &integ)
	if integ["connected"] != false {
		t.Errorf("a revoked integration says connected: %v", integ)
	}
	seen := len(srv.Requests())
	s = a.amoStep(a.amoSubscribe("rv", "Roy"), "rv", "c", 0, 30*time.Second)
	if s.Status != "failed" || len(srv.Requests()) != seen || srv.RefreshCalls() != 1 {
		t.Errorf("second step %+v; %d new requests to amoCRM, %d refreshes; want none and 1", s, len(srv.Requests())-seen, srv.RefreshCalls())
	}
	if out := a.putAmo(srv, srv.IssueTokens()); out["connected"] != true {
		t.Fatalf("reconnect answered %v", out)
	}
	if s := a.amoStep(a.amoSubscribe("rv", "Ray"), "rv", "c", 0, 30*time.Second); s.Status != "done" {
		t.Errorf("after the reconnect: %+v", s)
	}
}
