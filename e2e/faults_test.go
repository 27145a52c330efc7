//go:build faults

// The fault suite: the bot against real Redis, LiveKit and relay processes
// that are killed, stopped and restarted, against several replicas of
// itself, and against a hostile relay. Run it with `make faults`
// (go test -tags faults -run '^TestFault' ./e2e/); it runs without the
// race detector (see doc.go) so that its timings mean something. Every
// test asserts correctness (answered, exactly once); timings are logged as
// figures for docs/reliability.md.
package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_model/go"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/flood"
	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// signRequest builds and signs a request as u.
func signRequest(t *testing.T, w *world, u *user, room nostrx.Coordinate, action, hint string) nostr.Event {
	t.Helper()
	ev := nostrx.NewRequest(nostrx.DefaultRequestKind, w.botPub(), room, action, hint, "", nostr.Now(), 0)
	if err := u.signer.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// publishUntilAccepted publishes ev to url until the relay accepts it, the
// way a client retries while a relay is down.
func publishUntilAccepted(url string, ev nostr.Event, within time.Duration) error {
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := waitCtx(3 * time.Second)
		var rl *nostr.Relay
		if rl, err = nostr.RelayConnect(ctx, url); err == nil {
			err = rl.Publish(ctx, ev)
			rl.Close()
		}
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// responsesTo collects the bot's responses on urls, by request id and then
// by response id, so that a second answer to one request shows as a second
// response id.
func responsesTo(t *testing.T, urls []string, botPK string, ids []string) map[string]map[string]*nostr.Event {
	t.Helper()
	out := map[string]map[string]*nostr.Event{}
	for _, url := range urls {
		for chunk := range slices.Chunk(ids, 50) {
			evs := query(t, url, nostr.Filter{Kinds: []int{nostrx.DefaultResponseKind}, Authors: []string{botPK},
				Tags: nostr.TagMap{"e": chunk}, Limit: 5000})
			for _, ev := range evs {
				e := ev.Tags.Find("e")
				if len(e) < 2 {
					continue
				}
				if out[e[1]] == nil {
					out[e[1]] = map[string]*nostr.Event{}
				}
				out[e[1]][ev.ID] = ev
			}
		}
	}
	return out
}

// waitAnswered waits until every request in ids has a response on urls and
// returns the responses.
func waitAnswered(t *testing.T, urls []string, botPK string, ids []string, within time.Duration) map[string]map[string]*nostr.Event {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := responsesTo(t, urls, botPK, ids)
		missing := 0
		for _, id := range ids {
			if len(got[id]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests unanswered after %s", missing, len(ids), within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exactlyOnce checks one response per request and returns how many were
// lost (no response) and duplicated (more than one).
func exactlyOnce(t *testing.T, got map[string]map[string]*nostr.Event, ids []string) (lost, duplicated int) {
	t.Helper()
	for _, id := range ids {
		switch n := len(got[id]); {
		case n == 0:
			lost++
			t.Errorf("request %s: no response", id)
		case n > 1:
			duplicated++
			t.Errorf("request %s: %d different responses", id, n)
		}
	}
	return lost, duplicated
}

// only returns the single response in m.
func only(m map[string]*nostr.Event) *nostr.Event {
	for _, ev := range m {
		return ev
	}
	return nil
}

// open decrypts a response to u.
func open(t *testing.T, w *world, u *user, ev *nostr.Event) nostrx.Payload {
	t.Helper()
	p, err := nostrx.OpenResponse(u.signer, w.botPub(), ev)
	if err != nil {
		t.Fatalf("open response %s: %v", ev.ID, err)
	}
	return p
}

// counter reads a counter of svc's registry, summed over series whose
// labels include want.
func counter(t *testing.T, svc *bot.Service, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := svc.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if labelsMatch(m, want) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelsMatch(m *io_prometheus_client.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func summarize(ds []time.Duration) string {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, k int) bool { return s[i] < s[k] })
	r := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("n=%d p50=%s p90=%s p99=%s max=%s", len(s), r(percentile(s, .5)), r(percentile(s, .9)), r(percentile(s, .99)), r(percentile(s, 1)))
}

// TestFaultRelayKilled: the bot's only relay is killed and restarted while
// requests are being published (each one retried by its client until the
// relay accepts it). Every request is answered, once.
func TestFaultRelayKilled(t *testing.T) {
	w := newWorld(t, 1)
	svc := w.start()
	const n = 30
	var reqs []nostr.Event
	var ids []string
	for range n {
		host := newUser(t)
		id := uuid.NewString()
		w.nestsRecord(id, host.pk, nil, nil)
		req := signRequest(t, w, host, coord(host.pk, id), "restart", "")
		reqs = append(reqs, req)
		ids = append(ids, req.ID)
	}
	relay := w.relays[0]
	errs := make(chan error, n)
	go func() {
		for _, req := range reqs {
			errs <- publishUntilAccepted(relay.URL, req, 30*time.Second)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	time.Sleep(900 * time.Millisecond)
	relay.Kill()
	time.Sleep(time.Second)
	relay.Start()
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	got := waitAnswered(t, w.relayURLs(), w.botPub(), ids, 60*time.Second)
	lost, dup := exactlyOnce(t, got, ids)
	// A claim is marked done once the relay's OK reached the bot, which may
	// come after the answer is on the relay.
	for _, id := range ids {
		waitFor(t, "claim of "+id+" done", func() bool {
			return w.rdb.Get(context.Background(), "nestbot:{"+id+"}:claim").Val() == "done"
		})
	}
	reconnects := counter(t, svc, "nestbot_relay_reconnects_total", nil)
	if reconnects < 1 {
		t.Errorf("the listener never reconnected")
	}
	t.Logf("FIGURES relay-killed: sent=%d answered=%d lost=%d duplicated=%d listener_reconnects=%.0f", n, n-lost, lost, dup, reconnects)
}

// TestFaultRedisRestarted: Redis dies (and, having no persistence here,
// comes back empty) while a request is in flight. The request waits for
// its claim and is answered once; the record it needed vanished, so the
// room is recreated under a new ID; an earlier request is not answered
// again; later requests work.
func TestFaultRedisRestarted(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 2 * time.Second
	w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.publishRoom(host, id, nil)
	first := w.ask(host, coord(host.pk, id), "restart")
	if r := restartResult(t, first.Payload); r.RoomID != id || r.IsNewRoom {
		t.Fatalf("before the fault: %+v", r)
	}

	w.redis.Kill()
	req := signRequest(t, w, host, coord(host.pk, id), "restart", "")
	answer := w.sendAsync(host, req, 60*time.Second)
	waitFor(t, "the request arrived and could not be claimed", func() bool {
		return metric(t, w.svc, "nestbot_request_retries_total", map[string]string{"step": "claim"}) >= 1
	})
	down := time.Now()
	w.redis.Start()
	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	recovered := time.Since(down)
	res := restartResult(t, ex.Payload)
	if !res.IsNewRoom || res.OriginalRoomID != id {
		t.Fatalf("the record vanished with Redis: want a recreation under a new ID, got %+v", res)
	}
	if _, rec := w.record(res.RoomID); rec == nil || w.liveRoom(res.RoomID) == nil {
		t.Fatal("no record or LiveKit room for the new ID")
	}

	// A later request lands on the replacement (cool-down answer).
	later := w.ask(host, coord(host.pk, id), "restart")
	if r := restartResult(t, later.Payload); r.RoomID != res.RoomID {
		t.Fatalf("later request: %+v", r)
	}
	ids := []string{first.Request.ID, req.ID, later.Request.ID}
	time.Sleep(time.Second)
	got := responsesTo(t, w.relayURLs(), w.botPub(), ids)
	lost, dup := exactlyOnce(t, got, ids)
	t.Logf("FIGURES redis-restarted: sent=3 answered=%d lost=%d duplicated=%d answered_after_redis_back_in=%s", 3-lost, lost, dup, recovered.Round(time.Millisecond))
}

// TestFaultLiveKitStopped: with LiveKit down a request is answered
// UNAVAILABLE once limits.dependency_timeout is spent, nothing is changed,
// and once LiveKit is back a new request succeeds.
func TestFaultLiveKitStopped(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.DependencyTimeout = 2 * time.Second
	w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)
	_, before := w.record(id)

	w.lk.Stop()
	start := time.Now()
	ex := w.ask(host, coord(host.pk, id), "restart")
	took := time.Since(start)
	wantError(t, ex.Payload, nostrx.CodeUnavailable)
	if took < 1500*time.Millisecond {
		t.Fatalf("UNAVAILABLE after %s: the dependency timeout (2s) was not spent retrying", took)
	}
	if _, after := w.record(id); after.RestartedAt != before.RestartedAt {
		t.Fatal("the record changed although LiveKit never answered")
	}

	w.lk.Start()
	ok := w.ask(host, coord(host.pk, id), "restart")
	if r := restartResult(t, ok.Payload); r.RoomID != id || r.IsNewRoom {
		t.Fatalf("after LiveKit is back: %+v", r)
	}
	if w.liveRoom(id) == nil {
		t.Fatal("no LiveKit room after the restart")
	}
	t.Logf("FIGURES livekit-stopped: dependency_timeout=2s unavailable_answer_after=%s then ok", took.Round(time.Millisecond))
}

// TestFaultBotKilledMidRecreate: a bot process is SIGKILLed while it is
// stuck inside a recreation (LiveKit down, after it chose the new room ID).
// LiveKit comes back and a new bot process starts at once: it sees the
// request again, waits for the dead owner's heartbeat to lapse, takes the
// claim over and finishes the same recreation. One room, one record, one
// replacement event, one response.
func TestFaultBotKilledMidRecreate(t *testing.T) {
	w := newWorld(t, 1)
	cfg := w.cfg
	cfg.Limits.DependencyTimeout = 60 * time.Second // stuck retrying LiveKit, not answering UNAVAILABLE
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil) // the record is gone; the host's event remains
	w.lk.Stop()
	a := w.startBotProc(cfg, "bot-a")

	req := signRequest(t, w, host, coord(host.pk, oldID), "restart", "")
	answer := w.sendAsync(host, req, 120*time.Second)
	ctx := context.Background()
	pendingKey := "nestbot:{" + oldID + "}:pending:" + host.pk
	waitFor(t, "bot A inside the recreation (new ID chosen, claim held)", func() bool {
		return w.rdb.Exists(ctx, pendingKey).Val() == 1 && strings.HasPrefix(w.rdb.Get(ctx, "nestbot:{"+req.ID+"}:claim").Val(), "w:")
	})
	pending := w.rdb.Get(ctx, pendingKey).Val()
	time.Sleep(500 * time.Millisecond) // let it retry LiveKit a few times
	a.kill()
	killed := time.Now()
	w.lk.Start()
	w.startBotProc(cfg, "bot-b")

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	finished := time.Since(killed)
	res := restartResult(t, ex.Payload)
	if !res.IsNewRoom || res.RoomID != pending {
		t.Fatalf("want the recreation bot A started (room %s), got %+v", pending, res)
	}
	time.Sleep(time.Second)
	if rooms := w.allLiveRooms(); len(rooms) != 1 || rooms[0].Name != pending {
		t.Errorf("LiveKit rooms %v, want only %s", rooms, pending)
	}
	if keys := w.rdb.Keys(ctx, "nest:*").Val(); len(keys) != 1 || keys[0] != "nest:"+pending {
		t.Errorf("records %v, want only nest:%s", keys, pending)
	}
	evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}})
	if len(evs) != 1 || evs[0].Tags.GetD() != pending {
		t.Errorf("%d replacement events, want one for %s", len(evs), pending)
	}
	got := responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID})
	lost, dup := exactlyOnce(t, got, []string{req.ID})
	// Marked done once the relay's OK reached the bot, maybe after the client read the answer.
	waitFor(t, "the claim marked done", func() bool { return w.rdb.Get(ctx, "nestbot:{"+req.ID+"}:claim").Val() == "done" })
	t.Logf("FIGURES bot-killed: sent=1 answered=%d lost=%d duplicated=%d livekit_rooms=1 records=1 replacement_events=%d finished_after_kill_in=%s",
		1-lost, lost, dup, len(evs), finished.Round(time.Millisecond))
}

