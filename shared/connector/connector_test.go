package connector

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunnels/tunnels/shared/egress"
)

const secret = "whsec_test"

var fixedNow = time.Unix(1700000000, 0)

var sample = Message{StepID: "s1", SubscriberID: "u1", Channel: "telegram", ExternalID: "123456", Tunnel: "webinar", Block: "hello", Text: "Hi Ann!"}

// sampleBody and sampleSig are the SPEC section 8 shape for sample; the
// signature was computed independently:
//
//	printf '%s' '1700000000.<body>' | openssl dgst -sha256 -hmac whsec_test
const (
	sampleBody = `{"step_id":"s1","subscriber_id":"u1","channel":"telegram","external_id":"123456","tunnel":"webinar","block":"hello","text":"Hi Ann!"}`
	sampleSig  = "sha256=6ec5dd789ca2451d13b87166dccdd5282ab9f862dfe5714743557b6af81f2e48"
)

type captured struct {
	method, path string
	header       http.Header
	body         []byte
}

// server answers with status and body and records what it received.
func server(t *testing.T, status int, answer string) (*httptest.Server, chan captured, *atomic.Int64) {
	t.Helper()
	got := make(chan captured, 16)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		got <- captured{r.Method, r.URL.Path, r.Header.Clone(), b}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, got, &hits
}

// allowing is an egress client that may reach srv (loopback) only.
func allowing(t *testing.T, srv *httptest.Server, o egress.Options) *http.Client {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return egress.NewClient(egress.Policy{Allow: []string{u.Host}}, o)
}

func TestSign(t *testing.T) {
	if got := Sign(secret, 1700000000, []byte(sampleBody)); got != sampleSig {
		t.Fatalf("Sign = %s, want %s", got, sampleSig)
	}
	if Sign("other", 1700000000, []byte(sampleBody)) == sampleSig {
		t.Fatal("signature does not depend on the secret")
	}
	if Sign(secret, 1700000001, []byte(sampleBody)) == sampleSig {
		t.Fatal("signature does not depend on the timestamp")
	}
}

func TestSendRequestShape(t *testing.T) {
	srv, got, _ := server(t, http.StatusOK, "ok")
	c := &Client{HTTP: allowing(t, srv, egress.Options{}), Now: func() time.Time { return fixedNow }}
	res, err := c.Send(context.Background(), Channel{URL: srv.URL + "/hook?x=1", Secret: secret}, sample)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Body != "ok" {
		t.Fatalf("result %+v", res)
	}
	r := <-got
	if r.method != http.MethodPost || r.path != "/hook" {
		t.Fatalf("%s %s, want POST /hook", r.method, r.path)
	}
	if string(r.body) != sampleBody {
		t.Fatalf("body\n%s\nwant\n%s", r.body, sampleBody)
	}
	for name, want := range map[string]string{
		"Content-Type":        "application/json",
		"Idempotency-Key":     "s1",
		"X-Tunnels-Timestamp": "1700000000",
		"X-Tunnels-Signature": sampleSig,
		"User-Agent":          egress.DefaultUserAgent,
	} {
		if vs := r.header.Values(name); len(vs) != 1 || vs[0] != want {
			t.Errorf("header %s = %q, want %q", name, vs, want)
		}
	}
	if err := Verify(secret, r.header, r.body, fixedNow.Add(30*time.Second), time.Minute); err != nil {
		t.Fatalf("Verify = %v", err)
	}
}

func TestSendDoesNotEscapeHTML(t *testing.T) {
	srv, got, _ := server(t, http.StatusOK, "")
	c := &Client{HTTP: allowing(t, srv, egress.Options{}), Now: func() time.Time { return fixedNow }}
	m := sample
	m.Text = `<b>Ann</b> & "co" — привет`
	if _, err := c.Send(context.Background(), Channel{URL: srv.URL, Secret: secret}, m); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if !strings.Contains(string(r.body), `"text":"<b>Ann</b> & \"co\" — привет"`) {
		t.Fatalf("body %s", r.body)
	}
	if err := Verify(secret, r.header, r.body, fixedNow, 0); err != nil {
		t.Fatalf("Verify = %v", err)
	}
}

