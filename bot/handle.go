package bot

import (
	"context"
	"errors"
	"fmt"
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
}

// handle processes one verified request: claim, parse, admit, work, answer.
func (s *Service) handle(ctx context.Context, j job) {
	ev := j.ev
	stored, ours := s.claim(ctx, j)
	if stored != nil {
		s.deliver(ctx, ev.ID, stored, s.responseRelays(ev, j.via, nil))
	}
	if !ours {
		return
	}

	req, perr := nostrx.ParseRequest(ev)
	ans := s.work(ctx, req, perr)
	resp, err := nostrx.BuildResponse(s.signer, nostrx.ResponseSpec{
		Kind: s.cfg.Nostr.ResponseKind, Requester: ev.PubKey, RequestID: ev.ID, Room: ans.room,
		CreatedAt: nostr.Now(), TTL: s.cfg.Nostr.ResponseTTL,
	}, ans.payload)
	if err != nil {
		s.log.Error("build response", "id", ev.ID, "err", err)
		return
	}
	if err := s.claims.answered(ctx, ev.ID, &resp); err != nil {
		s.log.Warn("store response", "id", ev.ID, "err", err)
	}
	delivered := s.deliver(ctx, ev.ID, &resp, s.responseRelays(ev, j.via, ans.relays))

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
// Redis, so the limit holds across replicas.
func (s *Service) rateAllow(ctx context.Context, pubkey string) (bool, error) {
	window := time.Now().Unix() / 60
	key := fmt.Sprintf("%srate:%s:%d", s.cfg.Redis.BotPrefix, pubkey, window)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
	defer cancel()
	rdb := s.store.Client()
	pipe := rdb.TxPipeline()
	n := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, 2*time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("rate limit: %w: %w", rooms.ErrUnavailable, err)
	}
	return n.Val() <= int64(s.cfg.Limits.RestartsPerMinute), nil
}

// responseRelays: the bot's relays, the relay the request came from, its
// hint, the live room's relays, and the requester's NIP-65 read relays
// (at once when known, else forwarded in the background: relaylists.go).
func (s *Service) responseRelays(ev *nostr.Event, via string, roomRelays []string) []string {
	relays := slices.Clone(s.cfg.Nostr.Relays)
	relays = append(relays, via)
	if t := ev.Tags.Find("a"); len(t) >= 3 && nostrx.ValidRelayURL(t[2]) {
		relays = append(relays, t[2])
	}
	relays = append(relays, roomRelays...)
	relays = append(relays, s.requesterReadRelays(ev, relays)...)
	return dedupe(relays)
}

// deliverBudget bounds how long a response keeps being retried when no
// relay accepts it; after that the stored response waits for the request
// to be seen again.
const deliverBudget = 2 * time.Minute

// deliver publishes a response until a relay accepts it, then marks the
// claim delivered. A response no relay accepts is retried, not dropped.
func (s *Service) deliver(ctx context.Context, id string, resp *nostr.Event, relays []string) bool {
	deadline := time.Now().Add(deliverBudget)
	wait := 250 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		err := s.outbox.Publish(pctx, resp, relays)
		cancel()
		if err == nil {
			s.metrics.published.WithLabelValues(strconv.Itoa(resp.Kind)).Inc()
			dctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.DependencyTimeout)
			err := s.claims.delivered(dctx, id)
			cancel()
			if err != nil {
				s.log.Warn("mark delivered", "id", id, "err", err)
			}
			return true
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			s.log.Warn("response not delivered; kept for the next sighting", "id", id, "err", err)
			s.seen.forget(id)
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}
