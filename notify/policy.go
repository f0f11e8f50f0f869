package notify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenEndpoint is wrapped by every refusal of EndpointPolicy, at
// registration (Check) and at connect time (Client). A send refused this way
// is Failed, never retried.
var ErrForbiddenEndpoint = errors.New("notify: endpoint not allowed")

// maxEndpointLength bounds a registered URL; push endpoints and callback
// URLs are far shorter in practice.
const maxEndpointLength = 2048

// EndpointPolicy is the SSRF guard for agent notification endpoints and push
// service endpoints. The zero value is the production policy: https only,
// public unicast addresses only.
type EndpointPolicy struct {
	// AllowHTTP permits http:// URLs (development mode).
	AllowHTTP bool
	// AllowPrivate permits loopback, link-local, private (RFC 1918), unique
	// local (RFC 4193), shared (CGNAT, RFC 6598) and other non-global
	// addresses (development mode). Unspecified, multicast and broadcast
	// addresses are refused even then.
	AllowPrivate bool
}

// Check validates an endpoint URL at registration: an absolute https URL
// (http only with AllowHTTP), no userinfo, no fragment, a host, and a
// literal IP host that the policy allows. A host name is not resolved here:
// the address it resolves to is checked on every connection by Client.
func (p EndpointPolicy) Check(rawURL string) error {
	if len(rawURL) > maxEndpointLength {
		return fmt.Errorf("%w: URL longer than %d bytes", ErrForbiddenEndpoint, maxEndpointLength)
	}
	// As RFC 6749 §3.1.2 asks of endpoint URIs: no fragment, not
	// even an empty one.
	if strings.Contains(rawURL, "#") {
		return fmt.Errorf("%w: fragment is not allowed", ErrForbiddenEndpoint)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: unparsable URL", ErrForbiddenEndpoint)
	}
	return p.checkURL(u)
}

