package bot

import (
	"crypto/sha256"
	"encoding/hex"

	lru "github.com/hashicorp/golang-lru/v2"
)

// seenSet remembers recently verified event IDs, bounded, so that the same
// request arriving from several relays is verified and queued once. Only
// verified IDs enter it: a forged copy can never shadow the real request.
// The oldest ID is forgotten first: neither a look-up nor a second Add
// refreshes an entry, so a flood of copies cannot keep one alive.
//
// An ID is kept as its 32 bytes, not its 64-character hex string: 127
// bytes of heap an entry with the LRU's list element and map slot instead
// of 179 (issue 15: the default bound, 100,000 IDs, is 12.7 MB instead of
// 17.9).
type seenSet struct {
	ids *lru.Cache[seenKey, struct{}]
}

// seenKey is an event ID's bytes: the decoded ID when it is 64 lowercase
// hex characters (every NIP-01 event ID), else the SHA-256 of the string,
// so that no other string can collide with a real ID.
type seenKey [32]byte

func keyOf(id string) seenKey {
	var k seenKey
	if len(id) == 64 && isLowerHex(id) {
		_, _ = hex.Decode(k[:], []byte(id))
		return k
	}
	return sha256.Sum256([]byte(id))
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newSeenSet holds up to max IDs (limits.seen_cache; at least one).
func newSeenSet(max int) *seenSet {
	c, err := lru.New[seenKey, struct{}](max)
	if err != nil {
		// lru.New fails only for a size below one, which Validate refuses.
		panic(err)
	}
	return &seenSet{ids: c}
}

// Contains is the cheap look-up done before verification.
func (s *seenSet) Contains(id string) bool { return s.ids.Contains(keyOf(id)) }

// Add records id and reports whether it was new.
func (s *seenSet) Add(id string) bool {
	had, _ := s.ids.ContainsOrAdd(keyOf(id), struct{}{})
	return !had
}

// Len is the number of remembered IDs.
func (s *seenSet) Len() int { return s.ids.Len() }

// forget drops id so the next sighting of the request is processed again
// (after a failure that left it unanswered).
func (s *seenSet) forget(id string) { s.ids.Remove(keyOf(id)) }
