package bot

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/nbd-wtf/go-nostr"
	"golang.org/x/sync/singleflight"

	"github.com/nestbot/nestbot/nostrx"
)

// relayList is what a pubkey published about where it reads: its NIP-17
// DM relays (kind 10050) and the read relays of its NIP-65 list (kind
// 10002). Both are hints from an unverified stranger's point of view, so
// only ws(s) URLs are kept and at most maxListRelays of each.
type relayList struct {
	DM   []string
	Read []string
}

const (
	// relayListTTL is how long a looked-up list is trusted; a changed list
	// takes at most this long to be followed.
	relayListTTL = 10 * time.Minute
	// relayListMissTTL is how long "nothing published" (or nothing in time)
	// is remembered, shorter so a new list or a slow relay is retried soon.
	relayListMissTTL = time.Minute
	// relayListCacheSize bounds the cache: a flood of distinct requesters
	// costs memory in proportion to this, not to the flood.
	relayListCacheSize = 10_000
	// maxListRelays bounds how many relays of one list the bot dials.
	maxListRelays = 5
	// maxListBatch bounds the pubkeys one look-up asks for (one REQ per
	// relay, authors = the batch).
	maxListBatch = 50
	// maxListFetches bounds look-ups in flight; pubkeys that miss the
	// cache while they run wait for the next one and share its REQ.
	maxListFetches = 2
	// maxForwards bounds background forwards of responses to read relays
	// that were not known yet when the response was published.
	maxForwards = 32
	// forwardWait bounds how long a forward waits for the response to show
	// up on the bot's relays.
	forwardWait = 30 * time.Second
)

// relayLists looks pubkeys' relay lists up on the bot's relays, with a
// bounded cache with expiry (a miss is remembered too, for
// relayListMissTTL), one lookup in flight per pubkey (singleflight), and
// look-ups batched: at most maxListFetches run at once, and the pubkeys
// that miss meanwhile are asked for together in the next one (one REQ per
// relay for up to maxListBatch requesters instead of one each; issue 15:
// the relays are shared infrastructure). singleflight alone does not
// batch: it shares one call per key, so the flight of each pubkey only
// queues it and waits for the batch that carries it.
type relayLists struct {
	// cache holds found lists and misses; expirable bounds it in size and
	// drops entries after relayListTTL, and each entry's own expiry
	// (checked against now) makes a miss last relayListMissTTL only.
	cache    *expirable.LRU[string, cachedList]
	flights  singleflight.Group
	mu       sync.Mutex
	queue    []queuedList  // pubkeys waiting for the next look-up
	fetching int           // look-ups running
	forwards chan struct{} // semaphore of background forwards
	now      func() time.Time
}

type cachedList struct {
	list    relayList
	expires time.Time
}

// queuedList is one pubkey waiting for a batch; done (buffered) gets its
// list.
type queuedList struct {
	pubkey string
	done   chan relayList
}

// listFetch looks up the relay lists of pubkeys (one look-up for all);
// pubkeys absent from the map published none. complete is false when the
// look-up was cut short, so that its misses are not remembered.
type listFetch func(ctx context.Context, pubkeys []string) (lists map[string]relayList, complete bool)

func newRelayLists() *relayLists {
	return &relayLists{
		// expirable runs one cleanup goroutine per cache for the
		// process's life (golang-lru v2.0.7 cannot stop it): one per
		// Service.
		cache:    expirable.NewLRU[string, cachedList](relayListCacheSize, nil, relayListTTL),
		forwards: make(chan struct{}, maxForwards),
		now:      time.Now,
	}
}

// cached returns pubkey's lists if a fresh lookup result is in the cache.
func (r *relayLists) cached(pubkey string) (relayList, bool) {
	e, ok := r.cache.Get(pubkey)
	if !ok || !r.now().Before(e.expires) {
		return relayList{}, false
	}
	return e.list, true
}

