package nostrx

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
)

// The one place keys typed by people (configuration, the command line)
// are read. Both decoders are strict: a secret key must be a valid
// secp256k1 scalar and a public key a point on the curve (BIP-340's
// x-only encoding), so a key that cannot sign or be encrypted to is
// refused where it is entered, not when it is first used.

// KeyError is a key that cannot be used. Reason is one line and never
// repeats a secret key's input, so it is safe to log.
type KeyError struct {
	Secret bool   // a secret key (else a public key)
	Reason string // e.g. "is not a valid nsec1… key (bad bech32 encoding or checksum)"
}

func (e *KeyError) Error() string {
	if e.Secret {
		return "secret key " + e.Reason
	}
	return "public key " + e.Reason
}

// DecodeSecretKey reads a secret key written as nsec1… (NIP-19) or as 64
// hex digits, either case, surrounding spaces ignored, and returns it as
// 64 lowercase hex digits. The key must be a valid secp256k1 scalar
// (0 < k < n). Errors are *KeyError.
func DecodeSecretKey(s string) (string, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	switch {
	case strings.HasPrefix(lower, "npub1"):
		return "", &KeyError{true, "is an npub (a public key); a secret key is nsec1… or 64 hex"}
	case strings.HasPrefix(lower, "nsec1"):
		prefix, v, err := nip19.Decode(lower)
		hexKey, ok := v.(string)
		if err != nil || prefix != "nsec" || !ok {
			return "", &KeyError{true, "is not a valid nsec1… key (bad bech32 encoding or checksum)"}
		}
		lower = hexKey
	case len(lower) != 64:
		return "", &KeyError{true, fmt.Sprintf("is not an nsec1… or 64-hex secret key (%d characters)", len(lower))}
	}
	if err := checkSecretHex(lower); err != nil {
		return "", err
	}
	return lower, nil
}

// checkSecretHex checks that s is 64 lowercase hex digits encoding a
// valid secp256k1 secret key.
func checkSecretHex(s string) error {
	if !isLowerHex64(s) {
		return &KeyError{true, "is not an nsec1… or 64-hex secret key (not hex)"}
	}
	b, _ := hex.DecodeString(s)
	defer clear(b)
	var k secp256k1.ModNScalar
	if overflow := k.SetByteSlice(b); overflow || k.IsZero() {
		return &KeyError{true, "is not a valid secp256k1 secret key (zero or not below the curve order)"}
	}
	k.Zero()
	return nil
}

// DecodePubkey reads a public key written as npub1… (NIP-19, optionally
// after "nostr:") or as 64 hex digits, either case, surrounding spaces
// ignored, and returns it as 64 lowercase hex digits. The key must be a
// point on the curve. Errors are *KeyError, quoting at most 80 bytes of
// the input.
func DecodePubkey(s string) (string, error) {
	in := strings.TrimSpace(s)
	lower := strings.TrimPrefix(strings.ToLower(in), "nostr:")
	if strings.HasPrefix(lower, "npub1") {
		prefix, v, err := nip19.Decode(lower)
		pk, ok := v.(string)
		if err != nil || prefix != "npub" || !ok {
			return "", &KeyError{false, fmt.Sprintf("%q is not a valid npub", truncate(in, 80))}
		}
		lower = pk
	} else if !isLowerHex64(lower) {
		return "", &KeyError{false, fmt.Sprintf("%q: want npub1… or 64 hex characters", truncate(in, 80))}
	}
	if !nostr.IsValidPublicKey(lower) {
		return "", &KeyError{false, fmt.Sprintf("%q is not a point on secp256k1", truncate(in, 80))}
	}
	return lower, nil
}
