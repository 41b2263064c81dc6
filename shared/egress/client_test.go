package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostPort is srv's "127.0.0.1:port".
func hostPort(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// countingServer counts requests that reached the handler.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }

func TestClientRefusesLoopbackWithoutAllow(t *testing.T) {
	srv, hits := countingServer(t, ok)
	c := NewClient(Policy{}, Options{})
	for _, raw := range []string{srv.URL, "https://" + hostPort(t, srv) + "/"} {
		resp, err := c.Get(raw)
		if err == nil {
			resp.Body.Close()
		}
		if !IsRefused(err) {
			t.Fatalf("Get(%s) = %v, want a refusal", raw, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("server got %d requests, want 0", hits.Load())
	}
}

func TestClientAllowsExactHostPort(t *testing.T) {
	srv, hits := countingServer(t, ok)
	c := NewClient(Policy{Allow: []string{hostPort(t, srv)}}, Options{})
	resp, err := c.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, truncated, err := ReadLimited(resp.Body, 100)
	if err != nil || truncated || string(body) != "hello" || resp.StatusCode != 200 {
		t.Fatalf("got %d %q truncated=%v err=%v", resp.StatusCode, body, truncated, err)
	}
	if hits.Load() != 1 {
		t.Fatalf("hits = %d, want 1", hits.Load())
	}
}

func TestClientRedirectToNotAllowedIsRefused(t *testing.T) {
	other, otherHits := countingServer(t, ok)
	targets := []string{
		other.URL + "/", // loopback, another port, not allowed
		"https://" + hostPort(t, other) + "/",
		"http://169.254.169.254/latest/meta-data/", // refused statically: no packet leaves
		"https://0xa9fea9fe/latest/meta-data/",
		"https://localhost:" + strings.Split(hostPort(t, other), ":")[1] + "/",
		"file:///etc/passwd",
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			start, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target, http.StatusFound)
			})
			c := NewClient(Policy{Allow: []string{hostPort(t, start)}}, Options{})
			resp, err := c.Get(start.URL)
			if err == nil {
				resp.Body.Close()
			}
			if !IsRefused(err) {
				t.Fatalf("Get = %v, want a refusal on redirect", err)
			}
		})
	}
	if otherHits.Load() != 0 {
		t.Fatalf("redirect target got %d requests, want 0", otherHits.Load())
	}
}

func TestClientRedirectLimit(t *testing.T) {
	// /r/N redirects to /r/N-1; /r/0 answers.
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(r.URL.Path, "/r/%d", &n)
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
			return
		}
		io.WriteString(w, "end")
	})
	allow := Policy{Allow: []string{hostPort(t, srv)}}
	cases := []struct {
		max, hops int
		wantErr   bool
	}{
		{0, 5, false}, // default 5
		{0, 6, true},
		{2, 2, false},
		{2, 3, true},
		{1, 0, false},
	}
	for _, tc := range cases {
		c := NewClient(allow, Options{MaxRedirects: tc.max})
		resp, err := c.Get(fmt.Sprintf("%s/r/%d", srv.URL, tc.hops))
		if err == nil {
			resp.Body.Close()
		}
		if tc.wantErr != (err != nil) {
			t.Errorf("max %d, %d hops: err = %v, wantErr %v", tc.max, tc.hops, err, tc.wantErr)
		}
		if tc.wantErr && !errors.Is(err, ErrTooManyRedirects) {
			t.Errorf("max %d, %d hops: err = %v, want ErrTooManyRedirects", tc.max, tc.hops, err)
		}
	}
	// Negative: the redirect is returned, not followed.
	resp, err := NewClient(allow, Options{MaxRedirects: -1}).Get(srv.URL + "/r/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/r/0" {
		t.Fatalf("got %d %q, want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestClientBodyCap(t *testing.T) {
	payload := strings.Repeat("x", 100)
	srv, _ := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, payload) })
	allow := Policy{Allow: []string{hostPort(t, srv)}}

	cases := []struct {
		maxBody, readMax int64
		wantLen          int
		truncated        bool
	}{
		{10, 1 << 20, 10, true},    // the client's cap cuts it
		{1 << 20, 10, 10, true},    // the reader's cap cuts it
		{100, 1 << 20, 100, false}, // exactly the cap is whole
		{0, 1 << 20, 100, false},   // default 1 MiB
	}
	for _, tc := range cases {
		resp, err := NewClient(allow, Options{MaxBody: tc.maxBody}).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, truncated, err := ReadLimited(resp.Body, tc.readMax)
		resp.Body.Close()
		if err != nil || len(body) != tc.wantLen || truncated != tc.truncated || string(body) != payload[:tc.wantLen] {
			t.Errorf("maxBody %d readMax %d: len %d truncated %v err %v; want %d %v", tc.maxBody, tc.readMax, len(body), truncated, err, tc.wantLen, tc.truncated)
		}
	}

	// Reading past the cap without ReadLimited is an error, not a quiet EOF.
	resp, err := NewClient(allow, Options{MaxBody: 10}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, ErrBodyTooLarge) || len(b) != 10 {
		t.Fatalf("ReadAll = %d bytes, %v; want 10 bytes and ErrBodyTooLarge", len(b), err)
	}
}

