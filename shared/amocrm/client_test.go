package amocrm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/amocrm/amotest"
	"github.com/tunnels/tunnels/shared/egress"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// unlimited is for functional tests: the server's limit is off there too.
func unlimited() *rate.Limiter { return rate.NewLimiter(rate.Inf, 1) }

// start runs a server; functional tests turn its rate limit off.
func start(t *testing.T, opts amotest.Options) *amotest.Server {
	t.Helper()
	srv := amotest.New(opts)
	t.Cleanup(srv.Close)
	return srv
}

// egressClient is the deployment's SSRF-safe client, allowing just the server.
func egressClient(srv *amotest.Server, o egress.Options) *http.Client {
	return egress.NewClient(egress.Policy{Allow: []string{srv.Addr()}}, o)
}

func newClient(srv *amotest.Server, store amocrm.TokenStore, lim *rate.Limiter) *amocrm.Client {
	return &amocrm.Client{
		BaseURL: srv.URL,
		HTTP:    egressClient(srv, egress.Options{}),
		Creds:   amocrm.Credentials{ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), RedirectURI: srv.RedirectURI()},
		Tokens:  store,
		Limiter: lim,
		Logger:  quiet,
	}
}

// connected is a server (rate limit off) and a client with fresh tokens.
func connected(t *testing.T, opts amotest.Options) (*amotest.Server, *amocrm.Client, *amocrm.MemoryTokenStore) {
	t.Helper()
	if opts.RateLimit == 0 {
		opts.RateLimit = -1
	}
	srv := start(t, opts)
	store := amocrm.NewMemoryTokenStore(srv.IssueTokens())
	return srv, newClient(srv, store, unlimited()), store
}

