// Package heal is nestbot's auto-heal (issue 14): it notices a room of this
// deployment that broke while people are in it, has rooms.Engine restore it
// under the room's lock, and tells the host.
//
// Notice. Participants of a Nests room publish kind 10312 presence naming
// it (["a", "30312:<host>:<d>", <relay>, "root"]) and refresh it every few
// minutes while they stay. The healer subscribes on the bot's relays to
// every kind 10312 since now − presence_ttl, without an "#a" filter: relays
// whose index skips long tag values (eventstore's badger backend skips
// values over 100 characters; a coordinate with a UUID is 107) would never
// match one. Each event is screened cheaply (kind, age, one 30312
// coordinate), then kept only when the coordinate is a room of this
// deployment (its record names the coordinate's author as host, or it is
// the bot's own room), a look-up that is cached and rate-bounded, and only
// then verified (id and BIP-340 signature) and counted. The presence table
// is an LRU of at most MaxRooms rooms with at most maxPubkeysPerRoom
// pubkeys each. LiveKit webhooks (participant joined, room started) add
// rooms that have participants, with or without presence.
//
// Check. Every Interval the healer compares the rooms with fresh presence
// from at least MinPresent pubkeys (and the webhook hints) with their
// records and LiveKit's rooms (ListRooms by name), and hands each that looks
// broken to Engine.Heal, which decides again under the room's lock and
// repairs it through the restart path.
//
// Tell. Each heal is one structured log line, one count in
// nestbot_heals_total{reason,outcome} and one NIP-17 DM to the host.
package heal

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// KindPresence is the Nests presence kind (a participant's "I am in room
// <a>"), replaceable, refreshed while the participant stays.
const KindPresence = 10312

// Engine is the part of rooms.Engine the healer uses.
type Engine interface {
	Heal(ctx context.Context, c nostrx.Coordinate, opt rooms.HealOptions) (*rooms.Healed, error)
}

// Store is the part of rooms.RedisStore the healer reads.
type Store interface {
	Record(ctx context.Context, id string) (*rooms.Record, error)
	LastEvent(ctx context.Context, d string) (*nostr.Event, error)
	CountHeal(ctx context.Context, now time.Time) (int64, error)
}

// LiveKit lists LiveKit rooms by name (rooms.LiveKitRooms.List).
type LiveKit interface {
	List(ctx context.Context, names []string) ([]*rooms.LiveRoom, error)
}

// Subscriber opens subscriptions on relays (internal/relay.Pool).
type Subscriber interface {
	Subscribe(ctx context.Context, url string, filters nostr.Filters) (*relay.Sub, error)
}

// Notify tells the host about one heal (bot: a NIP-17 DM to the host's
// 10050 relays). present is the number of fresh presences seen.
type Notify func(ctx context.Context, h *rooms.Healed, present int) error

// Settings are the heal section of the configuration.
type Settings struct {
	PresenceTTL  time.Duration // heal.presence_ttl: a presence is fresh this long
	MinPresent   int           // heal.min_present: distinct fresh pubkeys that make a room occupied
	NewID        bool          // heal.new_id: recreate a room whose record is gone under a new ID
	MaxPerMinute int           // heal.max_per_minute: heals per clock minute, all replicas together
	Interval     time.Duration // heal.interval: how often rooms are checked
	MaxRooms     int           // heal.max_rooms: rooms in the presence table
	// DependencyTimeout bounds one Redis or LiveKit call of a check
	// (limits.dependency_timeout).
	DependencyTimeout time.Duration
}