func TestClientTimeoutBoundsSlowServer(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release) // runs before srv.Close (t.Cleanup), so the handler can finish
	c := NewClient(Policy{Allow: []string{hostPort(t, srv)}}, Options{Timeout: 100 * time.Millisecond})
	resp, err := c.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("want a timeout error")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if IsRefused(err) {
		t.Fatalf("a timeout must not look like a refusal: %v", err)
	}
}

func TestClientTimeoutCoversBody(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "start")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := NewClient(Policy{Allow: []string{hostPort(t, srv)}}, Options{Timeout: 200 * time.Millisecond})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _, err := ReadLimited(resp.Body, 1<<20)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || string(body) != "start" {
		t.Fatalf("body %q err %v; want the partial body and a timeout", body, err)
	}
}

func TestClientUserAgent(t *testing.T) {
	got := make(chan string, 2)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/end", http.StatusFound)
			return
		}
		got <- r.Header.Get("User-Agent")
	})
	allow := Policy{Allow: []string{hostPort(t, srv)}}

	resp, err := NewClient(allow, Options{}).Get(srv.URL + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ua := <-got; ua != "Tunnels/1.0 (+https://github.com/tunnels/tunnels)" {
		t.Fatalf("User-Agent after redirect = %q", ua)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/end", nil)
	req.Header.Set("User-Agent", "custom/2")
	resp, err = NewClient(allow, Options{UserAgent: "ignored/1"}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ua := <-got; ua != "custom/2" {
		t.Fatalf("User-Agent = %q, want the caller's", ua)
	}
	if req.Header.Get("User-Agent") != "custom/2" {
		t.Fatal("the caller's request was modified")
	}

	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/end", nil)
	resp, err = NewClient(allow, Options{UserAgent: "mine/3"}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ua := <-got; ua != "mine/3" {
		t.Fatalf("User-Agent = %q, want mine/3", ua)
	}
	if req.Header.Get("User-Agent") != "" {
		t.Fatal("the caller's request was modified")
	}
}

func TestClientVerifiesTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(ok)) // self-signed
	defer srv.Close()
	c := NewClient(Policy{Allow: []string{hostPort(t, srv)}}, Options{})
	resp, err := c.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a self-signed certificate was accepted")
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("err = %v, want a certificate verification error", err)
	}
}

