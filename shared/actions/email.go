package actions

// Email (issue 4): create_email_subscriber, send_email, and the email content
// of message blocks on email runs, sent through a mail.Mailer (SES v2 in the
// email function).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tunnels/tunnels/shared/engine"
	"github.com/tunnels/tunnels/shared/mail"
	"github.com/tunnels/tunnels/shared/tunnel"
)

// EmailStore is what the email actions read and write.
type EmailStore interface {
	// EmailBot answers an email bot's sender, or engine.ErrNotFound.
	EmailBot(ctx context.Context, ws, id string) (mail.Sender, error)
	// CreateEmailAccount links a unless an account is linked already; it
	// answers the linked account and whether this call created it.
	CreateEmailAccount(ctx context.Context, ws, sub string, a engine.EmailAccount) (engine.EmailAccount, bool, error)
	// StartRun begins a new generation of a run, once per r.By.
	StartRun(ctx context.Context, ws, sub string, r engine.RunStart) (int, error)
	// BeginSend notes an attempt to send a step's email; when an earlier
	// attempt sent it already, it answers that email's message id.
	BeginSend(ctx context.Context, ws, sub, stepID string, at time.Time) (string, error)
	// MarkSent records the message id of a step's email.
	MarkSent(ctx context.Context, ws, sub, stepID, messageID string, at time.Time) error
	// UnsubscribeSecret is the deployment's key for unsubscribe links.
	UnsubscribeSecret(ctx context.Context) ([]byte, error)
	// PublicURL is the https base URL the API is reached at, or
	// engine.ErrNotFound while it is not known.
	PublicURL(ctx context.Context) (string, error)
}

// Email runs the email actions and the email content of message blocks.
type Email struct {
	Store   EmailStore
	Tunnels engine.Tunnels
	Mailer  mail.Mailer
	// Now is the clock of the public URL cache (time.Now when nil).
	Now func() time.Time

	mu     sync.Mutex
	base   string
	baseAt time.Time
}

// UnsubscribePath is the API path of unsubscribe links.
const UnsubscribePath = "/v1/email-accounts/unsubscribe"

// publicURLTTL is how long the email function trusts the base URL it read:
// the API rewrites it when it is called at another host.
const publicURLTTL = time.Minute

// Reasons of skipped email steps.
const (
	reasonNoEmail      = "the subscriber has no email address"
	reasonUnsubscribed = "the email account unsubscribed"
	reasonNoAccount    = "the subscriber has no linked email account"
)

// Actions answers create_email_subscriber and send_email.
func (e *Email) Actions() map[string]engine.ActionFunc {
	return map[string]engine.ActionFunc{
		tunnel.ActionCreateEmailSubscriber: e.createSubscriber,
		tunnel.ActionSendEmail: func(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
			return e.sendEmail(ctx, ac, ac)
		},
	}
}

// Message sends a message block's email content on an email run (the
// engine's Processor.EmailMessage; it calls this only for blocks that have
// email content).
func (e *Email) Message(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	return e.message(ctx, ac, ac)
}

// textRenderer fills placeholders; *engine.ActionContext is one.
type textRenderer interface {
	Render(ctx context.Context, text string) (string, error)
	RenderEscaped(ctx context.Context, text string, escape func(string) string) (string, error)
}

// createSubscriber is create_email_subscriber.
func (e *Email) createSubscriber(ctx context.Context, ac *engine.ActionContext) (engine.Outcome, error) {
	if ac.Subscriber.Email == "" {
		return engine.Skipped(reasonNoEmail), nil
	}
	if _, out, err := e.sender(ctx, ac.Step.WS, ac.Action.EmailBot); out != nil || err != nil {
		return outcomeOf(out), err
	}
	sub, out, err := e.subscribe(ctx, ac)
	if out != nil || err != nil {
		return outcomeOf(out), err
	}
	o := engine.Done(sub.detail)
	o.Spawn = sub.spawn
	return o, nil
}

// subscription is what subscribe did.
type subscription struct {
	account engine.EmailAccount
	detail  map[string]any
	spawn   []engine.Outgoing
}

