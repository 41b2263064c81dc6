package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"code.dny.dev/ssrf"
)

// guardian is ssrf's deny list (IANA special-purpose registries, everything
// outside IPv6 global unicast). Ports are not restricted: a public API on
// :8443 is a legitimate destination and the spec refuses addresses, not ports.
// Networks stay at ssrf's default, tcp4 and tcp6.
var guardian = ssrf.New(ssrf.WithAnyPort())

// namedRange names a refused prefix so that a refusal says why in words.
type namedRange struct {
	prefix netip.Prefix
	reason string
}

// refusedRanges is checked before ssrf's list. It names what the spec lists
// (and a little more); ssrf's list remains the backstop for anything not named
// here, so a prefix missing from this table is still refused. More specific
// prefixes come first.
var refusedRanges = func() []namedRange {
	table := []struct{ prefix, reason string }{
		{"0.0.0.0/32", "unspecified address"},
		{"0.0.0.0/8", "\"this network\" address"},
		{"10.0.0.0/8", "private address"},
		{"100.64.0.0/10", "shared address space (CGNAT)"},
		{"127.0.0.0/8", "loopback address"},
		{"169.254.0.0/16", "link-local address"},
		{"172.16.0.0/12", "private address"},
		{"192.0.0.0/24", "IETF protocol assignment address"},
		{"192.0.2.0/24", "documentation address"},
		{"192.88.99.0/24", "6to4 relay anycast address"},
		{"192.168.0.0/16", "private address"},
		{"198.18.0.0/15", "benchmarking address"},
		{"198.51.100.0/24", "documentation address"},
		{"203.0.113.0/24", "documentation address"},
		{"224.0.0.0/4", "multicast address"},
		{"255.255.255.255/32", "broadcast address"},
		{"240.0.0.0/4", "reserved address"},

		{"::/128", "unspecified address"},
		{"::1/128", "loopback address"},
		{"::/96", "IPv4-compatible IPv6 address"},
		{"64:ff9b::/96", "NAT64 address"},
		{"64:ff9b:1::/48", "NAT64 address"},
		{"100::/64", "discard-only address"},
		{"2001::/32", "Teredo address"},
		{"2001:db8::/32", "documentation address"},
		{"2002::/16", "6to4 address"},
		{"3fff::/20", "documentation address"},
		{"fc00::/7", "unique local (private) address"},
		{"fe80::/10", "link-local address"},
		{"fec0::/10", "site-local address"},
		{"ff00::/8", "multicast address"},
	}
	out := make([]namedRange, len(table))
	for i, r := range table {
		out[i] = namedRange{netip.MustParsePrefix(r.prefix), r.reason}
	}
	return out
}()

// refusal says why ip must not be reached, or "" when it is public.
func refusal(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	// A zone only picks an interface; the prefix decides. (netip.Prefix.Contains
	// is false for any zoned address, which would let one slip past the table.)
	ip = ip.WithZone("")
	if ip.Is4In6() {
		// ::ffff:a.b.c.d is dialled as a.b.c.d, so it is judged as that.
		if r := refusal(ip.Unmap()); r != "" {
			return "IPv4-mapped " + r
		}
		return ""
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	if err := guardian.SafeAddr(ip); err != nil {
		if ip.Is6() && !ssrf.IPv6GlobalUnicast.Contains(ip) {
			return "non-global IPv6 address"
		}
		return "special-purpose address"
	}
	return ""
}

// control is the net.Dialer Control hook. It runs after the name was resolved
// and the socket created, but before connect(2): a refused address never gets
// a packet. It sees the resolved ip:port only, which is why allowed host:port
// pairs are decided earlier, in the transport's DialContext.
func control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Addr: address, Reason: "not an ip:port"}
	}
	if r := refusal(ap.Addr()); r != "" {
		return &RefusedError{Addr: address, Reason: r}
	}
	// ssrf's own check: network type (tcp4/tcp6 only) and its full prefix list.
	if err := guardian.Safe(network, address, nil); err != nil {
		reason := "not a permitted destination"
		if errors.Is(err, ssrf.ErrProhibitedNetwork) {
			reason = "network " + network + " is not permitted"
		}
		return &RefusedError{Addr: address, Reason: reason}
	}
	return nil
}

// CheckURL is the static check made before anything is sent (and again for every
// redirect): http or https only; plain http only for an allowed host:port; no
// credentials in the URL; a host that is an IP literal in any spelling browsers
// and inet_aton accept (decimal, octal, hex, short forms, IPv6, IPv4-mapped,
// zones) must be public unless allowed; "localhost" and *.localhost are refused
// unless allowed. Names are checked again after resolution, at dial time.
//
// Refusals wrap ErrRefused; a URL that does not parse gets a plain error.
// Errors never repeat the URL's path, query or credentials.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, which may hold secrets
		}
		return fmt.Errorf("egress: invalid url: %v", err)
	}
	return p.checkURL(u)
}

