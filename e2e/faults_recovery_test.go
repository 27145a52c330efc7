//go:build faults

// Crash consistency of the request path: claims taken over from a dead
// bot, restarts resumed after a public change, and the answer of each,
// for kind 4312 requests and for commands by direct message. Each test
// runs against the real stack (redis-server, livekit-server, the khatru
// relay) and `nestbot run` processes it kills; see docs/reliability.md.
package e2e

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/relaytest"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// killMidRecreate starts a bot process with LiveKit down, so that a
// recreation of a gone room waits inside LiveKit's retries after its new
// room ID was chosen, sends the request (through send), waits until the
// bot holds claim id inside the recreation, and kills it. It returns the
// new room ID the dead bot chose. LiveKit is started again.
func killMidRecreate(t *testing.T, w *world, host *user, oldID, claimID string, send func()) string {
	t.Helper()
	ctx := context.Background()
	w.lk.Stop()
	a := w.startBotProc(w.cfg, "bot-a")
	send()
	pendingKey := rooms.DefaultKeys.Pending(coord(host.pk, oldID))
	waitFor(t, "bot A inside the recreation (new ID chosen, claim held)", func() bool {
		return w.rdb.Exists(ctx, pendingKey).Val() == 1 && strings.HasPrefix(w.rdb.Get(ctx, rooms.DefaultKeys.Claim(claimID)).Val(), "w:")
	})
	pending := w.rdb.Get(ctx, pendingKey).Val()
	a.kill()
	w.lk.Start()
	return pending
}

// fillRateWindows marks pubkey's rate windows from now to two minutes on
// as holding one request each: the request under test, counted when bot A
// claimed it, whichever clock minute the take-over lands in (the limit is
// 1). A window that exists already (A's) is left as it is.
func fillRateWindows(t *testing.T, w *world, pubkey string) []string {
	t.Helper()
	var keys []string
	m := time.Now().Unix() / 60
	for i := range int64(3) {
		k := rooms.DefaultKeys.Rate(pubkey, m+i)
		if err := w.rdb.SetNX(context.Background(), k, 1, 4*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// checkCountedOnce: every window fillRateWindows set still counts one
// request: the take-over did not count the request again.
func checkCountedOnce(t *testing.T, w *world, keys []string) {
	t.Helper()
	for _, k := range keys {
		if v := w.rdb.Get(context.Background(), k).Val(); v != "1" {
			t.Errorf("rate window %s counts %q requests, want 1: the request was counted again", k, v)
		}
	}
}

// checkOneRecreation: one LiveKit room, one record and one replacement
// event, all under newID.
func checkOneRecreation(t *testing.T, w *world, newID string) {
	t.Helper()
	if rs := w.allLiveRooms(); len(rs) != 1 || rs[0].Name != newID {
		t.Errorf("LiveKit rooms %v, want only %s", rs, newID)
	}
	if keys := w.rdb.Keys(context.Background(), "nest:*").Val(); len(keys) != 1 || keys[0] != "nest:"+newID {
		t.Errorf("records %v, want only nest:%s", keys, newID)
	}
	evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}})
	if len(evs) != 1 || evs[0].Tags.GetD() != newID {
		t.Errorf("%d replacement events, want one for %s", len(evs), newID)
	}
}

// TestFaultTakeoverAtRateLimit: a bot is killed inside a recreation (new
// room ID chosen, LiveKit down) of a request that used its requester's
// whole rate (limit 1). The bot that takes the claim over finishes the
// same recreation and answers with it: the request was counted when it
// was first claimed, and a take-over is the same request, not a second
// one. Before, the take-over's claim script counted it again and the
// answer was RATE_LIMITED about a room already chosen and half made.
func TestFaultTakeoverAtRateLimit(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 60 * time.Second // bot A waits for LiveKit, never answers UNAVAILABLE
	w.cfg.Limits.RestartsPerMinute = 1
	t.Setenv("NESTBOT_LIMITS_RESTARTS_PER_MINUTE", "1") // for the bot processes (botEnv passes NESTBOT_*)
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil) // the record is gone; the host's event remains
	req := signRequest(t, w, host, coord(host.pk, oldID), "restart", "")
	var answer <-chan *bot.Exchange
	pending := killMidRecreate(t, w, host, oldID, req.ID, func() { answer = w.sendAsync(host, req, 120*time.Second) })
	killed := time.Now()
	windows := fillRateWindows(t, w, host.pk)
	svc := w.start() // bot B: sees the request again, takes the dead bot's claim over

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	took := time.Since(killed)
	res := restartResult(t, ex.Payload)
	if !res.IsNewRoom || res.RoomID != pending {
		t.Fatalf("want the recreation bot A started (room %s), got %+v", pending, res)
	}
	requestsDone(t, svc, 1)
	checkOneRecreation(t, w, pending)
	checkCountedOnce(t, w, windows)
	lost, dup := exactlyOnce(t, responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID}), []string{req.ID})
	w.waitClaimDone(req.ID)
	t.Logf("FIGURES takeover-at-limit: sent=1 answered=%d duplicated=%d result=recreated finished_after_kill_in=%s", 1-lost, dup, took.Round(time.Millisecond))
}