// subscribe creates the linked email account from the subscriber's email
// (once: a conditional write) and, with a tunnel, subscribes it there: the
// account is recorded in the tunnel and an email run starts at its entry
// block, unless an email run of that tunnel is active already. Without a
// tunnel the default tunnel is recorded on the account and nothing starts.
// A non-nil Outcome is a skip of the whole action.
func (e *Email) subscribe(ctx context.Context, ac *engine.ActionContext) (subscription, *engine.Outcome, error) {
	s, a, sub := ac.Step, ac.Action, ac.Subscriber
	if acct := sub.EmailAccount; acct != nil && acct.Unsubscribed {
		return subscription{}, skipOutcome(reasonUnsubscribed), nil
	}
	tunnelID := a.Tunnel
	if tunnelID == "" {
		tunnelID = "default"
	}
	var target *tunnel.Tunnel
	if a.Tunnel != "" {
		t, err := e.Tunnels.Tunnel(ctx, s.WS, a.Tunnel)
		if errors.Is(err, engine.ErrNotFound) {
			return subscription{}, skipOutcome(fmt.Sprintf("tunnel %q no longer exists", a.Tunnel)), nil
		}
		if err != nil {
			return subscription{}, nil, fmt.Errorf("read tunnel %s: %w", a.Tunnel, err)
		}
		target = t
	}

	acct, created := engine.EmailAccount{}, false
	if sub.EmailAccount != nil {
		acct = *sub.EmailAccount
	} else {
		var err error
		acct, created, err = e.Store.CreateEmailAccount(ctx, s.WS, s.Sub, engine.EmailAccount{
			Email: sub.Email, EmailBot: a.EmailBot, LeadSource: a.LeadSource, Tunnel: tunnelID, CreatedAt: ac.Now,
		})
		if err != nil {
			return subscription{}, nil, fmt.Errorf("create email account: %w", err)
		}
		if acct.Unsubscribed {
			return subscription{}, skipOutcome(reasonUnsubscribed), nil
		}
	}
	out := subscription{account: acct, detail: map[string]any{
		"email": acct.Email, "email_bot": acct.EmailBot, "tunnel": tunnelID, "account_created": created,
	}}
	if target == nil {
		return out, nil, nil
	}

	out.detail["channel"] = engine.ChannelEmail
	if run, ok := sub.Runs[engine.RunKey(a.Tunnel, engine.ChannelEmail)]; ok &&
		run.StartedBy != s.ID && run.Status(sub.Stops[a.Tunnel]) == "active" {
		// One email run of a tunnel at a time. (A run this very step started
		// on an earlier attempt is ours: StartRun below finds it again and the
		// first step is spawned again, deduplicated by its id.)
		out.detail["result"] = "already subscribed"
		out.detail["generation"] = run.Gen
		return out, nil, nil
	}
	entry := target.Entry
	if _, ok := target.Block(entry); !ok {
		entry = "" // a tunnel without blocks (the default one) records and sends nothing
	}
	pending := 0
	if entry != "" {
		pending = 1
	}
	gen, err := e.Store.StartRun(ctx, s.WS, s.Sub, engine.RunStart{
		Tunnel: a.Tunnel, Channel: engine.ChannelEmail, Recorded: true, By: s.ID, At: ac.Now, Pending: pending,
	})
	if err != nil {
		return subscription{}, nil, fmt.Errorf("start email run: %w", err)
	}
	out.detail["generation"] = gen
	if entry != "" {
		first := engine.Step{
			V: engine.MessageVersion, ID: engine.DeriveID(s.ID, "email-run", a.Tunnel), WS: s.WS, Sub: s.Sub,
			Tunnel: a.Tunnel, Channel: engine.ChannelEmail, Gen: gen, Block: entry, At: ac.Now, Spin: s.Spin + 1,
		}
		out.detail["block"] = entry
		out.spawn = []engine.Outgoing{{Kind: engine.StepKind(target, first), Step: first}}
	}
	return out, nil, nil
}

// sendEmail is send_email: to the subscriber's email address, from the
// email bot's sender, after creating the linked account with
// create_subscriber.
func (e *Email) sendEmail(ctx context.Context, ac *engine.ActionContext, r textRenderer) (engine.Outcome, error) {
	s, a, sub := ac.Step, ac.Action, ac.Subscriber
	if sub.Email == "" {
		return engine.Skipped(reasonNoEmail), nil
	}
	if sub.EmailAccount != nil && sub.EmailAccount.Unsubscribed {
		return engine.Skipped(reasonUnsubscribed), nil
	}
	from, out, err := e.sender(ctx, s.WS, a.EmailBot)
	if out != nil || err != nil {
		return outcomeOf(out), err
	}
	var subbed *subscription
	if a.CreateSubscriber {
		sb, out, err := e.subscribe(ctx, ac)
		if out != nil || err != nil {
			return outcomeOf(out), err
		}
		subbed = &sb
	}
	content, err := renderContent(ctx, r, a.Subject, a.HTML, a.Text)
	if err != nil {
		return engine.Outcome{}, err
	}
	o, err := e.deliver(ctx, ac, a.EmailBot, from, sub.Email, content)
	if err != nil {
		return engine.Outcome{}, err
	}
	if subbed != nil {
		if o.Detail == nil {
			o.Detail = map[string]any{}
		}
		o.Detail["subscription"] = subbed.detail
		o.Spawn = subbed.spawn
	}
	return o, nil
}