func TestVerify(t *testing.T) {
	good := http.Header{}
	good.Set(HeaderTimestamp, "1700000000")
	good.Set(HeaderSignature, sampleSig)
	body := []byte(sampleBody)

	with := func(name, value string) http.Header {
		h := good.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	cases := []struct {
		name    string
		secret  string
		header  http.Header
		body    []byte
		now     time.Time
		tol     time.Duration
		wantErr bool
	}{
		{"valid", secret, good, body, fixedNow, time.Minute, false},
		{"valid at the tolerance edge", secret, good, body, fixedNow.Add(time.Minute), time.Minute, false},
		{"valid, clock behind", secret, good, body, fixedNow.Add(-time.Minute), time.Minute, false},
		{"default tolerance", secret, good, body, fixedNow.Add(4 * time.Minute), 0, false},
		{"wrong secret", "whsec_other", good, body, fixedNow, time.Minute, true},
		{"empty secret", "", good, body, fixedNow, time.Minute, true},
		{"tampered body", secret, good, []byte(strings.Replace(sampleBody, "Ann", "Bob", 1)), fixedNow, time.Minute, true},
		{"extra byte", secret, good, append([]byte(sampleBody), ' '), fixedNow, time.Minute, true},
		{"stale", secret, good, body, fixedNow.Add(61 * time.Second), time.Minute, true},
		{"future", secret, good, body, fixedNow.Add(-61 * time.Second), time.Minute, true},
		{"stale for default tolerance", secret, good, body, fixedNow.Add(6 * time.Minute), 0, true},
		{"timestamp changed", secret, with(HeaderTimestamp, "1700000001"), body, fixedNow, time.Minute, true},
		{"timestamp missing", secret, with(HeaderTimestamp, ""), body, fixedNow, time.Minute, true},
		{"timestamp not a number", secret, with(HeaderTimestamp, "17e8"), body, fixedNow, time.Minute, true},
		{"timestamp with sign", secret, with(HeaderTimestamp, "+1700000000"), body, fixedNow, time.Minute, true},
		{"signature missing", secret, with(HeaderSignature, ""), body, fixedNow, time.Minute, true},
		{"signature without prefix", secret, with(HeaderSignature, strings.TrimPrefix(sampleSig, "sha256=")), body, fixedNow, time.Minute, true},
		{"signature other algorithm", secret, with(HeaderSignature, "sha1="+strings.TrimPrefix(sampleSig, "sha256=")), body, fixedNow, time.Minute, true},
		{"signature not hex", secret, with(HeaderSignature, "sha256=zz"), body, fixedNow, time.Minute, true},
		{"signature truncated", secret, with(HeaderSignature, sampleSig[:len(sampleSig)-2]), body, fixedNow, time.Minute, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.secret, tc.header, tc.body, tc.now, tc.tol)
			if tc.wantErr != (err != nil) {
				t.Fatalf("Verify = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidSignature) {
					t.Fatalf("error %v does not wrap ErrInvalidSignature", err)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), sampleSig[7:]) {
					t.Fatalf("error leaks the secret or signature: %v", err)
				}
			}
		})
	}
}

func TestSendClassification(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes: cut at 1 KiB on a rune boundary
	cases := []struct {
		status   int
		answer   string
		want     error // nil, ErrTransient or ErrPermanent
		wantBody string
	}{
		{200, "ok", nil, "ok"},
		{202, `{"queued":true}`, nil, `{"queued":true}`},
		{204, "", nil, ""},
		{400, `{"error":"bad chat"}`, ErrPermanent, `{"error":"bad chat"}`},
		{401, "who?", ErrPermanent, "who?"},
		{404, "no such chat", ErrPermanent, "no such chat"},
		{409, "dup", ErrPermanent, "dup"},
		{429, "slow down", ErrTransient, "slow down"},
		{500, "boom", ErrTransient, "boom"},
		{502, "bad gateway", ErrTransient, "bad gateway"},
		{503, long, ErrTransient, strings.Repeat("é", 512)},
		{400, long, ErrPermanent, strings.Repeat("é", 512)},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv, _, hits := server(t, tc.status, tc.answer)
			c := &Client{HTTP: allowing(t, srv, egress.Options{}), Now: func() time.Time { return fixedNow }}
			res, err := c.Send(context.Background(), Channel{URL: srv.URL, Secret: secret}, sample)
			if res.Status != tc.status || res.Body != tc.wantBody {
				t.Fatalf("result %d %q, want %d %q", res.Status, res.Body, tc.status, tc.wantBody)
			}
			if hits.Load() != 1 {
				t.Fatalf("%d requests, want 1", hits.Load())
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			other := ErrTransient
			if tc.want == ErrTransient {
				other = ErrPermanent
			}
			if errors.Is(err, other) {
				t.Fatalf("err = %v is both transient and permanent", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "answered "+strconv.Itoa(tc.status)) || !strings.Contains(msg, strconv.Quote(tc.wantBody)) {
				t.Fatalf("message %q lacks the status or body", msg)
			}
			if strings.Contains(msg, secret) {
				t.Fatalf("message leaks the secret: %q", msg)
			}
		})
	}
}

