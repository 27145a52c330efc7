package bot

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// The lifecycle of the rooms whose 30312 the bot published (rooms it
// recreated under a new ID). Nobody else can update those events, so the
// bot keeps them true:
//
//   - while the LiveKit room has participants, it republishes the event
//     every lifecycle.republish_interval, well before clients call a room
//     event stale (Amethyst: 8 hours);
//   - when the LiveKit room is gone, it publishes the event with status
//     closed;
//   - when the room was itself replaced (a newer bot room names it in its
//     "a" tag, or the replacement mapping in Redis says so), it publishes it
//     closed with ["a", <successor>, "", "successor"].
//
// It learns of gone rooms from LiveKit's room_finished webhook and, as a
// fallback, from a periodic reconcile that asks ListRooms for the bot's own
// rooms by name, so its cost does not grow with a LiveKit shared with other
// services. Each change of a
// room happens under the room's Redis lock (the engine's), re-reading the
// last event and LiveKit's answer under it, so replicas and the restart
// engine never publish one d twice or out of order. The rooms it looks
// after are a Redis set (rooms.RedisStore.AddOwned), filled by the restart
// engine in the same transaction that saves each room event it publishes,
// by webhooks naming a room whose last saved event is the bot's and open,
// and at start from every saved event.

// lifecycleHintBuffer bounds webhook hints waiting for the lifecycle loop;
// beyond it they are dropped and the next reconcile catches up.
const lifecycleHintBuffer = 256

type lifecycle struct {
	svc   *Service
	lk    *rooms.LiveKitRooms
	m     *ops.Metrics
	hints chan string // room names LiveKit told about
	now   func() time.Time

	adoptCursor int // where the next reconcile's adoption checks start
	// occupied, when set, reports that people are present in the bot's
	// room d (auto-heal's presence): a room gone from LiveKit is then left
	// to the healer instead of being published closed.
	occupied func(d string) bool
}

func newLifecycle(s *Service, lk *rooms.LiveKitRooms, m *ops.Metrics) *lifecycle {
	return &lifecycle{svc: s, lk: lk, m: m, hints: make(chan string, lifecycleHintBuffer), now: time.Now}
}

// webhook takes a verified LiveKit event; it never blocks.
func (lc *lifecycle) webhook(ev *livekit.WebhookEvent) {
	switch ev.Event {
	case webhook.EventRoomFinished, webhook.EventRoomStarted, webhook.EventParticipantJoined:
	default:
		return
	}
	name := ev.GetRoom().GetName()
	if name == "" {
		return
	}
	select {
	case lc.hints <- name:
	default:
		lc.svc.log.Debug("lifecycle busy; webhook left to the next reconcile", "room", name)
	}
}

// run is the lifecycle's one goroutine: start-up discovery, then reconcile
// on every tick and a room check on every webhook hint.
func (lc *lifecycle) run(ctx context.Context) {
	lc.discover(ctx)
	lc.reconcile(ctx)
	t := time.NewTicker(lc.svc.cfg.Lifecycle.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			lc.reconcile(ctx)
		case name := <-lc.hints:
			lc.checkRoom(ctx, name)
		}
	}
}

// discover indexes every open room of the bot that has a saved event,
// including ones published before the index existed.
func (lc *lifecycle) discover(ctx context.Context) {
	ds, err := lc.svc.store.EventRooms(ctx)
	if err != nil {
		lc.svc.log.Warn("lifecycle: cannot list saved room events; relying on LiveKit's list", "err", err)
		return
	}
	lasts, err := lc.svc.store.LastEvents(ctx, ds)
	if err != nil {
		lc.svc.log.Warn("lifecycle: cannot read saved room events", "err", err)
		return
	}
	var open []string
	for d, ev := range lasts {
		if rooms.OwnOpenRoom(lc.svc.PublicKey(), ev) {
			open = append(open, d)
		}
	}
	if err := lc.svc.store.AddOwned(ctx, open...); err != nil {
		lc.svc.log.Warn("lifecycle: cannot index rooms", "err", err)
	}
}