// Bounds of the healer's work, fixed: they protect the bot, not a policy.
const (
	maxPubkeysPerRoom = 64               // pubkeys remembered per room
	maxATags          = 16               // "a" tags read from one presence event
	maxChecksPerTick  = 512              // rooms checked per tick
	maxHints          = 256              // webhook hints waiting for a tick
	futureSlack       = 60 * time.Second // created_at ahead of the clock still taken
	oursTTL           = time.Minute      // how long "is this room ours" is remembered
	oursLookups       = 50               // Redis look-ups of unknown rooms per second (burst 2×)
	verifications     = 500              // signature checks of presence per second (burst 2×)
	quietFor          = time.Minute      // a room left alone (closed, new_id off) is not looked at again for this long
	notifyTimeout     = 30 * time.Second
	minBackoff        = time.Second
	maxBackoff        = 30 * time.Second
)

// Healer is one replica's auto-heal. Replicas share the work through the
// room locks, cool-downs and the heal counter in Redis.
type Healer struct {
	Bot     string // the bot's hex pubkey
	Relays  []string
	Set     Settings
	Engine  Engine
	Store   Store
	LiveKit LiveKit
	Relay   Subscriber
	Notify  Notify
	Log     *slog.Logger
	Now     func() time.Time // nil: time.Now

	once     sync.Once
	presence *lru.Cache[string, *seen]  // coordinate → who is there
	ours     *lru.Cache[string, oursAt] // coordinate → is a room of this deployment
	quiet    *lru.Cache[string, time.Time]
	finished *lru.Cache[string, time.Time] // LiveKit room name → when LiveKit said it finished
	hints    chan string
	lookups  *rate.Limiter
	verifies *rate.Limiter
	heals    *prometheus.CounterVec
	checks   *prometheus.CounterVec
}

type oursAt struct {
	ours  bool
	until time.Time
}

// seen is who was present in one room and when (their newest presence's
// created_at), at most maxPubkeysPerRoom of them.
type seen struct {
	mu sync.Mutex
	c  nostrx.Coordinate
	at map[string]time.Time
}

func (s *seen) add(pubkey string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.at[pubkey]; ok {
		if at.After(prev) {
			s.at[pubkey] = at
		}
		return
	}
	if len(s.at) >= maxPubkeysPerRoom {
		oldest, first := "", time.Time{}
		for pk, t := range s.at {
			if oldest == "" || t.Before(first) {
				oldest, first = pk, t
			}
		}
		if !at.After(first) {
			return
		}
		delete(s.at, oldest)
	}
	s.at[pubkey] = at
}

// newest is the newest presence's time, zero when none.
func (s *seen) newest() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, at := range s.at {
		if at.After(t) {
			t = at
		}
	}
	return t
}

// fresh counts pubkeys seen since cutoff and forgets the others.
func (s *seen) fresh(cutoff time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pk, t := range s.at {
		if t.Before(cutoff) {
			delete(s.at, pk)
		}
	}
	return len(s.at)
}

// Register adds nestbot_heals_total to reg. Call it once, before Run.
func (h *Healer) Register(reg prometheus.Registerer) {
	h.init()
	if reg != nil {
		reg.MustRegister(h.heals, h.checks)
	}
}

func (h *Healer) init() {
	h.once.Do(func() {
		n := max(h.Set.MaxRooms, 1)
		h.presence, _ = lru.New[string, *seen](n)
		h.ours, _ = lru.New[string, oursAt](n)
		h.quiet, _ = lru.New[string, time.Time](n)
		h.finished, _ = lru.New[string, time.Time](n)
		h.hints = make(chan string, maxHints)
		h.lookups = rate.NewLimiter(oursLookups, 2*oursLookups)
		h.verifies = rate.NewLimiter(verifications, 2*verifications)
		h.heals = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_heals_total",
			Help: "Rooms found broken while people were in them, by reason (livekit_missing, bare_room, record_gone) and outcome (healed; failed; rate_limited: heal.max_per_minute spent; disabled: heal.new_id is off).",
		}, []string{"reason", "outcome"})
		h.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_heal_checks_total",
			Help: "Passes of the healer over the occupied rooms, by outcome (ok; error: LiveKit did not answer).",
		}, []string{"outcome"})
		if h.Log == nil {
			h.Log = slog.New(slog.DiscardHandler)
		}
	})
}

