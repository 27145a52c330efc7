package bot

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"

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

// overload counts what was shed, for the periodic report (runDeferred);
// the series is ops.Metrics.Shed.
type overload struct {
	shedN atomic.Int64
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
// lane when a record (not a room event) authorizes it. rec is the record
// a restart left (Result.Record), judged without reading Redis again;
// nil (a status answer) reads it as preauth does.
func (s *Service) noteAuthorized(ctx context.Context, ev *nostr.Event, rec *rooms.Record) {
	if s.known.Has(ev.PubKey) {
		return
	}
	if rec != nil {
		s.judge(rec, ev.PubKey)
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
		s.metrics.Shed.Inc()
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

// --- deferred claims ---------------------------------------------------