// TestFaultDMTakeoverAtRateLimit is TestFaultTakeoverAtRateLimit for a
// restart asked by NIP-17 direct message: the DM path claims the command
// (its rumor id) and counts it on its own, and its take-over was counted
// again too ("Slow down" about a room being recreated).
func TestFaultDMTakeoverAtRateLimit(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 60 * time.Second
	w.cfg.Limits.RestartsPerMinute = 1
	t.Setenv("NESTBOT_LIMITS_RESTARTS_PER_MINUTE", "1")
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil)
	wrap, rumorID := w.wrapDM(host, "restart nostr:"+coord(host.pk, oldID).Naddr(w.relays[0].URL))
	pending := killMidRecreate(t, w, host, oldID, rumorID, func() { w.publish(wrap) })
	windows := fillRateWindows(t, w, host.pk)
	svc := w.start()

	var replies map[string]nostr.Event
	waitFor(t, "the reply to the DM", func() bool {
		replies = repliesTo(t, w, w.relays[0].URL, host)
		return len(replies) > 0
	})
	w.waitClaimDone(rumorID)
	requestsDone(t, svc, 1)
	replies = repliesTo(t, w, w.relays[0].URL, host)
	if len(replies) != 1 {
		t.Fatalf("%d replies, want 1", len(replies))
	}
	for _, r := range replies {
		if !strings.Contains(r.Content, "recreated") || !strings.Contains(r.Content, "(d tag "+pending+")") {
			t.Fatalf("reply %q, want the recreation under %s", r.Content, pending)
		}
	}
	checkOneRecreation(t, w, pending)
	checkCountedOnce(t, w, windows)
}

// refuseWrites makes Redis refuse every write (maxmemory 1, noeviction),
// or take them again (on false).
func refuseWrites(t *testing.T, w *world, on bool) {
	t.Helper()
	ctx := context.Background()
	if err := w.rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	limit := "0"
	if on {
		limit = "1"
	}
	if err := w.rdb.ConfigSet(ctx, "maxmemory", limit).Err(); err != nil {
		t.Fatal(err)
	}
}

// failFinalCommit makes the restart of room id that send starts fail at
// its final transaction (rooms.CommitAnswered), after its public change:
// LiveKit is down while the restart takes the room's lock, Redis refuses
// writes once it holds it, and LiveKit comes back, so the room is
// recreated and the transaction holding the restart's writes and answer
// fails. It returns once the restart was resumed; writes are still
// refused (refuseWrites(t, w, false) lets them in again).
func failFinalCommit(t *testing.T, w *world, svc *bot.Service, id string, send func()) {
	t.Helper()
	w.lk.Stop()
	send()
	waitFor(t, "the restart inside its room lock", func() bool {
		return w.rdb.Exists(context.Background(), rooms.DefaultKeys.Lock(id)).Val() == 1
	})
	refuseWrites(t, w, true)
	w.lk.Start()
	waitFor(t, "the restart resumed after its final transaction failed", func() bool {
		return metric(t, svc, "nestbot_request_retries_total", map[string]string{"step": "resume"}) >= 1
	})
}

