package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"code.dny.dev/ssrf"
)

// literalForms: spellings of non-public addresses that browsers and inet_aton
// read as that address. Each must parse to want and be refused by CheckURL.
var literalForms = []struct {
	host   string // as written in the URL
	want   string // the address it denotes
	reason string // expected in the refusal
}{
	// 127.0.0.1
	{"127.0.0.1", "127.0.0.1", "loopback address"},
	{"2130706433", "127.0.0.1", "loopback address"},
	{"017700000001", "127.0.0.1", "loopback address"},
	{"0x7f000001", "127.0.0.1", "loopback address"},
	{"0X7F000001", "127.0.0.1", "loopback address"},
	{"0177.0.0.1", "127.0.0.1", "loopback address"},
	{"0177.0000.0000.0001", "127.0.0.1", "loopback address"},
	{"0x7f.0x0.0x0.0x1", "127.0.0.1", "loopback address"},
	{"0x7f.1", "127.0.0.1", "loopback address"},
	{"0177.0x0.0.01", "127.0.0.1", "loopback address"},
	{"127.1", "127.0.0.1", "loopback address"},
	{"127.0.1", "127.0.0.1", "loopback address"},
	{"127.0.0.1.", "127.0.0.1", "loopback address"},
	{"127.0.0.2", "127.0.0.2", "loopback address"},
	{"１２７．０．０．１", "127.0.0.1", "loopback address"},
	{"[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "IPv4-mapped loopback address"},
	{"[::ffff:7f00:1]", "::ffff:127.0.0.1", "IPv4-mapped loopback address"},
	{"[0:0:0:0:0:ffff:127.0.0.1]", "::ffff:127.0.0.1", "IPv4-mapped loopback address"},
	{"[::127.0.0.1]", "::7f00:1", "IPv4-compatible IPv6 address"},
	// 10.0.0.1
	{"10.0.0.1", "10.0.0.1", "private address"},
	{"167772161", "10.0.0.1", "private address"},
	{"012.0.0.01", "10.0.0.1", "private address"},
	{"0xa.0.0.1", "10.0.0.1", "private address"},
	{"0x0a000001", "10.0.0.1", "private address"},
	{"012.0x0.1", "10.0.0.1", "private address"},
	{"10.1", "10.0.0.1", "private address"},
	{"10.0.1", "10.0.0.1", "private address"},
	{"[::ffff:10.0.0.1]", "::ffff:10.0.0.1", "IPv4-mapped private address"},
	{"[::ffff:a00:1]", "::ffff:10.0.0.1", "IPv4-mapped private address"},
	{"172.16.0.1", "172.16.0.1", "private address"},
	{"192.168.1.1", "192.168.1.1", "private address"},
	// 169.254.169.254, the cloud metadata address
	{"169.254.169.254", "169.254.169.254", "link-local address"},
	{"2852039166", "169.254.169.254", "link-local address"},
	{"0251.0376.0251.0376", "169.254.169.254", "link-local address"},
	{"0xa9.0xfe.0xa9.0xfe", "169.254.169.254", "link-local address"},
	{"0xA9FEA9FE", "169.254.169.254", "link-local address"},
	{"025177524776", "169.254.169.254", "link-local address"},
	{"169.16689662", "169.254.169.254", "link-local address"},
	{"169.254.43518", "169.254.169.254", "link-local address"},
	{"0251.0xfe.43518", "169.254.169.254", "link-local address"},
	{"[::ffff:169.254.169.254]", "::ffff:169.254.169.254", "IPv4-mapped link-local address"},
	{"[::ffff:a9fe:a9fe]", "::ffff:169.254.169.254", "IPv4-mapped link-local address"},
	{"[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe", "NAT64 address"},
	// 100.64.0.1, CGNAT
	{"100.64.0.1", "100.64.0.1", "shared address space (CGNAT)"},
	{"1681915905", "100.64.0.1", "shared address space (CGNAT)"},
	{"0144.0100.0.01", "100.64.0.1", "shared address space (CGNAT)"},
	{"0x64.0x40.0.1", "100.64.0.1", "shared address space (CGNAT)"},
	{"0x64400001", "100.64.0.1", "shared address space (CGNAT)"},
	{"100.4194305", "100.64.0.1", "shared address space (CGNAT)"},
	{"100.64.1", "100.64.0.1", "shared address space (CGNAT)"},
	{"[::ffff:100.64.0.1]", "::ffff:100.64.0.1", "IPv4-mapped shared address space (CGNAT)"},
	// 0.0.0.0
	{"0.0.0.0", "0.0.0.0", "unspecified address"},
	{"0", "0.0.0.0", "unspecified address"},
	{"00", "0.0.0.0", "unspecified address"},
	{"0x0", "0.0.0.0", "unspecified address"},
	{"0x", "0.0.0.0", "unspecified address"},
	{"0.0", "0.0.0.0", "unspecified address"},
	{"0.0.0", "0.0.0.0", "unspecified address"},
	{"000.0x0.0", "0.0.0.0", "unspecified address"},
	{"[::ffff:0.0.0.0]", "::ffff:0.0.0.0", "IPv4-mapped unspecified address"},
	{"0.1.2.3", "0.1.2.3", "\"this network\" address"},
	// other IPv4 ranges
	{"224.0.0.1", "224.0.0.1", "multicast address"},
	{"255.255.255.255", "255.255.255.255", "broadcast address"},
	{"4294967295", "255.255.255.255", "broadcast address"},
	{"240.0.0.1", "240.0.0.1", "reserved address"},
	{"192.0.2.10", "192.0.2.10", "documentation address"},
	{"198.51.100.7", "198.51.100.7", "documentation address"},
	{"203.0.113.9", "203.0.113.9", "documentation address"},
	{"198.18.0.1", "198.18.0.1", "benchmarking address"},
	{"198.19.255.255", "198.19.255.255", "benchmarking address"},
	// IPv6
	{"[::1]", "::1", "loopback address"},
	{"[0:0:0:0:0:0:0:1]", "::1", "loopback address"},
	{"[::]", "::", "unspecified address"},
	{"[fd00::1]", "fd00::1", "unique local (private) address"},
	{"[fd00:ec2::254]", "fd00:ec2::254", "unique local (private) address"},
	{"[fc00::1]", "fc00::1", "unique local (private) address"},
	{"[fe80::1]", "fe80::1", "link-local address"},
	{"[fe80::1%25eth0]", "fe80::1%eth0", "link-local address"},
	{"[fec0::1]", "fec0::1", "site-local address"},
	{"[ff02::1]", "ff02::1", "multicast address"},
	{"[2001:db8::1]", "2001:db8::1", "documentation address"},
	{"[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1", "6to4 address"},
	{"[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo address"},
	{"[100::1]", "100::1", "discard-only address"},
	{"[64:ff9b:1::1]", "64:ff9b:1::1", "NAT64 address"},
	{"[::2]", "::2", "IPv4-compatible IPv6 address"},
	{"[1::1]", "1::1", "non-global IPv6 address"},
}

func TestParseHostIPForms(t *testing.T) {
	for _, tc := range literalForms {
		t.Run(tc.host, func(t *testing.T) {
			host := strings.TrimSuffix(strings.TrimPrefix(tc.host, "["), "]")
			host = strings.ReplaceAll(host, "%25", "%") // url.Hostname unescapes the zone
			ip, isIP, err := parseHostIP(host)
			if err != nil || !isIP {
				t.Fatalf("parseHostIP(%q) = %v, %v, %v; want an IP", host, ip, isIP, err)
			}
			if ip.String() != tc.want {
				t.Fatalf("parseHostIP(%q) = %s, want %s", host, ip, tc.want)
			}
		})
	}
}

func TestCheckURLRefusesNonPublicLiterals(t *testing.T) {
	var p Policy
	for _, tc := range literalForms {
		for _, scheme := range []string{"https", "http"} {
			raw := scheme + "://" + tc.host + ":8443/path?q=1"
			t.Run(raw, func(t *testing.T) {
				err := p.CheckURL(raw)
				if !IsRefused(err) {
					t.Fatalf("CheckURL(%q) = %v, want a refusal", raw, err)
				}
				var re *RefusedError
				if !errors.As(err, &re) {
					t.Fatalf("error %T is not a *RefusedError", err)
				}
				if scheme == "https" && !strings.HasPrefix(re.Reason, tc.reason) {
					t.Fatalf("reason = %q, want prefix %q", re.Reason, tc.reason)
				}
				if !strings.HasSuffix(re.Addr, ":8443") {
					t.Fatalf("Addr = %q, want the requested host:port", re.Addr)
				}
			})
		}
	}
}

func TestCheckURLMessageNamesAddressAndReason(t *testing.T) {
	err := Policy{}.CheckURL("https://0xa9fea9fe/latest/meta-data/")
	want := "destination 0xa9fea9fe:443 refused: link-local address (169.254.169.254)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	err = Policy{}.CheckURL("https://169.254.169.254/latest/meta-data/")
	want = "destination 169.254.169.254:443 refused: link-local address"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestCheckURLPublicPasses(t *testing.T) {
	for _, raw := range []string{
		"https://example.com/",
		"https://api.example.com:8443/leads?src=x",
		"https://8.8.8.8/",
		"https://134744072/",  // 8.8.8.8 in decimal
		"https://0x08080808/", // 8.8.8.8 in hex
		"https://8.8.2056/",   // 8.8.8.8 short form
		"https://[2606:4700:4700::1111]/",
		"https://[::ffff:8.8.8.8]/", // dialled as 8.8.8.8
		"https://localhost.example.com/",
		"https://mylocalhost/",
		"HTTPS://EXAMPLE.COM/",
		"https://xn--bcher-kva.example/",
		"https://bücher.example/",
	} {
		if err := (Policy{}).CheckURL(raw); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", raw, err)
		}
	}
}

func TestCheckURLRefusals(t *testing.T) {
	cases := []struct {
		raw, reason string
	}{
		{"http://example.com/", "plain http is allowed only for a host:port in TUNNELS_EGRESS_ALLOW"},
		{"ftp://example.com/x", `scheme "ftp" is not allowed (http or https only)`},
		{"file:///etc/passwd", `scheme "file" is not allowed (http or https only)`},
		{"gopher://127.0.0.1:70/", `scheme "gopher" is not allowed (http or https only)`},
		{"https://user:hunter2@example.com/", "credentials in the url are not allowed"},
		{"https://user@example.com/", "credentials in the url are not allowed"},
		{"https://localhost/", "localhost name"},
		{"https://LOCALHOST:8443/", "localhost name"},
		{"https://localhost./", "localhost name"},
		{"https://api.localhost/", "localhost name"},
		{"https://example.com:0/", "port must be a number from 1 to 65535"},
		{"https://example.com:65536/", "port must be a number from 1 to 65535"},
		{"https://1.2.3.4.5/", "malformed numeric address"},
		{"https://256.0.0.1/", "malformed numeric address"},
		{"https://1.256.0.1/", "malformed numeric address"},
		{"https://1.2.65536/", "malformed numeric address"},
		{"https://4294967296/", "malformed numeric address"},
		{"https://99999999999999999999999/", "malformed numeric address"},
		{"https://09.0.0.1/", "malformed numeric address"},
		{"https://0x1g.0.0.1/", "malformed numeric address"},
		{"https://example.123/", "malformed numeric address"},
		{"https://1..1/", "malformed numeric address"},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			err := Policy{}.CheckURL(tc.raw)
			var re *RefusedError
			if !errors.As(err, &re) || !IsRefused(err) {
				t.Fatalf("CheckURL = %v, want a refusal", err)
			}
			if re.Reason != tc.reason {
				t.Fatalf("reason = %q, want %q", re.Reason, tc.reason)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestCheckURLInvalid(t *testing.T) {
	for _, raw := range []string{"https://", "https:///path", "http:opaque", "https://exa mple.com/?token=s3cret", "://x"} {
		err := Policy{}.CheckURL(raw)
		if err == nil {
			t.Errorf("CheckURL(%q) = nil, want an error", raw)
			continue
		}
		if IsRefused(err) {
			t.Errorf("CheckURL(%q) = %v, want an invalid-url error, not a refusal", raw, err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error repeats the url: %v", err)
		}
	}
}

func TestCheckURLAllow(t *testing.T) {
	p := Policy{Allow: []string{"127.0.0.1:8080", "LocalHost:3000", "[::1]:9000", "metadata.internal:80"}}
	cases := []struct {
		raw     string
		allowed bool
	}{
		{"http://127.0.0.1:8080/x", true},
		{"https://127.0.0.1:8080/x", true},
		{"http://127.0.0.1:8081/", false},
		{"http://127.0.0.1/", false},
		{"http://0x7f.1:8080/", false}, // exact host:port only, not what it denotes
		{"http://localhost:3000/", true},
		{"http://LOCALHOST:3000/", true},
		{"http://localhost:3001/", false},
		{"http://[::1]:9000/", true},
		{"http://[0:0::1]:9000/", true},
		{"http://metadata.internal/", true},
		{"http://user:pw@127.0.0.1:8080/", false}, // credentials refused even when allowed
		{"ftp://127.0.0.1:8080/", false},
	}
	for _, tc := range cases {
		err := p.CheckURL(tc.raw)
		if tc.allowed && err != nil {
			t.Errorf("CheckURL(%q) = %v, want allowed", tc.raw, err)
		}
		if !tc.allowed && !IsRefused(err) {
			t.Errorf("CheckURL(%q) = %v, want refused", tc.raw, err)
		}
	}
}

func TestParseIPv4LooseNames(t *testing.T) {
	for _, host := range []string{"example.com", "a", "1.2.3.com", "0x", "localhost", "1e5", "café"} {
		ip, isIP, err := parseIPv4Loose(host)
		if host == "0x" { // "0x" is the number 0 to browsers
			if !isIP || ip.String() != "0.0.0.0" {
				t.Errorf("parseIPv4Loose(0x) = %v %v %v", ip, isIP, err)
			}
			continue
		}
		if isIP || err != nil {
			t.Errorf("parseIPv4Loose(%q) = %v, %v, %v; want a name", host, ip, isIP, err)
		}
	}
}

func TestControlRefusals(t *testing.T) {
	cases := []struct {
		network, addr, reason string
	}{
		{"tcp4", "169.254.169.254:80", "link-local address"},
		{"tcp4", "127.0.0.1:443", "loopback address"},
		{"tcp4", "10.1.2.3:443", "private address"},
		{"tcp4", "172.31.255.255:443", "private address"},
		{"tcp4", "192.168.0.10:443", "private address"},
		{"tcp4", "100.100.100.200:80", "shared address space (CGNAT)"},
		{"tcp4", "0.0.0.0:443", "unspecified address"},
		{"tcp4", "255.255.255.255:443", "broadcast address"},
		{"tcp4", "239.1.1.1:443", "multicast address"},
		{"tcp4", "192.0.2.1:443", "documentation address"},
		{"tcp4", "198.18.5.5:443", "benchmarking address"},
		{"tcp6", "[::1]:443", "loopback address"},
		{"tcp6", "[::]:443", "unspecified address"},
		{"tcp6", "[fd00:ec2::254]:80", "unique local (private) address"},
		{"tcp6", "[fe80::1%eth0]:443", "link-local address"},
		{"tcp6", "[::ffff:169.254.169.254]:80", "IPv4-mapped link-local address"},
		{"tcp6", "[64:ff9b::7f00:1]:443", "NAT64 address"},
		{"tcp6", "[ff02::1]:443", "multicast address"},
		{"tcp6", "[2001:db8::1]:443", "documentation address"},
		{"udp4", "8.8.8.8:53", "network udp4 is not permitted"},
		{"tcp4", "not-an-address:80", "not an ip:port"},
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			err := control(tc.network, tc.addr, nil)
			var re *RefusedError
			if !errors.As(err, &re) || !IsRefused(err) {
				t.Fatalf("control = %v, want a refusal", err)
			}
			if re.Addr != tc.addr || re.Reason != tc.reason {
				t.Fatalf("got Addr %q Reason %q, want %q %q", re.Addr, re.Reason, tc.addr, tc.reason)
			}
		})
	}
	if got, want := control("tcp4", "169.254.169.254:80", nil).Error(), "destination 169.254.169.254:80 refused: link-local address"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestControlPublicPasses(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "93.184.216.34:443"},
		{"tcp4", "8.8.8.8:8443"}, // any port
		{"tcp4", "1.1.1.1:80"},
		{"tcp6", "[2606:4700:4700::1111]:443"},
		{"tcp6", "[2a00:1450:4001:81c::200e]:443"},
	} {
		if err := control(tc.network, tc.addr, nil); err != nil {
			t.Errorf("control(%s, %s) = %v, want nil", tc.network, tc.addr, err)
		}
	}
}

// Everything ssrf refuses by default must be refused here too: the first and
// last address of each of its prefixes, and the ranges outside IPv6 global unicast.
func TestRefusalCoversSSRFDefaults(t *testing.T) {
	prefixes := append([]netip.Prefix{ssrf.IPv6NAT64Prefix}, ssrf.IPv4DeniedPrefixes...)
	prefixes = append(prefixes, ssrf.IPv6DeniedPrefixes...)
	for _, pfx := range prefixes {
		for _, ip := range []netip.Addr{pfx.Masked().Addr(), lastAddr(pfx)} {
			if refusal(ip) == "" {
				t.Errorf("%s (in %s) is not refused", ip, pfx)
			}
		}
	}
	for _, s := range []string{"::", "::1", "1fff:ffff::1", "4000::1", "fe80::1", "fc00::1"} {
		if refusal(netip.MustParseAddr(s)) == "" {
			t.Errorf("%s is not refused", s)
		}
	}
	// And the other way: the named table refuses nothing public by mistake.
	for _, s := range []string{"1.0.0.1", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0", "223.255.255.255", "2001:4860::8888"} {
		if r := refusal(netip.MustParseAddr(s)); r != "" {
			t.Errorf("public %s refused: %s", s, r)
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	ip, _ := netip.AddrFromSlice(a)
	return ip
}

func TestParseAllow(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"127.0.0.1:8080", []string{"127.0.0.1:8080"}, ""},
		{" 127.0.0.1:8080 , LocalHost:3000,", []string{"127.0.0.1:8080", "localhost:3000"}, ""},
		{"[::1]:9000,[0:0::1]:9001", []string{"[::1]:9000", "[::1]:9001"}, ""},
		{"mock-amo.internal:443", []string{"mock-amo.internal:443"}, ""},
		{"127.0.0.1", nil, `"127.0.0.1"`},
		{"127.0.0.1:", nil, `"127.0.0.1:"`},
		{"127.0.0.1:0", nil, `"127.0.0.1:0"`},
		{"127.0.0.1:65536", nil, `"127.0.0.1:65536"`},
		{"127.0.0.1:+80", nil, `"127.0.0.1:+80"`},
		{"127.0.0.1:http", nil, `"127.0.0.1:http"`},
		{":8080", nil, `":8080"`},
		{"ok:1,bad host:80", nil, `"bad host:80"`},
		{"http://x:80", nil, `"http://x:80"`},
	}
	for _, tc := range cases {
		got, err := ParseAllow(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAllow(%q) error = %v, want one naming %s", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAllow(%q) = %v", tc.in, err)
			continue
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("ParseAllow(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
