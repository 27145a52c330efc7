package bot

import (
	"container/heap"
	"container/list"
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// How the service stays correct under overload:
//
//   - Every verified request goes to one of two bounded queues. The priority
//     queue takes requests whose signer is known to be a host or admin (of
//     any room) or whose room's record says so; the normal queue takes the
//     rest. Workers take from the priority queue first, and a few workers
//     take only from it, so a backlog of junk never stands between a host
//     and an answer.
//   - A request is dropped only when it would be refused anyway: when the
//     normal queue is full, or the request came from a relay that sends
//     more than the bot can verify (its buffers overflowed in the last
//     overflowMemory), a verified request that the record (or the
//     operator's lists, or its own malformation) already refuses is shed
//     without an answer and counted in nestbot_refusals_shed_total. A
//     request that may be authorized waits for room in a queue instead; the
//     wait pushes back on the relay it came from, not on the others.
//   - Signature checks of unknown signers share verifySlots (half the
//     cores, at least one) across relays; known hosts and admins skip it.
//   - Every cache is bounded: seen ids (limits.seen_cache), known hosts
//     (knownPubkeys), NIP-44 keys (the signer's), verify buffers per relay,
//     deferred claims (limits.queue).

// knownPubkeys bounds the set of pubkeys seen as host or admin.
const knownPubkeys = 10_000

// knownSet is a bounded LRU of pubkeys that a Redis record names host or
// admin, or that a record authorized: the priority lane. Room events feed
// it nothing: anyone can publish one naming any number of keys Admin, and
// a lane strangers can join is no lane (issue 9, item 5).
type knownSet struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[string]*list.Element
}

func newKnownSet(max int) *knownSet {
	return &knownSet{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

// Has reports whether pk is known; it does not refresh the entry, so that
// lookups by a flood cannot keep entries alive.
func (k *knownSet) Has(pk string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.items[pk]
	return ok
}

func (k *knownSet) Add(pks ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, pk := range pks {
		if len(pk) != 64 {
			continue
		}
		if el, ok := k.items[pk]; ok {
			k.order.MoveToFront(el)
			continue
		}
		k.items[pk] = k.order.PushFront(pk)
		for k.order.Len() > k.max {
			old := k.order.Back()
			k.order.Remove(old)
			delete(k.items, old.Value.(string))
		}
	}
}

func (k *knownSet) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.order.Len()
}

// addRecord notes the host and admins of a record. A record the bot
// recreated from a room event (IsRecreated) copied its admins from that
// event, which anyone may have published: only its host, the requester
// whose recreation wrote it, is noted; its admins join once the record
// authorizes a request of theirs (judge).
func (k *knownSet) addRecord(rec *rooms.Record) {
	k.Add(rec.Host)
	if !rec.IsRecreated {
		k.Add(rec.Admins...)
	}
}

// observedState is the engine's Redis state, noting the hosts and admins of
// every record it reads.
type observedState struct {
	rooms.State
	known *knownSet
}

func (o observedState) Record(ctx context.Context, id string) (*rooms.Record, error) {
	rec, err := o.State.Record(ctx, id)
	if rec != nil {
		o.known.addRecord(rec)
	}
	return rec, err
}

// overload holds the overload series and counters for the periodic report.
type overload struct {
	shed     prometheus.Counter
	shedN    atomic.Int64
	deferred prometheus.GaugeFunc
}

func newOverload(reg *prometheus.Registry, deferred func() float64) *overload {
	o := &overload{
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nestbot_refusals_shed_total",
			Help: "Verified requests dropped without an answer under overload because they would have been refused.",
		}),
		deferred: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nestbot_deferred_requests",
			Help: "Requests waiting to be claimed again: Redis was unreachable, or another instance holds the claim.",
		}, deferred),
	}
	reg.MustRegister(o.shed, o.deferred)
	return o
}

// verdict is a cheap prediction of a request's authorization.
type verdict int

const (
	verdictUnknown    verdict = iota // only the full work can tell
	verdictAuthorized                // a record names the signer host or admin
	verdictRefused                   // the answer would be a refusal
)

// preauthTimeout bounds the Redis look-ups of a prediction, which run in a
// relay's verifier goroutine.
const preauthTimeout = 250 * time.Millisecond