// relayListsOf returns pubkey's relay lists from the cache, or looks them up
// on the bot's relays within nostr.lookup_timeout. Concurrent callers for
// one pubkey share one lookup. A lookup that finds nothing (or nothing in
// time) yields empty lists; callers then use the bot's relays alone.
func (s *Service) relayListsOf(ctx context.Context, pubkey string) relayList {
	return s.relayLists.get(ctx, s.outbox.bg, pubkey, s.cfg.Nostr.LookupTimeout, s.guardedFetchRelayLists)
}

// get is relayListsOf with the lookup passed in: fetch runs detached from
// the first caller's ctx (others may wait on it), under bg and timeout,
// for this pubkey and the others that missed meanwhile.
func (r *relayLists) get(ctx, bg context.Context, pubkey string, timeout time.Duration, fetch listFetch) relayList {
	if l, ok := r.cached(pubkey); ok {
		return l
	}
	ch := r.flights.DoChan(pubkey, func() (any, error) {
		// A flight that ended between the miss above and DoChan has
		// filled the cache: do not ask again.
		if l, ok := r.cached(pubkey); ok {
			return l, nil
		}
		done := make(chan relayList, 1)
		r.mu.Lock()
		r.queue = append(r.queue, queuedList{pubkey, done})
		if r.fetching < maxListFetches {
			r.fetching++
			go r.drain(bg, timeout, fetch)
		}
		r.mu.Unlock()
		return <-done, nil // drain answers every pubkey it takes
	})
	select {
	case res := <-ch:
		return res.Val.(relayList)
	case <-ctx.Done():
		return relayList{}
	}
}

// drain runs look-ups of the queued pubkeys, up to maxListBatch at a
// time, until the queue is empty.
func (r *relayLists) drain(bg context.Context, timeout time.Duration, fetch listFetch) {
	for {
		r.mu.Lock()
		n := min(len(r.queue), maxListBatch)
		if n == 0 {
			r.fetching--
			r.queue = nil // let the backing array go
			r.mu.Unlock()
			return
		}
		batch := slices.Clone(r.queue[:n])
		r.queue = r.queue[n:]
		r.mu.Unlock()

		pubkeys := make([]string, len(batch))
		for i, q := range batch {
			pubkeys[i] = q.pubkey
		}
		lctx, cancel := context.WithTimeout(bg, timeout)
		lists, complete := fetch(lctx, pubkeys)
		cancel()

		now := r.now()
		for _, q := range batch {
			l := lists[q.pubkey]
			if found := len(l.DM)+len(l.Read) > 0; found || complete {
				ttl := relayListTTL
				if !found {
					ttl = relayListMissTTL
				}
				r.cache.Add(q.pubkey, cachedList{l, now.Add(ttl)})
			}
			q.done <- l
		}
	}
}

// fetchRelayLists queries the bot's relays for the newest kind 10050 and
// 10002 of each of pubkeys, in one REQ per relay. complete is false when
// the service is shutting down, so that an interrupted lookup is not
// remembered as "nothing published".
func (s *Service) fetchRelayLists(ctx context.Context, pubkeys []string) (map[string]relayList, bool) {
	filter := nostr.Filter{Kinds: []int{nostr.KindDMRelayList, nostr.KindRelayListMetadata}, Authors: pubkeys}
	type newest struct{ dm, read *nostr.Event }
	by := make(map[string]*newest, len(pubkeys))
	for _, pk := range pubkeys {
		by[pk] = &newest{}
	}
	// Replaceable kinds: a relay holds one of each per author; 4 per
	// author leaves room for relays that keep older versions.
	for _, ev := range s.outbox.query(ctx, s.cfg.Nostr.Relays, filter, 4*len(pubkeys)+4) {
		// The outbox checks ids and signatures and that ev matches filter.
		n := by[ev.PubKey]
		if n == nil {
			continue
		}
		switch ev.Kind {
		case nostr.KindDMRelayList:
			n.dm = newer(n.dm, ev)
		case nostr.KindRelayListMetadata:
			n.read = newer(n.read, ev)
		}
	}
	out := make(map[string]relayList, len(pubkeys))
	for pk, n := range by {
		var l relayList
		if n.dm != nil {
			l.DM = parseDMRelayList(n.dm)
		}
		if n.read != nil {
			l.Read = parseReadRelays(n.read)
		}
		if len(l.DM)+len(l.Read) > 0 {
			out[pk] = l
		}
	}
	return out, s.outbox.bg.Err() == nil
}