// TestFaultResumedRestartGoesStale: a recreation makes its public change
// (the new LiveKit room) and then cannot write its record: Redis refuses
// writes, and keeps refusing them until the request is older than
// max_request_age. The restart cannot be finished in time; it is answered
// once, UNAVAILABLE (published unstored: Redis takes no writes), not left
// unanswered. A new request, Redis back, finishes the same recreation:
// one LiveKit room, one record, one replacement event under the new ID
// the first run chose. Before, the request got no answer at all.
func TestFaultResumedRestartGoesStale(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 6 * time.Second // LiveKit is back within it
	w.cfg.Nostr.MaxRequestAge = 20 * time.Second
	svc := w.start()
	ctx := context.Background()
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil) // the record is gone: a recreation

	w.lk.Stop()
	req := signRequest(t, w, host, coord(host.pk, oldID), "restart", "")
	answer := w.sendAsync(host, req, 90*time.Second)
	pendingKey := rooms.DefaultKeys.Pending(coord(host.pk, oldID))
	waitFor(t, "the recreation's new ID chosen", func() bool { return w.rdb.Exists(ctx, pendingKey).Val() == 1 })
	pending := w.rdb.Get(ctx, pendingKey).Val()
	refuseWrites(t, w, true)
	w.lk.Start() // the new LiveKit room is made; its record cannot be written
	waitFor(t, "the recreation resumed after its public change", func() bool {
		return metric(t, svc, "nestbot_request_retries_total", map[string]string{"step": "resume"}) >= 1
	})
	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	answeredAt := time.Since(req.CreatedAt.Time())
	wantError(t, ex.Payload, nostrx.CodeUnavailable)
	if w.liveRoom(pending) == nil {
		t.Fatalf("no LiveKit room %s: the recreation's public change did not happen", pending)
	}
	refuseWrites(t, w, false)
	requestsDone(t, svc, 1)
	exactlyOnce(t, responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID}), []string{req.ID})

	// The requester asks again, as UNAVAILABLE says: the same recreation is finished.
	again := w.ask(host, coord(host.pk, oldID), "restart")
	if res := restartResult(t, again.Payload); !res.IsNewRoom || res.RoomID != pending {
		t.Fatalf("the new request: %+v, want the recreation under %s", res, pending)
	}
	checkOneRecreation(t, w, pending)
	t.Logf("FIGURES resumed-stale: max_request_age=20s unavailable_answer_at=%s (request age, 1 s resolution) resumes=%.0f then the new request finished the same room",
		answeredAt.Round(time.Second), metric(t, svc, "nestbot_request_retries_total", map[string]string{"step": "resume"}))
}

// TestFaultDMFinalCommitRefused is TestFaultFinalCommitRefused for a
// restart asked by NIP-17 direct message (which commits its own writes,
// not with its reply): the final commit is refused after the LiveKit room
// was recreated, the resumed run meets LiveKit down for its whole budget,
// and the command is still answered once, with the restart, when both are
// back. Before, the resumed run's UNAVAILABLE dropped the command: its
// claim released, no reply.
func TestFaultDMFinalCommitRefused(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 6 * time.Second
	w.cfg.Limits.RestartsPerMinute = 1
	svc := w.start()
	ctx := context.Background()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)

	wrap, rumorID := w.wrapDM(host, "restart nostr:"+coord(host.pk, id).Naddr(w.relays[0].URL))
	failFinalCommit(t, w, svc, id, func() { w.publish(wrap) })
	w.lk.Stop()
	refuseWrites(t, w, false)
	waitFor(t, "the resumed restart resumed again after LiveKit's budget", func() bool {
		return metric(t, svc, "nestbot_request_retries_total", map[string]string{"step": "resume"}) >= 2
	})
	w.lk.Start()

	w.waitClaimDone(rumorID)
	requestsDone(t, svc, 1)
	replies := repliesTo(t, w, w.relays[0].URL, host)
	if len(replies) != 1 {
		t.Fatalf("%d replies, want 1", len(replies))
	}
	for _, r := range replies {
		if !strings.Contains(r.Content, "Done: your room is restarted") {
			t.Fatalf("reply %q, want the restart in place", r.Content)
		}
	}
	if n := metric(t, svc, "nestbot_requests_total", map[string]string{"action": "restart", "outcome": "ok"}); n != 1 {
		t.Errorf("%v restarts counted ok: want 1", n)
	}
	if w.liveRoom(id) == nil {
		t.Fatal("no LiveKit room after the restart")
	}
	if w.rdb.Exists(ctx, rooms.DefaultKeys.Lock(id)).Val() != 0 {
		t.Error("the room lock is still held")
	}
}