// reconcile compares every room the bot looks after with LiveKit. A LiveKit
// that does not answer closes nothing.
func (lc *lifecycle) reconcile(ctx context.Context) {
	if err := lc.reconcileOnce(ctx); err != nil {
		if ctx.Err() != nil {
			return
		}
		lc.m.Checks.WithLabelValues("reconcile", "error").Inc()
		lc.svc.log.Warn("lifecycle reconcile failed; next tick retries", "err", err)
		return
	}
	lc.m.Checks.WithLabelValues("reconcile", "ok").Inc()
}

func (lc *lifecycle) reconcileOnce(ctx context.Context) error {
	s := lc.svc
	bot := s.PublicKey()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	defer cancel()
	owned, err := s.store.Owned(dctx)
	if err != nil {
		return err
	}
	if len(owned) == 0 {
		return nil
	}
	list, err := lc.lk.List(dctx, owned)
	if err != nil {
		return err
	}
	live := make(map[string]*rooms.LiveRoom, len(list))
	for _, r := range list {
		live[r.Name] = r
	}

	lasts, err := s.store.LastEvents(dctx, owned)
	if err != nil {
		return err
	}
	coords := make([]nostrx.Coordinate, len(owned))
	for i, d := range owned {
		coords[i] = nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot, D: d}
	}
	successors, err := s.store.Replacements(dctx, coords)
	if err != nil {
		return err
	}
	for p, d := range rooms.SuccessorsByTag(bot, lasts) {
		if successors[p] == "" {
			successors[p] = d
		}
	}
	slices.Sort(owned)
	acts := make(map[string]rooms.LifecycleAction, len(owned))
	var adoptable []string
	for _, d := range owned {
		acts[d] = rooms.DecideLifecycle(bot, lasts[d], live[d], successors[d], lc.now(), s.cfg.Lifecycle.RepublishInterval)
		if acts[d] == rooms.ActKeep || acts[d] == rooms.ActRepublish {
			adoptable = append(adoptable, d)
		}
	}
	for _, d := range lc.adoptions(ctx, adoptable, lasts) {
		acts[d] = rooms.ActAdopted
	}
	for _, d := range owned {
		if ctx.Err() != nil {
			return nil
		}
		if act := acts[d]; act != rooms.ActKeep {
			lc.apply(ctx, d, act, successors[d])
		}
	}
	return nil
}

// Adoption look-ups per reconcile: at most adoptChecksPerTick rooms (the
// next ones in turn on the following tick), adoptLookups at a time, so a
// bot with many rooms, or slow relays, does not hold up the loop.
const (
	adoptChecksPerTick = 32
	adoptLookups       = 4
)

