//go:build !libsecp256k1

package nostrx

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/nbd-wtf/go-nostr"
)

// sign is go-nostr's Event.Sign (btcec, FastSign) with the key parsed once.
func (s *Signer) sign(ev *nostr.Event) error {
	ev.PubKey = s.public
	h := sha256.Sum256(ev.Serialize())
	sig, err := schnorr.Sign(s.secret, h[:], schnorr.FastSign())
	if err != nil {
		return err
	}
	ev.ID = hex.EncodeToString(h[:])
	ev.Sig = hex.EncodeToString(sig.Serialize())
	return nil
}