func (h *Healer) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Webhook takes a verified LiveKit webhook event; it never blocks. A room
// that a participant joined, or that LiveKit started, is checked at the
// next tick even without presence (a rejoining client auto-creates a bare
// room).
func (h *Healer) Webhook(ev *livekit.WebhookEvent) {
	h.init()
	name := ev.GetRoom().GetName()
	if !nostrx.ValidD(name) {
		return
	}
	switch ev.GetEvent() {
	case webhook.EventParticipantJoined, webhook.EventRoomStarted:
		h.finished.Remove(name)
	case webhook.EventRoomFinished:
		// LiveKit ended the room itself (its last participant left, or
		// someone deleted it): people still counted present left with it,
		// unless they publish presence again afterwards. A crash sends no
		// webhook.
		h.finished.Add(name, h.now())
		return
	default:
		return
	}
	select {
	case h.hints <- name:
	default: // full: presence and the next hint catch up
	}
}

// Present reports how many distinct pubkeys have fresh presence in the
// room at c.
func (h *Healer) Present(c nostrx.Coordinate) int {
	h.init()
	s, ok := h.presence.Peek(c.String())
	if !ok {
		return 0
	}
	return s.fresh(h.now().Add(-h.Set.PresenceTTL))
}

// Run watches presence on every relay and checks rooms every Interval
// until ctx ends.
func (h *Healer) Run(ctx context.Context) {
	h.init()
	var wg sync.WaitGroup
	for _, url := range h.Relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.watch(ctx, url)
		}()
	}
	t := time.NewTicker(h.Set.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			h.tick(ctx)
		}
	}
}