// message sends a message block's email content to the linked account's
// address from the account's email bot.
func (e *Email) message(ctx context.Context, ac *engine.ActionContext, r textRenderer) (engine.Outcome, error) {
	acct, c := ac.Subscriber.EmailAccount, ac.Block.Email
	switch {
	case c == nil:
		return engine.Skipped("the block has no email content"), nil
	case acct == nil:
		return engine.Skipped(reasonNoAccount), nil
	case acct.Unsubscribed:
		return engine.Skipped(reasonUnsubscribed), nil
	}
	from, out, err := e.sender(ctx, ac.Step.WS, acct.EmailBot)
	if out != nil || err != nil {
		return outcomeOf(out), err
	}
	content, err := renderContent(ctx, r, c.Subject, c.HTML, c.Text)
	if err != nil {
		return engine.Outcome{}, err
	}
	return e.deliver(ctx, ac, acct.EmailBot, from, acct.Email, content)
}

type emailContent struct{ subject, html, text string }

// renderContent fills the placeholders: subscriber data put into the html
// is HTML-escaped so it cannot become markup.
func renderContent(ctx context.Context, r textRenderer, subject, html, text string) (emailContent, error) {
	var c emailContent
	var err error
	if c.subject, err = r.Render(ctx, subject); err != nil {
		return c, err
	}
	if c.html, err = r.RenderEscaped(ctx, html, mail.EscapeHTML); err != nil {
		return c, err
	}
	if c.text, err = r.Render(ctx, text); err != nil {
		return c, err
	}
	return c, nil
}

// sender reads an email bot; a deleted one skips the step.
func (e *Email) sender(ctx context.Context, ws, bot string) (mail.Sender, *engine.Outcome, error) {
	from, err := e.Store.EmailBot(ctx, ws, bot)
	if errors.Is(err, engine.ErrNotFound) {
		return mail.Sender{}, skipOutcome(fmt.Sprintf("email bot %q no longer exists", bot)), nil
	}
	if err != nil {
		return mail.Sender{}, nil, fmt.Errorf("read email bot %s: %w", bot, err)
	}
	return from, nil, nil
}

// deliver sends one email for the step, at most once as far as the step can
// tell (see EmailStore.BeginSend), and makes the step's outcome.
//
// The exactly-once window. The engine's claim keeps a completed step from
// running again, and the send record (BeginSend/MarkSent, keyed by the step
// id) keeps a step whose email went out from sending it again when its own
// completion did not happen. What remains: SES accepted the message and the
// process died (or the answer was lost to a timeout) before MarkSent. SES has
// no idempotent send, so the retry cannot know and sends again; the copy
// carries the same X-Tunnels-Idempotency-Key header (the step id), so it can
// be traced. The SES call gets a deadline a little before the invocation's,
// so a slow SES ends as a retried error, not as a killed process.
func (e *Email) deliver(ctx context.Context, ac *engine.ActionContext, bot string, from mail.Sender, to string, c emailContent) (engine.Outcome, error) {
	s := ac.Step
	link, err := e.unsubscribeLink(ctx, s.WS, s.Sub, bot)
	if err != nil {
		return engine.Outcome{}, err
	}
	m := mail.Message{
		From: from, To: to, Subject: c.subject, HTML: c.html, Text: c.text,
		ListUnsubscribe: link, ListUnsubscribePost: true, IdempotencyKey: s.ID,
		// No List-Unsubscribe-Post: RFC 8058 one-click means mail providers
		// POST to the link, and the API serves the link with GET only (the
		// OpenAPI contract). Advertising one-click would make their
		// unsubscribe button fail; without it they open the link (GET).
	}
	detail := map[string]any{"to": to, "from": from.Address, "email_bot": bot, "subject": c.subject}
	if err := m.Validate(); err != nil {
		// Header injection (a line break in the subject, a name or an
		// address) and malformed addresses never reach SES, now or later.
		o := engine.Failed("the email is not valid: " + fieldProblems(err))
		o.Detail = detail
		return o, nil
	}
	if id, err := e.Store.BeginSend(ctx, s.WS, s.Sub, s.ID, ac.Now); err != nil {
		return engine.Outcome{}, fmt.Errorf("email send record: %w", err)
	} else if id != "" {
		detail["message_id"] = id
		detail["sent_by_earlier_attempt"] = true
		return engine.Done(detail), nil
	}
	sendCtx, cancel := sendDeadline(ctx)
	defer cancel()
	id, err := e.Mailer.Send(sendCtx, m)
	switch {
	case err == nil:
	case mail.Retryable(err):
		return engine.Outcome{}, fmt.Errorf("send email: %w", err)
	default:
		o := engine.Failed(rejection(err))
		o.Detail = detail
		return o, nil
	}
	detail["message_id"] = id
	// A failure here is not returned: the email is out, and the step's own
	// completion (which holds the message id too) still guards the retry.
	_ = e.Store.MarkSent(ctx, s.WS, s.Sub, s.ID, id, ac.Now)
	return engine.Done(detail), nil
}