// preauth predicts, from the request and the room's record alone, whether
// the request would be authorized. It follows the bot's own replacement of
// a recreated room like the engine does. Redis errors give verdictUnknown.
func (s *Service) preauth(ctx context.Context, ev *nostr.Event) verdict {
	req, err := nostrx.ParseRequest(ev)
	if err != nil {
		return verdictRefused
	}
	if err := s.listed(req.Requester); err != nil {
		return verdictRefused
	}
	ctx, cancel := context.WithTimeout(ctx, preauthTimeout)
	defer cancel()
	if newID, err := s.store.Replacement(ctx, req.Room); err != nil {
		return verdictUnknown
	} else if newID != "" {
		rec, err := s.store.Record(ctx, newID)
		if err != nil {
			return verdictUnknown
		}
		if rec != nil {
			return s.judge(rec, req.Requester)
		}
	}
	rec, err := s.store.Record(ctx, req.Room.D)
	if err != nil || rec == nil {
		return verdictUnknown // a gone room: its author or its event's admins may recreate it
	}
	return s.judge(rec, req.Requester)
}

func (s *Service) judge(rec *rooms.Record, requester string) verdict {
	s.known.addRecord(rec)
	if _, err := rooms.AuthorizeByRecord(rec, requester); err != nil {
		return verdictRefused
	}
	s.known.Add(requester) // a record authorized it
	return verdictAuthorized
}

// noteAuthorized puts the requester of an answered request in the known
// lane when a record (not a room event) authorizes it.
func (s *Service) noteAuthorized(ctx context.Context, ev *nostr.Event) {
	if s.known.Has(ev.PubKey) {
		return
	}
	s.preauth(ctx, ev)
}

// dispatch hands a verified request to the workers; see the comment at the
// top of this file. It blocks only for a request that may be authorized.
func (s *Service) dispatch(ctx context.Context, j job) {
	if s.known.Has(j.ev.PubKey) {
		s.enqueue(ctx, s.priority, j)
		return
	}
	flooded := s.relayOverflowing(j.via)
	if len(s.queue) == 0 && !flooded {
		s.enqueue(ctx, s.queue, j)
		return
	}
	switch s.preauth(ctx, j.ev) {
	case verdictAuthorized:
		s.enqueue(ctx, s.priority, j)
	case verdictRefused:
		if !flooded {
			select {
			case s.queue <- j:
				return
			default:
			}
		}
		s.overload.shed.Inc()
		s.overload.shedN.Add(1)
		s.log.Debug("refusal shed under overload", "id", j.ev.ID, "relay", j.via)
	default:
		s.enqueue(ctx, s.queue, j)
	}
}

// relayOverflowing reports whether the relay url sends more than the bot
// can verify: refusals that came through it are not answered meanwhile.
func (s *Service) relayOverflowing(url string) bool {
	now := time.Now()
	for _, l := range s.listeners {
		if l.url == url {
			return l.overflowing(now)
		}
	}
	return false
}

// verifyEvent checks id and signature; an unknown signer's event waits for
// one of verifySlots.
func (s *Service) verifyEvent(ctx context.Context, ev *nostr.Event, known bool) error {
	if !known {
		select {
		case s.verifySlots <- struct{}{}:
			defer func() { <-s.verifySlots }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nostrx.Verify(ev)
}

func (s *Service) enqueue(ctx context.Context, q chan job, j job) {
	select {
	case q <- j:
	case <-ctx.Done():
	}
}

// reservedWorkers is how many workers serve only the priority queue.
func (s *Service) reservedWorkers() int {
	if s.cfg.Limits.Workers < 2 {
		return 0
	}
	return max(1, s.cfg.Limits.Workers/8)
}

// next is a worker's next job: the priority queue first. A reserved worker
// takes only priority jobs. It reports false once the queues it serves are
// closed and empty.
func (s *Service) next(reserved bool) (job, bool) {
	prio, normal := s.priority, s.queue
	if reserved {
		normal = nil
	}
	for {
		if prio != nil {
			select {
			case j, ok := <-prio:
				if ok {
					return j, true
				}
				prio = nil
				continue
			default:
			}
		}
		if prio == nil && normal == nil {
			return job{}, false
		}
		select {
		case j, ok := <-prio:
			if !ok {
				prio = nil
				continue
			}
			return j, true
		case j, ok := <-normal:
			if !ok {
				normal = nil
				continue
			}
			return j, true
		}
	}
}

// listed applies the operator's allow and deny lists.
func (s *Service) listed(pubkey string) error {
	allowed, denied := s.lists()
	if denied[pubkey] || (len(allowed) > 0 && !allowed[pubkey]) {
		return nostrx.Refuse(nostrx.CodeUnauthorized, "this bot does not serve your pubkey")
	}
	return nil
}

func (s *Service) lists() (allowed, denied map[string]bool) {
	s.listsOnce.Do(func() {
		s.allowed, s.denied = map[string]bool{}, map[string]bool{}
		for _, pk := range s.cfg.Nostr.AllowedPubkeys {
			s.allowed[pk] = true
		}
		for _, pk := range s.cfg.Nostr.DeniedPubkeys {
			s.denied[pk] = true
		}
	})
	return s.allowed, s.denied
}

// --- deferred claims ---------------------------------------------------

// deferredQueue holds verified requests that could not be claimed yet:
// Redis did not answer, or another instance holds the claim and may die.
// It is bounded; a request that does not fit is forgotten, so that its
// next sighting (resubscription, another replica) processes it.
type deferredQueue struct {
	mu    sync.Mutex
	max   int
	items deferredHeap
}

type deferredJob struct {
	j   job
	due time.Time
}

type deferredHeap []deferredJob

func (h deferredHeap) Len() int           { return len(h) }
func (h deferredHeap) Less(i, k int) bool { return h[i].due.Before(h[k].due) }
func (h deferredHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *deferredHeap) Push(x any)        { *h = append(*h, x.(deferredJob)) }
func (h *deferredHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newDeferredQueue(max int) *deferredQueue { return &deferredQueue{max: max} }

func (d *deferredQueue) add(j job, due time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.items) >= d.max {
		return false
	}
	heap.Push(&d.items, deferredJob{j: j, due: due})
	return true
}

func (d *deferredQueue) due(now time.Time) []job {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []job
	for len(d.items) > 0 && !d.items[0].due.After(now) {
		out = append(out, heap.Pop(&d.items).(deferredJob).j)
	}
	return out
}

func (d *deferredQueue) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items)
}

