package bot

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// answer is one request's outcome on its way to becoming a response.
type answer struct {
	payload nostrx.Payload
	room    nostrx.Coordinate // the live room, or the requested one
	relays  []string          // where to publish, beyond the bot's relays
	outcome string            // "ok" or an error code, for logs and metrics
	err     error             // the internal error behind an INTERNAL or UNAVAILABLE answer
	// resume: the restart failed after a public change (rooms.ErrIncomplete)
	// and must be finished, not answered; see resumeLater.
	resume bool
}

// handle processes one verified request: claim, parse, admit, work, answer.
func (s *Service) handle(ctx context.Context, j job) {
	ev := j.ev
	stored, ours := s.claim(ctx, j)
	if stored != nil {
		s.deliver(ctx, ev.ID, stored, s.responseRelays(ev, j.via, nil, refusalOnly(stored)))
	}
	if !ours {
		return
	}

	req, perr := nostrx.ParseRequest(ev)
	ans := s.work(ctx, req, perr)
	if ans.resume {
		s.resumeLater(j, ans.err)
		return
	}
	resp, err := nostrx.BuildResponse(s.signer, nostrx.ResponseSpec{
		Kind: s.cfg.Nostr.ResponseKind, Requester: ev.PubKey, RequestID: ev.ID, Room: ans.room,
		CreatedAt: nostr.Now(), TTL: s.cfg.Nostr.ResponseTTL,
	}, ans.payload)
	if err != nil {
		s.log.Error("build response", "id", ev.ID, "err", err)
		return
	}
	if err := s.storeAnswer(ctx, j, &resp); err != nil {
		s.log.Warn("store response", "id", ev.ID, "err", err)
	}
	delivered := s.deliver(ctx, ev.ID, &resp, s.responseRelays(ev, j.via, ans.relays, isRefusal(ans.payload)))

	action := req.Action
	if action != nostrx.ActionRestart && action != nostrx.ActionStatus {
		action = "other"
	}
	if ans.outcome == "ok" {
		s.noteAuthorized(ctx, ev) // authorized by a record: verified first from now on
	}
	s.metrics.requests.WithLabelValues(action, ans.outcome).Inc()
	s.metrics.latency.WithLabelValues(action).Observe(time.Since(j.received).Seconds())
	attrs := []any{
		"id", ev.ID, "requester", nostrx.Npub(ev.PubKey), "room", req.Room.D, "action", req.Action,
		"outcome", ans.outcome, "delivered", delivered, "duration_ms", float64(time.Since(j.received).Microseconds()) / 1000,
	}
	if ans.room.D != req.Room.D {
		attrs = append(attrs, "live_room", ans.room.D)
	}
	if ans.err != nil {
		attrs = append(attrs, "err", ans.err.Error())
	}
	s.log.Info("request", attrs...)
}

// claim takes a job's claim for this instance, with the same rules for
// 4312 requests and direct messages. ours is true when the work is this
// instance's to do; stored is an answer given before but maybe not
// delivered, to deliver again. Otherwise the job is done elsewhere, or was
// deferred here: retried while Redis does not answer, watched while another
// live instance holds it (and taken over if that instance dies).
func (s *Service) claim(ctx context.Context, j job) (stored *nostr.Event, ours bool) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	acquire := s.claims.acquire
	if j.watching {
		acquire = s.claims.takeOver
	}
	state, stored, err := acquire(cctx, j.id())
	cancel()
	if err != nil {
		s.claimRetry(j, err)
		return nil, false
	}
	switch state {
	case claimBusy:
		s.watchClaim(j)
	case claimDone, claimGone:
		s.metrics.dropped.WithLabelValues("claimed").Inc()
	case claimAnswered:
		return stored, false
	case claimAcquired:
		return nil, true
	}
	return nil, false
}

// work turns a parsed request into an answer. Every path returns exactly
// one answer; internal errors are logged, never shown.
func (s *Service) work(ctx context.Context, req nostrx.Request, perr error) answer {
	resultType := req.Action
	if resultType != nostrx.ActionStatus {
		resultType = nostrx.ActionRestart
	}
	fail := func(err error) answer {
		a := answer{payload: nostrx.ErrorPayload(resultType, err), room: req.Room, outcome: string(nostrx.CodeOf(err))}
		if code := nostrx.CodeOf(err); code == nostrx.CodeInternal || code == nostrx.CodeUnavailable {
			a.err = err
		}
		return a
	}
	if perr != nil {
		return fail(perr)
	}
	if err := s.admit(ctx, req); err != nil {
		return fail(err)
	}
	switch req.Action {
	case nostrx.ActionStatus:
		res, err := s.engine.Status(ctx, req)
		if err != nil {
			return fail(err)
		}
		p, err := nostrx.ResultPayload(nostrx.ActionStatus, res)
		if err != nil {
			return fail(err)
		}
		return answer{payload: p, room: req.Room, outcome: "ok"}
	default:
		res, err := s.engine.Restart(ctx, req)
		if errors.Is(err, rooms.ErrIncomplete) {
			return answer{resume: true, err: err, room: req.Room, outcome: "incomplete"}
		}
		if err != nil {
			return fail(err)
		}
		p, err := nostrx.ResultPayload(nostrx.ActionRestart, res.RestartResult)
		if err != nil {
			return fail(err)
		}
		if res.Event != nil {
			s.metrics.published.WithLabelValues(strconv.Itoa(nostrx.KindRoom)).Inc()
		}
		return answer{payload: p, room: res.Room, relays: res.Relays, outcome: "ok"}
	}
}

