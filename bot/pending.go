package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/rooms"
)

// Pending answers: an answer (a 4313, or a DM reply) counts as delivered
// once one relay said OK to it. Until then it is kept in Redis, so that it
// is sent again across restarts and by any replica, without waiting to see
// the request again, for nostr.response_ttl; then it is given up with an
// ERROR line and nestbot_answers_given_up_total.
//
// The storage is rooms.RedisStore's (AddAnswer and the rest; keys in
// rooms/keys.go); pendingStore adapts it to this instance.
type pendingStore struct {
	store    *rooms.RedisStore
	instance string
}

const (
	// pendingLease is how long a dead instance's pending answer waits
	// before another replica takes it over.
	pendingLease = 30 * time.Second
	// pendingScan is how often the retrier looks for pending answers that
	// no instance is sending.
	pendingScan = 2 * time.Second
	// pendingBatch bounds the ids the retrier reads per scan.
	pendingBatch = 200
	// maxPendingSends bounds the answers one instance sends at once from
	// the retrier.
	maxPendingSends = 256
	// firstAnswerWait is how long a worker waits for a first OK before it
	// leaves the answer to its send loops and moves on.
	firstAnswerWait = 2 * publishTimeout
)

type pendingAnswer struct {
	id       string
	ev       *nostr.Event
	relays   []string
	deadline time.Time
	refused  map[string]bool
	// leased: this instance took the sending lease with the store
	// (addAnswered), so the sender need not take it again.
	leased bool
}

// add stores an answer as pending unless it already is, and returns the
// answer now pending (the one sent before, with its deadline and refusals,
// when there was one), read in the same round trip.
func (p *pendingStore) add(ctx context.Context, a *pendingAnswer) (*pendingAnswer, error) {
	evb, err := json.Marshal(a.ev)
	if err != nil {
		return nil, err
	}
	stored, err := p.store.AddAnswer(ctx, rooms.PendingAnswer{ID: a.id, Event: string(evb), Relays: a.relays, Deadline: a.deadline})
	if err != nil {
		return nil, err
	}
	return fromStored(stored)
}

// addAnswered is add that also stores claim (the request's answered
// state, kept for claimTTL) and, when cl holds them, the restart's final
// writes, in the same transaction (rooms.CommitAnswered; cl nil or not
// pending: rooms.AddAnswered); evb is a.ev encoded, shared by both.
func (p *pendingStore) addAnswered(ctx context.Context, cl *rooms.CommitLater, a *pendingAnswer, evb []byte, claim string, claimTTL time.Duration) (*pendingAnswer, error) {
	stored, leased, err := p.store.CommitAnswered(ctx, cl, rooms.PendingAnswer{ID: a.id, Event: string(evb), Relays: a.relays, Deadline: a.deadline}, claim, claimTTL, p.instance, pendingLease)
	if err != nil {
		return nil, err
	}
	out, err := p.fromAdded(a, evb, stored)
	if err != nil {
		return nil, err
	}
	out.leased = leased
	return out, nil
}

// fromAdded is fromStored for the answer add returned, reusing a's event
// when it is the one stored.
func (p *pendingStore) fromAdded(a *pendingAnswer, evb []byte, stored *rooms.PendingAnswer) (*pendingAnswer, error) {
	if stored.Event == string(evb) {
		// Ours: no need to decode the event we have.
		out := &pendingAnswer{id: a.id, ev: a.ev, relays: stored.Relays, deadline: stored.Deadline, refused: map[string]bool{}}
		for url := range stored.Refused {
			out.refused[url] = true
		}
		return out, nil
	}
	return fromStored(stored)
}

// load reads a pending answer; nil when it is no longer pending.
func (p *pendingStore) load(ctx context.Context, id string) (*pendingAnswer, error) {
	stored, err := p.store.Answer(ctx, id)
	if err != nil || stored == nil {
		return nil, err
	}
	return fromStored(stored)
}

// fromStored turns the stored form of a pending answer into this
// instance's.
func fromStored(stored *rooms.PendingAnswer) (*pendingAnswer, error) {
	a := &pendingAnswer{id: stored.ID, relays: stored.Relays, deadline: stored.Deadline, refused: map[string]bool{}}
	if err := json.Unmarshal([]byte(stored.Event), &a.ev); err != nil {
		return nil, fmt.Errorf("pending answer %s unreadable: %w", stored.ID, err)
	}
	for url := range stored.Refused {
		a.refused[url] = true
	}
	return a, nil
}

// refuse notes a relay that refused the answer for good.
func (p *pendingStore) refuse(ctx context.Context, id, url string, class relay.Class) {
	_ = p.store.RefuseAnswer(ctx, id, url, string(class))
}

