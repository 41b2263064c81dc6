package devstack_test

// Email through the whole pipeline (issue 4): the API, the queues, the email
// function and the SES v2 emulator, whose GET /store shows what was sent.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	tmail "github.com/tunnels/tunnels/shared/mail"
)

// sesMail is one email as the emulator stores it.
type sesMail struct {
	MessageID   string   `json:"messageId"`
	From        string   `json:"from"`
	ReplyTo     []string `json:"replyTo"`
	Destination struct {
		To []string `json:"to"`
	} `json:"destination"`
	Subject string `json:"subject"`
	Body    struct {
		HTML *string `json:"html"`
		Text *string `json:"text"`
	} `json:"body"`
	Headers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers"`
}

func (m sesMail) header(name string) (string, int) {
	var v string
	n := 0
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, name) {
			v = h.Value
			n++
		}
	}
	return v, n
}

func (m sesMail) html() string { return derefStr(m.Body.HTML) }
func (m sesMail) text() string { return derefStr(m.Body.Text) }

func derefStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// mailsTo answers the emails the emulator holds for one address, oldest first.
func mailsTo(t *testing.T, to string) []sesMail {
	t.Helper()
	res, err := http.Get(sys.Endpoints.SESv2 + "/store")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var s struct {
		Emails []sesMail `json:"emails"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("SES store: %v in %s", err, truncate(b))
	}
	var out []sesMail
	for _, m := range s.Emails {
		if slices.Contains(m.Destination.To, to) {
			out = append(out, m)
		}
	}
	return out
}

func subjects(ms []sesMail) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Subject)
	}
	return out
}

// emailWorkspace is a workspace with the email bot "main".
func emailWorkspace(t *testing.T, name string) *api {
	t.Helper()
	a := newWorkspace(t, name)
	a.must(http.MethodPut, "/v1/email-bots/main", map[string]string{"name": "Main", "from_address": "news@tunnels.example.com",
		"from_name": "Tunnels News", "reply_to": "help@tunnels.example.com"}, http.StatusOK, nil)
	return a
}

// address is a recipient no other test uses.
func (a *api) address(who string) string { return who + "." + a.ws + "@example.org" }

// subscribeEmail sends a subscribe event for a subscriber with an email
// address (none when email is "") and answers the subscriber id.
func (a *api) subscribeEmail(event, tunnel, externalID, firstName, email string) string {
	a.t.Helper()
	subscriber := map[string]string{"channel": "telegram", "external_id": externalID, "first_name": firstName}
	if email != "" {
		subscriber["email"] = email
	}
	var ev struct {
		SubscriberID string `json:"subscriber_id"`
	}
	a.must(http.MethodPost, "/v1/events", map[string]any{"event_id": event, "type": "subscribe", "tunnel": tunnel, "subscriber": subscriber},
		http.StatusAccepted, &ev)
	return ev.SubscriberID
}

type emailCard struct {
	EmailAccount *struct {
		Email        string  `json:"email"`
		EmailBot     string  `json:"email_bot"`
		LeadSource   *string `json:"lead_source"`
		Tunnel       string  `json:"tunnel"`
		Unsubscribed bool    `json:"unsubscribed"`
		CreatedAt    string  `json:"created_at"`
	} `json:"email_account"`
	Runs []struct {
		Tunnel     string `json:"tunnel"`
		Channel    string `json:"channel"`
		Generation int    `json:"generation"`
		Recorded   bool   `json:"recorded"`
		Status     string `json:"status"`
	} `json:"runs"`
}

func (a *api) emailCard(sub string) emailCard {
	a.t.Helper()
	var c emailCard
	a.must(http.MethodGet, "/v1/subscribers/"+sub, nil, http.StatusOK, &c)
	return c
}

func (c emailCard) runs() map[string]string {
	out := map[string]string{}
	for _, r := range c.Runs {
		out[r.Tunnel+"/"+r.Channel] = fmt.Sprintf("gen%d recorded=%v %s", r.Generation, r.Recorded, r.Status)
	}
	return out
}

// settled waits until every run of the subscriber is no longer active.
func (a *api) settled(sub string, runs int) []journeyStep {
	a.t.Helper()
	eventually(a.t, 40*time.Second, "the runs to finish", func() (bool, string) {
		c := a.emailCard(sub)
		if len(c.Runs) < runs {
			return false, fmt.Sprint(c.runs())
		}
		for _, r := range c.Runs {
			if r.Status == "active" {
				return false, fmt.Sprint(c.runs(), describe(a.journey(sub)))
			}
		}
		return true, ""
	})
	return a.journey(sub)
}

func mustFind(t *testing.T, j []journeyStep, tunnel, block string, action int) journeyStep {
	t.Helper()
	s, ok := find(j, tunnel, block, action)
	if !ok {
		t.Fatalf("no journey entry for %s/%s#%d:%s", tunnel, block, action, describe(j))
	}
	return s
}

// TestSendEmail: content, sender, reply-to, headers, escaping of subscriber
// data in the html, the derived text part, the message id in the journey,
// and header injection refused.
func TestSendEmail(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := emailWorkspace(t, "Send email")
	a.must(http.MethodPut, "/v1/tunnels/mail", json.RawMessage(`{"name": "Mail", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "send_email", "email_bot": "main", "subject": "Hello {{subscriber.first_name}}",
			 "html": "<h1>Hi {{subscriber.first_name}}</h1><p>Join <a href=\"https://tunnels.example.com/w\">the webinar</a></p>"},
			{"type": "send_email", "email_bot": "main", "subject": "Second", "html": "<p>{{subscriber.first_name}}</p>",
			 "text": "Plain {{subscriber.first_name}}"}]}]}`), http.StatusOK, nil)

	to := a.address("ann")
	sub := a.subscribeEmail("m-1", "mail", "1", "Ann <b>&</b>", to)
	j := a.settled(sub, 1)
	first, second := mustFind(t, j, "mail", "act", 0), mustFind(t, j, "mail", "act", 1)
	if first.Status != "done" || second.Status != "done" || first.Type != "send_email" {
		t.Fatalf("steps: %s", describe(j))
	}
	mails := mailsTo(t, to)
	if len(mails) != 2 {
		t.Fatalf("%d emails to %s, want 2: %q", len(mails), to, subjects(mails))
	}
	m := mails[slices.IndexFunc(mails, func(m sesMail) bool { return m.Subject != "Second" })]
	if first.Detail["message_id"] != m.MessageID || m.MessageID == "" {
		t.Errorf("journey message id %v, SES %q", first.Detail["message_id"], m.MessageID)
	}
	from, err := mail.ParseAddress(m.From)
	if err != nil || from.Name != "Tunnels News" || from.Address != "news@tunnels.example.com" {
		t.Errorf("from %q = %+v, %v", m.From, from, err)
	}
	if !slices.Equal(m.ReplyTo, []string{"help@tunnels.example.com"}) || !slices.Equal(m.Destination.To, []string{to}) {
		t.Errorf("reply-to %q, to %q", m.ReplyTo, m.Destination.To)
	}
	if m.Subject != "Hello Ann <b>&</b>" {
		t.Errorf("subject %q", m.Subject)
	}
	wantHTML := `<h1>Hi Ann &lt;b&gt;&amp;&lt;/b&gt;</h1><p>Join <a href="https://tunnels.example.com/w">the webinar</a></p>`
	if m.html() != wantHTML {
		t.Errorf("html = %q, want %q (subscriber data escaped, the template's markup kept)", m.html(), wantHTML)
	}
	if m.text() != tmail.TextFromHTML(wantHTML) || !strings.Contains(m.text(), "Hi Ann <b>&</b>") ||
		!strings.Contains(m.text(), "the webinar (https://tunnels.example.com/w)") {
		t.Errorf("derived text = %q", m.text())
	}

	// Headers: the unsubscribe link under the address the API was last
	// called at (this API's, or the RIE test's synthetic API Gateway host,
	// which shares the table), the step id.
	unsub, n := m.header("List-Unsubscribe")
	link, err := url.Parse(strings.Trim(unsub, "<>"))
	if n != 1 || err != nil || !strings.HasPrefix(unsub, "<") || link.Scheme != "https" || link.Host == "" ||
		link.Path != "/v1/email-accounts/unsubscribe" || link.Query().Get("token") == "" {
		t.Errorf("List-Unsubscribe = %q (%d)", unsub, n)
	}
	if v, n := m.header("List-Unsubscribe-Post"); n != 1 || v != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post = %q (%d), want RFC 8058 one-click", v, n)
	}
	if key, _ := m.header("X-Tunnels-Idempotency-Key"); key != first.StepID {
		t.Errorf("idempotency key %q, want the step id %q", key, first.StepID)
	}
	if d := first.Detail; d["to"] != to || d["from"] != "news@tunnels.example.com" || d["email_bot"] != "main" || d["subject"] != m.Subject {
		t.Errorf("journey detail %v", d)
	}

	// The given text part is sent as is.
	m2 := mails[slices.IndexFunc(mails, func(m sesMail) bool { return m.Subject == "Second" })]
	if m2.text() != "Plain Ann <b>&</b>" || m2.html() != "<p>Ann &lt;b&gt;&amp;&lt;/b&gt;</p>" {
		t.Errorf("second email: text %q html %q", m2.text(), m2.html())
	}

	// Header injection through subscriber data: the step fails naming the
	// field, nothing is sent, the block goes on.
	eve := a.address("eve")
	sub2 := a.subscribeEmail("m-2", "mail", "2", "Eve\r\nBcc: victim@example.net", eve)
	j2 := a.settled(sub2, 1)
	bad, next := mustFind(t, j2, "mail", "act", 0), mustFind(t, j2, "mail", "act", 1)
	if bad.Status != "failed" || !strings.Contains(bad.Reason, "subject: contains a line break (header injection)") || bad.Attempts != 1 {
		t.Errorf("injected subject: %+v", bad)
	}
	if next.Status != "done" {
		t.Errorf("the next action after a failure: %+v", next)
	}
	if got := subjects(mailsTo(t, eve)); !slices.Equal(got, []string{"Second"}) {
		t.Errorf("emails to eve: %q, want only the second", got)
	}
	if got := mailsTo(t, "victim@example.net"); len(got) != 0 {
		t.Errorf("the injected Bcc got %d emails", len(got))
	}
}

// TestEmailSubscriberRun: create_email_subscriber with a tunnel links the
// account, records it, and starts an email run whose message blocks send
// their email content and skip blocks without it; a second run of the
// action changes nothing while the run is active. Without a tunnel the
// default tunnel is recorded and nothing is sent.
func TestEmailSubscriberRun(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := emailWorkspace(t, "Email runs")
	a.must(http.MethodPut, "/v1/lead-sources/landing", map[string]string{"name": "Landing"}, http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/nurture", json.RawMessage(`{"name": "Nurture", "entry": "n1", "blocks": [
		{"id": "n1", "type": "message", "text": "chat n1",
		 "email": {"subject": "Day 1 {{subscriber.first_name}}", "html": "<p>Welcome {{subscriber.first_name}}</p>", "text": "Welcome"},
		 "next": ["n2"]},
		{"id": "n2", "type": "message", "text": "chat only", "next": ["wait"]},
		{"id": "wait", "type": "delay", "seconds": 4, "next": ["n3"]},
		{"id": "n3", "type": "message", "email": {"subject": "Day 2", "html": "<p>Day two</p>"}}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/main", json.RawMessage(`{"name": "Main", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "create_email_subscriber", "email_bot": "main", "tunnel": "nurture", "lead_source": "landing"},
			{"type": "create_email_subscriber", "email_bot": "main", "tunnel": "nurture"}]}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/direct", json.RawMessage(`{"name": "Direct", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "send_email", "email_bot": "main", "subject": "Direct",
		 "html": "<p>d</p>", "create_subscriber": true, "tunnel": "nurture", "lead_source": "landing"}]}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/plain", json.RawMessage(`{"name": "Plain", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "create_email_subscriber", "email_bot": "main"}]}]}`), http.StatusOK, nil)

	to, carol := a.address("ann"), a.address("carol")
	sub := a.subscribeEmail("r-1", "main", "1", "Ann", to)
	sub3 := a.subscribeEmail("r-3", "direct", "3", "Carol", carol)
	j := a.settled(sub, 2)

	create, again := mustFind(t, j, "main", "act", 0), mustFind(t, j, "main", "act", 1)
	if create.Status != "done" || create.Detail["account_created"] != true || create.Detail["generation"] != float64(1) ||
		create.Detail["tunnel"] != "nurture" || create.Detail["channel"] != "email" {
		t.Errorf("create_email_subscriber: %+v", create)
	}
	if again.Status != "done" || again.Detail["result"] != "already subscribed" || again.Detail["account_created"] != false {
		t.Errorf("second create_email_subscriber: %+v", again)
	}
	want := map[string]string{"n1": "done ", "n2": "skipped the block has no email content", "wait": "done ", "n3": "done "}
	for block, w := range want {
		s := mustFind(t, j, "nurture", block, -1)
		if got := s.Status + " " + s.Reason; got != w || s.Channel != "email" || s.Generation != 1 {
			t.Errorf("nurture/%s: %s %q on %s gen %d, want %q on email", block, s.Status, s.Reason, s.Channel, s.Generation, w)
		}
	}
	for _, s := range j {
		if s.Tunnel == "nurture" && s.Channel != "email" {
			t.Errorf("a %s step of nurture ran: %+v", s.Channel, s)
		}
	}

	mails := mailsTo(t, to)
	if got := subjects(mails); !slices.Equal(got, []string{"Day 1 Ann", "Day 2"}) {
		t.Fatalf("emails %q, want Day 1 Ann, Day 2", got)
	}
	if mails[0].text() != "Welcome" || mails[0].html() != "<p>Welcome Ann</p>" || mails[1].html() != "<p>Day two</p>" {
		t.Errorf("email run content: %q %q / %q", mails[0].html(), mails[0].text(), mails[1].html())
	}
	n1 := mustFind(t, j, "nurture", "n1", -1)
	if n1.Detail["message_id"] != mails[0].MessageID {
		t.Errorf("n1 message id %v, SES %q", n1.Detail["message_id"], mails[0].MessageID)
	}
	if key, _ := mails[0].header("X-Tunnels-Idempotency-Key"); key != n1.StepID {
		t.Errorf("n1 idempotency key %q, want %q", key, n1.StepID)
	}
	if unsub, _ := mails[1].header("List-Unsubscribe"); !strings.Contains(unsub, "/v1/email-accounts/unsubscribe?token=") {
		t.Errorf("email run without an unsubscribe link: %q", unsub)
	}

	c := a.emailCard(sub)
	acct := c.EmailAccount
	if acct == nil || acct.Email != to || acct.EmailBot != "main" || acct.LeadSource == nil || *acct.LeadSource != "landing" ||
		acct.Tunnel != "nurture" || acct.Unsubscribed || acct.CreatedAt == "" {
		t.Errorf("email account %+v", acct)
	}
	wantRuns := map[string]string{"main/chat": "gen1 recorded=true done", "nurture/email": "gen1 recorded=true done"}
	if got := c.runs(); fmt.Sprint(got) != fmt.Sprint(wantRuns) {
		t.Errorf("runs %v, want %v", got, wantRuns)
	}

	// send_email with create_subscriber: the account and the email run, and the email.
	j3 := a.settled(sub3, 2)
	if s := mustFind(t, j3, "direct", "act", 0); s.Status != "done" || s.Detail["message_id"] == nil {
		t.Errorf("send_email with create_subscriber: %+v", s)
	}
	if got := subjects(mailsTo(t, carol)); len(got) != 3 || got[0] != "Direct" || !slices.Contains(got, "Day 1 Carol") || !slices.Contains(got, "Day 2") {
		t.Errorf("emails to carol %q, want Direct, then Day 1 Carol and Day 2", got)
	}
	c3 := a.emailCard(sub3)
	if acct := c3.EmailAccount; acct == nil || acct.Tunnel != "nurture" || acct.LeadSource == nil || *acct.LeadSource != "landing" {
		t.Errorf("carol's account %+v", acct)
	}
	if got := c3.runs()["nurture/email"]; got != "gen1 recorded=true done" {
		t.Errorf("carol's email run %q", got)
	}
	var tv struct {
		Subscribers int `json:"subscribers"`
	}
	a.must(http.MethodGet, "/v1/tunnels/nurture", nil, http.StatusOK, &tv)
	if tv.Subscribers != 2 {
		t.Errorf("nurture has %d subscribers, want 2 (ann's and carol's email accounts)", tv.Subscribers)
	}

	// Without a tunnel: the default tunnel on the account, no run, no email.
	bob := a.address("bob")
	sub2 := a.subscribeEmail("r-2", "plain", "2", "Bob", bob)
	j2 := a.settled(sub2, 1)
	if s := mustFind(t, j2, "plain", "act", 0); s.Status != "done" || s.Detail["tunnel"] != "default" {
		t.Errorf("create without a tunnel: %+v", s)
	}
	c2 := a.emailCard(sub2)
	if acct := c2.EmailAccount; acct == nil || acct.Tunnel != "default" || acct.LeadSource != nil || acct.Email != bob {
		t.Errorf("account without a tunnel: %+v", acct)
	}
	if got := c2.runs(); len(got) != 1 || got["plain/chat"] == "" {
		t.Errorf("runs %v: no email run expected", got)
	}
	if got := mailsTo(t, bob); len(got) != 0 {
		t.Errorf("%d emails sent without a tunnel", len(got))
	}
}