func TestEgressGuardIsInThePath(t *testing.T) {
	srv, c, _ := connected(t, amotest.Options{})
	c.HTTP = egress.NewClient(egress.Policy{}, egress.Options{}) // nothing allowed
	_, err := c.Pipelines(context.Background())
	if !errors.Is(err, egress.ErrRefused) || !errors.Is(err, amocrm.ErrAccount) {
		t.Fatalf("err = %v, want an egress refusal classified as ErrAccount", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("server saw %d requests, want 0", n)
	}
}

func TestPipelines(t *testing.T) {
	for _, pageSize := range []int{0, 1} {
		srv, c, _ := connected(t, amotest.Options{PageSize: pageSize})
		ps, err := c.Pipelines(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].ID != 7001 || !ps[0].IsMain || ps[1].ID != 7101 || ps[1].IsMain {
			t.Fatalf("pipelines = %+v", ps)
		}
		for _, p := range ps {
			in, ok := p.Status(p.ID - 1)
			if !ok || in.Type != amocrm.StatusTypeIncoming {
				t.Fatalf("pipeline %d: incoming status = %+v, %v", p.ID, in, ok)
			}
			for _, id := range []int64{amocrm.StatusWon, amocrm.StatusLost} {
				if _, ok := p.Status(id); !ok {
					t.Fatalf("pipeline %d lacks status %d", p.ID, id)
				}
			}
		}
		want := 1
		if pageSize == 1 {
			want = 2 // followed _links.next
		}
		if n := srv.Count("GET", "/api/v4/leads/pipelines"); n != want {
			t.Fatalf("page size %d: %d requests, want %d", pageSize, n, want)
		}
	}
}

func TestContactCreateUpdateFind(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	id, err := c.CreateContact(ctx, amocrm.ContactInput{FirstName: "Ann", LastName: "Lee", Phone: "+15550001", Email: "ann@example.com", Tags: []string{"lead", "webinar"}})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := srv.Contact(id)
	if !ok || got.Name != "Ann Lee" || got.FirstName != "Ann" || got.LastName != "Lee" {
		t.Fatalf("stored contact = %+v", got)
	}
	if len(got.Phones) != 1 || got.Phones[0] != (amotest.Value{Value: "+15550001", EnumCode: "WORK"}) ||
		len(got.Emails) != 1 || got.Emails[0] != (amotest.Value{Value: "ann@example.com", EnumCode: "WORK"}) {
		t.Fatalf("stored fields = %+v %+v", got.Phones, got.Emails)
	}
	if strings.Join(got.Tags, ",") != "lead,webinar" {
		t.Fatalf("tags = %v", got.Tags)
	}

	steps := []struct {
		in     amocrm.ContactInput
		tags   string
		phones string
	}{
		{amocrm.ContactInput{Tags: []string{"customer"}}, "customer", "+15550001"},   // tags replace the list
		{amocrm.ContactInput{Phone: "+1 (555) 000-2"}, "customer", "+1 (555) 000-2"}, // nil tags: untouched
		{amocrm.ContactInput{Tags: []string{}}, "", "+1 (555) 000-2"},                // empty: all removed
	}
	for i, st := range steps {
		if err := c.UpdateContact(ctx, id, st.in); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, _ := srv.Contact(id)
		var phones []string
		for _, p := range got.Phones {
			phones = append(phones, p.Value)
		}
		if strings.Join(got.Tags, ",") != st.tags || strings.Join(phones, ",") != st.phones || got.Name != "Ann Lee" {
			t.Fatalf("step %d: contact = %+v", i, got)
		}
	}

	for _, q := range []struct{ phone, email string }{{"15550002", ""}, {"", "ANN@example.COM"}, {"+1 555 000 2", "other@example.com"}} {
		found, err := c.FindContactByPhoneOrEmail(ctx, q.phone, q.email)
		if err != nil || found == nil || found.ID != id {
			t.Fatalf("find(%q, %q) = %+v, %v; want contact %d", q.phone, q.email, found, err, id)
		}
	}
	if err := c.UpdateContact(ctx, 999999, amocrm.ContactInput{Name: "x"}); !errors.Is(err, amocrm.ErrNotFound) {
		t.Fatalf("update of a missing contact: %v, want ErrNotFound", err)
	}
	if n := len(srv.Contacts()); n != 1 {
		t.Fatalf("%d contacts stored, want 1", n)
	}
}

func TestFindContactComparesFieldValues(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	// Full-text search finds this contact for both queries, but it is
	// someone else: a longer phone and another domain.
	other := srv.AddContact(amotest.Contact{Name: "Bob", Phones: []amotest.Value{{Value: "+155500012", EnumCode: "WORK"}},
		Emails: []amotest.Value{{Value: "ann@example.com.au", EnumCode: "WORK"}}})
	hits, err := c.FindContacts(ctx, "15550001")
	if err != nil || len(hits) != 1 || hits[0].ID != other {
		t.Fatalf("full-text search = %+v, %v; the server should answer the near miss", hits, err)
	}
	found, err := c.FindContactByPhoneOrEmail(ctx, "+15550001", "ann@example.com")
	if err != nil || found != nil {
		t.Fatalf("find = %+v, %v; want no match", found, err)
	}
	ann := srv.AddContact(amotest.Contact{Name: "Ann", Phones: []amotest.Value{{Value: "+1 555 0001", EnumCode: "MOB"}}})
	found, err = c.FindContactByPhoneOrEmail(ctx, "+15550001", "")
	if err != nil || found == nil || found.ID != ann {
		t.Fatalf("find = %+v, %v; want contact %d", found, err, ann)
	}
	none, err := c.FindContacts(ctx, "nobody-matches-this")
	if err != nil || len(none) != 0 {
		t.Fatalf("search without hits (204) = %v, %v", none, err)
	}
}

func TestCreateLeadWithContact(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	res, err := c.CreateLeadWithContact(ctx,
		amocrm.LeadInput{Name: "Webinar: Ann", PipelineID: 7001, StatusID: 142, Tags: []string{"lead"}},
		amocrm.ContactInput{FirstName: "Ann", LastName: "Lee", Phone: "+15550001", Email: "ann@example.com", Tags: []string{"lead"}})
	if err != nil {
		t.Fatal(err)
	}
	leads, contacts := srv.Leads(), srv.Contacts()
	if len(leads) != 1 || len(contacts) != 1 || res.Merged {
		t.Fatalf("leads %+v, contacts %+v, result %+v", leads, contacts, res)
	}
	l, ct := leads[0], contacts[0]
	if l.ID != res.LeadID || ct.ID != res.ContactID || len(l.ContactIDs) != 1 || l.ContactIDs[0] != ct.ID ||
		l.PipelineID != 7001 || l.StatusID != 142 || l.Name != "Webinar: Ann" || strings.Join(l.Tags, ",") != "lead" {
		t.Fatalf("lead %+v, contact %+v, result %+v", l, ct, res)
	}
	if ct.Name != "Ann Lee" || len(ct.Phones) != 1 || ct.Phones[0].Value != "+15550001" || strings.Join(ct.Tags, ",") != "lead" {
		t.Fatalf("contact %+v", ct)
	}
	found, err := c.FindLeads(ctx, "Webinar: Ann")
	if err != nil || len(found) != 1 || found[0].ID != res.LeadID || len(found[0].ContactIDs) != 1 || found[0].ContactIDs[0] != res.ContactID {
		t.Fatalf("FindLeads = %+v, %v", found, err)
	}
	if found, err := c.FindLeads(ctx, "no such deal"); err != nil || len(found) != 0 {
		t.Fatalf("FindLeads without hits = %+v, %v", found, err)
	}
}

func TestCreateLeadLinkedToExistingContact(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	cid, err := c.CreateContact(ctx, amocrm.ContactInput{Name: "Ann", Phone: "+15550001"})
	if err != nil {
		t.Fatal(err)
	}
	lid, err := c.CreateLead(ctx, amocrm.LeadInput{Name: "Deal", PipelineID: 7101, StatusID: 7102}, cid)
	if err != nil {
		t.Fatal(err)
	}
	leads := srv.Leads()
	if len(leads) != 1 || leads[0].ID != lid || len(leads[0].ContactIDs) != 1 || leads[0].ContactIDs[0] != cid ||
		leads[0].PipelineID != 7101 || leads[0].StatusID != 7102 {
		t.Fatalf("leads = %+v", leads)
	}
	if n := len(srv.Contacts()); n != 1 {
		t.Fatalf("%d contacts, want 1 (no duplicate)", n)
	}
	// Linking afterwards works too.
	lid2, err := c.CreateLead(ctx, amocrm.LeadInput{Name: "Second"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LinkContact(ctx, lid2, cid); err != nil {
		t.Fatal(err)
	}
	found, err := c.FindLeads(ctx, "Second")
	if err != nil || len(found) != 1 || len(found[0].ContactIDs) != 1 || found[0].ContactIDs[0] != cid || found[0].PipelineID != 7001 {
		t.Fatalf("linked lead = %+v, %v", found, err)
	}
}

func TestDuplicateControlMerged(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{DuplicateControl: true})
	in := amocrm.ContactInput{Name: "Ann", Phone: "+15550001"}
	first, err := c.CreateLeadWithContact(ctx, amocrm.LeadInput{Name: "A", PipelineID: 7001}, in)
	if err != nil || first.Merged {
		t.Fatalf("first = %+v, %v", first, err)
	}
	second, err := c.CreateLeadWithContact(ctx, amocrm.LeadInput{Name: "B", PipelineID: 7001}, in)
	if err != nil || !second.Merged || second.LeadID != first.LeadID || second.ContactID != first.ContactID {
		t.Fatalf("second = %+v, %v; want merged into %+v", second, err, first)
	}
	if n := len(srv.Leads()); n != 1 {
		t.Fatalf("%d leads, want 1", n)
	}
}

// A crash or timeout after amoCRM created the deal: the client sees a
// transient error, the deal exists once, and a replay can find it.
func TestAnswerLostAfterCreate(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	var mu sync.Mutex // the hook runs on the server's goroutine
	var created []amotest.Created
	srv.SetAfterCreate(func(cr amotest.Created) bool {
		mu.Lock()
		defer mu.Unlock()
		created = append(created, cr)
		return true
	})
	_, err := c.CreateLeadWithContact(ctx, amocrm.LeadInput{Name: "Webinar: Ann #step-42"}, amocrm.ContactInput{Name: "Ann", Phone: "+15550001"})
	if !errors.Is(err, amocrm.ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(created) != 1 || len(created[0].Leads) != 1 || len(created[0].Contacts) != 1 {
		t.Fatalf("created = %+v", created)
	}
	srv.SetAfterCreate(nil)
	found, err := c.FindLeads(ctx, "#step-42")
	if err != nil || len(found) != 1 || found[0].ID != created[0].Leads[0] {
		t.Fatalf("replay lookup = %+v, %v", found, err)
	}
	if n := srv.Count("POST", "/api/v4/leads/complex"); n != 1 || len(srv.Leads()) != 1 {
		t.Fatalf("%d complex calls, %d leads; want exactly one each (no retry inside the client)", n, len(srv.Leads()))
	}
}

func TestValidationErrors(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	tests := []struct {
		name string
		in   amocrm.LeadInput
		has  []string
	}{
		{"unknown pipeline", amocrm.LeadInput{Name: "x", PipelineID: 999}, []string{"Request validation failed", "pipeline_id", "NotSupportedChoice", "not a valid choice"}},
		{"status of another pipeline", amocrm.LeadInput{Name: "x", PipelineID: 7001, StatusID: 7102}, []string{"status_id", "NotSupportedChoice"}},
		{"name too long", amocrm.LeadInput{Name: strings.Repeat("n", 300), PipelineID: 7001}, []string{"name", "too long"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateLead(ctx, tc.in, 0)
			var e *amocrm.Error
			if !errors.Is(err, amocrm.ErrValidation) || !errors.As(err, &e) || e.Status != 400 || e.RequestID == "" || len(e.Fields) == 0 {
				t.Fatalf("err = %#v, want ErrValidation with fields and a request id", err)
			}
			if amocrm.Retryable(err) {
				t.Fatal("a validation error must not be retryable")
			}
			for _, s := range tc.has {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("message %q lacks %q", err, s)
				}
			}
		})
	}
	if n := len(srv.Leads()); n != 0 {
		t.Fatalf("%d leads created by refused requests", n)
	}
}

func TestAccountError(t *testing.T) {
	srv, c, _ := connected(t, amotest.Options{})
	srv.SetAccountError("Account error code 402: the subscription has ended")
	_, err := c.CreateContact(context.Background(), amocrm.ContactInput{Name: "Ann"})
	if !errors.Is(err, amocrm.ErrAccount) || errors.Is(err, amocrm.ErrValidation) || amocrm.Retryable(err) {
		t.Fatalf("err = %v, want ErrAccount only", err)
	}
	if !strings.Contains(err.Error(), "subscription has ended") {
		t.Fatalf("message %q lacks amoCRM's detail", err)
	}
}

func TestServerFailuresAreTransient(t *testing.T) {
	ctx := context.Background()
	srv, c, _ := connected(t, amotest.Options{})
	for _, status := range []int{500, 502, 503, 403} {
		srv.FailNext(status, 1)
		before := srv.Count("GET", "/api/v4/leads/pipelines")
		_, err := c.Pipelines(ctx)
		if !errors.Is(err, amocrm.ErrTransient) || errors.Is(err, amocrm.ErrValidation) || !amocrm.Retryable(err) {
			t.Fatalf("%d: err = %v, want ErrTransient", status, err)
		}
		if n := srv.Count("GET", "/api/v4/leads/pipelines") - before; n != 1 {
			t.Fatalf("%d: %d attempts, want 1 (the queue retries, not the client)", status, n)
		}
		if _, err := c.Pipelines(ctx); err != nil {
			t.Fatalf("after %d: %v", status, err)
		}
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	srv, c, _ := connected(t, amotest.Options{})
	srv.SetDelay(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Pipelines(ctx)
	if !errors.Is(err, amocrm.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTransient wrapping DeadlineExceeded", err)
	}
	// The HTTP client's own timeout (egress.Options.Timeout) counts the same.
	c.HTTP = egressClient(srv, egress.Options{Timeout: 200 * time.Millisecond})
	if _, err := c.Pipelines(context.Background()); !errors.Is(err, amocrm.ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
	srv.SetDelay(0)
}

// frozen is a server clock that stands still, so that "too fast" does not
// depend on the machine's speed.
func frozen() func() time.Time {
	at := time.Now()
	return func() time.Time { return at }
}

func TestRateLimitBurstClassified(t *testing.T) {
	srv := start(t, amotest.Options{Now: frozen()}) // 7 per second
	c := newClient(srv, amocrm.NewMemoryTokenStore(srv.IssueTokens()), unlimited())
	limited := 0
	for i := 0; i < 30; i++ {
		_, err := c.Pipelines(context.Background())
		if err == nil {
			continue
		}
		var e *amocrm.Error
		if !errors.Is(err, amocrm.ErrRateLimited) || errors.Is(err, amocrm.ErrValidation) || !errors.As(err, &e) {
			t.Fatalf("err = %v, want ErrRateLimited", err)
		}
		if e.RetryAfter() != time.Second || e.Status != 429 || e.RequestID == "" || !amocrm.Retryable(err) {
			t.Fatalf("error = %+v, want 429 with Retry-After 1s and a request id", e)
		}
		limited++
	}
	if limited != 30-7 {
		t.Fatalf("%d requests limited, want 23 (7 pass in one second)", limited)
	}
}

func TestBlockPageAfterViolations(t *testing.T) {
	srv := start(t, amotest.Options{BlockAfter: 1, Now: frozen()})
	c := newClient(srv, amocrm.NewMemoryTokenStore(srv.IssueTokens()), unlimited())
	var blocked error
	for i := 0; i < 30 && blocked == nil; i++ {
		_, err := c.Pipelines(context.Background())
		var e *amocrm.Error
		if errors.As(err, &e) && e.Status == http.StatusForbidden {
			blocked = err
		}
	}
	if !errors.Is(blocked, amocrm.ErrTransient) || errors.Is(blocked, amocrm.ErrValidation) {
		t.Fatalf("block page error = %v, want ErrTransient", blocked)
	}
	srv.Unblock()
}

// The default limiter keeps one client under the server's 7 per second.
func TestLimiterStaysUnderServerLimit(t *testing.T) {
	srv := start(t, amotest.Options{}) // 7 per second
	c := newClient(srv, amocrm.NewMemoryTokenStore(srv.IssueTokens()), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				_, err := c.Pipelines(context.Background())
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range srv.Requests() {
		if r.Status != http.StatusOK {
			t.Fatalf("request %+v was not 200", r)
		}
	}
	if n := len(srv.Requests()); n != 20 {
		t.Fatalf("%d requests, want 20", n)
	}
}

func TestTokenExpiryMidUseRefreshes(t *testing.T) {
	ctx := context.Background()
	srv, c, store := connected(t, amotest.Options{AccessTTL: 2 * time.Hour})
	orig, _ := store.Current()
	if _, err := c.Pipelines(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Expire()
	before := time.Now()
	if _, err := c.Pipelines(ctx); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	got, _ := store.Current()
	if srv.RefreshCalls() != 1 || store.Saves() != 1 {
		t.Fatalf("refreshes %d, saves %d; want 1 and 1", srv.RefreshCalls(), store.Saves())
	}
	if got.AccessToken == orig.AccessToken || got.RefreshToken == orig.RefreshToken || !srv.AccessValid(got.AccessToken) {
		t.Fatal("rotated tokens were not stored")
	}
	// ExpiresAt comes from expires_in (2 h here), not a fixed lifetime.
	if got.ExpiresAt.Before(before.Add(2*time.Hour-time.Second)) || got.ExpiresAt.After(after.Add(2*time.Hour)) {
		t.Fatalf("ExpiresAt = %v, want about now + 2h", got.ExpiresAt)
	}
	var seq []string
	for _, r := range srv.Requests() {
		seq = append(seq, r.Method+" "+r.Path+" "+http.StatusText(r.Status))
	}
	want := []string{"GET /api/v4/leads/pipelines OK", "GET /api/v4/leads/pipelines Unauthorized", "POST /oauth2/access_token OK", "GET /api/v4/leads/pipelines OK"}
	if strings.Join(seq, "|") != strings.Join(want, "|") {
		t.Fatalf("requests = %q\nwant %q", seq, want)
	}
}

func TestRefreshBeforeExpiry(t *testing.T) {
	srv := start(t, amotest.Options{RateLimit: -1})
	tok := srv.IssueTokens()
	tok.ExpiresAt = time.Now().Add(30 * time.Second) // inside the 60 s skew
	store := amocrm.NewMemoryTokenStore(tok)
	c := newClient(srv, store, unlimited())
	if _, err := c.Pipelines(context.Background()); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].Path != "/oauth2/access_token" || reqs[1].Status != http.StatusOK {
		t.Fatalf("requests = %+v, want the refresh first and no 401", reqs)
	}
	if store.Saves() != 1 {
		t.Fatalf("saves = %d", store.Saves())
	}
}

// One 401 gets one refresh and one retry, and that is all.
func TestOne401OneRefreshOneRetry(t *testing.T) {
	srv, c, _ := connected(t, amotest.Options{})
	srv.FailNext(http.StatusUnauthorized, 1)
	if _, err := c.Pipelines(context.Background()); err != nil {
		t.Fatal(err)
	}
	if srv.RefreshCalls() != 1 || srv.Count("GET", "/api/v4/leads/pipelines") != 2 {
		t.Fatalf("refreshes %d, calls %d; want 1 and 2", srv.RefreshCalls(), srv.Count("GET", "/api/v4/leads/pipelines"))
	}
}

func TestConcurrentRefreshSharedStore(t *testing.T) {
	for _, how := range []string{"401 mid-use", "expiry in the store"} {
		t.Run(how, func(t *testing.T) {
			srv := start(t, amotest.Options{RateLimit: -1})
			tok := srv.IssueTokens()
			if how == "expiry in the store" {
				tok.ExpiresAt = time.Now().Add(-time.Minute)
			}
			store := amocrm.NewMemoryTokenStore(tok)
			srv.Expire()
			c1, c2 := newClient(srv, store, unlimited()), newClient(srv, store, unlimited())
			errs := race(8, func(i int) error {
				c := c1
				if i%2 == 1 {
					c = c2
				}
				_, err := c.Pipelines(context.Background())
				return err
			})
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if srv.RefreshCalls() != 1 || store.Saves() != 1 {
				t.Fatalf("refreshes at the server %d, saves %d; want exactly 1", srv.RefreshCalls(), store.Saves())
			}
			stored, _ := store.Current()
			if !srv.AccessValid(stored.AccessToken) {
				t.Fatal("the stored token does not work")
			}
			// A newcomer on the same store just uses it.
			if _, err := newClient(srv, store, unlimited()).Pipelines(context.Background()); err != nil || srv.RefreshCalls() != 1 {
				t.Fatalf("newcomer: %v, refreshes %d", err, srv.RefreshCalls())
			}
		})
	}
}

// Without a shared store the single-use refresh token makes one of two
// processes lose: what the store's lease prevents above.
func TestUncoordinatedRefreshLosesOne(t *testing.T) {
	srv := start(t, amotest.Options{RateLimit: -1})
	tok := srv.IssueTokens()
	stores := []*amocrm.MemoryTokenStore{amocrm.NewMemoryTokenStore(tok), amocrm.NewMemoryTokenStore(tok)}
	srv.Expire()
	errs := race(2, func(i int) error {
		_, err := newClient(srv, stores[i], unlimited()).Pipelines(context.Background())
		return err
	})
	lost := 0
	for i, err := range errs {
		if err != nil {
			if !errors.Is(err, amocrm.ErrReconnect) {
				t.Fatalf("err = %v, want ErrReconnect", err)
			}
			if revoked, _ := stores[i].Revoked(); !revoked {
				t.Fatal("the loser's store is not marked revoked")
			}
			lost++
		}
	}
	if lost != 1 || srv.RefreshCalls() != 2 {
		t.Fatalf("%d lost, %d refreshes; want 1 and 2", lost, srv.RefreshCalls())
	}
}

// countingStore counts MarkRevoked calls.
type countingStore struct {
	*amocrm.MemoryTokenStore
	revoked atomic.Int32
}

func (s *countingStore) MarkRevoked(ctx context.Context, reason string) error {
	s.revoked.Add(1)
	return s.MemoryTokenStore.MarkRevoked(ctx, reason)
}

func TestRevokedRefreshTokenNeedsReconnect(t *testing.T) {
	srv := start(t, amotest.Options{RateLimit: -1, ClientSecret: "very-secret-client"})
	tok := srv.IssueTokens()
	// Someone outside the store spends the refresh token.
	srv.Expire()
	if _, err := newClient(srv, amocrm.NewMemoryTokenStore(tok), unlimited()).Pipelines(context.Background()); err != nil {
		t.Fatal(err)
	}
	store := &countingStore{MemoryTokenStore: amocrm.NewMemoryTokenStore(tok)}
	c1, c2 := newClient(srv, store, unlimited()), newClient(srv, store, unlimited())
	refreshes := srv.RefreshCalls()
	errs := race(6, func(i int) error {
		c := c1
		if i%2 == 1 {
			c = c2
		}
		_, err := c.Pipelines(context.Background())
		return err
	})
	for _, err := range errs {
		if !errors.Is(err, amocrm.ErrReconnect) || amocrm.Retryable(err) {
			t.Fatalf("err = %v, want ErrReconnect", err)
		}
		if !strings.Contains(err.Error(), "reconnect the amoCRM integration") {
			t.Fatalf("message %q does not tell the user to reconnect", err)
		}
		for _, secret := range []string{tok.AccessToken, tok.RefreshToken, "very-secret-client"} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("message %q leaks a secret", err)
			}
		}
	}
	if n := srv.RefreshCalls() - refreshes; n != 1 {
		t.Fatalf("%d refresh attempts, want 1 (no storm)", n)
	}
	if n := store.revoked.Load(); n != 1 {
		t.Fatalf("MarkRevoked called %d times, want 1", n)
	}
	// Later calls do not touch amoCRM at all.
	seen := len(srv.Requests())
	for i := 0; i < 3; i++ {
		if _, err := c1.Pipelines(context.Background()); !errors.Is(err, amocrm.ErrReconnect) {
			t.Fatalf("err = %v, want ErrReconnect", err)
		}
	}
	if n := len(srv.Requests()) - seen; n != 0 {
		t.Fatalf("%d requests after the revocation, want 0", n)
	}
	// A reconnect (new tokens through the OAuth redirect) revives it.
	code := srv.AuthCode()
	fresh, err := c1.ExchangeCode(context.Background(), code)
	if err != nil {
		t.Fatal(err)
	}
	store.Replace(fresh)
	if _, err := c2.Pipelines(context.Background()); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
	if _, err := c1.ExchangeCode(context.Background(), code); !errors.Is(err, amocrm.ErrReconnect) {
		t.Fatalf("reused code: %v, want ErrReconnect", err)
	}
}

func TestLongLivedToken(t *testing.T) {
	ctx := context.Background()
	srv := start(t, amotest.Options{RateLimit: -1})
	c := newClient(srv, amocrm.NewMemoryTokenStore(srv.IssueLongLived(24*time.Hour)), unlimited())
	if _, err := c.Pipelines(ctx); err != nil {
		t.Fatal(err)
	}
	expired := srv.IssueLongLived(time.Hour)
	expired.ExpiresAt = time.Now().Add(-time.Minute)
	store := &countingStore{MemoryTokenStore: amocrm.NewMemoryTokenStore(expired)}
	seen := len(srv.Requests())
	_, err := newClient(srv, store, unlimited()).Pipelines(ctx)
	if !errors.Is(err, amocrm.ErrReconnect) || store.revoked.Load() != 1 || len(srv.Requests()) != seen {
		t.Fatalf("expired long-lived token: %v, MarkRevoked %d, requests %d", err, store.revoked.Load(), len(srv.Requests())-seen)
	}
	srv.RevokeAll()
	if _, err := c.Pipelines(ctx); !errors.Is(err, amocrm.ErrReconnect) {
		t.Fatalf("refused long-lived token: %v, want ErrReconnect", err)
	}
	if srv.RefreshCalls() != 0 {
		t.Fatalf("%d refresh calls for a long-lived token", srv.RefreshCalls())
	}
}

// race runs n calls at once and answers their errors by index.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	startGun := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			errs[i] = f(i)
		}()
	}
	close(startGun)
	wg.Wait()
	return errs
}