func TestSendTimeoutIsTransient(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &Client{HTTP: allowing(t, srv, egress.Options{Timeout: 100 * time.Millisecond})}
	res, err := c.Send(context.Background(), Channel{URL: srv.URL, Secret: secret}, sample)
	if !errors.Is(err, ErrTransient) || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want transient", err)
	}
	if res.Status != 0 {
		t.Fatalf("status %d, want 0 (no answer)", res.Status)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("message leaks the secret: %v", err)
	}
}

func TestSendConnectionErrorIsTransient(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	c := &Client{HTTP: allowing(t, srv, egress.Options{})}
	u := srv.URL
	srv.Close() // nothing listens there now: connection refused
	_, err := c.Send(context.Background(), Channel{URL: u, Secret: secret}, sample)
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v, want transient", err)
	}
}

func TestSendCancelledContextIsTransient(t *testing.T) {
	srv, _, _ := server(t, 200, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := &Client{HTTP: allowing(t, srv, egress.Options{})}
	_, err := c.Send(ctx, Channel{URL: srv.URL, Secret: secret}, sample)
	if !errors.Is(err, ErrTransient) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want transient wrapping context.Canceled", err)
	}
}

func TestSendRefusedDestinationIsPermanent(t *testing.T) {
	srv, _, hits := server(t, 200, "")
	for name, hc := range map[string]*http.Client{
		"no allow":     egress.NewClient(egress.Policy{}, egress.Options{}),
		"default HTTP": nil,
	} {
		t.Run(name, func(t *testing.T) {
			c := &Client{HTTP: hc}
			for _, u := range []string{srv.URL + "/hook?token=abc", "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/"} {
				_, err := c.Send(context.Background(), Channel{URL: u, Secret: secret}, sample)
				if !errors.Is(err, ErrPermanent) || errors.Is(err, ErrTransient) || !egress.IsRefused(err) {
					t.Fatalf("%s: err = %v, want a permanent refusal", u, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, "not allowed") || strings.Contains(msg, secret) || strings.Contains(msg, "token=abc") {
					t.Fatalf("%s: message %q", u, msg)
				}
			}
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("refused destination got %d requests", hits.Load())
	}
}

func TestSendRedirectToRefusedIsPermanent(t *testing.T) {
	target, _, targetHits := server(t, 200, "")
	start := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer start.Close()
	c := &Client{HTTP: allowing(t, start, egress.Options{})}
	_, err := c.Send(context.Background(), Channel{URL: start.URL, Secret: secret}, sample)
	if !errors.Is(err, ErrPermanent) || !egress.IsRefused(err) {
		t.Fatalf("err = %v, want a permanent refusal", err)
	}
	if targetHits.Load() != 0 {
		t.Fatal("the redirect target was reached")
	}
}

func TestSendRejectsBadInput(t *testing.T) {
	srv, _, hits := server(t, 200, "")
	c := &Client{HTTP: allowing(t, srv, egress.Options{})}
	noStep := sample
	noStep.StepID = ""
	cases := []struct {
		name string
		ch   Channel
		m    Message
	}{
		{"no step id", Channel{URL: srv.URL, Secret: secret}, noStep},
		{"no secret", Channel{URL: srv.URL}, sample},
		{"no url", Channel{Secret: secret}, sample},
		{"relative url", Channel{URL: "/hook", Secret: secret}, sample},
		{"no host", Channel{URL: "https:///hook", Secret: secret}, sample},
		{"other scheme", Channel{URL: "ftp://example.com/", Secret: secret}, sample},
		{"unparsable", Channel{URL: "http://exa mple.com/?k=v", Secret: secret}, sample},
	}
	for _, tc := range cases {
		_, err := c.Send(context.Background(), tc.ch, tc.m)
		if !errors.Is(err, ErrPermanent) {
			t.Errorf("%s: err = %v, want permanent", tc.name, err)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "k=v") {
			t.Errorf("%s: message leaks input: %v", tc.name, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests sent for bad input", hits.Load())
	}
}
