package actions

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/mail"
	"github.com/tunnels/tunnels/shared/render"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// fakeEmailStore keeps the email state in memory and records the calls.
type fakeEmailStore struct {
	bots     map[string]mail.Sender
	account  *engine.EmailAccount // what CreateEmailAccount finds linked
	created  []engine.EmailAccount
	starts   []engine.RunStart
	gen      int
	sends    map[string]string // step id -> message id ("" while sending)
	begun    int
	marked   int
	secret   []byte
	base     string
	baseRead int
	fail     error // returned by every call when set
}

func newFakeEmailStore() *fakeEmailStore {
	return &fakeEmailStore{
		bots: map[string]mail.Sender{"main": {Address: "news@tunnels.example.com", Name: "Tunnels News", ReplyTo: "help@tunnels.example.com"}},
		gen:  1, sends: map[string]string{}, secret: []byte("0123456789abcdef0123456789abcdef"),
		base: "https://api.tunnels.example.com",
	}
}

func (f *fakeEmailStore) EmailBot(_ context.Context, ws, id string) (mail.Sender, error) {
	if f.fail != nil {
		return mail.Sender{}, f.fail
	}
	b, ok := f.bots[id]
	if !ok {
		return mail.Sender{}, engine.ErrNotFound
	}
	return b, nil
}

func (f *fakeEmailStore) CreateEmailAccount(_ context.Context, ws, sub string, a engine.EmailAccount) (engine.EmailAccount, bool, error) {
	if f.account != nil {
		return *f.account, false, nil
	}
	f.created = append(f.created, a)
	f.account = &a
	return a, true, nil
}

func (f *fakeEmailStore) StartRun(_ context.Context, ws, sub string, r engine.RunStart) (int, error) {
	f.starts = append(f.starts, r)
	return f.gen, nil
}

func (f *fakeEmailStore) BeginSend(_ context.Context, ws, sub, stepID string, at time.Time) (string, error) {
	f.begun++
	return f.sends[stepID], nil
}

func (f *fakeEmailStore) MarkSent(_ context.Context, ws, sub, stepID, messageID string, at time.Time) error {
	f.marked++
	f.sends[stepID] = messageID
	return nil
}

func (f *fakeEmailStore) UnsubscribeSecret(context.Context) ([]byte, error) { return f.secret, nil }

func (f *fakeEmailStore) PublicURL(context.Context) (string, error) {
	f.baseRead++
	if f.base == "" {
		return "", engine.ErrNotFound
	}
	return f.base, nil
}

// fakeEmailTunnels answers tunnel definitions by id.
type fakeEmailTunnels map[string]*tunnel.Tunnel

func (f fakeEmailTunnels) Tunnel(_ context.Context, ws, id string) (*tunnel.Tunnel, error) {
	if t, ok := f[id]; ok {
		return t, nil
	}
	return nil, engine.ErrNotFound
}

// fakeEmailMailer records what it is asked to send and answers err or an id.
type fakeEmailMailer struct {
	sent []mail.Message
	err  error
}

func (m *fakeEmailMailer) Send(_ context.Context, msg mail.Message) (string, error) {
	if err := msg.Validate(); err != nil {
		return "", err // as sesmail does
	}
	if m.err != nil {
		return "", m.err
	}
	m.sent = append(m.sent, msg)
	return fmt.Sprintf("ses-%d", len(m.sent)), nil
}

// emailTestRenderer renders as the engine does, without variables.
type emailTestRenderer struct{ sub *engine.Subscriber }

func (r emailTestRenderer) Render(_ context.Context, text string) (string, error) {
	return render.Render(text, engine.SubscriberData(r.sub, "main")), nil
}

func (r emailTestRenderer) RenderEscaped(_ context.Context, text string, esc func(string) string) (string, error) {
	return render.RenderEscaped(text, engine.SubscriberData(r.sub, "main"), esc), nil
}

var emailNow = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

var nurtureTunnel = &tunnel.Tunnel{Name: "Nurture", Entry: "n1", Blocks: []tunnel.Block{
	{ID: "n1", Type: "message", Email: &tunnel.EmailContent{Subject: "Day 1", HTML: "<p>1</p>"}},
}}

type emailFixture struct {
	store  *fakeEmailStore
	mailer *fakeEmailMailer
	email  *Email
}