// remove drops a delivered or given-up answer.
func (p *pendingStore) remove(ctx context.Context, id string) error {
	return p.store.RemoveAnswer(ctx, id)
}

func (p *pendingStore) takeLease(ctx context.Context, id string) (bool, error) {
	return p.store.LeaseAnswer(ctx, id, p.instance, pendingLease)
}

func (p *pendingStore) dropLease(ctx context.Context, id string) {
	_ = p.store.ReleaseAnswer(ctx, id, p.instance)
}

// deliveries runs the sending of pending answers on this instance.
type deliveries struct {
	svc     *Service
	store   *pendingStore
	mu      sync.Mutex
	active  map[string]*delivery
	slots   chan struct{}
	pending atomic.Int64 // answers pending in Redis at the last scan
}

// delivery is one answer being sent by this instance.
type delivery struct {
	accepted chan struct{} // closed on the first OK
	finished chan struct{} // closed when every relay's loop ended
	once     sync.Once
	tail     context.CancelFunc // ends the loops still running
	// tailTimer ends them afterDelivery after the first OK; stopped when
	// every loop ended sooner, so that a delivered answer is not kept for
	// afterDelivery by its timer alone (about 5 MB at 300 answers/s).
	tailTimer *time.Timer
	// removed: accepted removed the answer and its lease from Redis.
	removed atomic.Bool
}

func newDeliveries(s *Service, store *pendingStore) *deliveries {
	d := &deliveries{svc: s, store: store, active: map[string]*delivery{}, slots: make(chan struct{}, maxPendingSends)}
	return d
}

// start sends a pending answer from this instance, if it can take the
// lease, and returns its delivery (nil: another instance sends it, or
// Redis did not answer). Relays in a.refused are skipped.
func (d *deliveries) start(ctx context.Context, a *pendingAnswer) *delivery {
	d.mu.Lock()
	if cur := d.active[a.id]; cur != nil {
		d.mu.Unlock()
		return cur
	}
	d.mu.Unlock()
	s := d.svc
	if !a.leased {
		lctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
		ok, err := d.store.takeLease(lctx, a.id)
		cancel()
		if err != nil || !ok {
			return nil
		}
	}
	relays := d.sendable(a)
	loops, tail := context.WithCancel(s.outbox.bg)
	dl := &delivery{accepted: make(chan struct{}), finished: make(chan struct{}), tail: tail}
	d.mu.Lock()
	if cur := d.active[a.id]; cur != nil {
		d.mu.Unlock()
		return cur
	}
	d.active[a.id] = dl
	d.mu.Unlock()
	bg := s.outbox.bg
	var left sync.WaitGroup
	left.Add(len(relays))
	stopRenew := make(chan struct{})
	go func() { // keep the lease while sending
		t := time.NewTicker(pendingLease / 3)
		defer t.Stop()
		for {
			select {
			case <-stopRenew:
				return
			case <-t.C:
				if dl.removed.Load() {
					return // delivered: the lease went with the answer
				}
				rctx, cancel := context.WithTimeout(bg, s.cfg.Limits.DependencyTimeout)
				_, _ = d.store.takeLease(rctx, a.id)
				cancel()
			}
		}
	}()
	s.outbox.broadcast(loops, loops, a.ev, relays, a.deadline, func(r relay.Result) {
		defer left.Done()
		if r.OK() {
			dl.once.Do(func() { d.accepted(a.id, dl) })
			return
		}
		if !r.Class.Retry() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(bg), s.cfg.Limits.DependencyTimeout)
			d.store.refuse(rctx, a.id, r.URL, r.Class)
			cancel()
		}
	})
	go func() {
		left.Wait()
		close(stopRenew)
		if !dl.removed.Load() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(bg), s.cfg.Limits.DependencyTimeout)
			d.store.dropLease(rctx, a.id)
			cancel()
		}
		tail()
		if dl.tailTimer != nil { // set by accepted, before its loop's left.Done
			dl.tailTimer.Stop()
		}
		d.mu.Lock()
		delete(d.active, a.id)
		d.mu.Unlock()
		close(dl.finished)
	}()
	return dl
}

// sendable are the relays an answer may still be sent to.
func (d *deliveries) sendable(a *pendingAnswer) []string {
	var relays []string
	for _, u := range d.svc.outbox.usable(a.relays) {
		if !a.refused[u] {
			relays = append(relays, u)
		}
	}
	return relays
}