// adoptions returns the rooms among ds whose host published their own
// event for them, checking a bounded, rotating share of ds per call.
func (lc *lifecycle) adoptions(ctx context.Context, ds []string, lasts map[string]*nostr.Event) []string {
	if len(ds) == 0 {
		return nil
	}
	n := min(len(ds), adoptChecksPerTick)
	start := lc.adoptCursor % len(ds)
	lc.adoptCursor += n
	var (
		mu      sync.Mutex
		adopted []string
		wg      sync.WaitGroup
		slots   = make(chan struct{}, adoptLookups)
	)
	for i := range n {
		d := ds[(start+i)%len(ds)]
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			defer lc.svc.guard.catch("background")
			if lc.adoptedBy(ctx, lasts[d]) != nil {
				mu.Lock()
				adopted = append(adopted, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return adopted
}

// adoptedBy looks up, on the bot's and the room's relays, the event its
// host (the Host "p" tag of the bot's event) published for the same d
// (issue 12, adoption): the host's coordinate when there is one, signed by
// the host, readable, not expired and within the size bound; else nil.
// It runs without the room's lock; apply re-reads the bot's event under it.
func (lc *lifecycle) adoptedBy(ctx context.Context, last *nostr.Event) *nostrx.Coordinate {
	s := lc.svc
	if last == nil || last.PubKey != s.PublicKey() {
		return nil
	}
	spec, err := nostrx.SpecFromEvent(last)
	if err != nil || spec.Host == "" || spec.Host == s.PublicKey() || spec.AdoptedBy != nil || spec.Status == nostrx.StatusClosed {
		return nil
	}
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: spec.Host, D: spec.D}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.Nostr.LookupTimeout)
	defer cancel()
	relays := append(slices.Clone(s.cfg.Nostr.Relays), spec.Relays...)
	ev, err := s.outbox.Latest(lctx, c, relays)
	if err != nil || ev == nil || ev.PubKey != c.Author || ev.Tags.GetD() != c.D ||
		nostrx.RoomEventBytes(ev) > nostrx.MaxRoomEventBytes || nostrx.Expired(ev, lc.now()) {
		return nil
	}
	return &c
}

// checkRoom looks at one room now (a webhook named it).
func (lc *lifecycle) checkRoom(ctx context.Context, d string) {
	outcome := "ok"
	if err := lc.checkRoomOnce(ctx, d); err != nil {
		if ctx.Err() != nil {
			return
		}
		outcome = "error"
		lc.svc.log.Warn("lifecycle: room check failed; next reconcile retries", "room", d, "err", err)
	}
	lc.m.Checks.WithLabelValues("webhook", outcome).Inc()
}

func (lc *lifecycle) checkRoomOnce(ctx context.Context, d string) error {
	s := lc.svc
	dctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	defer cancel()
	last, err := s.store.LastEvent(dctx, d)
	if err != nil {
		return err
	}
	if !rooms.OwnOpenRoom(s.PublicKey(), last) {
		return nil // not one of the bot's open rooms: the common case
	}
	if err := s.store.AddOwned(dctx, d); err != nil {
		return err
	}
	room, err := lc.lk.Find(dctx, d)
	if err != nil {
		return err
	}
	successor, err := s.store.Replacement(dctx, nostrx.Coordinate{Kind: nostrx.KindRoom, Author: s.PublicKey(), D: d})
	if err != nil {
		return err
	}
	if act := rooms.DecideLifecycle(s.PublicKey(), last, room, successor, lc.now(), s.cfg.Lifecycle.RepublishInterval); act != rooms.ActKeep {
		lc.apply(ctx, d, act, successor)
	}
	return nil
}

// apply carries out act for room d under the room's lock, after reading
// again what it was decided on: another replica or a restart may have
// changed the room in the meantime.
func (lc *lifecycle) apply(ctx context.Context, d string, act rooms.LifecycleAction, successor string) {
	s := lc.svc
	if act == rooms.ActCloseGone && lc.occupied != nil && lc.occupied(d) {
		s.log.Debug("lifecycle: room gone from LiveKit while people are present; left to auto-heal", "room", d)
		return
	}
	if act == rooms.ActForget {
		if err := s.store.RemoveOwned(ctx, d); err != nil {
			s.log.Warn("lifecycle: cannot unindex room", "room", d, "err", err)
		}
		return
	}
	budget := s.cfg.Limits.DependencyTimeout
	lctx, cancel := context.WithTimeout(ctx, budget)
	unlock, err := s.store.Lock(lctx, d, 3*budget+2*publishTimeout)
	cancel()
	if err != nil {
		s.log.Debug("lifecycle: room busy; next reconcile retries", "room", d, "err", err)
		return
	}
	defer unlock()

	wctx, cancel := context.WithTimeout(ctx, 2*budget+publishTimeout)
	defer cancel()
	last, err := s.store.LastEvent(wctx, d)
	if err != nil {
		s.log.Warn("lifecycle: cannot read the room's last event", "room", d, "err", err)
		return
	}
	if act == rooms.ActAdopted {
		lc.adopt(wctx, d, last)
		return
	}
	var room *rooms.LiveRoom
	if act == rooms.ActCloseGone || act == rooms.ActRepublish {
		if room, err = lc.lk.Find(wctx, d); err != nil {
			s.log.Warn("lifecycle: LiveKit did not answer; next reconcile retries", "room", d, "err", err)
			return
		}
	} else {
		room = &rooms.LiveRoom{Name: d} // the successor decides, not LiveKit
	}
	if again := rooms.DecideLifecycle(s.PublicKey(), last, room, successor, lc.now(), s.cfg.Lifecycle.RepublishInterval); again != act {
		if again == rooms.ActForget {
			_ = s.store.RemoveOwned(wctx, d)
		}
		return // changed under us (recreated, republished, closed): the next pass decides again
	}

	spec, err := nostrx.SpecFromEvent(last)
	if err != nil {
		s.log.Error("lifecycle: unreadable saved event; forgetting the room", "room", d, "err", err)
		_ = s.store.RemoveOwned(wctx, d)
		return
	}
	switch act {
	case rooms.ActCloseGone:
		spec.Status = nostrx.StatusClosed
	case rooms.ActCloseReplaced:
		spec.Status = nostrx.StatusClosed
		spec.Successor = &nostrx.Coordinate{Kind: nostrx.KindRoom, Author: s.PublicKey(), D: successor}
	}
	ev, err := lc.publishRoom(wctx, spec, last)
	if err != nil {
		s.log.Warn("lifecycle: room event not published; next reconcile retries", "room", d, "action", act.String(), "err", err)
		return
	}
	lc.m.Lifecycle.WithLabelValues(act.String()).Inc()
	s.metrics.Published.WithLabelValues(strconv.Itoa(nostrx.KindRoom)).Inc()
	attrs := []any{"room", d, "action", act.String(), "id", ev.ID, "created_at", int64(ev.CreatedAt)}
	if room != nil && act == rooms.ActRepublish {
		attrs = append(attrs, "participants", room.Participants)
	}
	if spec.Successor != nil {
		attrs = append(attrs, "successor", successor)
	}
	s.log.Info("room event updated", attrs...)
	if spec.Status == nostrx.StatusClosed {
		if err := s.store.RemoveOwned(wctx, d); err != nil {
			s.log.Warn("lifecycle: cannot unindex room", "room", d, "err", err)
		}
	}
}

// publishRoom publishes the next version of the bot's event for spec.D
// through rooms.RoomPublisher (the engine's publisher: created_at strictly
// above last's, the bot's and the room's relays) and saves it as the last
// one.
func (lc *lifecycle) publishRoom(ctx context.Context, spec nostrx.RoomSpec, last *nostr.Event) (*nostr.Event, error) {
	s := lc.svc
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	ev, err := rooms.RoomPublisher{Signer: s.signer, Events: s.outbox, Relays: s.cfg.Nostr.Relays}.Publish(pctx, spec, last, lc.now())
	cancel()
	if err != nil {
		return nil, err
	}
	if err := s.store.SaveEvent(ctx, ev); err != nil {
		// Published but not saved: the next version still goes above it
		// once a second has passed, because its created_at is at least now.
		s.log.Warn("lifecycle: room event published but not saved", "room", spec.D, "id", ev.ID, "err", err)
	}
	return ev, nil
}

// adopt publishes the bot's event for d once more, closed and pointing at
// its host's own event, and stops looking after it: from now on the host's
// event is the room's (rooms.Engine answers with its address). The caller
// holds the room's lock; last is the bot's event as read under it.
func (lc *lifecycle) adopt(ctx context.Context, d string, last *nostr.Event) {
	s := lc.svc
	if !rooms.OwnOpenRoom(s.PublicKey(), last) {
		_ = s.store.RemoveOwned(ctx, d)
		return // closed or no longer the bot's since the decision
	}
	spec, err := nostrx.SpecFromEvent(last)
	if err != nil || spec.AdoptedBy != nil {
		return
	}
	host := &nostrx.Coordinate{Kind: nostrx.KindRoom, Author: spec.Host, D: d}
	spec.Status, spec.AdoptedBy = nostrx.StatusClosed, host
	ev, err := lc.publishRoom(ctx, spec, last)
	if err != nil {
		s.log.Warn("lifecycle: adoption not published; next reconcile retries", "room", d, "err", err)
		return
	}
	lc.m.Lifecycle.WithLabelValues(rooms.ActAdopted.String()).Inc()
	s.metrics.Published.WithLabelValues(strconv.Itoa(nostrx.KindRoom)).Inc()
	s.log.Info("room event updated", "room", d, "action", rooms.ActAdopted.String(), "id", ev.ID, "adopted_by", nostrx.Npub(spec.Host))
	if err := s.store.RemoveOwned(ctx, d); err != nil {
		s.log.Warn("lifecycle: cannot unindex room", "room", d, "err", err)
	}
}