// TestFaultReplicas: three replicas share one Redis and two relays. A
// hundred requests for fifty gone rooms (each room asked by its host and by
// an admin) give exactly one answer each, fifty records, fifty LiveKit
// rooms and fifty replacement events.
func TestFaultReplicas(t *testing.T) {
	w := newWorld(t, 2)
	var svcs []*bot.Service
	for range 3 {
		svc, _ := w.startReplica(w.cfg)
		svcs = append(svcs, svc)
	}
	const nRooms = 50
	type roomCase struct {
		host, admin *user
		oldID       string
	}
	var cases []roomCase
	var reqs []nostr.Event
	who := map[string]*user{}
	for range nRooms {
		c := roomCase{host: newUser(t), admin: newUser(t), oldID: uuid.NewString()}
		w.publishRoom(c.host, c.oldID, nostr.Tags{{"p", c.admin.pk, "", "Admin"}})
		cases = append(cases, c)
		for _, u := range []*user{c.host, c.admin} {
			req := signRequest(t, w, u, coord(c.host.pk, c.oldID), "restart", "")
			reqs = append(reqs, req)
			who[req.ID] = u
		}
	}
	// Publish to both relays, as clients do, from a few connections at once.
	var conns []*nostr.Relay
	for _, url := range w.relayURLs() {
		ctx, cancel := waitCtx(5 * time.Second)
		rl, err := nostr.RelayConnect(ctx, url)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer rl.Close()
		conns = append(conns, rl)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				for _, rl := range conns {
					ctx, cancel := waitCtx(10 * time.Second)
					if err := rl.Publish(ctx, reqs[i]); err != nil {
						t.Errorf("publish: %v", err)
					}
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.ID)
	}
	got := waitAnswered(t, w.relayURLs(), w.botPub(), ids, 120*time.Second)
	took := time.Since(start)
	lost, dup := exactlyOnce(t, got, ids)

	roomOf := map[string]string{} // old ID → new ID named in answers
	recreated := 0
	for i, c := range cases {
		for _, req := range reqs[2*i : 2*i+2] {
			res := restartResult(t, open(t, w, who[req.ID], only(got[req.ID])))
			if !res.IsNewRoom || res.OriginalRoomID != c.oldID {
				t.Errorf("room %d: %+v", i, res)
			}
			if prev, ok := roomOf[c.oldID]; ok && prev != res.RoomID {
				t.Errorf("room %d: answers name two rooms %s and %s", i, prev, res.RoomID)
			}
			roomOf[c.oldID] = res.RoomID
			if res.Message == "Nest recreated with new room ID" {
				recreated++
			}
		}
	}
	if recreated != nRooms {
		t.Errorf("%d recreations, want %d (the other request of each room gets the cool-down answer)", recreated, nRooms)
	}
	records := len(w.rdb.Keys(context.Background(), "nest:*").Val())
	liveRooms := len(w.allLiveRooms())
	replacements := map[string]bool{}
	for _, url := range w.relayURLs() {
		for _, ev := range query(t, url, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}, Limit: 1000}) {
			replacements[ev.Tags.GetD()] = true
		}
	}
	if records != nRooms || liveRooms != nRooms || len(replacements) != nRooms {
		t.Errorf("records %d, LiveKit rooms %d, replacement events %d: want %d each", records, liveRooms, len(replacements), nRooms)
	}
	var processed []string
	for i, svc := range svcs {
		processed = append(processed, fmt.Sprintf("%.0f", counter(t, svc, "nestbot_requests_total", nil)))
		_ = i
	}
	t.Logf("FIGURES replicas: replicas=3 relays=2 rooms=%d sent=%d answered=%d lost=%d duplicated=%d records=%d livekit_rooms=%d replacement_events=%d answered_per_replica=%s all_answered_in=%s",
		nRooms, len(reqs), len(reqs)-lost, lost, dup, records, liveRooms, len(replacements), strings.Join(processed, "/"), took.Round(time.Millisecond))
}

