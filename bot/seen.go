package bot

import (
	lru "github.com/hashicorp/golang-lru/v2"
)

// seenSet remembers recently verified event IDs, bounded, so that the same
// request arriving from several relays is verified and queued once. Only
// verified IDs enter it: a forged copy can never shadow the real request.
// The oldest ID is forgotten first: neither a look-up nor a second Add
// refreshes an entry, so a flood of copies cannot keep one alive.
type seenSet struct {
	ids *lru.Cache[string, struct{}]
}

// newSeenSet holds up to max IDs (limits.seen_cache; at least one).
func newSeenSet(max int) *seenSet {
	c, err := lru.New[string, struct{}](max)
	if err != nil {
		// lru.New fails only for a size below one, which Validate refuses.
		panic(err)
	}
	return &seenSet{ids: c}
}

// Contains is the cheap look-up done before verification.
func (s *seenSet) Contains(id string) bool { return s.ids.Contains(id) }

// Add records id and reports whether it was new.
func (s *seenSet) Add(id string) bool {
	had, _ := s.ids.ContainsOrAdd(id, struct{}{})
	return !had
}

// Len is the number of remembered IDs.
func (s *seenSet) Len() int { return s.ids.Len() }

// forget drops id so the next sighting of the request is processed again
// (after a failure that left it unanswered).
func (s *seenSet) forget(id string) { s.ids.Remove(id) }
