package bot

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/nostrx"
)

// testService is a Service that is never Run: no Redis (a closed port), no
// outbox; its listeners, intake and queues work on their own.
func intakeTestService(t *testing.T, mod func(*config.Config)) *Service {
	t.Helper()
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", nostr.GeneratePrivateKey())
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.URL = "redis://127.0.0.1:1/0"
	cfg.Nostr.Relays = []string{"ws://127.0.0.1:1"}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request signs a restart request to s's bot by a fresh key.
func signedRequest(t *testing.T, s *Service, action string, createdAt nostr.Timestamp) nostr.Event {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	ev := nostrx.NewRequest(nostrx.DefaultRequestKind, s.PublicKey(),
		nostrx.Coordinate{Kind: nostrx.KindRoom, Author: pk, D: "room-1"}, action, "", "", createdAt, 0)
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

// scriptRelay is a relay whose behaviour the test scripts message by
// message: every message the bot sends arrives on got.
type scriptRelay struct {
	srv   *httptest.Server
	url   string
	got   chan nostr.Envelope
	mu    sync.Mutex
	conns []*websocket.Conn
	dials int
}

func newScriptRelay(t *testing.T) *scriptRelay {
	r := &scriptRelay{got: make(chan nostr.Envelope, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.dials++
		r.mu.Unlock()
		p := nostr.NewMessageParser()
		for {
			_, data, err := c.Read(req.Context())
			if err != nil {
				return
			}
			if env, err := p.ParseMessage(string(data)); err == nil {
				r.got <- env
			}
		}
	}))
	r.url = "ws" + strings.TrimPrefix(r.srv.URL, "http")
	t.Cleanup(func() {
		r.mu.Lock()
		for _, c := range r.conns {
			c.CloseNow()
		}
		r.mu.Unlock()
		r.srv.Close()
	})
	return r
}

// send writes to the newest connection.
func (r *scriptRelay) send(t *testing.T, v interface{ MarshalJSON() ([]byte, error) }) {
	t.Helper()
	b, _ := v.MarshalJSON()
	r.mu.Lock()
	c := r.conns[len(r.conns)-1]
	r.mu.Unlock()
	if err := c.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// sendFinal writes a message after which the bot is expected to hang up.
// The bot may close the connection as soon as the frame arrives, before
// the write returns, so a write error is not a failure: the test asserts
// what the bot did next instead.
func (r *scriptRelay) sendFinal(v interface{ MarshalJSON() ([]byte, error) }) {
	b, _ := v.MarshalJSON()
	r.mu.Lock()
	c := r.conns[len(r.conns)-1]
	r.mu.Unlock()
	_ = c.Write(context.Background(), websocket.MessageText, b)
}

func (r *scriptRelay) sendEvent(t *testing.T, sub string, ev nostr.Event) {
	t.Helper()
	r.send(t, nostr.EventEnvelope{SubscriptionID: &sub, Event: ev})
}

// next returns the next message from the bot of type T.
func nextMsg[T nostr.Envelope](t *testing.T, r *scriptRelay) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case env := <-r.got:
			if v, ok := env.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T from the bot", zero)
			return zero
		}
	}
}

// scriptedListener is a service whose only relay is a script relay, and
// that relay's listener, not yet running.
func scriptedListener(t *testing.T) (*scriptRelay, *Service, *listener) {
	t.Helper()
	relay := newScriptRelay(t)
	s := intakeTestService(t, func(c *config.Config) { c.Nostr.Relays = []string{relay.url} })
	return relay, s, s.listeners[0]
}

