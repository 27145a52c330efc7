package bot

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/internal/retry"
	"github.com/nestbot/nestbot/rooms"
)

// The bot's identity on Nostr: a kind 0 profile that says it is a bot
// (NIP-24), a kind 10002 relay list (NIP-65) and a kind 10050 DM relay list
// (NIP-17), all naming the bot's relays. They are published at start-up,
// and only to the relays whose newest copy differs from what the
// configuration says, so an unchanged bot publishes nothing.

const (
	kindProfile   = 0
	kindRelayList = 10002
	kindDMRelays  = 10050
)

// identityLockName is the per-room lock name that serializes identity checks
// across replicas; the leading colon can never be a room's d.
const identityLockName = ":identity"

// profileContent is the kind 0 content. Field order is fixed, so the same
// configuration always gives the same bytes.
type profileContent struct {
	Name        string `json:"name,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	About       string `json:"about,omitempty"`
	Picture     string `json:"picture,omitempty"`
	Website     string `json:"website,omitempty"`
	Bot         bool   `json:"bot"`
}

// identityTemplates are the unsigned identity events for a configuration:
// content and tags only.
func identityTemplates(p config.Profile, relays []string) []nostr.Event {
	content, _ := json.Marshal(profileContent{Name: p.Name, DisplayName: p.Name, About: p.About, Picture: p.Picture, Website: p.Website, Bot: true})
	var rl, dm nostr.Tags
	for _, r := range dedupe(relays) {
		rl = append(rl, nostr.Tag{"r", r}) // no marker: read and write
		dm = append(dm, nostr.Tag{"relay", r})
	}
	return []nostr.Event{
		{Kind: kindProfile, Content: string(content), Tags: nostr.Tags{}},
		{Kind: kindRelayList, Tags: rl},
		{Kind: kindDMRelays, Tags: dm},
	}
}

// sameIdentity reports whether have already says what want says.
func sameIdentity(want nostr.Event, have *nostr.Event) bool {
	if have == nil || have.Kind != want.Kind || have.Content != want.Content || len(have.Tags) != len(want.Tags) {
		return false
	}
	for i := range want.Tags {
		if !slices.Equal(want.Tags[i], have.Tags[i]) {
			return false
		}
	}
	return true
}

// identityPlan compares want with the newest copy each relay returned and
// lists the relays to publish to, with the newest copy seen anywhere (its
// created_at must be exceeded).
func identityPlan(want nostr.Event, relays []string, have map[string]*nostr.Event) (lacking []string, newest *nostr.Event) {
	for _, r := range dedupe(relays) {
		ev := have[r]
		if ev != nil && (newest == nil || ev.CreatedAt > newest.CreatedAt) {
			newest = ev
		}
		if !sameIdentity(want, ev) {
			lacking = append(lacking, r)
		}
	}
	return lacking, newest
}

// publishIdentity runs at start-up until every identity event is on every
// relay that answered, retrying with backoff while no relay accepts one.
func (s *Service) publishIdentity(ctx context.Context, m *ops.Metrics) {
	templates := identityTemplates(s.cfg.Profile, s.cfg.Nostr.Relays)
	pending := map[int]bool{}
	for _, t := range templates {
		pending[t.Kind] = true
	}
	backoff := retry.Background.Backoff()
	for ctx.Err() == nil {
		s.identityPass(ctx, templates, pending, m)
		if len(pending) == 0 {
			return
		}
		if !retry.Sleep(ctx, backoff.NextBackOff()) {
			return
		}
	}
}

// identityPass does one round: fetch what the relays have, publish what
// differs. Kinds that are settled leave pending.
func (s *Service) identityPass(ctx context.Context, templates []nostr.Event, pending map[int]bool, m *ops.Metrics) {
	// One replica at a time; a Redis that does not answer only costs the
	// serialization, never the identity.
	lctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	unlock, err := s.store.Lock(lctx, identityLockName, s.cfg.Limits.DependencyTimeout+s.cfg.Nostr.LookupTimeout+2*publishTimeout)
	cancel()
	if err == nil {
		defer unlock()
	} else if ctx.Err() != nil {
		return
	}

	relays := dedupe(s.cfg.Nostr.Relays)
	have := s.fetchIdentity(ctx, relays)
	for _, want := range templates {
		if !pending[want.Kind] {
			continue
		}
		kind := strconv.Itoa(want.Kind)
		lacking, newest := identityPlan(want, relays, have[want.Kind])
		if len(lacking) == 0 {
			m.Identity.WithLabelValues(kind, "unchanged").Inc()
			s.log.Debug("identity unchanged", "kind", want.Kind)
			delete(pending, want.Kind)
			continue
		}
		ev := want
		ev.Tags = slices.Clone(want.Tags)
		ev.CreatedAt = rooms.NextCreatedAt(time.Now(), newest)
		if err := s.signer.Sign(&ev); err != nil {
			s.log.Error("sign identity event", "kind", want.Kind, "err", err)
			delete(pending, want.Kind)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		err := s.outbox.Publish(pctx, &ev, lacking)
		cancel()
		if err != nil {
			m.Identity.WithLabelValues(kind, "failed").Inc()
			s.log.Warn("identity event not published; will retry", "kind", want.Kind, "err", err)
			continue
		}
		m.Identity.WithLabelValues(kind, "published").Inc()
		s.metrics.Published.WithLabelValues(kind).Inc()
		s.log.Info("identity published", "kind", want.Kind, "id", ev.ID, "relays", lacking)
		delete(pending, want.Kind)
	}
}

// fetchIdentity returns, per kind and relay, the newest identity event of
// the bot each relay holds. Each relay is asked on its own: the pool drops
// an event it already got from another relay, and here which relay holds it
// is the point.
func (s *Service) fetchIdentity(ctx context.Context, relays []string) map[int]map[string]*nostr.Event {
	out := map[int]map[string]*nostr.Event{kindProfile: {}, kindRelayList: {}, kindDMRelays: {}}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.Nostr.LookupTimeout)
	defer cancel()
	filter := nostr.Filter{Kinds: []int{kindProfile, kindRelayList, kindDMRelays}, Authors: []string{s.PublicKey()}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, url := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.guard.catch("identity")
			for _, ev := range s.outbox.query(fctx, []string{url}, filter, 16) {
				if ev.PubKey != s.PublicKey() {
					continue
				}
				mu.Lock()
				if byRelay, ok := out[ev.Kind]; ok {
					if cur := byRelay[url]; cur == nil || ev.CreatedAt > cur.CreatedAt {
						byRelay[url] = ev
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fctx.Err() != nil && ctx.Err() == nil {
		s.log.Debug("identity lookup timed out; relays that did not answer get a fresh copy", slog.Duration("timeout", s.cfg.Nostr.LookupTimeout))
	}
	return out
}
