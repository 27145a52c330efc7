//go:build faults

package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/relaytest"
	"github.com/nestbot/nestbot/internal/testlog"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Issue 16's publishing policies, one test each: the bot's only relays are
// programmable (internal/relaytest), applying a policy to the bot's answers
// (kind 4313) while storing and serving everything else like a relay;
// Redis and LiveKit are real, and each answer is to a real restart request.

// progWorld is a world whose bot relays are n programmable relays.
func progWorld(t *testing.T, n int) (*world, []*relaytest.Relay) {
	w := newWorld(t, 0)
	var rs []*relaytest.Relay
	var urls []string
	for range n {
		r := relaytest.Start(t)
		rs = append(rs, r)
		urls = append(urls, r.URL)
	}
	w.cfg.Nostr.Relays = urls
	w.clientRelays = urls
	return w, rs
}

// startLogged runs a bot on cfg with its log (debug) in a buffer, until
// stop or the end of the test, and waits for its subscriptions.
func (w *world) startLogged(cfg config.Config) (*bot.Service, *testlog.Buffer, func()) {
	w.t.Helper()
	buf := &testlog.Buffer{}
	var out io.Writer = buf
	if os.Getenv("NESTBOT_TEST_LOG") != "" {
		out = io.MultiWriter(buf, os.Stderr)
	}
	svc, stop := w.runInProcess(cfg, slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return svc, buf, stop
}

// isAnswer matches the bot's answers.
func (w *world) isAnswer(ev *nostr.Event) bool {
	return ev.Kind == nostrx.DefaultResponseKind && ev.PubKey == w.botPub()
}

// restartRoom makes a room the host may restart in place, and a request for it.
func (w *world) restartRoom(host *user) nostr.Event {
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	return signRequest(w.t, w, host, coord(host.pk, id), "restart", "")
}

func answerArrivals(rs *relaytest.Relay, ex *bot.Exchange) []relaytest.Arrival {
	return rs.Arrivals(ex.Response.ID)
}

func gapsAtLeast(t *testing.T, as []relaytest.Arrival, min time.Duration) {
	t.Helper()
	for i := 1; i < len(as); i++ {
		if d := as[i].At.Sub(as[i-1].At); d < min {
			t.Fatalf("copies %d and %d sent %s apart, want at least %s", i, i+1, d, min)
		}
	}
}

// A relay that hangs up when the answer arrives has not accepted it: the
// bot sends again, and the answer is delivered only after the OK.
func TestFaultPublishHangUp(t *testing.T) {
	w, rs := progWorld(t, 1)
	r := rs[0]
	r.SetPolicy(w.isAnswer, func(_ *nostr.Event, nth int) relaytest.Reply {
		if nth == 1 {
			return relaytest.Reply{HangUp: true}
		}
		return relaytest.Accept
	})
	_, log, _ := w.startLogged(w.cfg)
	host := newUser(t)
	req := w.restartRoom(host)
	ex := <-w.sendAsync(host, req, 60*time.Second)
	if ex == nil {
		t.Fatal("no answer")
	}
	if n := len(answerArrivals(r, ex)); n != 2 {
		t.Fatalf("answer sent %d times, want 2 (hang-up, then accepted)", n)
	}
	waitFor(t, "claim done", func() bool { return w.rdb.Get(context.Background(), rooms.DefaultKeys.Claim(req.ID)).Val() == "done" })
	// The request's log line follows its delivery (and the claim's "done").
	waitFor(t, "request logged", func() bool { return log.Lines("msg=request", "id="+req.ID) > 0 })
	if n := log.Lines("msg=request", "id="+req.ID); n != 1 {
		t.Fatalf("%d request lines", n)
	}
}

// rate-limited: for longer than max_request_age, then accepted: delivered
// once accepted, each copy at least 1 s after the previous one, with at
// most refusals+1 copies; one WARN for the relay and class.
func TestFaultPublishRateLimited(t *testing.T) {
	w, rs := progWorld(t, 1)
	r := rs[0]
	const refusals = 4 // backoff 1+2+4+8 s: more than max_request_age below
	w.cfg.Nostr.MaxRequestAge = 5 * time.Second
	r.SetPolicy(w.isAnswer, func(_ *nostr.Event, nth int) relaytest.Reply {
		if nth <= refusals {
			return relaytest.Reply{Reason: "rate-limited: slow down\ntime=2026 level=INFO msg=forged"}
		}
		return relaytest.Accept
	})
	svc, log, _ := w.startLogged(w.cfg)
	host := newUser(t)
	req := w.restartRoom(host)
	ex := <-w.sendAsync(host, req, 90*time.Second)
	if ex == nil {
		t.Fatal("no answer")
	}
	as := answerArrivals(r, ex)
	if len(as) != refusals+1 {
		t.Fatalf("answer sent %d times, want %d", len(as), refusals+1)
	}
	gapsAtLeast(t, as, time.Second)
	if took := as[len(as)-1].At.Sub(as[0].At); took <= w.cfg.Nostr.MaxRequestAge {
		t.Fatalf("refusals lasted %s, the test needs more than max_request_age", took)
	}
	if n := log.Lines("level=WARN", "relay refused", "class=rate-limited"); n != 1 {
		t.Fatalf("%d WARN lines for rate-limited, want 1:\n%s", n, log)
	}
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.HasPrefix(l, "time=2026 ") {
			t.Fatalf("the relay's reason forged a log line: %q", l)
		}
	}
	if n := counter(t, svc, "nestbot_publish_refusals_total", map[string]string{"class": "rate-limited"}); n != refusals {
		t.Fatalf("refusals counted %v, want %d", n, refusals)
	}
	t.Logf("FIGURES rate-limited: refusals=%d sends=%d first_to_accepted=%s", refusals, len(as), as[len(as)-1].At.Sub(as[0].At).Round(time.Millisecond))
}