// TestFaultAnswerPendingBotKilled: a restart's answer is stored (in its
// claim and as pending) but no relay has said OK to it when the bot is
// SIGKILLed: its answer lease is not given back. A bot started again
// sends the very same event once the dead bot's lease lapses, and the
// relay accepts it exactly once; the request is not worked again.
func TestFaultAnswerPendingBotKilled(t *testing.T) {
	w, rs := progWorld(t, 1)
	var open atomic.Bool
	var accepts atomic.Int32
	rs[0].SetPolicy(w.isAnswer, func(_ *nostr.Event, _ int) relaytest.Reply {
		if open.Load() {
			accepts.Add(1)
			return relaytest.Accept
		}
		return relaytest.Reply{Reason: "error: disk full"}
	})
	ctx := context.Background()
	a := w.startBotProc(w.cfg, "bot-a")
	host := newUser(t)
	req := w.restartRoom(host)
	answer := w.sendAsync(host, req, 120*time.Second)
	answers := nostr.Filter{Kinds: []int{nostrx.DefaultResponseKind}, Tags: nostr.TagMap{"e": {req.ID}}}
	waitFor(t, "the answer pending in Redis, a copy refused", func() bool {
		return w.rdb.Exists(ctx, rooms.DefaultKeys.Answer(req.ID)).Val() == 1 && len(rs[0].ArrivalsOf(answers)) > 0
	})
	first := rs[0].ArrivalsOf(answers)[0].ID
	a.kill()
	killed := time.Now()
	open.Store(true)
	svc, _, _ := w.startLogged(w.cfg) // bot B

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	took := time.Since(killed)
	if ex.Response.ID != first {
		t.Fatalf("answer %s delivered, want the event the dead bot stored (%s)", ex.Response.ID, first)
	}
	if r := restartResult(t, ex.Payload); r.IsNewRoom {
		t.Fatalf("%+v", r)
	}
	waitFor(t, "the delivered answer no longer pending, the claim done", func() bool {
		return w.rdb.Exists(ctx, rooms.DefaultKeys.Answer(req.ID)).Val() == 0 &&
			w.rdb.Get(ctx, rooms.DefaultKeys.Claim(req.ID)).Val() == "done"
	})
	if n := accepts.Load(); n != 1 {
		t.Errorf("the answer was accepted %d times, want 1", n)
	}
	ids := map[string]bool{}
	for _, ar := range rs[0].ArrivalsOf(answers) {
		ids[ar.ID] = true
	}
	if len(ids) != 1 {
		t.Errorf("%d different answers to one request, want 1", len(ids))
	}
	if n := metric(t, svc, "nestbot_requests_total", nil); n != 0 {
		t.Errorf("bot B worked on the request (%v), want 0: it was answered", n)
	}
	t.Logf("FIGURES answer-pending-killed: accepted_copies=%d distinct_answers=%d delivered_after_kill_in=%s", accepts.Load(), len(ids), took.Round(time.Millisecond))
}

// TestFaultResumeKeepsItsRoom: a restart in place recreates its LiveKit
// room while Redis refuses writes, so neither its recreation mark nor its
// final transaction is written, and it is resumed. The resumed run, Redis
// back, finishes the room the first run made instead of recreating it a
// second time (kicking everyone out again): the process remembers the
// mark the first run could not store. Before, the room was recreated
// twice for one request.
func TestFaultResumeKeepsItsRoom(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 6 * time.Second
	svc := w.start()
	ctx := context.Background()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	before := w.createLiveRoom(id).Sid

	req := signRequest(t, w, host, coord(host.pk, id), "restart", "")
	var answer <-chan *bot.Exchange
	failFinalCommit(t, w, svc, id, func() { answer = w.sendAsync(host, req, 60*time.Second) })
	made := w.liveRoom(id)
	if made == nil || made.Sid == before {
		t.Fatalf("LiveKit room %v: want the one the restart made (not %s)", made, before)
	}
	if w.rdb.Exists(ctx, rooms.DefaultKeys.Recreating(id)).Val() != 0 {
		t.Fatal("the recreation mark was written although Redis refused writes")
	}
	refuseWrites(t, w, false)

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	if res := restartResult(t, ex.Payload); res.RoomID != id || res.IsNewRoom {
		t.Fatalf("result %+v, want room %s restarted in place", res, id)
	}
	if now := w.liveRoom(id); now == nil || now.Sid != made.Sid {
		t.Fatalf("LiveKit room %v after the resumed run, want the one the first run made (%s): recreated twice", now, made.Sid)
	}
	requestsDone(t, svc, 1)
	exactlyOnce(t, responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID}), []string{req.ID})
}