func TestClientClosesBodyOfRefusedRequest(t *testing.T) {
	body := &closeRecorder{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, "https://10.0.0.1/", body)
	_, err := NewClient(Policy{}, Options{}).Do(req)
	if !IsRefused(err) {
		t.Fatalf("err = %v, want refused", err)
	}
	if !body.closed {
		t.Fatal("request body not closed")
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// The guarded dialer refuses inside Control, i.e. before connect(2). Proof on
// loopback: a listener sees no connection from a refused dial, only from the
// allowed one that follows (accept order is arrival order).
func TestDialRefusedBeforeConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	addr := ln.Addr().String()
	ctx := context.Background()

	_, err = newDialer(Policy{}, time.Second, nil).DialContext(ctx, "tcp", addr)
	var re *RefusedError
	var oe *net.OpError
	if !errors.As(err, &re) || !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("err = %v, want a RefusedError from inside the dial", err)
	}
	if re.Addr != addr || re.Reason != "loopback address" {
		t.Fatalf("refusal %+v", re)
	}

	conn, err := newDialer(Policy{Allow: []string{addr}}, time.Second, nil).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := <-accepted
	defer first.Close()
	if first.RemoteAddr().String() != conn.LocalAddr().String() {
		t.Fatalf("first accepted connection came from %s, not the allowed dial %s: the refused dial connected", first.RemoteAddr(), conn.LocalAddr())
	}
}

// Literal non-public addresses are refused by the guard itself (not only by
// CheckURL): the RoundTrip below bypasses the static check by using the inner
// transport's dialer directly.
func TestDialRefusesLiteralAddresses(t *testing.T) {
	d := newDialer(Policy{}, time.Second, nil)
	for _, addr := range []string{"169.254.169.254:80", "10.0.0.1:443", "100.64.0.1:443", "192.168.1.1:80", "0.0.0.0:80", "[::1]:443", "[fd00::1]:443", "[::ffff:169.254.169.254]:80", "[fe80::1%lo]:80"} {
		_, err := d.DialContext(context.Background(), "tcp", addr)
		var re *RefusedError
		var oe *net.OpError
		if !errors.As(err, &re) || !errors.As(err, &oe) {
			t.Errorf("dial %s: err = %v, want a refusal from the guard", addr, err)
		}
	}
}

// DNS rebinding: a public-looking name passes CheckURL but resolves to a
// refused address; the guard refuses it at dial time, before connect.
func TestDialTimeGuardOnResolvedName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	cases := []struct {
		ip, url, addr, reason string
	}{
		{"169.254.169.254", "https://rebind.example/latest/meta-data/", "169.254.169.254:443", "link-local address"},
		{"10.0.0.7", "https://rebind.example:8443/", "10.0.0.7:8443", "private address"},
		{"127.0.0.1", fmt.Sprintf("https://rebind.example:%d/", port), fmt.Sprintf("127.0.0.1:%d", port), "loopback address"},
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			if err := (Policy{}).CheckURL(tc.url); err != nil {
				t.Fatalf("CheckURL(%s) = %v; the name must pass the static check", tc.url, err)
			}
			c := newClient(Policy{}, Options{}, stubResolver(netip.MustParseAddr(tc.ip)))
			resp, err := c.Get(tc.url)
			if err == nil {
				resp.Body.Close()
			}
			var re *RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("Get = %v, want a refusal at dial", err)
			}
			if re.Addr != tc.addr || re.Reason != tc.reason {
				t.Fatalf("refusal %+v, want %s %s", re, tc.addr, tc.reason)
			}
		})
	}
	// A control connection made now must be the first one the listener accepted.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first := <-accepted
	defer first.Close()
	if first.RemoteAddr().String() != conn.LocalAddr().String() {
		t.Fatalf("listener first accepted %s, not the control dial %s: a refused dial connected", first.RemoteAddr(), conn.LocalAddr())
	}
}

// stubResolver answers every A query with ip and every other query with no
// records, over an in-memory pipe: no DNS traffic leaves the process.
func stubResolver(ip netip.Addr) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			client, server := net.Pipe()
			go serveStubDNS(server, ip)
			return client, nil
		},
	}
}