// Two relays, one answering OK 50 ms after the other: one copy each.
func TestFaultPublishTwoRelays(t *testing.T) {
	w, rs := progWorld(t, 2)
	rs[1].SetPolicy(w.isAnswer, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{OK: true, Delay: 50 * time.Millisecond}
	})
	w.startLogged(w.cfg)
	host := newUser(t)
	var exs []*bot.Exchange
	for range 3 {
		ex := <-w.sendAsync(host, w.restartRoom(host), 30*time.Second)
		if ex == nil {
			t.Fatal("no answer")
		}
		exs = append(exs, ex)
	}
	// Each later round trip gives an earlier answer's loops time to resend,
	// had they been cancelled by the other relay's OK.
	for i, ex := range exs {
		for j, r := range rs {
			waitFor(t, "answer on every relay", func() bool { return len(answerArrivals(r, ex)) > 0 })
			if n := len(answerArrivals(r, ex)); n != 1 {
				t.Fatalf("answer %d: relay %d got %d copies, want 1", i, j, n)
			}
		}
	}
}

// pow: and restricted: are never resent to that relay, and logged at WARN
// once per relay and class; the other relay delivers.
func TestFaultPublishPermanentRefusals(t *testing.T) {
	w, rs := progWorld(t, 2)
	var reason atomic.Value
	reason.Store("pow: difficulty 28 needed")
	rs[0].SetPolicy(w.isAnswer, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{Reason: reason.Load().(string)}
	})
	svc, log, _ := w.startLogged(w.cfg)
	host := newUser(t)
	var exs []*bot.Exchange
	for _, why := range []string{"pow: difficulty 28 needed", "restricted: members only", "pow: difficulty 28 needed"} {
		reason.Store(why)
		ex := <-w.sendAsync(host, w.restartRoom(host), 30*time.Second)
		if ex == nil {
			t.Fatal("no answer")
		}
		// The refusing relay judges the answer when it arrives there, which
		// may be after the other relay delivered it: wait before the next.
		waitFor(t, "the answer at the refusing relay", func() bool { return len(answerArrivals(rs[0], ex)) > 0 })
		exs = append(exs, ex)
	}
	// A fourth round trip after the last refusal.
	if ex := <-w.sendAsync(host, w.restartRoom(host), 30*time.Second); ex == nil {
		t.Fatal("no answer")
	}
	for i, ex := range exs {
		if n := len(answerArrivals(rs[0], ex)); n != 1 {
			t.Fatalf("answer %d sent %d times to the refusing relay, want 1", i, n)
		}
	}
	if n := log.Lines("level=WARN", "relay refused", "class=refused"); n != 1 {
		t.Fatalf("%d WARN lines for the refusing relay, want 1 (once per relay and class)", n)
	}
	if n := log.Lines("level=WARN", `reason="pow: difficulty 28 needed"`); n != 1 {
		t.Fatalf("pow refusal not logged at WARN with its reason:\n%s", log)
	}
	if n := counter(t, svc, "nestbot_publish_refusals_total", map[string]string{"class": "refused"}); n < 3 {
		t.Fatalf("refusals counted %v, want at least 3", n)
	}
}

// A relay that wants NIP-42 AUTH for writes: the bot authenticates and
// sends once more.
func TestFaultPublishAuth(t *testing.T) {
	w, rs := progWorld(t, 1)
	rs[0].RequireAuthForWrites()
	w.startLogged(w.cfg)
	host := newUser(t)
	ex := <-w.sendAsync(host, w.restartRoom(host), 30*time.Second)
	if ex == nil {
		t.Fatal("no answer")
	}
	// The connection may have authenticated already for the bot's identity
	// events: then one copy, else auth-required and one more.
	if n := len(answerArrivals(rs[0], ex)); n < 1 || n > 2 {
		t.Fatalf("answer sent %d times, want 1 or 2", n)
	}
}