// claimRetry defers a request whose claim failed because Redis did not
// answer. It is retried with backoff while it is younger than
// max_request_age: it cannot be answered unclaimed without risking a
// second answer from another replica.
func (s *Service) claimRetry(j job, err error) {
	wait := min(250*time.Millisecond<<min(j.attempt, 5), 5*time.Second)
	j.attempt++
	if time.Now().Add(wait).After(s.staleAt(j)) {
		s.metrics.dropped.WithLabelValues("claim_failed").Inc()
		s.forgetJob(j)
		s.log.Warn("request dropped: could not be claimed before it went stale", "id", j.id(), "err", err)
		return
	}
	s.metrics.retries.WithLabelValues("claim").Inc()
	if j.attempt == 1 {
		s.log.Warn("claim failed; will retry", "id", j.id(), "err", err)
	}
	if !s.deferred.add(j, time.Now().Add(wait)) {
		s.metrics.dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// watchClaim defers a request claimed by another live instance, to look
// again after that instance's heartbeat would have expired had it died:
// then the claim is taken over and the work finished. Watching stops when
// the claim is answered, or after the owner's lease.
func (s *Service) watchClaim(j job) {
	now := time.Now()
	if !j.watching {
		j.watching = true
		j.watchUntil = now.Add(s.claims.lease + heartbeatTTL)
	}
	if now.After(j.watchUntil) {
		return
	}
	wait := heartbeatTTL/2 + rand.N(heartbeatTTL/4)
	if !s.deferred.add(j, now.Add(wait)) {
		s.metrics.dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// overloadReportEvery is how often an overloaded service logs a summary.
const overloadReportEvery = 5 * time.Second

// runDeferred puts deferred requests back on the queues when they are due,
// and logs a summary of shed and dropped events while overloaded. It runs
// until ctx ends.
func (s *Service) runDeferred(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	lastReport := time.Now()
	var lastShed int64
	lastOverflow := make([]int64, len(s.listeners))
	report := func() {
		if shed := s.overload.shedN.Load(); shed != lastShed {
			s.log.Warn("overloaded: refusals shed", "refusals_shed", shed-lastShed,
				"queue", len(s.queue), "priority_queue", len(s.priority))
			lastShed = shed
		}
		for i, l := range s.listeners {
			if n := l.overflow.Load(); n != lastOverflow[i] {
				s.log.Warn("overloaded: relay sends faster than it can be verified", "relay", l.url,
					"unverified_dropped", n-lastOverflow[i], "backlog", len(l.normal)+len(l.prio))
				lastOverflow[i] = n
			}
		}
	}
	defer report()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, j := range s.deferred.due(now) {
				q := s.queue
				if s.known.Has(j.requester()) {
					q = s.priority
				}
				s.enqueue(ctx, q, j)
			}
			if now.Sub(lastReport) >= overloadReportEvery {
				lastReport = now
				report()
			}
		}
	}
}

// registerKnown exposes the size of the known lane: it grows only with
// records and the requests they authorized, never with what strangers
// publish.
func registerKnown(reg prometheus.Registerer, k *knownSet) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nestbot_known_pubkeys",
		Help: "Pubkeys in the priority lane: hosts and admins named by Redis records, and requesters a record authorized.",
	}, func() float64 { return float64(k.Len()) }))
}
