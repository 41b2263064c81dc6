package sesmail

// Integration tests: the Mailer against the real aws-ses-v2-local emulator
// (started through infra/localstack), and the SDK's own error decoding
// against a loopback HTTP server. Skipped with -short.
//
// What the emulator keeps for a Simple-content send (GET /store):
//
//	{"templates": {}, "emails": [{
//	  "messageId": "ses-404193818",
//	  "from": "=?utf-8?q?Ann_=C3=A9?= <a@example.com>",  // FromEmailAddress as sent
//	  "replyTo": ["r@example.com"],
//	  "destination": {"to": ["b@example.com"], "cc": [], "bcc": []},
//	  "subject": "=?UTF-8?b?0J/RgNC40LLQtdGC?=",          // Subject.Data as sent
//	  "body": {"html": "<p>hi</p>", "text": "hi"},
//	  "attachments": [],
//	  "headers": [{"name": "List-Unsubscribe", "value": "<https://...>"}],  // absent when none
//	  "at": 1795704200}]}                                 // unix seconds
//
// GET /get-emlContent?messageId=<id> renders the stored mail as an RFC 5322
// message (with nodemailer): {"messageId", "fileName", "body": {"type":
// "Buffer", "data": [bytes]}}. EmailTags and ConfigurationSetName are
// accepted and not kept.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/tunnels/tunnels/infra/localstack"
	tmail "github.com/tunnels/tunnels/shared/mail"
)

var (
	stackOnce sync.Once
	stack     *localstack.Stack
	stackErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stack != nil {
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the local stack:", err)
		}
	}
	os.Exit(code)
}

// emulator starts the local stack once for the package and returns an SES
// v2 client bound to it and the emulator's base URL.
func emulator(t *testing.T) (*sesv2.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the SES emulator")
	}
	stackOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		dir, err := localstack.EnsureEmulators(ctx)
		if err != nil {
			stackErr = err
			return
		}
		stack, stackErr = localstack.Start(ctx, localstack.Options{EmulatorsDir: dir})
	})
	if stackErr != nil {
		t.Fatalf("local stack: %v", stackErr)
	}
	clients, err := stack.Clients(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return clients.SESv2, stack.Endpoints.SESv2
}