// The bot is restarted while no relay has accepted an answer: the next
// run sends the very same answer (kept in Redis) once the relay accepts.
func TestFaultPublishPendingAcrossRestart(t *testing.T) {
	w, rs := progWorld(t, 1)
	var open atomic.Bool
	rs[0].SetPolicy(w.isAnswer, func(_ *nostr.Event, _ int) relaytest.Reply {
		if open.Load() {
			return relaytest.Accept
		}
		return relaytest.Reply{Reason: "error: disk full"}
	})
	_, _, stop := w.startLogged(w.cfg)
	host := newUser(t)
	req := w.restartRoom(host)
	answer := w.sendAsync(host, req, 90*time.Second)
	waitFor(t, "answer pending in Redis", func() bool {
		return w.rdb.Exists(context.Background(), rooms.DefaultKeys.Answer(req.ID)).Val() == 1
	})
	answers := nostr.Filter{Kinds: []int{nostrx.DefaultResponseKind}, Tags: nostr.TagMap{"e": {req.ID}}}
	waitFor(t, "a refused copy", func() bool { return len(rs[0].ArrivalsOf(answers)) > 0 })
	stop()
	open.Store(true)
	w.startLogged(w.cfg)
	ex := <-answer
	if ex == nil {
		t.Fatal("no answer after the restart")
	}
	waitFor(t, "delivered answer no longer pending", func() bool {
		return w.rdb.Exists(context.Background(), rooms.DefaultKeys.Answer(req.ID)).Val() == 0
	})
	waitFor(t, "claim done", func() bool { return w.rdb.Get(context.Background(), rooms.DefaultKeys.Claim(req.ID)).Val() == "done" })
}

// Three replicas: the replica holding a pending answer stops; one of the
// others takes it over, and the relay gets it once.
func TestFaultPublishReplicas(t *testing.T) {
	w, rs := progWorld(t, 1)
	var open atomic.Bool
	var accepts atomic.Int32
	rs[0].SetPolicy(w.isAnswer, func(_ *nostr.Event, _ int) relaytest.Reply {
		if open.Load() {
			accepts.Add(1)
			return relaytest.Accept
		}
		return relaytest.Reply{Reason: "rate-limited: later"}
	})
	var svcs []*bot.Service
	var stops []func()
	for range 3 {
		svc, _, stop := w.startLogged(w.cfg)
		svcs, stops = append(svcs, svc), append(stops, stop)
	}
	host := newUser(t)
	req := w.restartRoom(host)
	answer := w.sendAsync(host, req, 90*time.Second)
	owner := -1
	waitFor(t, "one replica answered", func() bool {
		for i, svc := range svcs {
			if counter(t, svc, "nestbot_requests_total", nil) > 0 {
				owner = i
			}
		}
		return owner >= 0 && w.rdb.Exists(context.Background(), rooms.DefaultKeys.Answer(req.ID)).Val() == 1
	})
	stops[owner]()
	before := len(rs[0].Stored(nostr.Filter{Kinds: []int{nostrx.DefaultResponseKind}}))
	open.Store(true)
	ex := <-answer
	if ex == nil {
		t.Fatal("no answer after the owner stopped")
	}
	if before != 0 {
		t.Fatalf("%d answers stored before the relay accepted", before)
	}
	if n := accepts.Load(); n != 1 {
		t.Fatalf("answer sent %d times once the relay accepted, want 1", n)
	}
	stored := rs[0].Stored(nostr.Filter{IDs: []string{ex.Response.ID}})
	if len(stored) != 1 {
		t.Fatalf("answer stored %d times", len(stored))
	}
	var answered float64
	for _, svc := range svcs {
		answered += counter(t, svc, "nestbot_requests_total", nil)
	}
	if answered != 1 {
		t.Fatalf("%v replicas worked on the request, want 1", answered)
	}
	t.Logf("FIGURES replicas-pending: copies_sent_in_all=%d", len(answerArrivals(rs[0], ex)))
}

// An answer no relay accepts within nostr.response_ttl is given up: one
// ERROR line, the counter, and nothing left in Redis.
func TestFaultPublishGivenUp(t *testing.T) {
	w, rs := progWorld(t, 1)
	rs[0].SetPolicy(w.isAnswer, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{Reason: "error: never"}
	})
	w.cfg.Nostr.ResponseTTL = 3 * time.Second
	svc, log, _ := w.startLogged(w.cfg)
	host := newUser(t)
	req := w.restartRoom(host)
	ctx, cancel := waitCtx(5 * time.Second)
	defer cancel()
	if err := rs0Publish(ctx, w, host, req); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "answer given up", func() bool { return counter(t, svc, "nestbot_answers_given_up_total", nil) == 1 })
	if n := log.Lines("level=ERROR", "answer given up", "id="+req.ID); n != 1 {
		t.Fatalf("%d ERROR lines", n)
	}
	// The retrier removes the answer right after it counted it given up.
	waitFor(t, "the given-up answer removed from Redis", func() bool {
		return w.rdb.Exists(context.Background(), rooms.DefaultKeys.Answer(req.ID), rooms.DefaultKeys.AnswerLease(req.ID)).Val() == 0 &&
			w.rdb.ZCard(context.Background(), rooms.DefaultKeys.Answers()).Val() == 0
	})
}

// rs0Publish publishes req to the requester's relays without waiting for
// an answer.
func rs0Publish(ctx context.Context, w *world, u *user, req nostr.Event) error {
	for _, url := range w.clientRelays {
		if err := publishUntilAccepted(url, req, 5*time.Second); err != nil {
			return err
		}
	}
	return nil
}