func newEmailFixture() emailFixture {
	st, m := newFakeEmailStore(), &fakeEmailMailer{}
	return emailFixture{st, m, &Email{
		Store: st, Mailer: m, Now: func() time.Time { return emailNow },
		Tunnels: fakeEmailTunnels{"nurture": nurtureTunnel, "default": {Name: "Default"}},
	}}
}

func emailActionContext(sub *engine.Subscriber, a tunnel.Action) *engine.ActionContext {
	return &engine.ActionContext{
		Step: engine.Step{V: 1, ID: "step-1", WS: "ws1", Sub: sub.ID, Tunnel: "main", Channel: engine.ChannelChat,
			Gen: 1, Block: "act", At: emailNow.Add(-time.Second)},
		Action: a, Subscriber: sub, Now: emailNow, Attempt: 1,
	}
}

func emailAnn() *engine.Subscriber {
	return &engine.Subscriber{ID: "sub1", WS: "ws1", FirstName: "Ann", Email: "ann@example.org",
		Runs: map[string]engine.Run{}, Stops: map[string][]engine.StopMarker{}}
}

func TestCreateEmailSubscriber(t *testing.T) {
	withRun := func(run engine.Run, stops ...engine.StopMarker) func(*engine.Subscriber) {
		return func(s *engine.Subscriber) {
			s.EmailAccount = &engine.EmailAccount{Email: s.Email, EmailBot: "main", Tunnel: "nurture", CreatedAt: emailNow.Add(-time.Hour)}
			s.Runs[engine.RunKey("nurture", "email")] = run
			s.Stops["nurture"] = stops
		}
	}
	firstStep := engine.Step{V: 1, ID: engine.DeriveID("step-1", "email-run", "nurture"), WS: "ws1", Sub: "sub1",
		Tunnel: "nurture", Channel: "email", Gen: 1, Block: "n1", At: emailNow, Spin: 1} // one step after the action that began it
	tests := []struct {
		name        string
		action      tunnel.Action
		sub         func(*engine.Subscriber)
		status      string
		reason      string
		created     *engine.EmailAccount
		starts      []engine.RunStart
		spawn       []engine.Outgoing
		detailCheck map[string]any
	}{
		{
			name: "with a tunnel: account and email run", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture", LeadSource: "landing"},
			status:  "done",
			created: &engine.EmailAccount{Email: "ann@example.org", EmailBot: "main", LeadSource: "landing", Tunnel: "nurture", CreatedAt: emailNow},
			starts:  []engine.RunStart{{Tunnel: "nurture", Channel: "email", Recorded: true, By: "step-1", At: emailNow, Pending: 1}},
			spawn:   []engine.Outgoing{{Kind: engine.KindEmail, Step: firstStep}},
			detailCheck: map[string]any{"tunnel": "nurture", "channel": "email", "generation": 1, "block": "n1",
				"account_created": true, "email": "ann@example.org", "email_bot": "main"},
		},
		{
			name: "without a tunnel: the default tunnel on the account, nothing starts", action: tunnel.Action{EmailBot: "main"},
			status:      "done",
			created:     &engine.EmailAccount{Email: "ann@example.org", EmailBot: "main", Tunnel: "default", CreatedAt: emailNow},
			detailCheck: map[string]any{"tunnel": "default", "account_created": true},
		},
		{
			name: "no email address", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture"},
			sub:    func(s *engine.Subscriber) { s.Email = "" },
			status: "skipped", reason: "the subscriber has no email address",
		},
		{
			name: "email bot deleted", action: tunnel.Action{EmailBot: "gone", Tunnel: "nurture"},
			status: "skipped", reason: `email bot "gone" no longer exists`,
		},
		{
			name: "tunnel deleted", action: tunnel.Action{EmailBot: "main", Tunnel: "gone"},
			status: "skipped", reason: `tunnel "gone" no longer exists`,
		},
		{
			name: "unsubscribed account", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture"},
			sub: func(s *engine.Subscriber) {
				s.EmailAccount = &engine.EmailAccount{Email: s.Email, EmailBot: "main", Tunnel: "nurture", Unsubscribed: true}
			},
			status: "skipped", reason: "the email account unsubscribed",
		},
		{
			name: "an active email run: already subscribed", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture"},
			sub:         withRun(engine.Run{Tunnel: "nurture", Channel: "email", Gen: 3, Pending: 1, StartedAt: emailNow.Add(-time.Minute), StartedBy: "other-step"}),
			status:      "done",
			detailCheck: map[string]any{"result": "already subscribed", "generation": 3, "account_created": false},
		},
		{
			name: "the run this step started on an earlier attempt: spawned again", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture"},
			sub:    withRun(engine.Run{Tunnel: "nurture", Channel: "email", Gen: 1, Pending: 1, StartedAt: emailNow, StartedBy: "step-1"}),
			status: "done",
			starts: []engine.RunStart{{Tunnel: "nurture", Channel: "email", Recorded: true, By: "step-1", At: emailNow, Pending: 1}},
			spawn:  []engine.Outgoing{{Kind: engine.KindEmail, Step: firstStep}},
		},
		{
			name: "a finished email run: a new one starts", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture"},
			sub:    withRun(engine.Run{Tunnel: "nurture", Channel: "email", Gen: 1, Pending: 0, StartedAt: emailNow.Add(-time.Hour), StartedBy: "x"}),
			status: "done",
			starts: []engine.RunStart{{Tunnel: "nurture", Channel: "email", Recorded: true, By: "step-1", At: emailNow, Pending: 1}},
			spawn:  []engine.Outgoing{{Kind: engine.KindEmail, Step: firstStep}},
		},
		{
			name: "a stopped email run: a new one starts", action: tunnel.Action{EmailBot: "main", Tunnel: "nurture"},
			sub: withRun(engine.Run{Tunnel: "nurture", Channel: "email", Gen: 1, Pending: 1, StartedAt: emailNow.Add(-time.Hour), StartedBy: "x"},
				engine.StopMarker{At: emailNow.Add(-time.Minute)}),
			status: "done",
			starts: []engine.RunStart{{Tunnel: "nurture", Channel: "email", Recorded: true, By: "step-1", At: emailNow, Pending: 1}},
			spawn:  []engine.Outgoing{{Kind: engine.KindEmail, Step: firstStep}},
		},
		{
			name: "an empty tunnel: recorded, nothing to send", action: tunnel.Action{EmailBot: "main", Tunnel: "default"},
			status:  "done",
			created: &engine.EmailAccount{Email: "ann@example.org", EmailBot: "main", Tunnel: "default", CreatedAt: emailNow},
			starts:  []engine.RunStart{{Tunnel: "default", Channel: "email", Recorded: true, By: "step-1", At: emailNow, Pending: 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newEmailFixture()
			sub := emailAnn()
			if tt.sub != nil {
				tt.sub(sub)
			}
			if sub.EmailAccount != nil {
				fx.store.account = sub.EmailAccount
			}
			tt.action.Type = "create_email_subscriber"
			out, err := fx.email.Actions()["create_email_subscriber"](t.Context(), emailActionContext(sub, tt.action))
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != tt.status || out.Reason != tt.reason {
				t.Fatalf("outcome = %s %q, want %s %q", out.Status, out.Reason, tt.status, tt.reason)
			}
			if tt.created != nil {
				if len(fx.store.created) != 1 || !reflect.DeepEqual(fx.store.created[0], *tt.created) {
					t.Errorf("created %+v, want %+v", fx.store.created, *tt.created)
				}
			} else if len(fx.store.created) != 0 {
				t.Errorf("created %+v, want none", fx.store.created)
			}
			if !reflect.DeepEqual(fx.store.starts, tt.starts) {
				t.Errorf("StartRun calls %+v, want %+v", fx.store.starts, tt.starts)
			}
			if !reflect.DeepEqual(out.Spawn, tt.spawn) {
				t.Errorf("spawn %+v, want %+v", out.Spawn, tt.spawn)
			}
			for k, v := range tt.detailCheck {
				if out.Detail[k] != v {
					t.Errorf("detail[%s] = %v, want %v (detail %v)", k, out.Detail[k], v, out.Detail)
				}
			}
			if len(fx.mailer.sent) != 0 {
				t.Errorf("create_email_subscriber sent %d emails", len(fx.mailer.sent))
			}
		})
	}
}

func sendEmailAction() tunnel.Action {
	return tunnel.Action{Type: "send_email", EmailBot: "main", Subject: "Hi {{subscriber.first_name}}",
		HTML: `<p>Hello {{subscriber.first_name}}</p>`}
}

func TestSendEmail(t *testing.T) {
	fx := newEmailFixture()
	sub := emailAnn()
	sub.FirstName = `<b>Ann</b> & "Co"`
	ac := emailActionContext(sub, sendEmailAction())
	out, err := fx.email.sendEmail(t.Context(), ac, emailTestRenderer{sub})
	if err != nil || out.Status != "done" {
		t.Fatalf("send_email = %+v, %v", out, err)
	}
	if len(fx.mailer.sent) != 1 {
		t.Fatalf("%d emails sent, want 1", len(fx.mailer.sent))
	}
	m := fx.mailer.sent[0]
	if m.From != fx.store.bots["main"] || m.To != "ann@example.org" {
		t.Errorf("from %+v to %q", m.From, m.To)
	}
	if m.Subject != `Hi <b>Ann</b> & "Co"` {
		t.Errorf("subject = %q: the subject is text, not escaped", m.Subject)
	}
	if m.HTML != `<p>Hello &lt;b&gt;Ann&lt;/b&gt; &amp; &#34;Co&#34;</p>` {
		t.Errorf("html = %q: subscriber data must be escaped", m.HTML)
	}
	if m.Text != "" || m.PlainText() != `Hello <b>Ann</b> & "Co"` {
		t.Errorf("text = %q, derived %q", m.Text, m.PlainText())
	}
	if m.IdempotencyKey != "step-1" || !m.ListUnsubscribePost {
		t.Errorf("idempotency key %q, one-click %v", m.IdempotencyKey, m.ListUnsubscribePost)
	}
	u, err := url.Parse(m.ListUnsubscribe)
	if err != nil || u.Scheme != "https" || u.Host != "api.tunnels.example.com" || u.Path != UnsubscribePath {
		t.Fatalf("List-Unsubscribe %q", m.ListUnsubscribe)
	}
	ws, subID, bot, ok := ParseUnsubscribeToken(fx.store.secret, u.Query().Get("token"))
	if !ok || ws != "ws1" || subID != "sub1" || bot != "main" {
		t.Errorf("token names %q %q %q %v", ws, subID, bot, ok)
	}
	want := map[string]any{"message_id": "ses-1", "to": "ann@example.org", "from": "news@tunnels.example.com",
		"email_bot": "main", "subject": m.Subject}
	if !reflect.DeepEqual(out.Detail, want) {
		t.Errorf("detail = %v, want %v", out.Detail, want)
	}
	if fx.store.begun != 1 || fx.store.marked != 1 || fx.store.sends["step-1"] != "ses-1" {
		t.Errorf("send record: begun %d marked %d %v", fx.store.begun, fx.store.marked, fx.store.sends)
	}

	// The step again (its completion was lost): the send record answers,
	// nothing is sent twice.
	out, err = fx.email.sendEmail(t.Context(), ac, emailTestRenderer{sub})
	if err != nil || out.Status != "done" || out.Detail["message_id"] != "ses-1" || out.Detail["sent_by_earlier_attempt"] != true {
		t.Errorf("repeat = %+v, %v", out, err)
	}
	if len(fx.mailer.sent) != 1 {
		t.Errorf("%d emails after a repeat, want 1", len(fx.mailer.sent))
	}
	// The public URL is cached.
	if fx.store.baseRead != 1 {
		t.Errorf("public URL read %d times, want 1", fx.store.baseRead)
	}
}

func TestSendEmailOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		sub      func(*engine.Subscriber)
		action   func(*tunnel.Action)
		store    func(*fakeEmailStore)
		mailErr  error
		status   string
		reason   string // a prefix
		wantErr  error
		attempts int // BeginSend calls
	}{
		{name: "no email address", sub: func(s *engine.Subscriber) { s.Email = "" }, status: "skipped", reason: "the subscriber has no email address"},
		{name: "unsubscribed", sub: func(s *engine.Subscriber) {
			s.EmailAccount = &engine.EmailAccount{Email: s.Email, EmailBot: "main", Tunnel: "default", Unsubscribed: true}
		}, status: "skipped", reason: "the email account unsubscribed"},
		{name: "bot deleted", action: func(a *tunnel.Action) { a.EmailBot = "gone" }, status: "skipped", reason: `email bot "gone" no longer exists`},
		{name: "header injection through the subject", sub: func(s *engine.Subscriber) { s.FirstName = "Ann\r\nBcc: victim@example.net" },
			status: "failed", reason: "the email is not valid: subject: contains a line break (header injection)"},
		{name: "a bad address", sub: func(s *engine.Subscriber) { s.Email = "ann@localhost" },
			status: "failed", reason: "the email is not valid: to: must have a domain name"},
		{name: "throttled: retried", mailErr: mail.Throttled("TooManyRequestsException", errors.New("Maximum sending rate exceeded")),
			wantErr: mail.ErrThrottled, attempts: 1},
		{name: "transient: retried", mailErr: mail.Transient("", errors.New("connection reset")), wantErr: mail.ErrTransient, attempts: 1},
		{name: "rejected: failed with the code", mailErr: mail.Rejected("MessageRejected", errors.New("Email address is not verified")),
			status: "failed", reason: "SES rejected the email (MessageRejected: Email address is not verified)", attempts: 1},
		{name: "public URL not known yet: retried", store: func(f *fakeEmailStore) { f.base = "" }, wantErr: errAnyEmail},
		{name: "store down: retried", store: func(f *fakeEmailStore) { f.fail = errors.New("dynamodb down") }, wantErr: errAnyEmail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newEmailFixture()
			fx.mailer.err = tt.mailErr
			if tt.store != nil {
				tt.store(fx.store)
			}
			sub := emailAnn()
			if tt.sub != nil {
				tt.sub(sub)
			}
			a := sendEmailAction()
			if tt.action != nil {
				tt.action(&a)
			}
			out, err := fx.email.sendEmail(t.Context(), emailActionContext(sub, a), emailTestRenderer{sub})
			switch {
			case tt.wantErr == errAnyEmail && err == nil, tt.wantErr != nil && tt.wantErr != errAnyEmail && !errors.Is(err, tt.wantErr):
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && err != nil:
				t.Fatalf("error %v", err)
			}
			if tt.wantErr == nil && (out.Status != tt.status || !strings.HasPrefix(out.Reason, tt.reason)) {
				t.Errorf("outcome %s %q, want %s %q", out.Status, out.Reason, tt.status, tt.reason)
			}
			if fx.store.begun != tt.attempts {
				t.Errorf("BeginSend called %d times, want %d", fx.store.begun, tt.attempts)
			}
			if len(fx.mailer.sent) != 0 || fx.store.marked != 0 {
				t.Errorf("sent %d, marked %d; want nothing", len(fx.mailer.sent), fx.store.marked)
			}
		})
	}
}