// TestFaultResumeStaleLiveKitDown is TestFaultResumedRestartGoesStale
// through the other way a resumed restart ends: its final transaction is
// refused after its LiveKit room was recreated, and then LiveKit stays
// down past max_request_age, so every resumed run fails (UNAVAILABLE, which
// a room already changed is not answered with while there is time). When
// the next run would come too late, the request is answered UNAVAILABLE
// once, stored and delivered as any answer; the room, LiveKit back, is
// restarted by the next request. Before, it got no answer.
func TestFaultResumeStaleLiveKitDown(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 4 * time.Second
	w.cfg.Nostr.MaxRequestAge = 20 * time.Second
	svc := w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)

	req := signRequest(t, w, host, coord(host.pk, id), "restart", "")
	var answer <-chan *bot.Exchange
	failFinalCommit(t, w, svc, id, func() { answer = w.sendAsync(host, req, 60*time.Second) })
	w.lk.Stop() // down until the request is stale
	refuseWrites(t, w, false)

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	answeredAt := time.Since(req.CreatedAt.Time())
	wantError(t, ex.Payload, nostrx.CodeUnavailable)
	resumes := metric(t, svc, "nestbot_request_retries_total", map[string]string{"step": "resume"})
	if resumes < 2 {
		t.Errorf("%v resumes, want the LiveKit failure resumed too", resumes)
	}
	requestsDone(t, svc, 1)
	w.waitClaimDone(req.ID)
	exactlyOnce(t, responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID}), []string{req.ID})

	w.lk.Start()
	again := w.ask(host, coord(host.pk, id), "restart")
	if res := restartResult(t, again.Payload); res.RoomID != id || res.IsNewRoom {
		t.Fatalf("the new request: %+v, want room %s restarted in place", res, id)
	}
	if w.liveRoom(id) == nil {
		t.Fatal("no LiveKit room after the new request")
	}
	t.Logf("FIGURES resumed-stale-livekit: max_request_age=20s unavailable_answer_at=%s resumes=%.0f", answeredAt.Round(time.Second), resumes)
}

// TestFaultTakeoverAfterPublicChange: bot A creates the new LiveKit room of
// a recreation (a public change) and is killed while Redis refuses the
// record. The bot that takes the claim over meets LiveKit down for its
// whole budget: the dead bot may have changed the room (it did), and the
// taker cannot tell, so the failure is not answered; the restart is
// resumed, as its own would be, and answered with the recreation once
// LiveKit is back. Before, the taker answered UNAVAILABLE about it.
func TestFaultTakeoverAfterPublicChange(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 60 * time.Second // bot A retries the record write until killed
	ctx := context.Background()
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil)
	req := signRequest(t, w, host, coord(host.pk, oldID), "restart", "")

	w.lk.Stop()
	a := w.startBotProc(w.cfg, "bot-a")
	answer := w.sendAsync(host, req, 120*time.Second)
	pendingKey := rooms.DefaultKeys.Pending(coord(host.pk, oldID))
	waitFor(t, "bot A chose the new ID", func() bool { return w.rdb.Exists(ctx, pendingKey).Val() == 1 })
	pending := w.rdb.Get(ctx, pendingKey).Val()
	refuseWrites(t, w, true)
	w.lk.Start()
	waitFor(t, "bot A created the new LiveKit room", func() bool { return w.liveRoom(pending) != nil })
	a.kill()
	w.lk.Stop()
	refuseWrites(t, w, false)

	cfgB := w.cfg
	cfgB.Limits.DependencyTimeout = 3 * time.Second
	svc, _ := w.startReplica(cfgB) // bot B: takes the claim over, LiveKit down
	waitFor(t, "bot B resumed the restart it took over", func() bool {
		return metric(t, svc, "nestbot_request_retries_total", map[string]string{"step": "resume"}) >= 1
	})
	w.lk.Start()

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	if res := restartResult(t, ex.Payload); !res.IsNewRoom || res.RoomID != pending {
		t.Fatalf("want the recreation bot A started (room %s), got %+v", pending, res)
	}
	requestsDone(t, svc, 1)
	checkOneRecreation(t, w, pending)
	exactlyOnce(t, responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID}), []string{req.ID})
}
