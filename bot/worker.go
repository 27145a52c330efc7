package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// A restart request's whole path, top to bottom. Each step is one call
// into the file or package that owns it:
//
//	listen.go  reader: s.screen (cheap checks, once), then a bounded buffer
//	intake     s.verifyEvent (id and signature)   → s.seen.Add (dedupe)
//	           → s.dispatch (lanes.go: known-host lane or shared queue)
//	runJob     a worker takes the job (lanes.go: next), panic guard
//	handle     nostrx.ParseRequest → s.claimLocking (claims.go →
//	           rooms/claims.go, with the requester's rate count, and a
//	           restart's room lock, in the same script on one server;
//	           deferred.go when Redis or another replica holds it)
//	           → s.workCounted: s.admitCounted (access.go allow/deny, the
//	             claim's count or s.rateAllow → rooms.RedisStore.RateAllow)
//	             → rooms.Engine.RestartRun (rooms.Run: CommitLater, Marks)
//	               or Status (rooms/engine.go)
//	             (s.finish instead for a restart resumed after a public
//	             change: not admitted again, deferred.go resumeLater)
//	           → nostrx.BuildResponse (the answer, NIP-44)
//	           → s.storeAndDeliver: the answer into its claim and the pending
//	             answers in one round trip (claims.go, pending.go), with the
//	             restart's own writes (commitLater), then sent (pending.go,
//	             relayio.go)
//
// Direct-message commands join at runJob (dm.go: intakeDM, handleDM) and
// take the same claim, work and delivery steps.

// screen is the reader's cheap check of a request (listen.go, accept),
// done once, before the event is buffered: structure, addressed to the bot,
// fresh, not already taken. It needs no key material, so a flood of junk
// costs no signature check and no buffer space. The error says why the
// event was dropped (metric reason: drop).
func (s *Service) screen(ev *nostr.Event) error {
	if err := nostrx.Screen(ev, s.cfg.Nostr.RequestKind, s.signer.PublicKey()); err != nil {
		return err
	}
	if err := nostrx.CheckFresh(ev, time.Now(), s.cfg.Nostr.MaxRequestAge); err != nil {
		return err
	}
	if s.seen.Contains(ev.ID) {
		return errDuplicate
	}
	return nil
}

// errDuplicate: the event's id is in the seen set.
var errDuplicate = errors.New("duplicate")