// runUntilDone runs f until the test ends, then cancels it and waits.
func runUntilDone(t *testing.T, f func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestListenerAuthThenSubscribe(t *testing.T) {
	relay, s, l := scriptedListener(t)
	runUntilDone(t, l.run)

	req := nextMsg[*nostr.ReqEnvelope](t, relay)
	f := req.Filters[0]
	if !slices.Equal(f.Kinds, []int{nostrx.DefaultRequestKind}) || !slices.Equal(f.Tags["p"], []string{s.PublicKey()}) || f.Since == nil {
		t.Fatalf("filter %v", f)
	}
	if floor := nostr.Timestamp(time.Now().Add(-s.cfg.Nostr.MaxRequestAge).Unix()); *f.Since < floor-1 {
		t.Fatalf("since %d older than max_request_age allows (%d)", *f.Since, floor)
	}
	// khatru's order: the challenge, then CLOSED auth-required.
	challenge := "c-123"
	relay.send(t, nostr.AuthEnvelope{Challenge: &challenge})
	relay.send(t, nostr.ClosedEnvelope{SubscriptionID: req.SubscriptionID, Reason: "auth-required: log in"})
	auth := nextMsg[*nostr.AuthEnvelope](t, relay)
	if ok, _ := auth.Event.CheckSignature(); !ok || auth.Event.PubKey != s.PublicKey() ||
		auth.Event.Tags.Find("challenge")[1] != challenge || auth.Event.Tags.Find("relay")[1] != relay.url {
		t.Fatalf("auth event %v", auth.Event)
	}
	if l.connected.Load() {
		t.Fatal("connected before the subscription was accepted")
	}
	relay.send(t, nostr.OKEnvelope{EventID: auth.Event.ID, OK: true})
	again := nextMsg[*nostr.ReqEnvelope](t, relay)
	relay.send(t, nostr.EOSEEnvelope(again.SubscriptionID))
	ev := signedRequest(t, s, "restart", nostr.Now())
	relay.sendEvent(t, again.SubscriptionID, ev)
	relay.sendEvent(t, req.SubscriptionID, signedRequest(t, s, "restart", nostr.Now())) // closed subscription: ignored
	select {
	case j := <-s.queue:
		if j.ev.ID != ev.ID || j.via != relay.url {
			t.Fatalf("queued %s via %s", j.ev.ID, j.via)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request not queued")
	}
	if !l.connected.Load() {
		t.Fatal("not connected after EOSE")
	}
	waitUntilTrue(t, "newest updated to the request", func() bool { return l.newest.Load() == int64(ev.CreatedAt) })
	select {
	case j := <-s.queue:
		t.Fatalf("an event of a closed subscription was queued: %s", j.ev.ID)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestListenerReconnectsAfterClosed(t *testing.T) {
	relay, _, l := scriptedListener(t)
	runUntilDone(t, l.run)

	first := nextMsg[*nostr.ReqEnvelope](t, relay)
	relay.sendFinal(nostr.ClosedEnvelope{SubscriptionID: first.SubscriptionID, Reason: "error: shutting down"})
	nextMsg[*nostr.ReqEnvelope](t, relay) // on a new connection, after backoff
	relay.mu.Lock()
	dials := relay.dials
	relay.mu.Unlock()
	if dials != 2 || l.reconnects.Load() != 1 {
		t.Fatalf("dials %d, reconnects %d", dials, l.reconnects.Load())
	}
}

// TestListenerOverflowCatchUp: with the verifier behind, events beyond the
// buffer are dropped unread and asked for again, from the oldest dropped
// one, once the backlog is gone.
func TestListenerOverflowCatchUp(t *testing.T) {
	relay, s, l := scriptedListener(t)
	l.normal = make(chan inbound, 2) // tiny, and no verifier running
	runUntilDone(t, func(ctx context.Context) { l.session(ctx) })

	req := nextMsg[*nostr.ReqEnvelope](t, relay)
	relay.send(t, nostr.EOSEEnvelope(req.SubscriptionID))
	now := nostr.Now()
	var evs []nostr.Event
	for i := range 5 {
		ev := signedRequest(t, s, "restart", now-nostr.Timestamp(10-i))
		evs = append(evs, ev)
		relay.sendEvent(t, req.SubscriptionID, ev)
	}
	waitUntilTrue(t, "three events dropped", func() bool { return l.overflow.Load() == 3 })
	if got := l.lost.Load(); got != int64(evs[2].CreatedAt) {
		t.Fatalf("lost %d, want the oldest dropped %d", got, evs[2].CreatedAt)
	}
	if !l.overflowing(time.Now()) || !s.relayOverflowing(relay.url) {
		t.Fatal("relay not counted as overloaded")
	}
	<-l.normal
	<-l.normal
	catch := nextMsg[*nostr.ReqEnvelope](t, relay)
	if !strings.HasPrefix(catch.SubscriptionID, "catchup-") || *catch.Filters[0].Since != evs[2].CreatedAt || catch.Filters[0].Until == nil {
		t.Fatalf("catch-up %s %v", catch.SubscriptionID, catch.Filters[0])
	}
	for _, ev := range evs[2:] {
		relay.sendEvent(t, catch.SubscriptionID, ev)
		select {
		case in := <-l.normal:
			if in.ev.ID != ev.ID {
				t.Fatalf("caught up %s, want %s", in.ev.ID, ev.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("catch-up event not buffered")
		}
	}
	relay.send(t, nostr.EOSEEnvelope(catch.SubscriptionID))
	if c := nextMsg[*nostr.CloseEnvelope](t, relay); string(*c) != catch.SubscriptionID {
		t.Fatalf("closed %s", *c)
	}
	if l.lost.Load() != 0 {
		t.Fatal("lost not cleared after the catch-up")
	}
}

func TestListenerSince(t *testing.T) {
	s := intakeTestService(t, nil)
	l := s.listeners[0]
	now := time.Now()
	floor := now.Add(-s.cfg.Nostr.MaxRequestAge).Unix()
	if got := int64(l.since(now)); got != floor {
		t.Fatalf("fresh start: %d, want %d", got, floor)
	}
	l.newest.Store(now.Unix() - 5)
	if got := int64(l.since(now)); got != now.Unix()-65 {
		t.Fatalf("since %d, want newest - 60s", got)
	}
	l.newest.Store(floor - 3600)
	if got := int64(l.since(now)); got != floor {
		t.Fatalf("newest minus slack is older than the floor: %d, want %d", got, floor)
	}
	l.newest.Store(now.Unix() - 5)
	l.lost.Store(now.Unix() - 100)
	if got := int64(l.since(now)); got != now.Unix()-100 {
		t.Fatalf("since %d, want the oldest lost", got)
	}
}

// TestScreenDropsJunkCheaply: junk is dropped in the reader, before any
// buffer; a known signer goes to the priority buffer.
func TestScreenDropsJunkCheaply(t *testing.T) {
	s := intakeTestService(t, nil)
	l := s.listeners[0]
	sess := &session{l: l}
	good := signedRequest(t, s, "restart", nostr.Now())
	stale := signedRequest(t, s, "restart", nostr.Now()-3600)
	other := good
	other.Tags = nostr.Tags{{"p", strings.Repeat("ab", 32)}}
	wrongKind := good
	wrongKind.Kind = 1
	for _, ev := range []nostr.Event{stale, other, wrongKind} {
		sess.accept(&ev, time.Now())
	}
	if len(l.normal)+len(l.prio) != 0 {
		t.Fatal("junk buffered")
	}
	sess.accept(&good, time.Now())
	if len(l.normal) != 1 {
		t.Fatal("request not buffered")
	}
	known := signedRequest(t, s, "restart", nostr.Now())
	s.known.Add(known.PubKey)
	sess.accept(&known, time.Now())
	if len(l.prio) != 1 {
		t.Fatal("known signer not in the priority buffer")
	}
	s.seen.Add(good.ID)
	sess.accept(&good, time.Now())
	if len(l.normal) != 1 {
		t.Fatal("a seen request buffered again")
	}
}

func waitUntilTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
