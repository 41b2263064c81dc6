package devstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunnels/tunnels/infra/devstack"
	"github.com/tunnels/tunnels/infra/localstack"
	"github.com/tunnels/tunnels/shared/amocrm/amotest"
)

// TestChaosEveryAction runs a tunnel that uses every action type, then a
// condition, a split, a message waiting for a reply or a button (a third of
// the subscribers answer with text, a third press the button, a third let it
// time out) and a delay with a window, for 500 subscribers on a system of its own under every fault at once: every SQS
// message delivered twice, deliveries reordered, a tenth of the invocations
// crashing after their work and before acknowledging, and the functions'
// AWS calls throttled a fifth of the time in windows. It shows every journey
// complete, no step lost, and no email, CRM deal, sales-plan membership or
// webhook call doubled beyond the one window the design documents: an
// effect repeats only when its step was claimed again after the effect and
// before its record (so the journey entry counts more than one attempt).
// TUNNELS_CHAOS_SUBSCRIBERS changes the count (default 500).
func TestChaosEveryAction(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the emulators")
	}
	t.Parallel()
	subscribers := 500
	if v := os.Getenv("TUNNELS_CHAOS_SUBSCRIBERS"); v != "" {
		subscribers, _ = strconv.Atoi(v)
	}
	// amoCRM allows 7 requests per second per account: the subscribers are
	// spread over five accounts (five tunnels), as five customers would be.
	const accounts = 5
	gw := newBotGateway()
	defer gw.Close()
	hooks := &hookCounter{calls: map[string]int{}}
	target := httptest.NewServer(hooks)
	defer target.Close()
	amos := make([]*amotest.Server, accounts)
	allow := []string{gw.hostPort(), strings.TrimPrefix(target.URL, "http://")}
	for i := range amos {
		amos[i] = amotest.New(amotest.Options{})
		defer amos[i].Close()
		allow = append(allow, amos[i].Addr())
	}
	logFile, err := os.CreateTemp("", "tunnels-chaos-all-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	t.Logf("the chaos system logs to %s", logFile.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	chaos, err := devstack.Start(ctx, devstack.Options{
		HTTPAddr: "127.0.0.1:0", AdminToken: "chaos-admin", EgressAllow: strings.Join(allow, ","),
		Faults: localstack.AllFaults(7), SchedulerInterval: time.Second,
		Log: slog.New(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer chaos.Close()
	began := time.Now()
	c := &chaosClient{t: t, url: chaos.APIURL, key: chaos.APIKey}

	for _, tag := range []string{"lead", "cold"} {
		c.do(http.MethodPut, "/v1/tags/"+tag, map[string]string{"name": tag}, http.StatusOK, nil)
	}
	c.do(http.MethodPut, "/v1/fields/score", map[string]string{"name": "Score", "type": "number"}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/fields/lms_id", map[string]string{"name": "LMS id", "type": "string"}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/operators/anna", map[string]string{"name": "Anna"}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/operators/boris", map[string]string{"name": "Boris"}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/sales-plans/q4", map[string]any{"name": "Q4", "statuses": []string{"new", "won"},
		"operators": []string{"anna", "boris"}, "distribution": "evenly"}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/email-bots/main", map[string]string{"name": "Main", "from_address": "news@tunnels.example.com",
		"from_name": "Tunnels", "reply_to": "help@tunnels.example.com"}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/channel", map[string]string{"url": gw.URL(), "secret": connectorSecret}, http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/tunnels/nurture", json.RawMessage(`{"name": "Nurture", "entry": "n1", "blocks": [
		{"id": "n1", "type": "message", "text": "Nurture", "email": {"subject": "Nurture {{subscriber.first_name}}", "html": "<p>Welcome</p>"}}]}`), http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/tunnels/side", json.RawMessage(`{"name": "Side", "entry": "s1", "blocks": [
		{"id": "s1", "type": "message", "text": "Side {{subscriber.first_name}}"}]}`), http.StatusOK, nil)
	c.do(http.MethodPut, "/v1/tunnels/other", json.RawMessage(`{"name": "Other", "entry": "o1", "blocks": [
		{"id": "o1", "type": "message", "text": "Other"}]}`), http.StatusOK, nil)
	for i, srv := range amos {
		tok := srv.IssueTokens()
		c.do(http.MethodPut, fmt.Sprintf("/v1/integrations/amo%d", i), map[string]any{
			"kind": "amocrm", "name": "Sales", "base_url": srv.URL, "client_id": srv.ClientID(),
			"client_secret": srv.ClientSecret(), "redirect_uri": srv.RedirectURI(),
			"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken,
			"expires_at": tok.ExpiresAt.UTC().Format(time.RFC3339)}, http.StatusOK, nil)
		pipeline, status := 7001, 7002 // amotest.DefaultPipelines: Sales, New
		c.do(http.MethodPut, fmt.Sprintf("/v1/tunnels/main%d", i), json.RawMessage(fmt.Sprintf(`{"name": "Main", "entry": "hello", "blocks": [
		{"id": "hello", "type": "message", "text": "Hi {{subscriber.first_name}}", "next": ["act"]},
		{"id": "act", "type": "action", "actions": [
			{"type": "add_tags", "tags": ["lead"]},
			{"type": "remove_tags", "tags": ["cold"]},
			{"type": "set_field", "field": "score", "value": "7"},
			{"type": "add_to_sales_plan", "plan": "q4"},
			{"type": "mention", "operator": "anna", "comment": "New lead {{subscriber.first_name}}"},
			{"type": "mark_unread"},
			{"type": "create_email_subscriber", "email_bot": "main", "tunnel": "nurture"},
			{"type": "send_email", "email_bot": "main", "subject": "Hello {{subscriber.first_name}}", "html": "<p>Hi</p>"},
			{"type": "amo_contact", "integration": "amo%[1]d"},
			{"type": "amo_deal", "integration": "amo%[1]d", "pipeline_id": %[2]d, "status_id": %[3]d},
			{"type": "external_request", "method": "POST", "url": "%[4]s/leads", "body": {"name": "{{subscriber.first_name}}"},
			 "response_mapping": [{"path": "id", "field": "lms_id"}]},
			{"type": "start", "tunnel": "side"},
			{"type": "stop", "tunnel": "other"}], "next": ["wait"]},
		{"id": "wait", "type": "delay", "seconds": 2, "next": ["check"]},
		{"id": "check", "type": "condition", "branches": [{"when": {"has_tag": "lead"}, "next": ["ab"]}], "else": ["bye"]},
		{"id": "ab", "type": "split", "branches": [{"name": "A", "weight": 1, "next": ["ask"]}, {"name": "B", "weight": 1, "next": ["ask"]}]},
		{"id": "ask", "type": "message", "text": "Still with us?", "buttons": [{"id": "yes", "text": "Yes", "next": ["later"]}],
		 "reply": {"timeout_seconds": 90, "on_timeout": ["later"], "next": ["later"]}},
		{"id": "later", "type": "delay", "seconds": 1, "window": {"timezone": "UTC", "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}, "next": ["bye"]},
		{"id": "bye", "type": "message", "text": "Bye"}]}`, i, pipeline, status, target.URL)), http.StatusOK, nil)
	}

	subs := make([]string, subscribers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range subscribers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			who := map[string]string{"channel": "telegram", "external_id": fmt.Sprintf("x%d", i), "first_name": fmt.Sprintf("N%d", i),
				"email": fmt.Sprintf("n%d@example.com", i), "phone": fmt.Sprintf("+1555%06d", i)}
			// They write first, so mark_unread has a message to mark.
			c.do(http.MethodPost, "/v1/events", map[string]any{"event_id": fmt.Sprintf("in-%d", i), "type": "message", "text": "hi", "subscriber": who}, http.StatusAccepted, nil)
			var ans struct {
				SubscriberID string `json:"subscriber_id"`
			}
			c.do(http.MethodPost, "/v1/events", map[string]any{"event_id": fmt.Sprintf("sub-%d", i), "type": "subscribe",
				"tunnel": fmt.Sprintf("main%d", i%accounts), "subscriber": who}, http.StatusAccepted, &ans)
			subs[i] = ans.SubscriberID
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Answer the question as soon as it reaches the bot gateway, as a person
	// would: a third reply with text, a third press the button, a third stay
	// silent and time out.
	answered := map[string]bool{}
	asked := 0
	var answers sync.WaitGroup
	eventually(t, 12*time.Minute, "every subscriber to be asked", func() (bool, string) {
		for _, m := range gw.all() {
			if m.Msg.Block != "ask" || answered[m.Msg.ExternalID] {
				continue
			}
			answered[m.Msg.ExternalID] = true
			asked++
			i, _ := strconv.Atoi(strings.TrimPrefix(m.Msg.ExternalID, "x"))
			who := map[string]string{"channel": "telegram", "external_id": m.Msg.ExternalID}
			var ev map[string]any
			switch i % 3 {
			case 0:
				ev = map[string]any{"event_id": fmt.Sprintf("reply-%d", i), "type": "message", "text": "sure", "subscriber": who}
			case 1:
				ev = map[string]any{"event_id": fmt.Sprintf("press-%d", i), "type": "button", "button": "yes", "block": "ask", "subscriber": who}
			default:
				continue
			}
			answers.Add(1)
			sem <- struct{}{}
			go func() {
				defer answers.Done()
				defer func() { <-sem }()
				c.do(http.MethodPost, "/v1/events", ev, http.StatusAccepted, nil)
			}()
		}
		return asked == subscribers, fmt.Sprintf("%d of %d asked after %s; faults %+v", asked, subscribers, time.Since(began).Round(time.Second), chaos.Faults.Stats())
	})
	answers.Wait()
	phase := func(j []journeyStep, tunnel, p string) (journeyStep, int) {
		var last journeyStep
		n := 0
		for _, s := range j {
			if s.Tunnel == tunnel && s.Block == "ask" && s.Detail["phase"] == p {
				last = s
				n++
			}
		}
		return last, n
	}
	// A run is at rest when it said bye, its timeout step ran (90 s after the
	// ask) and, for those who answered, the reply step ran too: the faults can
	// hold a delivery back until the poller's next batch, so a reply may even
	// come after the timeout (it is then skipped).
	complete := func(j []journeyStep, tunnel string, i int) bool {
		_, bye := find(j, tunnel, "bye", -1)
		_, side := find(j, "side", "s1", -1)
		_, nurture := find(j, "nurture", "n1", -1)
		_, timeouts := phase(j, tunnel, "timeout")
		_, replies := phase(j, tunnel, "reply")
		return bye && side && nurture && timeouts > 0 && (i%3 == 2 || replies > 0)
	}
	late := 0
	journeys := map[string][]journeyStep{}
	eventually(t, 12*time.Minute, "every journey to end", func() (bool, string) {
		missing := 0
		for i, sub := range subs {
			tunnel := fmt.Sprintf("main%d", i%accounts)
			if complete(journeys[sub], tunnel, i) {
				continue
			}
			journeys[sub] = c.journey(sub)
			if !complete(journeys[sub], tunnel, i) {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d journeys unfinished after %s; faults %+v", missing, subscribers, time.Since(began).Round(time.Second), chaos.Faults.Stats())
	})
	time.Sleep(3 * time.Second) // stragglers: duplicates and crashed batches coming back

	mails := storeMails(t, chaos.Endpoints.SESv2)
	var leads []amotest.Lead
	for _, srv := range amos {
		leads = append(leads, srv.Leads()...)
	}
	leadsByName := map[string]int{}
	for _, l := range leads {
		leadsByName[strings.SplitN(l.Name, " [tn-", 2)[0]]++
	}
	var deals struct {
		Deals      []map[string]any `json:"deals"`
		NextCursor *string          `json:"next_cursor"`
	}
	c.do(http.MethodGet, "/v1/sales-plans/q4/deals?limit=500", nil, http.StatusOK, &deals)
	if len(deals.Deals) != subscribers || deals.NextCursor != nil {
		t.Errorf("sales plan has %d deals (more: %v), want %d: one membership each", len(deals.Deals), deals.NextCursor != nil, subscribers)
	}
	repeats := map[string]int{}
	for i, sub := range subs {
		tunnel := fmt.Sprintf("main%d", i%accounts)
		j := c.journey(sub)
		byID := map[string]journeyStep{}
		for _, s := range j {
			if _, dup := byID[s.StepID]; dup {
				t.Errorf("%s: step %s recorded twice", sub, s.StepID)
			}
			byID[s.StepID] = s
			if s.Status == "failed" {
				t.Errorf("%s: %s/%s#%v failed: %s", sub, s.Tunnel, s.Block, s.Action, s.Reason)
			}
		}
		for a := range 13 {
			if s, ok := find(j, tunnel, "act", a); !ok || s.Status != "done" {
				t.Errorf("%s: act#%d = %+v, want done:%s", sub, a, s, describe(j))
			}
		}
		for _, b := range []string{"hello", "wait", "check", "ab", "ask", "later", "bye"} {
			if s, ok := find(j, tunnel, b, -1); !ok || s.Status != "done" {
				t.Errorf("%s: %s = %+v", sub, b, s)
			}
		}
		if s, _ := find(j, tunnel, "check", -1); s.Detail["branch"] != float64(0) {
			t.Errorf("%s: the condition took %v", sub, s.Detail["branch"])
		}
		// The wait ends exactly once: by the answer, or by the timeout.
		reply, replies := phase(j, tunnel, "reply")
		timeout, _ := phase(j, tunnel, "timeout")
		switch {
		case i%3 == 2 && (replies != 0 || timeout.Status != "done"):
			t.Errorf("%s: silent subscriber: %d replies, timeout %s %q", sub, replies, timeout.Status, timeout.Reason)
		case i%3 != 2 && replies != 1:
			t.Errorf("%s: %d reply steps for one answer", sub, replies)
		case i%3 != 2 && reply.Status == "done" && timeout.Status == "skipped":
			if i%3 == 1 && reply.Detail["button"] != "yes" {
				t.Errorf("%s: the press resumed %+v", sub, reply.Detail)
			}
		case i%3 != 2 && reply.Status == "skipped" && timeout.Status == "done" && reply.Reason == "the wait had already timed out":
			late++ // held back past the timeout by the faults: the wait still ended once
		case i%3 != 2:
			t.Errorf("%s: answer %s %q, timeout %s %q: the wait must end exactly once", sub, reply.Status, reply.Reason, timeout.Status, timeout.Reason)
		}
		if n := countBlock(j, tunnel, "bye"); n != 1 {
			t.Errorf("%s: bye ran %d times:%s", sub, n, describe(j))
		}
		// Effects, each at most once per attempt of its step.
		within := func(what string, step journeyStep, n int) {
			if n == 0 {
				t.Errorf("%s: %s never happened", sub, what)
			}
			if n > step.Attempts {
				t.Errorf("%s: %s happened %d times in %d attempts: doubled beyond the documented window", sub, what, n, step.Attempts)
			}
			if n > 1 {
				repeats[what] += n - 1
			}
		}
		sendEmail, _ := find(j, tunnel, "act", 7)
		nurture, _ := find(j, "nurture", "n1", -1)
		within("send_email", sendEmail, mails[sendEmail.StepID])
		within("email run message", nurture, mails[nurture.StepID])
		hook, _ := find(j, tunnel, "act", 10)
		within("webhook call", hook, hooks.count(hook.StepID))
		deal, _ := find(j, tunnel, "act", 9)
		within("amoCRM deal", deal, leadsByName[fmt.Sprintf("Main: N%d", i)])
		for _, s := range j {
			if s.Type == "message" && s.Channel == "chat" && s.Detail["phase"] == nil {
				n := 0
				for _, m := range gw.forSubscriber(sub) {
					if m.Msg.StepID == s.StepID {
						n++
					}
				}
				within("chat message "+s.Block, s, n)
			}
		}
	}
	if answerers := subscribers - subscribers/3; late > answerers/20 {
		t.Errorf("%d of %d answers came after the 90 s timeout: replies are not getting through", late, answerers)
	}
	t.Logf("%d subscribers x every action in %s under faults %+v; repeats within their steps' attempts: %v; %d API retries by the client; %d answers held back past the timeout",
		subscribers, time.Since(began).Round(time.Second), chaos.Faults.Stats(), repeats, c.retries, late)
}

// hookCounter is a webhook target: it counts calls by Idempotency-Key and
// answers an id for the response mapping.
type hookCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (h *hookCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	h.calls[r.Header.Get("Idempotency-Key")]++
	h.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"id": "LMS-1"}`)
}

func (h *hookCounter) count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[key]
}

// storeMails counts the emails an SES emulator holds by the step that sent
// them (the X-Tunnels-Idempotency-Key header).
func storeMails(t *testing.T, sesv2 string) map[string]int {
	t.Helper()
	res, err := http.Get(sesv2 + "/store")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var store struct {
		Emails []sesMail `json:"emails"`
	}
	if err := json.NewDecoder(res.Body).Decode(&store); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range store.Emails {
		if key, n := m.header("X-Tunnels-Idempotency-Key"); n == 1 {
			out[key]++
		}
	}
	return out
}

// countBlock counts the journey's steps at a block.
func countBlock(j []journeyStep, tunnel, block string) int {
	n := 0
	for _, s := range j {
		if s.Tunnel == tunnel && s.Block == block {
			n++
		}
	}
	return n
}
