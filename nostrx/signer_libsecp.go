//go:build libsecp256k1

package nostrx

import "github.com/nbd-wtf/go-nostr"

// sign is go-nostr's Event.Sign, which under the libsecp256k1 build tag signs
// with libsecp256k1 (about twice as fast as btcec even though it parses the
// hex key on every call).
func (s *Signer) sign(ev *nostr.Event) error {
	return ev.Sign(s.secretHex)
}