// intake runs in a relay's verifier goroutine on an event the reader has
// already screened (screen, seen): verification, then dedupe, then the
// hand-off to the workers (dispatch). received is when the event was read
// from the relay; known says the signer is a known host or admin, whose
// events skip the shared limit on verification (see verifySlots). It
// reports whether the event was a verified, new request.
//
// A panic is recovered here (see panics.go): the event is dropped, the
// verifier goes on. intakeDM has its own guard.
func (s *Service) intake(ctx context.Context, ev *nostr.Event, via string, received time.Time, known bool) (verified bool) {
	defer s.guard.catch("verifier", ev.ID)
	// Only a verified id enters the seen set, so a forged copy of a request
	// (bad signature, or an id that is not the hash of the content) can
	// never shadow the real one.
	if err := s.verifyEvent(ctx, ev, known); err != nil {
		s.drop(err)
		s.log.Debug("dropped unverifiable event", "relay", via, "id", ev.ID, "err", err)
		return false
	}
	if !s.seen.Add(ev.ID) {
		s.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return false
	}
	s.dispatch(ctx, job{ev: ev, via: via, received: received})
	return true
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

// runJob runs one job on a worker. A panic ends the job, not the worker,
// and settles the job's claim (see panics.go).
func (s *Service) runJob(ctx context.Context, j job) {
	ids := []string{j.id()}
	if j.dm != nil {
		ids = append(ids, j.dm.wrapID)
	}
	defer s.guard.catch("worker", ids...)
	if j.dm != nil {
		s.handleDM(ctx, j)
	} else {
		s.handle(ctx, j)
	}
}

// answer is one request's outcome on its way to becoming a response.
type answer struct {
	payload nostrx.Payload
	room    nostrx.Coordinate // the live room, or the requested one
	relays  []string          // where to publish, beyond the bot's relays
	record  *rooms.Record     // the restarted room's record (nil: a status answer or a refusal)
	outcome string            // "ok" or an error code, for logs and metrics
	err     error             // the internal error behind an INTERNAL or UNAVAILABLE answer
	// resume: the restart failed after a public change (rooms.ErrIncomplete)
	// and must be finished, not answered; see resumeLater.
	resume bool
}

// handle processes one verified request: claim, parse, admit, work, answer.
func (s *Service) handle(ctx context.Context, j job) {
	if j.marks == nil {
		j.marks = &rooms.Marks{}
	}
	later, endCommit := s.commitLater(ctx, j)
	defer endCommit()
	run := rooms.Run{Later: later, Marks: j.marks}
	ev := j.ev
	st := s.stages(j.received)
	st.done(stageQueue)
	// Parsed before the claim, so that a request admit would count against
	// its requester's rate is counted by the claim's own round trip.
	req, perr := nostrx.ParseRequest(ev)
	countFor := ""
	if perr == nil && !j.finishing && s.listed(req.Requester) == nil {
		countFor = req.Requester
	}
	var stored *nostr.Event
	ours, counted := true, countedBefore
	if !j.givenUp { // a given-up restart holds its claim: answered, not claimed again
		stored, ours, counted = s.claimLocking(ctx, j, countFor, req, perr, later)
	}
	st.done(stageClaim)
	if stored != nil {
		s.deliver(ctx, ev.ID, stored, s.responseRelays(ev, j.via, nil, refusalOnly(stored)))
	}
	if !ours {
		return
	}

	var ans answer
	switch {
	case j.givenUp && perr == nil:
		ans = failed(req, errGivenUp)
	case j.finishing && perr == nil:
		ans = s.finish(ctx, req, run)
	case counted == countedBefore && perr == nil && req.Action == nostrx.ActionRestart:
		// Taken over: its dead owner may have changed the room, and
		// nothing here tells, so it is finished as a resumed restart is.
		if err := s.listed(req.Requester); err != nil {
			ans = failed(req, err)
		} else {
			ans = s.finish(ctx, req, run)
		}
	default:
		ans = s.workCounted(ctx, req, perr, counted, run)
	}
	st.done(stageWork)
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
	relays := s.responseRelays(ev, j.via, ans.relays, isRefusal(ans.payload))
	st.done(stageBuild)
	sent := s.outbox.sends.watch(resp.ID)
	delivered, answered := s.storeAndDeliver(ctx, j, &resp, relays, later)
	if !answered {
		return // resumed (resumeLater): counted and logged when it is answered
	}
	st.storedAndSent(sent(), delivered)

	action := req.Action
	if action != nostrx.ActionRestart && action != nostrx.ActionStatus {
		action = "other"
	}
	if ans.outcome == "ok" {
		s.noteAuthorized(ctx, ev, ans.record) // authorized by a record: verified first from now on
	}
	s.metrics.Requests.WithLabelValues(action, ans.outcome).Inc()
	s.metrics.Latency.WithLabelValues(action).Observe(time.Since(j.received).Seconds())
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

// commitLater lets a restart's final writes wait for its answer, to go
// into Redis in one transaction with it (storeAndDeliver,
// rooms.CommitLater). end applies writes still waiting, alone, as the
// restart would have: the request ended without storeAndDeliver (an
// error after the restart's writes, a response that could not be built,
// a panic). Then, if Redis stays away for the budget, the room lock is
// released and the writes are lost, as after a failed commit.
func (s *Service) commitLater(ctx context.Context, j job) (*rooms.CommitLater, func()) {
	cl := &rooms.CommitLater{}
	return cl, func() {
		cl.ReleaseUnused()
		if !cl.Pending() {
			return
		}
		err := s.claims.retry(context.WithoutCancel(ctx), cl.Commit)
		if err != nil {
			cl.Abort()
			s.log.Warn("restart's writes not committed", "id", j.id(), "err", err)
		}
	}
}

// claimCounting takes a job's claim for this instance, with the same
// rules for 4312 requests and direct messages. ours is true when the work
// is this instance's to do; stored is an answer given before but maybe
// not delivered, to deliver again. Otherwise the job is done elsewhere, or
// was deferred here: retried while Redis does not answer, watched while
// another live instance holds it (and taken over if that instance dies).
// Given a requester's pubkey, it also counts the request in its rate
// window when it takes the claim, in the same round trip
// (claims.acquireCounted): counted is the window's count, 0 when not
// counted, countedBefore when the claim was taken over (or taken again)
// rather than new, whatever pubkey.
func (s *Service) claimCounting(ctx context.Context, j job, pubkey string) (stored *nostr.Event, ours bool, counted int64) {
	return s.claimLocking(ctx, j, pubkey, nostrx.Request{}, nil, nil)
}

// claimLocking is claimCounting that, for a restart request (req parsed
// without error, perr nil) counted for pubkey, also takes the room's lock
// and reads the room in the same round trip when the claim is ours and
// within the rate limit (claims.acquireLocked); the lock goes to the
// restart through later (see commitLater), which releases it if the
// restart never takes it.
func (s *Service) claimLocking(ctx context.Context, j job, pubkey string, req nostrx.Request, perr error, later *rooms.CommitLater) (stored *nostr.Event, ours bool, counted int64) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	var state claimOutcome
	var err error
	switch {
	case pubkey != "" && perr == nil && req.Action == nostrx.ActionRestart && later != nil:
		var pre *rooms.LockedView
		state, stored, counted, pre, err = s.claims.acquireLocked(cctx, j.id(), !j.watching, pubkey, time.Now(), s.cfg.Limits.RestartsPerMinute, req.Room, s.engine.LockTTL())
		later.Prefetched(pre)
	case pubkey != "":
		state, stored, counted, err = s.claims.acquireCounted(cctx, j.id(), !j.watching, pubkey, time.Now())
	case j.watching:
		state, stored, err = s.claims.takeOver(cctx, j.id())
	default:
		state, stored, err = s.claims.acquire(cctx, j.id())
	}
	cancel()
	if err != nil {
		s.claimRetry(j, err)
		return nil, false, 0
	}
	switch state {
	case claimBusy:
		s.watchClaim(j)
	case claimDone, claimGone:
		s.metrics.Dropped.WithLabelValues("claimed").Inc()
	case claimAnswered:
		return stored, false, 0
	case claimAcquired:
		return nil, true, counted
	case claimTaken:
		return nil, true, countedBefore
	}
	return nil, false, 0
}

// countedBefore is claimLocking's count for a request whose claim existed
// before it was ours (claimTaken: a take-over from a dead instance, or
// this instance's own claim again): it was counted against its
// requester's rate when it was first claimed, and admitCounted does not
// count it again. The first claimant may have died between the count and
// its answer, so whether it was within the limit is not known: it is
// admitted, at worst one request over the limit, rather than refused
// RATE_LIMITED about a room its first run may already have changed.
const countedBefore int64 = -1

// workCounted turns a parsed request into an answer. Every path returns
// exactly one answer; internal errors are logged, never shown. counted is
// the claim's count of the request in its requester's rate window (this
// request included; 0 when not counted yet; countedBefore), see
// admitCounted.
func (s *Service) workCounted(ctx context.Context, req nostrx.Request, perr error, counted int64, run rooms.Run) answer {
	if perr != nil {
		return failed(req, perr)
	}
	if err := s.admitCounted(ctx, req, counted); err != nil {
		return failed(req, err)
	}
	switch req.Action {
	case nostrx.ActionStatus:
		res, err := s.engine.Status(ctx, req)
		if err != nil {
			return failed(req, err)
		}
		p, err := nostrx.ResultPayload(nostrx.ActionStatus, res)
		if err != nil {
			return failed(req, err)
		}
		return answer{payload: p, room: req.Room, outcome: "ok"}
	default:
		return s.restart(ctx, req, run)
	}
}

// errGivenUp is the answer to a restart given up (job.givenUp).
var errGivenUp = nostrx.Refuse(nostrx.CodeUnavailable, "a backing service is unavailable; try again shortly")

// finish is work for a restart resumed after a public change
// (resumeLater, job.finishing), or taken over from a dead instance
// (countedBefore), which may have made one. It was admitted, and counted against its
// requester's rate, on its first run, so it is not admitted again: a host
// at the limit would be told RATE_LIMITED about a room already recreated.
// A failure that may pass (UNAVAILABLE, INTERNAL) resumes it again, as
// rooms.ErrIncomplete does, so that a room already changed is never
// answered with one.
func (s *Service) finish(ctx context.Context, req nostrx.Request, run rooms.Run) answer {
	ans := s.restart(ctx, req, run)
	if ans.outcome == string(nostrx.CodeUnavailable) || ans.outcome == string(nostrx.CodeInternal) {
		return answer{resume: true, err: fmt.Errorf("%w: %w", rooms.ErrIncomplete, ans.err), room: req.Room, outcome: "incomplete"}
	}
	return ans
}

// restart runs an admitted restart request on the engine.
func (s *Service) restart(ctx context.Context, req nostrx.Request, run rooms.Run) answer {
	res, err := s.engine.RestartRun(ctx, req, run)
	if errors.Is(err, rooms.ErrIncomplete) {
		return answer{resume: true, err: err, room: req.Room, outcome: "incomplete"}
	}
	if err != nil {
		return failed(req, err)
	}
	p, err := nostrx.ResultPayload(nostrx.ActionRestart, res.RestartResult)
	if err != nil {
		return failed(req, err)
	}
	if res.Event != nil {
		s.metrics.Published.WithLabelValues(strconv.Itoa(nostrx.KindRoom)).Inc()
	}
	return answer{payload: p, room: res.Room, relays: res.Relays, record: res.Record, outcome: "ok"}
}

// failed is the answer refusing req with err (a nostrx.Refusal's code, or
// INTERNAL); the error behind an INTERNAL or UNAVAILABLE answer is kept
// for the log, never shown.
func failed(req nostrx.Request, err error) answer {
	resultType := req.Action
	if resultType != nostrx.ActionStatus {
		resultType = nostrx.ActionRestart
	}
	a := answer{payload: nostrx.ErrorPayload(resultType, err), room: req.Room, outcome: string(nostrx.CodeOf(err))}
	if code := nostrx.CodeOf(err); code == nostrx.CodeInternal || code == nostrx.CodeUnavailable {
		a.err = err
	}
	return a
}

// admitCounted applies the operator's allow and deny lists and the
// per-requester rate limit, before any room is looked at. A request whose
// count the claim already took (counted > 0, see claimCounting) is not
// counted again; countedBefore: counted when first claimed, admitted; 0:
// counted here (rateAllow).
func (s *Service) admitCounted(ctx context.Context, req nostrx.Request, counted int64) error {
	if err := s.listed(req.Requester); err != nil {
		return err
	}
	ok := counted == countedBefore || (counted > 0 && counted <= int64(s.cfg.Limits.RestartsPerMinute))
	if counted == 0 {
		var err error
		ok, err = s.rateAllow(ctx, req.Requester)
		if err != nil {
			return errors.Join(nostrx.Refuse(nostrx.CodeUnavailable, "a backing service is unavailable; try again shortly"), err)
		}
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

// storeAndDeliver is storeAnswer then deliver with one Redis round trip
// for both (issue 15): the response goes into its claim and into the
// pending answers in one transaction (rooms.RedisStore.AddAnswered),
// retried as storeAnswer is, and is then sent as deliver sends it. When
// Redis stays away until the request is stale, it falls back to deliver
// alone (which publishes unstored when it cannot store), as storeAnswer's
// failure did. delivered is deliver's result.
//
// When the restart handed its final writes to later (see
// commitLater), they go into the same transaction, so a restart ends with
// one round trip, not two. If that fails for the whole budget, nothing
// is answered: the room lock is released and the restart resumed
// (resumeLater), exactly as when the restart's own commit fails, and
// answered is false: the request is neither answered nor to be counted
// yet.
func (s *Service) storeAndDeliver(ctx context.Context, j job, resp *nostr.Event, relays []string, later *rooms.CommitLater) (delivered, answered bool) {
	a := s.newPending(j.id(), resp, relays)
	if later.Pending() {
		stored, err := s.claims.answeredPending(ctx, s.pending.store, later, a)
		if err != nil {
			later.Abort()
			s.resumeLater(j, fmt.Errorf("%w: %w", rooms.ErrIncomplete, err))
			return false, false
		}
		return s.sendPending(ctx, stored), true
	}
	sctx, cancel := context.WithDeadline(ctx, s.staleAt(j))
	var stored *pendingAnswer
	err := retryRedis(sctx, func(ctx context.Context) error {
		var err error
		stored, err = s.claims.answeredPending(ctx, s.pending.store, nil, a)
		return err
	})
	cancel()
	if err != nil {
		s.log.Warn("store response", "id", j.id(), "err", err)
		return s.deliver(ctx, j.id(), resp, relays), true
	}
	return s.sendPending(ctx, stored), true
}

func (s *Service) drop(err error) {
	reason := "other"
	switch {
	case errors.Is(err, errDuplicate):
		reason = "duplicate"
	case errors.Is(err, nostrx.ErrWrongKind):
		reason = "wrong_kind"
	case errors.Is(err, nostrx.ErrNotAddressed):
		reason = "not_addressed"
	case errors.Is(err, nostrx.ErrMalformed):
		reason = "malformed"
	case errors.Is(err, nostrx.ErrStale), errors.Is(err, nostrx.ErrFuture):
		reason = "stale"
	case errors.Is(err, nostrx.ErrExpired):
		reason = "expired"
	case errors.Is(err, nostrx.ErrBadID):
		reason = "bad_id"
	case errors.Is(err, nostrx.ErrBadSignature):
		reason = "bad_signature"
	}
	s.metrics.Dropped.WithLabelValues(reason).Inc()
}