func (p EndpointPolicy) checkURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return fmt.Errorf("%w: http is allowed only in development mode", ErrForbiddenEndpoint)
		}
	default:
		return fmt.Errorf("%w: scheme must be https", ErrForbiddenEndpoint)
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: not a hierarchical URL", ErrForbiddenEndpoint)
	}
	if u.User != nil {
		// Credentials in a URL end up in logs and Referer headers.
		return fmt.Errorf("%w: userinfo is not allowed", ErrForbiddenEndpoint)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: fragment is not allowed", ErrForbiddenEndpoint)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrForbiddenEndpoint)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(addr)
	}
	if strings.ContainsAny(host, "%[]") {
		return fmt.Errorf("%w: malformed host", ErrForbiddenEndpoint)
	}
	// RFC 3696 §2: a top-level domain is never all-numeric, so a host like
	// "2130706433", "127.1" or "0x7f.1" is an IPv4 address in a legacy
	// notation that some resolvers accept; refuse it rather than guess.
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if last := strings.ToLower(labels[len(labels)-1]); isDigits(last) || strings.HasPrefix(last, "0x") && len(labels) > 1 || isHexIPv4(host) {
		return fmt.Errorf("%w: numeric host %q", ErrForbiddenEndpoint, host)
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isHexIPv4 reports a whole-host hexadecimal IPv4 address ("0x7f000001").
func isHexIPv4(host string) bool {
	h, ok := strings.CutPrefix(strings.ToLower(host), "0x")
	if !ok || h == "" {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// checkAddr decides one IP address.
func (p EndpointPolicy) checkAddr(addr netip.Addr) error {
	reason := classifyAddr(addr)
	switch {
	case reason == "":
		return nil
	case p.AllowPrivate && !alwaysForbidden[reason]:
		return nil
	}
	return fmt.Errorf("%w: %s is a %s address", ErrForbiddenEndpoint, addr, reason)
}

// alwaysForbidden lists the classes refused even with AllowPrivate: none of
// them names a single host one could mean to reach.
var alwaysForbidden = map[string]bool{
	"unspecified": true,
	"multicast":   true,
	"broadcast":   true,
}

// forbiddenPrefixes are the special-purpose ranges of the IANA IPv4 and IPv6
// Special-Purpose Address Registries (RFC 6890) that are not globally
// reachable, plus multicast and reserved space.
var forbiddenPrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},        // RFC 1122 §3.2.1.3 "this network"
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},           // RFC 1918
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"}, // RFC 6598
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"}, // RFC 3927, cloud metadata
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"}, // RFC 6890
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},            // RFC 5737
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay"},             // RFC 7526
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"}, // RFC 2544
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // RFC 1112
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},              // RFC 4291 §2.5.5.1, deprecated
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},         // RFC 8215
	{netip.MustParsePrefix("100::/64"), "discard-only"},              // RFC 6666
	{netip.MustParsePrefix("2001::/32"), "Teredo"},                   // RFC 4380: hides an IPv4 address
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},        // RFC 3849
	{netip.MustParsePrefix("fc00::/7"), "unique local"},              // RFC 4193
	{netip.MustParsePrefix("fe80::/10"), "link-local"},               // RFC 4291
	{netip.MustParsePrefix("fec0::/10"), "site-local"},               // RFC 3879, deprecated
	{netip.MustParsePrefix("ff00::/8"), "multicast"},                 // RFC 4291
	{netip.MustParsePrefix("5f00::/16"), "SRv6 SID"},                 // RFC 9602
	{netip.MustParsePrefix("3fff::/20"), "documentation"},            // RFC 9637
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignment"}, // RFC 2928: benchmarking, ORCHID, AMT...
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// classifyAddr returns why addr is not a public unicast address, or "".
func classifyAddr(addr netip.Addr) string {
	addr = addr.WithZone("")
	// RFC 4291 §2.5.5.2: an IPv4-mapped IPv6 address reaches the IPv4 host.
	if addr.Is4In6() {
		return classifyAddr(addr.Unmap())
	}
	if addr.Is6() {
		b := addr.As16()
		// RFC 6052 §2.1: the well-known NAT64 prefix embeds the IPv4 address
		// in its last 32 bits; RFC 3056 §2: 6to4 embeds it in bits 16-47.
		if nat64.Contains(addr) {
			return classifyAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
		if sixToFour.Contains(addr) {
			return classifyAddr(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	for _, f := range forbiddenPrefixes {
		if f.prefix.Contains(addr) {
			return f.reason
		}
	}
	return ""
}

// Client returns an HTTP client for endpoints under this policy: every
// request URL is checked as by Check; every connection is refused when the
// address it dials (after DNS resolution) is forbidden, which defeats DNS
// rebinding; no proxy is used (its address would be the one checked);
// redirects are never followed (the 3xx response is returned as is); and
// dial, TLS handshake, response headers and the whole exchange are bounded
// by timeout.
func (p EndpointPolicy) Client(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dialer := &net.Dialer{
		Timeout:   min(timeout, 5*time.Second),
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			return p.checkDial(network, address)
		},
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    min(timeout, 5*time.Second),
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    10,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: policyTransport{policy: p, next: transport},
		Timeout:   timeout,
		// CIBA Core §10.2 / docs/api.md: redirects are never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkDial is the connect-time guard: address is the resolved "ip:port".
func (p EndpointPolicy) checkDial(network, address string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("%w: network %s", ErrForbiddenEndpoint, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbiddenEndpoint, address)
	}
	return p.checkAddr(ap.Addr())
}

// policyTransport checks each request URL before it leaves, so a client
// built by Client refuses http:// or userinfo even for a URL that skipped
// registration.
type policyTransport struct {
	policy EndpointPolicy
	next   http.RoundTripper
}

func (t policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.policy.checkURL(req.URL); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// wrapped transport.
func (t policyTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// isForbidden reports whether err is a policy refusal.
func isForbidden(err error) bool { return errors.Is(err, ErrForbiddenEndpoint) }