func (p Policy) checkURL(u *url.URL) error {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		// Checked first so that file:///etc/passwd is a refusal, not "no host".
		return &RefusedError{Addr: scheme + "://" + u.Host, Reason: fmt.Sprintf("scheme %q is not allowed (http or https only)", scheme)}
	}
	host, port := u.Hostname(), u.Port()
	if u.Opaque != "" || host == "" {
		return errors.New("egress: invalid url: no host")
	}
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	hostport := net.JoinHostPort(host, port)
	if !validPort(port) {
		return &RefusedError{Addr: hostport, Reason: "port must be a number from 1 to 65535"}
	}
	if u.User != nil {
		return &RefusedError{Addr: hostport, Reason: "credentials in the url are not allowed"}
	}
	if p.allows(hostport) {
		return nil // the deployment allows this exact host:port, over http too
	}
	if scheme == "http" {
		return &RefusedError{Addr: hostport, Reason: "plain http is allowed only for a host:port in TUNNELS_EGRESS_ALLOW"}
	}
	ip, isIP, err := parseHostIP(host)
	if err != nil {
		return &RefusedError{Addr: hostport, Reason: err.Error()}
	}
	if isIP {
		if r := refusal(ip); r != "" {
			if ip.String() != host {
				r += " (" + ip.String() + ")"
			}
			return &RefusedError{Addr: hostport, Reason: r}
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return &RefusedError{Addr: hostport, Reason: "localhost name"}
	}
	return nil
}

// parseHostIP reads a URL host (brackets already removed) as an IP literal the
// way browsers (WHATWG URL) and inet_aton do. isIP is false for a host name.
// An error means the host looks numeric but is no valid address; browsers reject
// such a URL and resolvers may read it in surprising ways, so it is refused.
func parseHostIP(host string) (ip netip.Addr, isIP bool, err error) {
	if strings.Contains(host, ":") {
		ip, err := netip.ParseAddr(host) // IPv6, with zone, with embedded IPv4
		if err != nil {
			return netip.Addr{}, false, errors.New("malformed IPv6 address")
		}
		return ip, true, nil
	}
	return parseIPv4Loose(foldWidth(host))
}

// foldWidth maps fullwidth ASCII (U+FF01..U+FF5E) and the ideographic and
// fullwidth full stops to ASCII, as IDNA mapping does before the host is used,
// so "１２７．０．０．１" is recognised as 127.0.0.1. Other non-ASCII is left
// alone; such names are judged after resolution.
func foldWidth(s string) string {
	if isASCII(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFEE0
		case r == 0x3002 || r == 0xFF61:
			return '.'
		}
		return r
	}, s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// parseIPv4Loose implements the WHATWG "ends in a number" test and IPv4 parser:
// one to four dot-separated parts (a trailing dot is ignored), each decimal,
// octal (leading 0) or hex (0x); the last part fills the remaining bytes, so
// 2130706433, 0x7f.1 and 127.1 are all 127.0.0.1.
func parseIPv4Loose(host string) (netip.Addr, bool, error) {
	parts := strings.Split(host, ".")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	if !endsInNumber(last) {
		return netip.Addr{}, false, nil
	}
	malformed := errors.New("malformed numeric address")
	if len(parts) > 4 {
		return netip.Addr{}, false, malformed
	}
	nums := make([]uint64, len(parts))
	for i, part := range parts {
		n, ok := ipv4Number(part)
		if !ok {
			return netip.Addr{}, false, malformed
		}
		nums[i] = n
	}
	var v uint64
	for _, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false, malformed
		}
		v = v<<8 | n
	}
	rest := uint(8 * (5 - len(nums))) // bits the last part may fill
	lastN := nums[len(nums)-1]
	if lastN >= 1<<rest {
		return netip.Addr{}, false, malformed
	}
	v = v<<rest | lastN
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

// endsInNumber: the last label is all digits, or parses as an IPv4 number (hex).
func endsInNumber(last string) bool {
	if last == "" {
		return false
	}
	allDigits := true
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			allDigits = false
			break
		}
	}
	if allDigits {
		return true
	}
	_, ok := ipv4Number(last)
	return ok
}

// ipv4Number parses one part: 0x/0X hex (digits may be empty, meaning 0),
// leading-0 octal, else decimal. Values beyond 64 bits fail.
func ipv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, true
	}
	for i := 0; i < len(s); i++ {
		if !isDigitIn(s[i], base) {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func isDigitIn(c byte, base int) bool {
	switch base {
	case 8:
		return c >= '0' && c <= '7'
	case 10:
		return c >= '0' && c <= '9'
	default:
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
	}
}
