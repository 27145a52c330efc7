package bot

import (
	"container/list"
	"sync"
)

// seenSet remembers recently verified event IDs, bounded, so that the same
// request arriving from several relays is verified and queued once. Only
// verified IDs enter it: a forged copy can never shadow the real request.
type seenSet struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[string]*list.Element
}

func newSeenSet(max int) *seenSet {
	return &seenSet{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

// Contains is the cheap look-up done before verification.
func (s *seenSet) Contains(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.items[id]
	return ok
}

// Add records id and reports whether it was new.
func (s *seenSet) Add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[id]; ok {
		return false
	}
	s.items[id] = s.order.PushFront(id)
	for s.order.Len() > s.max {
		old := s.order.Back()
		s.order.Remove(old)
		delete(s.items, old.Value.(string))
	}
	return true
}

// Len is the number of remembered IDs.
func (s *seenSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// forget drops id so the next sighting of the request is processed again
// (after a failure that left it unanswered).
func (s *seenSet) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[id]; ok {
		s.order.Remove(el)
		delete(s.items, id)
	}
}