// accepted marks an answer delivered: the claim is done and the answer
// leaves the pending set. Relays still being tried keep their own loops
// for afterDelivery at most (their deadline is the answer's).
func (d *deliveries) accepted(id string, dl *delivery) {
	s := d.svc
	close(dl.accepted)
	dl.tailTimer = time.AfterFunc(afterDelivery, dl.tail)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.outbox.bg), s.cfg.Limits.DependencyTimeout)
	defer cancel()
	// One round trip for both (issue 15); the lease went with the answer,
	// so it is neither renewed nor given back from now on.
	if err := s.claims.deliveredRemoved(ctx, id); err != nil {
		s.log.Warn("answer delivered but still marked pending", "id", id, "err", err)
		return
	}
	dl.removed.Store(true)
}

// scan is one pass of the retrier: it counts pending answers, gives up the
// expired, and starts sending those no live instance is sending.
func (d *deliveries) scan(ctx context.Context) {
	s := d.svc
	qctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	due, n, err := s.store.DueAnswers(qctx, pendingBatch)
	cancel()
	if err != nil {
		return
	}
	d.pending.Store(n)
	now := time.Now()
	for _, id := range due {
		d.mu.Lock()
		busy := d.active[id] != nil
		d.mu.Unlock()
		if busy || id == "" {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
		a, err := d.store.load(lctx, id)
		if err == nil && (a == nil || !now.Before(a.deadline) || len(d.sendable(a)) == 0) {
			if ok, lerr := d.store.takeLease(lctx, id); lerr == nil && ok {
				if a != nil {
					s.log.Error("answer given up: no relay accepted it", "id", id, "kind", a.ev.Kind,
						"relays", a.relays, "refused_for_good", len(a.refused), "deadline", a.deadline.UTC().Format(time.RFC3339))
					d.svc.metrics.GivenUp.Inc()
				}
				_ = d.store.remove(lctx, id)
			}
			cancel()
			continue
		}
		cancel()
		if err != nil {
			continue
		}
		select {
		case d.slots <- struct{}{}:
		default:
			return
		}
		if dl := d.start(ctx, a); dl == nil {
			<-d.slots
		} else {
			go func() {
				<-dl.finished
				<-d.slots
			}()
		}
	}
}

// run is the retrier: it scans every pendingScan until ctx ends.
func (d *deliveries) run(ctx context.Context) {
	t := time.NewTicker(pendingScan)
	defer t.Stop()
	for {
		d.scan(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deliver stores an answer as pending and starts sending it; it returns
// true once a relay accepted it within firstAnswerWait, false when it is
// still pending (sent on by this instance's loops, then by the retrier of
// any instance until nostr.response_ttl).
func (s *Service) deliver(ctx context.Context, id string, resp *nostr.Event, relays []string) bool {
	a := s.newPending(id, resp, relays)
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	stored, err := s.pending.store.add(sctx, a)
	cancel()
	if err != nil {
		// Without Redis the answer cannot outlive this process; send it
		// anyway and let the claim's stored copy cover a re-sighting.
		s.log.Warn("answer not stored as pending", "id", id, "err", err)
		pctx, cancel := context.WithTimeout(ctx, firstAnswerWait)
		defer cancel()
		if s.outbox.Publish(pctx, resp, relays) == nil {
			dctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
			_ = s.claims.delivered(dctx, id)
			cancel()
			return true
		}
		s.seen.forget(id)
		return false
	}
	return s.sendPending(ctx, stored)
}

// newPending is the pending form of resp, the answer to request id, to be
// sent to relays until nostr.response_ttl from now.
func (s *Service) newPending(id string, resp *nostr.Event, relays []string) *pendingAnswer {
	return &pendingAnswer{id: id, ev: resp, relays: dedupe(relays), deadline: time.Now().Add(s.cfg.Nostr.ResponseTTL), refused: map[string]bool{}}
}

// sendPending sends a, an answer stored as pending (the one sent before,
// with its deadline and refusals, when there was one), and waits for a
// first OK as deliver does.
func (s *Service) sendPending(ctx context.Context, a *pendingAnswer) bool {
	dl := s.pending.start(ctx, a)
	if dl == nil {
		return false // another instance is sending it
	}
	select {
	case <-dl.accepted:
		s.metrics.Published.WithLabelValues(strconv.Itoa(a.ev.Kind)).Inc()
		return true
	case <-time.After(firstAnswerWait):
	case <-ctx.Done():
	}
	s.log.Warn("answer not accepted by any relay yet; kept pending", "id", a.id, "until", a.deadline.UTC().Format(time.RFC3339))
	return false
}

// wait returns once every delivery of this instance has ended and given
// its lease back (after the outbox's context ended), so a restarted or
// other instance takes pending answers over at once.
func (d *deliveries) wait() {
	d.mu.Lock()
	var all []*delivery
	for _, dl := range d.active {
		all = append(all, dl)
	}
	d.mu.Unlock()
	for _, dl := range all {
		<-dl.finished
	}
}
