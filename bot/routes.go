package bot

import (
	"slices"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nestbot/nestbot/nostrx"
)

// responseRelays: the bot's relays, the relay the request came from, its
// hint, the live room's relays, and the requester's NIP-65 read relays
// (at once when known, else forwarded in the background: relaylists.go).
// A refusal (see isRefusal) goes only to the bot's relays, the one the
// request came from (one of them) and the requester's read relays: a
// stranger's hint never makes the bot write to a relay of their choosing
// without passing the checks.
func (s *Service) responseRelays(ev *nostr.Event, via string, roomRelays []string, refusal bool) []string {
	relays := slices.Clone(s.cfg.Nostr.Relays)
	relays = append(relays, via)
	if t := ev.Tags.Find("a"); !refusal && len(t) >= 3 && nostrx.ValidRelayURL(t[2]) {
		relays = append(relays, t[2])
	}
	if !refusal {
		relays = append(relays, roomRelays...)
	}
	relays = append(relays, s.requesterReadRelays(ev, relays)...)
	return dedupe(relays)
}

// isRefusal reports answers a stranger gets without passing the checks
// (BAD_REQUEST, UNAUTHORIZED, RATE_LIMITED).
func isRefusal(p nostrx.Payload) bool {
	if p.Error == nil {
		return false
	}
	switch p.Error.Code {
	case nostrx.CodeBadRequest, nostrx.CodeUnauthorized, nostrx.CodeRateLimited:
		return true
	}
	return false
}

// refusalOnly: a stored answer is sent again only where a refusal goes, so
// that a re-sighting never widens where it went. Its payload is encrypted
// to the requester, so the bot cannot tell without decrypting; the bot's
// own relays and the requester's read relays hold it in every case.
func refusalOnly(*nostr.Event) bool { return true }