func newer(cur, ev *nostr.Event) *nostr.Event {
	if cur == nil || ev.CreatedAt > cur.CreatedAt || (ev.CreatedAt == cur.CreatedAt && ev.ID < cur.ID) {
		return ev
	}
	return cur
}

// parseDMRelayList reads a kind 10050: ["relay", <url>] tags.
func parseDMRelayList(ev *nostr.Event) []string {
	var out []string
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == "relay" {
			out = addRelay(out, t[1])
		}
	}
	return out
}

// parseReadRelays reads the read relays of a NIP-65 kind 10002: ["r", <url>]
// (read and write) and ["r", <url>, "read"]; "write" ones are skipped.
func parseReadRelays(ev *nostr.Event) []string {
	var out []string
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == "r" && (len(t) == 2 || t[2] == "" || t[2] == "read") {
			out = addRelay(out, t[1])
		}
	}
	return out
}

func addRelay(out []string, url string) []string {
	if len(out) >= maxListRelays || !nostrx.ValidRelayURL(url) {
		return out
	}
	n := nostr.NormalizeURL(url)
	if n == "" || slices.Contains(out, n) {
		return out
	}
	return append(out, n)
}

// requesterReadRelays is where a kind 4313 response goes beyond the relays
// the bot already chose (already): the requester's NIP-65 read relays. A
// cached list is returned at once. Otherwise it returns nothing, so the
// response is published to the other relays without waiting, and a
// bounded background task looks the list up and, once it is known,
// forwards the very same response (taken from the bot's relays) there.
func (s *Service) requesterReadRelays(req *nostr.Event, already []string) []string {
	lists := s.relayLists
	if l, ok := lists.cached(req.PubKey); ok {
		return l.Read
	}
	select {
	case lists.forwards <- struct{}{}:
	default:
		return nil // too many forwards in flight: the response still reaches the bot's relays
	}
	go func() {
		defer func() { <-lists.forwards }()
		defer s.guard.catchOwn("forward", req.ID)
		s.forwardResponse(req, dedupe(already))
	}()
	return nil
}

// forwardResponse looks up the requester's read relays and republishes the
// bot's response to req on those the response was not sent to.
func (s *Service) forwardResponse(req *nostr.Event, already []string) {
	ctx, cancel := context.WithTimeout(s.outbox.bg, forwardWait)
	defer cancel()
	var extra []string
	for _, r := range s.relayListsOf(ctx, req.PubKey).Read {
		if !slices.Contains(already, r) {
			extra = append(extra, r)
		}
	}
	if len(extra) == 0 {
		return
	}
	bot := s.signer.PublicKey()
	filter := nostr.Filter{
		Kinds: []int{s.cfg.Nostr.ResponseKind}, Authors: []string{bot},
		Tags: nostr.TagMap{"e": []string{req.ID}},
	}
	// Stored and live events: the response may not have reached a relay yet.
	resp := s.outbox.first(ctx, s.cfg.Nostr.Relays, filter)
	if resp == nil || resp.PubKey != bot || resp.Kind != s.cfg.Nostr.ResponseKind || !tagsContain(resp.Tags, "e", req.ID) {
		return
	}
	if err := s.outbox.Publish(ctx, resp, extra); err != nil {
		s.log.Debug("forward response to read relays", "id", req.ID, "relays", extra, "err", err)
	}
}

func tagsContain(tags nostr.Tags, name, value string) bool {
	for _, t := range tags {
		if len(t) >= 2 && t[0] == name && t[1] == value {
			return true
		}
	}
	return false
}