var errAnyEmail = errors.New("any error")

func TestSendEmailCreatesSubscriber(t *testing.T) {
	fx := newEmailFixture()
	sub := emailAnn()
	a := sendEmailAction()
	a.CreateSubscriber, a.Tunnel, a.LeadSource = true, "nurture", "landing"
	out, err := fx.email.sendEmail(t.Context(), emailActionContext(sub, a), emailTestRenderer{sub})
	if err != nil || out.Status != "done" || len(fx.mailer.sent) != 1 {
		t.Fatalf("send_email = %+v, %v; %d sent", out, err, len(fx.mailer.sent))
	}
	want := engine.EmailAccount{Email: "ann@example.org", EmailBot: "main", LeadSource: "landing", Tunnel: "nurture", CreatedAt: emailNow}
	if len(fx.store.created) != 1 || fx.store.created[0] != want {
		t.Errorf("created %+v", fx.store.created)
	}
	if len(fx.store.starts) != 1 || len(out.Spawn) != 1 || out.Spawn[0].Step.Channel != "email" || out.Spawn[0].Step.Block != "n1" {
		t.Errorf("starts %+v spawn %+v", fx.store.starts, out.Spawn)
	}
	if d, _ := out.Detail["subscription"].(map[string]any); d["tunnel"] != "nurture" || out.Detail["message_id"] != "ses-1" {
		t.Errorf("detail %v", out.Detail)
	}
}

