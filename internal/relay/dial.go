package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// ErrPrivateAddress is returned when a relay's name resolves to an address
// the caller did not allow (see DialOptions.AllowPrivate).
var ErrPrivateAddress = errors.New("relay address is private")

// DialOptions bound one WebSocket connection to a relay.
type DialOptions struct {
	// AllowPrivate lets the connection go to loopback, private, link-local,
	// CGNAT, unspecified and multicast addresses. It is judged on the
	// address the dialer actually connects to, after DNS, so a public name
	// pointing at 127.0.0.1 or a container's service name (redis, livekit)
	// is refused like the literal.
	AllowPrivate bool
	// MaxMessage bounds one message from the relay, in bytes (default 1 MiB).
	MaxMessage int64
	// Timeout bounds the TCP, TLS and WebSocket handshakes (default 10 s).
	Timeout time.Duration
}

// DefaultMaxMessage bounds one relay message: events the bot reads are a few
// kilobytes, a room event with a thousand participants about 100 KB.
const DefaultMaxMessage = 1 << 20

// Dial opens a WebSocket to a relay (ws or wss URL) without
// permessage-deflate (inflating what a hostile relay sends would cost CPU
// before any check), without HTTP proxies (the address check must see the
// relay's own address), with the read limit set.
func Dial(ctx context.Context, rawURL string, o DialOptions) (*websocket.Conn, error) {
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Hostname() == "" {
		return nil, fmt.Errorf("dial %s: not a ws(s) URL", Excerpt(rawURL, 100))
	}
	if !o.AllowPrivate && localName(u.Hostname()) {
		return nil, fmt.Errorf("dial %s: %w", u.Host, ErrPrivateAddress)
	}
	d := &net.Dialer{Timeout: o.Timeout}
	if !o.AllowPrivate {
		d.Control = refusePrivate
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		TLSHandshakeTimeout: o.Timeout,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	dctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, rawURL, &websocket.DialOptions{
		HTTPClient:      &http.Client{Transport: tr},
		HTTPHeader:      http.Header{"User-Agent": {"nestbot"}},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if errors.Is(err, ErrPrivateAddress) {
			return nil, fmt.Errorf("dial %s: %w", u.Host, ErrPrivateAddress)
		}
		return nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	conn.SetReadLimit(o.MaxMessage)
	return conn, nil
}

// refusePrivate is a net.Dialer Control hook: it runs with the resolved
// address of every connection attempt.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, address)
	}
	if PrivateAddr(ap.Addr()) {
		return ErrPrivateAddress
	}
	return nil
}

// sharedSpace is carrier-grade NAT space (RFC 6598), private in practice.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// PrivateAddr reports whether ip (v4, v6 or v4-mapped) is loopback,
// private (with CGNAT space), link-local, unspecified or multicast.
func PrivateAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	return sharedSpace.Contains(ip) || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// localName reports the names that mean this machine whatever DNS says.
func localName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