// serveStubDNS speaks DNS over a stream (2-byte length prefix), since a pipe
// is not a PacketConn and Go's resolver then uses TCP framing.
func serveStubDNS(conn net.Conn, ip netip.Addr) {
	defer conn.Close()
	for {
		var n uint16
		if err := binary.Read(conn, binary.BigEndian, &n); err != nil {
			return
		}
		q := make([]byte, n)
		if _, err := io.ReadFull(conn, q); err != nil || len(q) < 12 {
			return
		}
		// Question: name labels up to a zero byte, then type and class.
		end := 12
		for end < len(q) && q[end] != 0 {
			end += int(q[end]) + 1
		}
		end += 5
		if end > len(q) {
			return
		}
		qtype := binary.BigEndian.Uint16(q[end-4:])
		var resp bytes.Buffer
		resp.Write(q[0:2])             // id
		resp.Write([]byte{0x81, 0x80}) // response, recursion desired and available, no error
		resp.Write([]byte{0, 1})       // one question
		answers := uint16(0)
		if qtype == 1 && ip.Is4() {
			answers = 1
		}
		binary.Write(&resp, binary.BigEndian, answers)
		resp.Write([]byte{0, 0, 0, 0}) // no authority, no additional
		resp.Write(q[12:end])
		if answers == 1 {
			resp.Write([]byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4}) // name ptr, A, IN, ttl 60, len 4
			a := ip.As4()
			resp.Write(a[:])
		}
		binary.Write(conn, binary.BigEndian, uint16(resp.Len()))
		if _, err := conn.Write(resp.Bytes()); err != nil {
			return
		}
	}
}

func TestReadLimited(t *testing.T) {
	cases := []struct {
		in        string
		max       int64
		want      string
		truncated bool
	}{
		{"", 10, "", false},
		{"hello", 5, "hello", false},
		{"hello!", 5, "hello", true},
		{"hello", 100, "hello", false},
		{"x", 0, "", true},
		{"", 0, "", false},
		{"x", -1, "", true},
	}
	for _, tc := range cases {
		got, truncated, err := ReadLimited(strings.NewReader(tc.in), tc.max)
		if err != nil || string(got) != tc.want || truncated != tc.truncated {
			t.Errorf("ReadLimited(%q, %d) = %q, %v, %v; want %q, %v", tc.in, tc.max, got, truncated, err, tc.want, tc.truncated)
		}
	}

	boom := errors.New("boom")
	got, truncated, err := ReadLimited(io.MultiReader(strings.NewReader("part"), errReader{boom}), 100)
	if !errors.Is(err, boom) || string(got) != "part" || truncated {
		t.Fatalf("got %q %v %v, want the partial body and the error", got, truncated, err)
	}

	capped := &cappedBody{rc: io.NopCloser(strings.NewReader("0123456789")), max: 4}
	got, truncated, err = ReadLimited(capped, 100)
	if err != nil || string(got) != "0123" || !truncated {
		t.Fatalf("capped: got %q %v %v", got, truncated, err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestOptionsDefaults(t *testing.T) {
	got := Options{}.withDefaults()
	want := Options{ConnectTimeout: 5 * time.Second, Timeout: 10 * time.Second, MaxBody: 1 << 20, MaxRedirects: 5, UserAgent: "Tunnels/1.0 (+https://github.com/tunnels/tunnels)"}
	if got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	custom := Options{ConnectTimeout: time.Second, Timeout: 2 * time.Second, MaxBody: 7, MaxRedirects: -1, UserAgent: "x"}
	if got := custom.withDefaults(); got != custom {
		t.Fatalf("custom options changed: %+v", got)
	}
	c := NewClient(Policy{}, Options{})
	if c.Timeout != 10*time.Second {
		t.Fatalf("client timeout %v", c.Timeout)
	}
}
