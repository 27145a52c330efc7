package bot

import (
	"sync"

	"github.com/nestbot/nestbot/nostrx"
)

// access is the operator's allow and deny lists (nostr.allowed_pubkeys,
// nostr.denied_pubkeys): the one rule that 4312 requests, direct-message
// commands and the overload prediction all apply. A denied pubkey is never
// served; with an allow list, only its pubkeys are.
//
// The lists are indexed once; the index is built again only if the
// configuration's slices are replaced (tests do).
type access struct {
	mu              sync.Mutex
	from            [2][]string // the slices the index was built from
	allowed, denied map[string]bool
}

func (a *access) serves(allowed, denied []string, pubkey string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.allowed == nil || !same(a.from[0], allowed) || !same(a.from[1], denied) {
		a.from = [2][]string{allowed, denied}
		a.allowed, a.denied = set(allowed), set(denied)
	}
	return !a.denied[pubkey] && (len(a.allowed) == 0 || a.allowed[pubkey])
}

// same reports whether a and b are the same slice (not equal contents).
func same(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func set(pks []string) map[string]bool {
	m := make(map[string]bool, len(pks))
	for _, pk := range pks {
		m[pk] = true
	}
	return m
}

// serves reports whether the operator's lists let pubkey in.
func (s *Service) serves(pubkey string) bool {
	return s.access.serves(s.cfg.Nostr.AllowedPubkeys, s.cfg.Nostr.DeniedPubkeys, pubkey)
}

// listed is serves as the refusal a request gets (UNAUTHORIZED).
func (s *Service) listed(pubkey string) error {
	if !s.serves(pubkey) {
		return nostrx.Refuse(nostrx.CodeUnauthorized, "this bot does not serve your pubkey")
	}
	return nil
}
