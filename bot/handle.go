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
		s.deliver(ctx, ev.ID, stored, s.responseRelays(ev, j.via, nil, refusalOnly(stored)))
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
	delivered := s.deliver(ctx, ev.ID, &resp, s.responseRelays(ev, j.via, ans.relays, isRefusal(ans.payload)))

	action := req.Action
	if action != nostrx.ActionRestart && action != nostrx.ActionStatus {
		action = "other"
	}
	if ans.outcome == "ok" {
		s.known.Add(ev.PubKey) // authorized once: verified first from now on
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