// watch keeps one subscription to presence on url, resubscribing with
// capped, jittered backoff.
func (h *Healer) watch(ctx context.Context, url string) {
	backoff := minBackoff
	for ctx.Err() == nil {
		start := h.now()
		err := h.session(ctx, url)
		if ctx.Err() != nil {
			return
		}
		if h.now().Sub(start) > 10*minBackoff {
			backoff = minBackoff
		}
		h.Log.Debug("heal: presence subscription ended; retrying", "relay", url, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (h *Healer) session(ctx context.Context, url string) error {
	since := nostr.Timestamp(h.now().Add(-h.Set.PresenceTTL).Unix())
	filters := nostr.Filters{{Kinds: []int{KindPresence}, Since: &since}}
	sub, err := h.Relay.Subscribe(ctx, url, filters)
	if err != nil {
		return err
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			return errString(sub.Reason())
		case ev := <-sub.Events:
			h.take(ctx, ev, filters)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// take screens one presence event from a relay and records it when it is
// fresh, names a room of this deployment and verifies.
func (h *Healer) take(ctx context.Context, ev *nostr.Event, filters nostr.Filters) {
	if ev == nil || ev.Kind != KindPresence || len(ev.PubKey) != 64 {
		return
	}
	now := h.now()
	at := ev.CreatedAt.Time()
	if at.Before(now.Add(-h.Set.PresenceTTL)) || at.After(now.Add(futureSlack)) {
		return
	}
	c, ok := presenceRoom(ev)
	if !ok || !h.isOurs(ctx, c) {
		return
	}
	if !h.verifies.Allow() || !relay.Verify(ev, filters) {
		return
	}
	if at.After(now) {
		at = now // a clock ahead does not keep a presence fresh longer
	}
	key := c.String()
	s, ok := h.presence.Get(key)
	if !ok {
		s = &seen{c: c, at: map[string]time.Time{}}
		if prev, loaded, _ := h.presence.PeekOrAdd(key, s); loaded {
			s = prev
		}
	}
	s.add(ev.PubKey, at)
}

// presenceRoom is the room a presence event names: its first "a" tag that
// is a valid 30312 coordinate (the "root" one in Nests' events).
func presenceRoom(ev *nostr.Event) (nostrx.Coordinate, bool) {
	n := 0
	for _, t := range ev.Tags {
		if len(t) < 2 || t[0] != "a" {
			continue
		}
		if n++; n > maxATags {
			break
		}
		c, err := nostrx.ParseCoordinate(t[1])
		if err == nil && c.Kind == nostrx.KindRoom {
			return c, true
		}
	}
	return nostrx.Coordinate{}, false
}

// isOurs reports whether c is a room of this deployment: its record names
// c's author as host, or c is the bot's room with an event the bot saved.
// Answers are cached for oursTTL; unknown rooms are looked up at most
// oursLookups a second, the rest are dropped (their next refresh comes).
func (h *Healer) isOurs(ctx context.Context, c nostrx.Coordinate) bool {
	key := c.String()
	now := h.now()
	if v, ok := h.ours.Get(key); ok && now.Before(v.until) {
		return v.ours
	}
	if !h.lookups.Allow() {
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, h.Set.DependencyTimeout)
	defer cancel()
	ours := false
	if c.Author == h.Bot {
		last, err := h.Store.LastEvent(dctx, c.D)
		if err != nil {
			return false // not remembered: asked again on the next event
		}
		ours = last != nil && last.PubKey == h.Bot
	} else {
		rec, err := h.Store.Record(dctx, c.D)
		if err != nil {
			return false
		}
		ours = rec != nil && rec.Host == c.Author
	}
	h.ours.Add(key, oursAt{ours: ours, until: now.Add(oursTTL)})
	return ours
}

// candidate is a room to check this tick.
type candidate struct {
	c       nostrx.Coordinate
	present int       // fresh presences
	newest  time.Time // the newest of them
}

// tick checks the occupied rooms and the webhook hints once.
func (h *Healer) tick(ctx context.Context) {
	now := h.now()
	cutoff := now.Add(-h.Set.PresenceTTL)
	byKey := map[string]*candidate{}
	for _, key := range h.presence.Keys() {
		s, ok := h.presence.Peek(key)
		if !ok {
			continue
		}
		n := s.fresh(cutoff)
		if n == 0 {
			h.presence.Remove(key)
			continue
		}
		if n >= max(h.Set.MinPresent, 1) {
			byKey[key] = &candidate{c: s.c, present: n, newest: s.newest()}
		}
	}
	h.addHints(ctx, byKey)
	cands := make([]*candidate, 0, len(byKey))
	for key, c := range byKey {
		if until, ok := h.quiet.Get(key); ok && now.Before(until) {
			continue
		}
		cands = append(cands, c)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].present > cands[j].present })
	cands = cands[:min(len(cands), maxChecksPerTick)]
	outcome := "ok"
	defer func() { h.checks.WithLabelValues(outcome).Inc() }()
	if len(cands) == 0 {
		return
	}
	names := make([]string, 0, len(cands))
	for _, c := range cands {
		if !slices.Contains(names, c.c.D) {
			names = append(names, c.c.D)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, h.Set.DependencyTimeout)
	list, err := h.LiveKit.List(lctx, names)
	cancel()
	if err != nil {
		outcome = "error"
		h.Log.Warn("heal: LiveKit did not answer; next tick retries", "err", err)
		return
	}
	live := make(map[string]*rooms.LiveRoom, len(list))
	for _, r := range list {
		live[r.Name] = r
	}
	for _, c := range cands {
		if ctx.Err() != nil {
			return
		}
		h.check(ctx, c, live[c.c.D])
	}
}

// addHints turns the waiting webhook hints into candidates: the room of
// that name with a record (its host's coordinate) or the bot's own.
func (h *Healer) addHints(ctx context.Context, byKey map[string]*candidate) {
	for range maxHints {
		var name string
		select {
		case name = <-h.hints:
		default:
			return
		}
		dctx, cancel := context.WithTimeout(ctx, h.Set.DependencyTimeout)
		rec, err := h.Store.Record(dctx, name)
		cancel()
		if err != nil || rec == nil || !validHost(rec.Host, name) {
			continue
		}
		c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: rec.Host, D: name}
		if rec.IsRecreated {
			c.Author = h.Bot // a room the bot recreated is addressed by the bot's key
		}
		if _, ok := byKey[c.String()]; !ok {
			byKey[c.String()] = &candidate{c: c}
		}
	}
}

// check looks at one room from outside its lock and hands it to the
// engine when it looks broken.
func (h *Healer) check(ctx context.Context, cand *candidate, live *rooms.LiveRoom) {
	c := cand.c
	dctx, cancel := context.WithTimeout(ctx, h.Set.DependencyTimeout)
	rec, err := h.Store.Record(dctx, c.D)
	cancel()
	if err != nil {
		h.Log.Debug("heal: cannot read the record; next tick retries", "room", c.String(), "err", err)
		return
	}
	reason := ""
	switch {
	case rec == nil && c.Author == h.Bot:
		reason = rooms.HealRecordGone
	case rec == nil:
		return // a host's room without a record: nothing says it is ours any more
	case live == nil && cand.present > 0:
		if at, ok := h.finished.Peek(c.D); ok && !cand.newest.After(at) {
			// LiveKit finished the room and nobody has said since that
			// they are still there: the room ended, it did not break.
			h.Log.Debug("heal: LiveKit finished the room and no presence came since", "room", c.String())
			return
		}
		reason = rooms.HealLiveKitMissing
	case live != nil && !rooms.OwnMetadata(live.Metadata, rec) && (cand.present > 0 || live.Participants > 0):
		reason = rooms.HealBareRoom
	default:
		return
	}
	allow := func(ctx context.Context) (bool, error) {
		n, err := h.Store.CountHeal(ctx, h.now())
		return n <= int64(h.Set.MaxPerMinute), err
	}
	start := h.now()
	res, err := h.Engine.Heal(ctx, c, rooms.HealOptions{Present: cand.present > 0, NewID: h.Set.NewID, Allow: allow})
	attrs := []any{"room", c.String(), "reason", reason, "present", cand.present}
	if err != nil {
		h.heals.WithLabelValues(reason, "failed").Inc()
		h.Log.Warn("room heal failed; next tick retries", append(attrs, "err", err)...)
		return
	}
	key := c.String()
	switch res.Skip {
	case "":
	case rooms.HealSkipNewIDOff:
		h.heals.WithLabelValues(res.Reason, "disabled").Inc()
		h.quiet.Add(key, h.now().Add(max(quietFor, h.Set.PresenceTTL)))
		h.Log.Info("room not healed: its record is gone and heal.new_id is off", attrs...)
		return
	case rooms.HealSkipRateLimited:
		h.heals.WithLabelValues(res.Reason, "rate_limited").Inc()
		h.Log.Warn("room not healed: heal.max_per_minute spent; next tick retries", attrs...)
		return
	case rooms.HealSkipClosed, rooms.HealSkipNotOurs:
		h.quiet.Add(key, h.now().Add(quietFor))
		h.Log.Debug("heal: room left alone", append(attrs, "why", res.Skip)...)
		return
	default:
		h.Log.Debug("heal: nothing to do", append(attrs, "why", res.Skip)...)
		return
	}
	nctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	nerr := h.Notify(nctx, res, cand.present)
	cancel()
	h.heals.WithLabelValues(res.Reason, "healed").Inc()
	attrs = append(attrs, "action", res.Action, "host", nostrx.Npub(res.Host), "live_room", res.Room.String(),
		"old_sid", res.OldSID, "sid", res.SID, "told", nerr == nil, "duration_ms", h.now().Sub(start).Milliseconds())
	if nerr != nil {
		attrs = append(attrs, "err", nerr)
	}
	h.Log.Info("room healed", attrs...)
}

// validHost: a record's host forms a valid room coordinate with d.
func validHost(host, d string) bool {
	_, err := nostrx.ParseCoordinate("30312:" + host + ":" + d)
	return err == nil
}