// sendDeadline leaves the invocation two seconds after the SES call gives up.
func sendDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) > 4*time.Second {
		return context.WithDeadline(ctx, d.Add(-2*time.Second))
	}
	return context.WithCancel(ctx)
}

// fieldProblems lists a validation error's fields and problems.
func fieldProblems(err error) string {
	var parts []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *mail.FieldError
		if errors.As(err, &fe) {
			parts = append(parts, fe.Field+": "+fe.Problem)
			return
		}
		parts = append(parts, err.Error())
	}
	walk(err)
	return strings.Join(parts, "; ")
}

// rejection is the reason of a permanently refused send, with SES's code.
func rejection(err error) string {
	var se *mail.SendError
	if errors.As(err, &se) && se.Code != "" {
		msg := se.Code
		if se.Err != nil {
			msg += ": " + se.Err.Error()
		}
		return "SES rejected the email (" + msg + ")"
	}
	return "the email was rejected: " + err.Error()
}

// unsubscribeLink is the account's unsubscribe link under the API's public
// base URL.
func (e *Email) unsubscribeLink(ctx context.Context, ws, sub, bot string) (string, error) {
	base, err := e.publicURL(ctx)
	if err != nil {
		return "", err
	}
	secret, err := e.Store.UnsubscribeSecret(ctx)
	if err != nil {
		return "", fmt.Errorf("unsubscribe secret: %w", err)
	}
	return base + UnsubscribePath + "?token=" + UnsubscribeToken(secret, ws, sub, bot), nil
}

func (e *Email) publicURL(ctx context.Context) (string, error) {
	now := time.Now()
	if e.Now != nil {
		now = e.Now()
	}
	e.mu.Lock()
	base, at := e.base, e.baseAt
	e.mu.Unlock()
	if base != "" && now.Sub(at) < publicURLTTL {
		return base, nil
	}
	base, err := e.Store.PublicURL(ctx)
	if errors.Is(err, engine.ErrNotFound) {
		// Transient: the API records its address at its first authorized
		// request, and no tunnel can exist before one.
		return "", errors.New("the API's public address is not known yet (the API records it when it is first called)")
	}
	if err != nil {
		return "", fmt.Errorf("read the API's public address: %w", err)
	}
	e.mu.Lock()
	e.base, e.baseAt = base, now
	e.mu.Unlock()
	return base, nil
}

// Unsubscribe tokens: the workspace, subscriber and email bot, and an
// HMAC-SHA256 of them under the deployment's secret, base64url:
// "<payload>.<mac>". Unguessable without the secret; the bot says which
// sender the account is tied to when an account has to be made for it.
const tokenDomain = "tunnels-unsubscribe-v1"

// UnsubscribeToken signs an unsubscribe token for a subscriber's email.
func UnsubscribeToken(secret []byte, ws, sub, bot string) string {
	payload := ws + "\x00" + sub + "\x00" + bot
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(tokenMAC(secret, payload))
}

// ParseUnsubscribeToken checks a token and answers what it names.
func ParseUnsubscribeToken(secret []byte, token string) (ws, sub, bot string, ok bool) {
	if len(token) > 1024 {
		return "", "", "", false
	}
	p, m, found := strings.Cut(token, ".")
	if !found {
		return "", "", "", false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(m)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, tokenMAC(secret, string(payload))) {
		return "", "", "", false
	}
	parts := strings.Split(string(payload), "\x00")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func tokenMAC(secret []byte, payload string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(tokenDomain + "\x00" + payload))
	return h.Sum(nil)
}

// PublicBaseURL is the https base URL of a request's host ("" when the host
// is not a plain host[:port]): what unsubscribe links are built on.
func PublicBaseURL(host string) string {
	if host == "" || len(host) > 255 || strings.ContainsAny(host, "/?#@\\ %") {
		return ""
	}
	u, err := url.Parse("https://" + host)
	if err != nil || u.Host != host || u.Hostname() == "" || u.User != nil || u.Path != "" {
		return ""
	}
	return "https://" + strings.ToLower(host)
}

func skipOutcome(reason string) *engine.Outcome {
	o := engine.Skipped(reason)
	return &o
}

func outcomeOf(o *engine.Outcome) engine.Outcome {
	if o == nil {
		return engine.Outcome{}
	}
	return *o
}