// storeAnswer stores a request's response in its claim before it is
// published, retrying while the request is younger than its max age: a
// response published but not stored would leave the claim in its working
// state, and the replica that takes it over after a failover would answer
// a second time. Only when Redis stays away that long is the response
// published unstored (an answer, at the risk of a second one).
func (s *Service) storeAnswer(ctx context.Context, j job, resp *nostr.Event) error {
	sctx, cancel := context.WithDeadline(ctx, s.staleAt(j))
	defer cancel()
	return retryRedis(sctx, func(ctx context.Context) error { return s.claims.answered(ctx, j.id(), resp) })
}

// resumeLater runs a restart that failed after a public change again, with
// backoff, while its request is younger than max_request_age. The claim
// stays this instance's (its heartbeat renews it), so no other replica
// starts it meanwhile; if this instance dies, the replica that takes the
// claim over finishes it. Either way the requester gets the result, never
// a failure for a room that was already changed.
func (s *Service) resumeLater(j job, err error) {
	wait := min(250*time.Millisecond<<min(j.attempt, 5), 5*time.Second)
	j.attempt++
	if time.Now().Add(wait).After(s.staleAt(j)) {
		s.metrics.dropped.WithLabelValues("incomplete").Inc()
		s.claims.release(context.Background(), j.id())
		s.forgetJob(j)
		s.log.Error("restart left incomplete: its request went stale before it could be finished", "id", j.id(), "err", err)
		return
	}
	s.metrics.retries.WithLabelValues("resume").Inc()
	s.log.Warn("restart incomplete after a public change; finishing it", "id", j.id(), "attempt", j.attempt, "err", err)
	if !s.deferred.add(j, time.Now().Add(wait)) {
		s.metrics.dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// admit applies the operator's allow and deny lists and the per-requester
// rate limit, before any room is looked at.
func (s *Service) admit(ctx context.Context, req nostrx.Request) error {
	if err := s.listed(req.Requester); err != nil {
		return err
	}
	ok, err := s.rateAllow(ctx, req.Requester)
	if err != nil {
		return errors.Join(nostrx.Refuse(nostrx.CodeUnavailable, "a backing service is unavailable; try again shortly"), err)
	}
	if !ok {
		return nostrx.Refuse(nostrx.CodeRateLimited, "at most %d requests per minute", s.cfg.Limits.RestartsPerMinute)
	}
	return nil
}

// rateAllow counts a request against its requester's one-minute window in
// Redis, so the limit holds across replicas; a Redis error is retried
// within dependency_timeout (a failover passes).
func (s *Service) rateAllow(ctx context.Context, pubkey string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	defer cancel()
	now := time.Now()
	var ok bool
	err := retryRedis(ctx, func(ctx context.Context) error {
		var err error
		ok, err = s.store.RateAllow(ctx, pubkey, now, s.cfg.Limits.RestartsPerMinute)
		return err
	})
	if err != nil {
		return false, err
	}
	return ok, nil
}

// responseRelays: the bot's relays, the relay the request came from, its
// hint, the live room's relays, and the requester's NIP-65 read relays
// (at once when known, else forwarded in the background: relaylists.go).
// A refusal (see isRefusal) goes only to the bot's relays, the one the
// request came from (one of them) and the requester's read relays: a
// stranger's hint never makes the bot write to a relay of their choosing
// without passing the checks.
func (s *Service) responseRelays(ev *nostr.Event, via string, roomRelays []string, refusal bool) []string {
	relays := slices.Clone(s.cfg.Nostr.Relays)
	relays = append(relays, via)
	if t := ev.Tags.Find("a"); !refusal && len(t) >= 3 && nostrx.ValidRelayURL(t[2]) {
		relays = append(relays, t[2])
	}
	if !refusal {
		relays = append(relays, roomRelays...)
	}
	relays = append(relays, s.requesterReadRelays(ev, relays)...)
	return dedupe(relays)
}

// isRefusal reports answers a stranger gets without passing the checks
// (BAD_REQUEST, UNAUTHORIZED, RATE_LIMITED).
func isRefusal(p nostrx.Payload) bool {
	if p.Error == nil {
		return false
	}
	switch p.Error.Code {
	case nostrx.CodeBadRequest, nostrx.CodeUnauthorized, nostrx.CodeRateLimited:
		return true
	}
	return false
}

// refusalOnly: a stored answer is sent again only where a refusal goes, so
// that a re-sighting never widens where it went. Its payload is encrypted
// to the requester, so the bot cannot tell without decrypting; the bot's
// own relays and the requester's read relays hold it in every case.
func refusalOnly(*nostr.Event) bool { return true }