// TestEmailWithoutAddress: both actions skip a subscriber with no email.
func TestEmailWithoutAddress(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := emailWorkspace(t, "No address")
	a.must(http.MethodPut, "/v1/tunnels/nurture", json.RawMessage(`{"name": "N", "entry": "n1", "blocks": [
		{"id": "n1", "type": "message", "email": {"subject": "S", "html": "<p>h</p>"}}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/main", json.RawMessage(`{"name": "Main", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "create_email_subscriber", "email_bot": "main", "tunnel": "nurture"},
			{"type": "send_email", "email_bot": "main", "subject": "S", "html": "<p>h</p>", "create_subscriber": true, "tunnel": "nurture"}]}]}`),
		http.StatusOK, nil)
	sub := a.subscribeEmail("x-1", "main", "1", "Nobody", "")
	j := a.settled(sub, 1)
	for i := range 2 {
		if s := mustFind(t, j, "main", "act", i); s.Status != "skipped" || s.Reason != "the subscriber has no email address" {
			t.Errorf("action %d: %s %q", i, s.Status, s.Reason)
		}
	}
	c := a.emailCard(sub)
	if c.EmailAccount != nil || len(c.Runs) != 1 {
		t.Errorf("card: account %+v runs %v", c.EmailAccount, c.runs())
	}
}

// TestUnsubscribeLink: the link in the List-Unsubscribe header marks the
// account unsubscribed (idempotently), and later email steps are skipped.
func TestUnsubscribeLink(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := emailWorkspace(t, "Unsubscribe")
	a.must(http.MethodPut, "/v1/tunnels/news", json.RawMessage(`{"name": "News", "entry": "n1", "blocks": [
		{"id": "n1", "type": "message", "email": {"subject": "News", "html": "<p>news</p>"}}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/first", json.RawMessage(`{"name": "First", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "send_email", "email_bot": "main", "subject": "First", "html": "<p>1</p>"}]}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/later", json.RawMessage(`{"name": "Later", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "send_email", "email_bot": "main", "subject": "Later", "html": "<p>2</p>"},
			{"type": "create_email_subscriber", "email_bot": "main", "tunnel": "news"}]}]}`), http.StatusOK, nil)

	to := a.address("ann")
	sub := a.subscribeEmail("u-1", "first", "1", "Ann", to)
	a.settled(sub, 1)
	mails := mailsTo(t, to)
	if len(mails) != 1 {
		t.Fatalf("%d emails, want 1", len(mails))
	}
	if c := a.emailCard(sub); c.EmailAccount != nil {
		t.Fatalf("account before: %+v; send_email without create_subscriber links none", c.EmailAccount)
	}

	// Follow the link as a mail client would, at this local API (plain
	// http; the link's host is the one the API was last called at, which
	// the RIE test, sharing the table, may have set to its synthetic one).
	unsub, _ := mails[0].header("List-Unsubscribe")
	link, err := url.Parse(strings.Trim(unsub, "<>"))
	if err != nil {
		t.Fatalf("List-Unsubscribe %q: %v", unsub, err)
	}
	public := &api{t: t} // no key: the link is public
	// A HEAD (link checkers, mail scanners) checks the link and changes nothing.
	res, err := http.Head(sys.APIURL + link.RequestURI())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || a.emailCard(sub).EmailAccount != nil {
		t.Fatalf("HEAD = %d; account %+v", res.StatusCode, a.emailCard(sub).EmailAccount)
	}
	for range 2 {
		res, err := http.Get(sys.APIURL + link.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		public.checkContract(http.MethodGet, link.RequestURI(), nil, res, body)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(body), "unsubscribed") || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET %s = %d %s %q", link.Path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	// The one-click POST a mailbox provider sends (RFC 8058) works too, again.
	res, err = http.Post(sys.APIURL+link.RequestURI(), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	public.checkContract(http.MethodPost, link.RequestURI(), nil, res, body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("one-click POST = %d %s", res.StatusCode, body)
	}
	// The subscriber had no linked account: one is made, unsubscribed, tied
	// to the bot that sent the email.
	c := a.emailCard(sub)
	if acct := c.EmailAccount; acct == nil || !acct.Unsubscribed || acct.Email != to || acct.EmailBot != "main" || acct.Tunnel != "default" {
		t.Errorf("account after: %+v", acct)
	}

	// Later email steps are skipped; nothing more is sent.
	a.subscribeEmail("u-2", "later", "1", "Ann", to)
	j := a.settled(sub, 2)
	for i := range 2 {
		if s := mustFind(t, j, "later", "act", i); s.Status != "skipped" || s.Reason != "the email account unsubscribed" {
			t.Errorf("later action %d: %s %q", i, s.Status, s.Reason)
		}
	}
	if got := mailsTo(t, to); len(got) != 1 {
		t.Errorf("%d emails after unsubscribing, want still 1", len(got))
	}

	// A token this deployment did not sign, and none at all.
	token := link.Query().Get("token")
	payload, mac, _ := strings.Cut(token, ".")
	flipped := map[bool]string{true: "B", false: "A"}[mac[0] == 'A'] + mac[1:] // the first character is all MAC bits
	tampered := payload + "." + flipped
	public.problem(http.MethodGet, "/v1/email-accounts/unsubscribe?token="+url.QueryEscape(tampered), nil, http.StatusNotFound, "not_found")
	public.problem(http.MethodGet, "/v1/email-accounts/unsubscribe?token=nonsense", nil, http.StatusNotFound, "not_found")
	public.problem(http.MethodGet, "/v1/email-accounts/unsubscribe", nil, http.StatusBadRequest, "validation_failed")
}

// TestEmailRunStopped: a STOP of the tunnel drops the pending steps of its
// email run too.
func TestEmailRunStopped(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := emailWorkspace(t, "Email stop")
	a.must(http.MethodPut, "/v1/tunnels/drip", json.RawMessage(`{"name": "Drip", "entry": "s1", "blocks": [
		{"id": "s1", "type": "message", "email": {"subject": "S1", "html": "<p>1</p>"}, "next": ["wait"]},
		{"id": "wait", "type": "delay", "seconds": 6, "next": ["s2"]},
		{"id": "s2", "type": "message", "email": {"subject": "S2", "html": "<p>2</p>"}}]}`), http.StatusOK, nil)
	a.must(http.MethodPut, "/v1/tunnels/main", json.RawMessage(`{"name": "Main", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [{"type": "create_email_subscriber", "email_bot": "main", "tunnel": "drip"}], "next": ["pause"]},
		{"id": "pause", "type": "delay", "seconds": 1, "next": ["halt"]},
		{"id": "halt", "type": "action", "actions": [{"type": "stop", "tunnel": "drip"}]}]}`), http.StatusOK, nil)
	to := a.address("ann")
	sub := a.subscribeEmail("s-1", "main", "1", "Ann", to)
	var j []journeyStep
	eventually(t, 40*time.Second, "drip/s2 to be delivered", func() (bool, string) {
		j = a.journey(sub)
		_, ok := find(j, "drip", "s2", -1)
		return ok, describe(j)
	})
	halt := mustFind(t, j, "main", "halt", 0)
	s2 := mustFind(t, j, "drip", "s2", -1)
	if halt.Status != "done" || s2.Status != "skipped" || s2.Reason != "stopped" || s2.Channel != "email" {
		t.Errorf("halt %s; drip/s2 %s %q on %s; want skipped stopped on email", halt.Status, s2.Status, s2.Reason, s2.Channel)
	}
	if got := subjects(mailsTo(t, to)); !slices.Equal(got, []string{"S1"}) {
		t.Errorf("emails %q, want only S1", got)
	}
	if got := a.emailCard(sub).runs()["drip/email"]; got != "gen1 recorded=true stopped" {
		t.Errorf("drip email run = %q, want stopped", got)
	}
}

// TestEmailExactlyOnce: duplicate deliveries of a send_email step send one
// email, both when the step completed and when its completion was lost
// (its record deleted, as after a crash between the send and the record).
func TestEmailExactlyOnce(t *testing.T) {
	needSystem(t)
	t.Parallel()
	a := emailWorkspace(t, "Exactly once")
	a.must(http.MethodPut, "/v1/tunnels/once", json.RawMessage(`{"name": "Once", "entry": "act", "blocks": [
		{"id": "act", "type": "action", "actions": [
			{"type": "send_email", "email_bot": "main", "subject": "Once", "html": "<p>once</p>"}], "next": ["tail"]},
		{"id": "tail", "type": "delay", "seconds": 1}]}`), http.StatusOK, nil)
	to := a.address("ann")
	sub := a.subscribeEmail("o-1", "once", "1", "Ann", to)
	j := a.settled(sub, 1)
	step := mustFind(t, j, "once", "act", 0)
	mails := mailsTo(t, to)
	if len(mails) != 1 || step.Detail["message_id"] != mails[0].MessageID {
		t.Fatalf("%d emails; step %+v", len(mails), step)
	}
	withKey := func() int {
		n := 0
		for _, m := range mailsTo(t, to) {
			if k, _ := m.header("X-Tunnels-Idempotency-Key"); k == step.StepID {
				n++
			}
		}
		return n
	}
	body, _ := json.Marshal(map[string]any{"v": 1, "id": step.StepID, "ws": a.ws, "sub": sub, "tunnel": "once",
		"channel": "chat", "gen": 1, "block": "act", "action": 0, "at": step.StartedAt})
	q, _ := sys.Resources.Get("EmailQueue")
	deliverTwice := func() {
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := sys.Clients.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{
					QueueUrl: aws.String(q.URL), MessageBody: aws.String(string(body))}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}

	// 1. The step completed: duplicates do nothing. (A duplicate leaves no
	// trace to wait for, so give the pollers time to take both.)
	deliverTwice()
	time.Sleep(4 * time.Second)
	if n := withKey(); n != 1 {
		t.Errorf("%d emails after duplicates of a completed step, want 1", n)
	}
	if again := a.journey(sub); len(again) != len(j) {
		t.Errorf("journey went from %d to %d entries:%s", len(j), len(again), describe(again))
	}

	// 2. The completion was lost: the step runs again, finds its send record
	// and sends nothing. (The record's key is the store's layout.)
	table, _ := sys.Resources.Get("Table")
	_, err := sys.Clients.DynamoDB.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{
		TableName: aws.String(table.Name),
		Key: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: "WS#" + a.ws + "#SUB#" + sub},
			"sk": &ddbtypes.AttributeValueMemberS{Value: "STEP#" + step.StepID},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	deliverTwice()
	var rerun journeyStep
	eventually(t, 20*time.Second, "the step to run again", func() (bool, string) {
		j := a.journey(sub)
		var ok bool
		rerun, ok = find(j, "once", "act", 0)
		return ok, describe(j)
	})
	time.Sleep(3 * time.Second) // the second delivery: busy, then a duplicate
	if rerun.Status != "done" || rerun.Detail["message_id"] != mails[0].MessageID || rerun.Detail["sent_by_earlier_attempt"] != true {
		t.Errorf("re-run step: %+v", rerun)
	}
	if n := withKey(); n != 1 {
		t.Errorf("%d emails after the step ran again, want 1", n)
	}
}