type storedEmail struct {
	MessageID   string   `json:"messageId"`
	From        string   `json:"from"`
	ReplyTo     []string `json:"replyTo"`
	Destination struct {
		To  []string `json:"to"`
		Cc  []string `json:"cc"`
		Bcc []string `json:"bcc"`
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
	At int64 `json:"at"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

func storeEmails(t *testing.T, base string) []storedEmail {
	t.Helper()
	var s struct {
		Emails []storedEmail `json:"emails"`
	}
	getJSON(t, base+"/store", &s)
	return s.Emails
}

func stored(t *testing.T, base, id string) storedEmail {
	t.Helper()
	for _, e := range storeEmails(t, base) {
		if e.MessageID == id {
			return e
		}
	}
	t.Fatalf("message %q not in the emulator's store", id)
	return storedEmail{}
}

// emlOf is the stored mail rendered as a MIME message by the emulator.
func emlOf(t *testing.T, base, id string) string {
	t.Helper()
	var r struct {
		Body struct {
			Data []byte `json:"data"`
		} `json:"body"`
	}
	getJSON(t, base+"/get-emlContent?messageId="+id, &r)
	return string(r.Body.Data)
}

func TestEmulatorSendsContentSenderAndHeaders(t *testing.T) {
	client, base := emulator(t)
	mr := &Mailer{API: client, ConfigurationSet: "tunnels", FromArn: "arn:aws:ses:us-east-1:000000000000:identity/tunnels.example.com"}
	m := tmail.Message{
		From:    tmail.Sender{Address: "news@tunnels.example.com", Name: "Школа «Тоннели» & Co, Inc.", ReplyTo: "help@tunnels.example.com"},
		To:      "anna@example.org",
		Subject: "Привет, Анна! Вебинар — завтра 🎉",
		HTML: `<html><head><style>p{margin:0}</style></head><body><h1>Вебинар</h1>` +
			`<p>Анна, ждём вас&nbsp;завтра.</p><p><a href="https://tunnels.example.com/w/1">Войти</a></p></body></html>`,
		ListUnsubscribe:     "https://tunnels.example.com/u/ws1/sub1?sig=abc",
		ListUnsubscribePost: true,
		IdempotencyKey:      "step-3f9a",
		Tags:                map[string]string{"workspace": "ws1"},
	}
	id, err := mr.Send(context.Background(), m)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := stored(t, base, id)

	from, err := mail.ParseAddress(got.From)
	if err != nil || from.Name != m.From.Name || from.Address != m.From.Address {
		t.Errorf("from %q parses to %+v, %v; want %q <%s>", got.From, from, err, m.From.Name, m.From.Address)
	}
	if !ascii(got.From) || !ascii(got.Subject) {
		t.Errorf("from %q / subject %q not 7-bit ASCII", got.From, got.Subject)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(got.Subject)
	if err != nil || subject != m.Subject {
		t.Errorf("subject %q decodes to %q, %v; want %q", got.Subject, subject, err, m.Subject)
	}
	if fmt.Sprint(got.Destination.To) != "[anna@example.org]" || len(got.Destination.Cc)+len(got.Destination.Bcc) != 0 {
		t.Errorf("destination = %+v", got.Destination)
	}
	if fmt.Sprint(got.ReplyTo) != "[help@tunnels.example.com]" {
		t.Errorf("replyTo = %q", got.ReplyTo)
	}
	if got.Body.HTML == nil || *got.Body.HTML != m.HTML {
		t.Errorf("html = %v, want %q", got.Body.HTML, m.HTML)
	}
	wantText := "Вебинар\n\nАнна, ждём вас завтра.\n\nВойти (https://tunnels.example.com/w/1)"
	if got.Body.Text == nil || *got.Body.Text != wantText {
		t.Errorf("derived text = %q, want %q", deref(got.Body.Text), wantText)
	}
	var headers []string
	for _, h := range got.Headers {
		headers = append(headers, h.Name+": "+h.Value)
	}
	wantHeaders := "[List-Unsubscribe: <https://tunnels.example.com/u/ws1/sub1?sig=abc> " +
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click X-Tunnels-Idempotency-Key: step-3f9a]"
	if fmt.Sprint(headers) != wantHeaders {
		t.Errorf("headers = %q, want %s", headers, wantHeaders)
	}

	// The headers are in the message the emulator renders, not only in its JSON.
	eml := emlOf(t, base, id)
	for _, line := range []string{
		"List-Unsubscribe: <https://tunnels.example.com/u/ws1/sub1?sig=abc>\r\n",
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
		"Reply-To: help@tunnels.example.com\r\n",
		"To: anna@example.org\r\n",
		"Content-Type: multipart/alternative",
	} {
		if !strings.Contains(eml, line) {
			t.Errorf("rendered message lacks %q:\n%s", line, eml)
		}
	}
}

func TestEmulatorGivenTextAndPlainSender(t *testing.T) {
	client, base := emulator(t)
	m := tmail.Message{
		From:    tmail.Sender{Address: "bot@tunnels.example.com"},
		To:      "bob@example.org",
		Subject: "Your order #42",
		HTML:    "<p>Order <b>#42</b> shipped</p>",
		Text:    "Order #42 shipped.\nTrack it in your account.",
	}
	id, err := (&Mailer{API: client}).Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	got := stored(t, base, id)
	if got.From != "bot@tunnels.example.com" || got.Subject != "Your order #42" || len(got.ReplyTo) != 0 {
		t.Errorf("from %q, subject %q, replyTo %q", got.From, got.Subject, got.ReplyTo)
	}
	if deref(got.Body.Text) != m.Text || deref(got.Body.HTML) != m.HTML {
		t.Errorf("body = %q / %q", deref(got.Body.HTML), deref(got.Body.Text))
	}
	if len(got.Headers) != 0 {
		t.Errorf("headers = %+v, want none", got.Headers)
	}
}

// countingAPI counts the calls that reach SES.
type countingAPI struct {
	SESAPI
	mu    sync.Mutex
	calls int
}

func (c *countingAPI) SendEmail(ctx context.Context, in *sesv2.SendEmailInput, o ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.SESAPI.SendEmail(ctx, in, o...)
}

func TestEmulatorRefusesHeaderInjection(t *testing.T) {
	client, base := emulator(t)
	api := &countingAPI{SESAPI: client}
	mr := &Mailer{API: api}
	before := len(storeEmails(t, base))
	base0 := tmail.Message{
		From:    tmail.Sender{Address: "news@tunnels.example.com", Name: "News"},
		To:      "anna@example.org",
		Subject: "Hello",
		HTML:    "<p>Hi</p>",
	}
	attacks := map[string]func(*tmail.Message){
		"subject":       func(m *tmail.Message) { m.Subject = "Hello\r\nBcc: victim@example.net" },
		"subject LF":    func(m *tmail.Message) { m.Subject = "Hello\nContent-Type: text/html" },
		"name":          func(m *tmail.Message) { m.From.Name = "News\r\nBcc: victim@example.net" },
		"to":            func(m *tmail.Message) { m.To = "anna@example.org\r\nBcc: victim@example.net" },
		"to list":       func(m *tmail.Message) { m.To = "anna@example.org, victim@example.net" },
		"to named":      func(m *tmail.Message) { m.To = `"anna@example.org" <victim@example.net>` },
		"reply-to":      func(m *tmail.Message) { m.From.ReplyTo = "help@tunnels.example.com\nBcc: victim@example.net" },
		"from":          func(m *tmail.Message) { m.From.Address = "news@tunnels.example.com\r\nBcc: victim@example.net" },
		"unsubscribe":   func(m *tmail.Message) { m.ListUnsubscribe = "https://t.example.com/u\r\nBcc: victim@example.net" },
		"idempotency":   func(m *tmail.Message) { m.IdempotencyKey = "k\r\nBcc: victim@example.net" },
		"unsub bracket": func(m *tmail.Message) { m.ListUnsubscribe = "https://t.example.com/u>, <https://evil.example.net/" },
	}
	for name, attack := range attacks {
		m := base0
		attack(&m)
		id, err := mr.Send(context.Background(), m)
		if !errors.Is(err, tmail.ErrInvalid) || id != "" {
			t.Errorf("%s: Send = %q, %v; want ErrInvalid", name, id, err)
		}
	}
	if api.calls != 0 {
		t.Errorf("%d calls reached SES", api.calls)
	}
	if after := len(storeEmails(t, base)); after != before {
		t.Errorf("store went from %d to %d emails", before, after)
	}
	// The same mailer does send once the message is clean: the refusals
	// above were the validation, not a broken client.
	if _, err := mr.Send(context.Background(), base0); err != nil || api.calls != 1 {
		t.Errorf("clean send: %v, %d calls", err, api.calls)
	}
}

// TestSDKErrorsClassified runs the real SDK's error decoding against a
// loopback server answering as SES does, and against a closed port.
func TestSDKErrorsClassified(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: loopback HTTP")
	}
	tests := []struct {
		status    int
		errorType string // X-Amzn-ErrorType, as AWS's REST-JSON services send it
		message   string
		kind      error
		code      string
	}{
		{400, "MessageRejected:http://internal.amazon.com/coral/com.amazonaws.services.email/", "Email address is not verified.", tmail.ErrRejected, "MessageRejected"},
		{400, "AccountSuspendedException", "suspended", tmail.ErrRejected, "AccountSuspendedException"},
		{404, "NotFoundException", "configuration set does not exist", tmail.ErrRejected, "NotFoundException"},
		{429, "TooManyRequestsException", "Maximum sending rate exceeded.", tmail.ErrThrottled, "TooManyRequestsException"},
		{400, "LimitExceededException", "Daily message quota exceeded.", tmail.ErrRejected, "LimitExceededException"},
		{500, "InternalServiceErrorException", "oops", tmail.ErrTransient, "InternalServiceErrorException"},
		{503, "", "", tmail.ErrTransient, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.errorType != "" {
					w.Header().Set("X-Amzn-ErrorType", tt.errorType)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				fmt.Fprintf(w, `{"message":%q}`, tt.message)
			}))
			defer srv.Close()
			_, err := (&Mailer{API: sdkClient(srv.URL)}).Send(context.Background(), validForWire())
			assertKind(t, err, tt.kind)
			var se *tmail.SendError
			if tt.code != "" && (!errors.As(err, &se) || se.Code != tt.code) {
				t.Errorf("code of %v = %+v, want %s", err, se, tt.code)
			}
		})
	}

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		_, err = (&Mailer{API: sdkClient("http://" + addr)}).Send(context.Background(), validForWire())
		assertKind(t, err, tmail.ErrTransient)
	})

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := (&Mailer{API: sdkClient(srv.URL)}).Send(ctx, validForWire())
		assertKind(t, err, tmail.ErrTransient)
	})
}

func sdkClient(endpoint string) *sesv2.Client {
	return sesv2.New(sesv2.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		RetryMaxAttempts: 1, // classify what SES answered, not the retryer's back-off
	})
}

func validForWire() tmail.Message {
	return tmail.Message{
		From: tmail.Sender{Address: "news@tunnels.example.com"}, To: "anna@example.org",
		Subject: "Hi", HTML: "<p>Hi</p>",
	}
}

func assertKind(t *testing.T, err error, kind error) {
	t.Helper()
	if err == nil {
		t.Fatal("Send succeeded, want an error")
	}
	for _, k := range []error{tmail.ErrThrottled, tmail.ErrTransient, tmail.ErrRejected} {
		want := k == kind || (k == tmail.ErrTransient && kind == tmail.ErrThrottled)
		if errors.Is(err, k) != want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, k, !want, want)
		}
	}
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