func TestEmailRunMessage(t *testing.T) {
	block := &tunnel.Block{ID: "n1", Type: "message", Email: &tunnel.EmailContent{
		Subject: "Day 1 for {{subscriber.first_name}}", HTML: "<p>{{subscriber.first_name}}</p>", Text: "Hi {{subscriber.first_name}}"}}
	account := &engine.EmailAccount{Email: "ann.list@example.org", EmailBot: "main", Tunnel: "nurture"}
	tests := []struct {
		name    string
		account *engine.EmailAccount
		block   *tunnel.Block
		status  string
		reason  string
	}{
		{"sends to the account", account, block, "done", ""},
		{"no account", nil, block, "skipped", "the subscriber has no linked email account"},
		{"unsubscribed", &engine.EmailAccount{Email: "a@example.org", EmailBot: "main", Unsubscribed: true}, block, "skipped", "the email account unsubscribed"},
		{"bot deleted", &engine.EmailAccount{Email: "a@example.org", EmailBot: "gone"}, block, "skipped", `email bot "gone" no longer exists`},
		{"no email content", account, &tunnel.Block{ID: "n2", Type: "message", Text: "chat only"}, "skipped", "the block has no email content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newEmailFixture()
			sub := emailAnn()
			sub.EmailAccount = tt.account
			ac := emailActionContext(sub, tunnel.Action{})
			ac.Step.Channel, ac.Step.Tunnel, ac.Step.Block, ac.Block = "email", "nurture", tt.block.ID, tt.block
			out, err := fx.email.message(t.Context(), ac, emailTestRenderer{sub})
			if err != nil || out.Status != tt.status || out.Reason != tt.reason {
				t.Fatalf("outcome %+v, %v; want %s %q", out, err, tt.status, tt.reason)
			}
			if tt.status != "done" {
				if len(fx.mailer.sent) != 0 {
					t.Errorf("sent %d emails", len(fx.mailer.sent))
				}
				return
			}
			m := fx.mailer.sent[0]
			if m.To != "ann.list@example.org" || m.Subject != "Day 1 for Ann" || m.HTML != "<p>Ann</p>" || m.Text != "Hi Ann" ||
				m.IdempotencyKey != "step-1" || !strings.HasPrefix(m.ListUnsubscribe, "https://api.tunnels.example.com/v1/email-accounts/unsubscribe?token=") {
				t.Errorf("message %+v", m)
			}
		})
	}
}

func TestUnsubscribeToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok := UnsubscribeToken(secret, "ws1", "sub1", "main")
	if strings.ContainsAny(tok, "+/=,<> ") {
		t.Errorf("token %q is not URL- and header-safe", tok)
	}
	if ws, sub, bot, ok := ParseUnsubscribeToken(secret, tok); !ok || ws != "ws1" || sub != "sub1" || bot != "main" {
		t.Fatalf("parse = %q %q %q %v", ws, sub, bot, ok)
	}
	payload, mac, _ := strings.Cut(tok, ".")
	other := UnsubscribeToken(secret, "ws1", "sub2", "main")
	otherPayload, _, _ := strings.Cut(other, ".")
	flip := []byte(mac)
	flip[3] ^= 1
	for name, bad := range map[string]string{
		"another secret":          UnsubscribeToken([]byte("another-secret-another-secret-xx"), "ws1", "sub1", "main"),
		"payload of another sub":  otherPayload + "." + mac,
		"changed mac":             payload + "." + string(flip),
		"no mac":                  payload,
		"empty":                   "",
		"not base64":              "!!!.???",
		"too many parts":          UnsubscribeToken(secret, "ws1", "sub1\x00x", "main"),
		"empty part":              UnsubscribeToken(secret, "ws1", "", "main"),
		"very long":               strings.Repeat("a", 2000) + "." + mac,
		"mac of the empty secret": UnsubscribeToken(nil, "ws1", "sub1", "main"),
	} {
		if _, _, _, ok := ParseUnsubscribeToken(secret, bad); ok {
			t.Errorf("%s: token %q accepted", name, bad)
		}
	}
}

func TestPublicBaseURL(t *testing.T) {
	for host, want := range map[string]string{
		"abc123.execute-api.eu-west-1.amazonaws.com": "https://abc123.execute-api.eu-west-1.amazonaws.com",
		"API.Example.com":      "https://api.example.com",
		"127.0.0.1:3000":       "https://127.0.0.1:3000",
		"[::1]:8080":           "https://[::1]:8080",
		"":                     "",
		"evil.example/path":    "",
		"user@evil.example":    "",
		"evil.example?x=1":     "",
		"evil.example#frag":    "",
		"a b":                  "",
		"evil.example\r\nX: y": "",
		":8080":                "",
	} {
		if got := PublicBaseURL(host); got != want {
			t.Errorf("PublicBaseURL(%q) = %q, want %q", host, got, want)
		}
	}
}