// TestFaultAuthRelay: the bot's only relay requires NIP-42 AUTH for reading
// and writing; the listener authenticates and the request is answered.
func TestFaultAuthRelay(t *testing.T) {
	w := newWorld(t, 0)
	w.relays = append(w.relays, stack.StartRelay(t, stack.WithAuth()))
	w.cfg.Nostr.Relays = w.relayURLs()
	w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	ex := w.ask(host, coord(host.pk, id), "restart")
	if r := restartResult(t, ex.Payload); r.RoomID != id {
		t.Fatalf("%+v", r)
	}
}

// TestFaultClosedResubscribe: a relay CLOSEs the bot's subscription; the
// listener subscribes again and gets the request that relay alone carries.
func TestFaultClosedResubscribe(t *testing.T) {
	w := newWorld(t, 1)
	fake := startFakeRelay(t)
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	req := signRequest(t, w, host, coord(host.pk, id), "restart", "")
	fake.OnBotREQ = func(c *flood.Conn, sub string, _ nostr.Filters) {
		if fake.BotREQs.Load() == 1 {
			c.SendJSON(nostr.ClosedEnvelope{SubscriptionID: sub, Reason: "error: shutting down, come back later"})
			return
		}
		c.SendJSON(nostr.EOSEEnvelope(sub))
		c.SendEvent(sub, req)
	}
	w.cfg.Nostr.Relays = []string{w.relays[0].URL, fake.URL}
	w.startReplica(w.cfg)
	got := waitAnswered(t, w.relayURLs(), w.botPub(), []string{req.ID}, 30*time.Second)
	exactlyOnce(t, got, []string{req.ID})
	if r := restartResult(t, open(t, w, host, only(got[req.ID]))); r.RoomID != id {
		t.Fatalf("%+v", r)
	}
	if n := fake.BotREQs.Load(); n < 2 {
		t.Fatalf("%d subscriptions to the relay that closed it, want a second one", n)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TestFaultFinalCommitRefused: Redis refuses writes (maxmemory, noeviction)
// at the moment a restart in place ends, after its LiveKit room was
// recreated, so the one transaction holding the restart's writes and its
// answer (rooms.CommitAnswered) fails for the whole dependency budget.
// The request is not answered then: it is resumed. The resumed run finds
// LiveKit down for its whole budget, and is resumed again rather than
// answered UNAVAILABLE about a room already recreated; it is not counted
// against its requester's rate a second time (limit 1). Once both are
// back it is answered exactly once, restarted in place, and counted once.
func TestFaultFinalCommitRefused(t *testing.T) {
	w := newWorld(t, 1)
	// LiveKit must be back within this budget (LiveKit's start, under CI's
	// load) and the final transaction is retried for as long.
	w.cfg.Limits.DependencyTimeout = 6 * time.Second
	// The resumed run is the same request, admitted once: it is not
	// counted against its requester's rate again.
	w.cfg.Limits.RestartsPerMinute = 1
	w.start()
	ctx := context.Background()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)

	req := signRequest(t, w, host, coord(host.pk, id), "restart", "")
	var answer <-chan *bot.Exchange
	failFinalCommit(t, w, w.svc, id, func() { answer = w.sendAsync(host, req, 60*time.Second) })
	if n := metric(t, w.svc, "nestbot_requests_total", nil); n != 0 {
		t.Errorf("%v requests counted before the request was answered: want 0", n)
	}
	// The resumed run meets LiveKit down for its whole budget: a failure
	// that may pass, for a room already recreated, is not answered; the
	// run is resumed again. (Writes are refused until LiveKit is down, so
	// the resumed run cannot reach LiveKit before: its claim is a write.)
	w.lk.Stop()
	refuseWrites(t, w, false)
	waitFor(t, "the resumed restart resumed again after LiveKit's budget", func() bool {
		return metric(t, w.svc, "nestbot_request_retries_total", map[string]string{"step": "resume"}) >= 2
	})
	w.lk.Start()

	ex := <-answer
	if ex == nil {
		t.FailNow()
	}
	if res := restartResult(t, ex.Payload); res.RoomID != id || res.IsNewRoom {
		t.Fatalf("result %+v, want room %s restarted in place", res, id)
	}
	if w.liveRoom(id) == nil {
		t.Fatal("no LiveKit room after the restart")
	}
	requestsDone(t, w.svc, 1)
	if n := metric(t, w.svc, "nestbot_requests_total", map[string]string{"action": "restart", "outcome": "ok"}); n != 1 {
		t.Errorf("%v restarts counted ok: want 1", n)
	}
	got := responsesTo(t, w.relayURLs(), w.botPub(), []string{req.ID})
	exactlyOnce(t, got, []string{req.ID})
	waitFor(t, "the claim marked delivered", func() bool {
		return w.rdb.Get(ctx, "nestbot:{"+req.ID+"}:claim").Val() == "done"
	})
	if w.rdb.Exists(ctx, "nestbot:{"+id+"}:lock").Val() != 0 {
		t.Error("the room lock is still held")
	}
}
