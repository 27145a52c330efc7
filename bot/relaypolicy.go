package bot

import (
	"net/netip"
	"net/url"
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// relayPolicy decides which relays the outbox may connect to. Most relays
// it is asked to use are named by others: a request's hint, a room event's
// relays tag, a requester's relay lists. Without a check, anyone could make
// the bot open connections to the operator's own network (a metadata
// service, an admin port on loopback). The bot's configured relays are
// always used; others are used unless their host is a loopback, private,
// link-local or unspecified address, or a localhost name, and the operator
// did not allow those (nostr.allow_private_relays).
//
// Here only the URL is judged, to skip hopeless relays early; the address
// each connection actually goes to is judged again by internal/relay's
// dialer (a net.Dialer Control hook), so a public name or a container
// service name (redis, livekit) that resolves to a private address is
// refused like the literal.
type relayPolicy struct {
	own          map[string]bool // the bot's relays, normalized
	allowPrivate bool
}

func newRelayPolicy(own []string, allowPrivate bool) relayPolicy {
	p := relayPolicy{own: make(map[string]bool, len(own)), allowPrivate: allowPrivate}
	for _, u := range own {
		p.own[nostr.NormalizeURL(u)] = true
	}
	return p
}

// usable returns urls normalized and deduplicated, without the ones the
// policy rules out, which come back in refused.
func (p relayPolicy) usable(urls []string) (keep, refused []string) {
	for _, u := range dedupe(urls) {
		if p.own[u] || p.allowPrivate || !privateRelay(u) {
			keep = append(keep, u)
		} else {
			refused = append(refused, u)
		}
	}
	return keep, refused
}

// sharedSpace is carrier-grade NAT space (RFC 6598), private in practice.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// privateRelay reports whether a relay URL points at this machine or a
// private network: a localhost name, or an IP literal (v4, v6, v4-mapped)
// that is loopback, private (with CGNAT space), link-local, unspecified or
// multicast. An
// unparsable URL counts as private: it is not worth a connection attempt.
func privateRelay(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return true
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false // a name: judged on its resolved address by the dialer
	}
	ip = ip.Unmap()
	return sharedSpace.Contains(ip) || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}
