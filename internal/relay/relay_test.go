package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/relaytest"
	"github.com/nestbot/nestbot/internal/stack"
)

type keySigner struct{ sk string }

func (k keySigner) Sign(ev *nostr.Event) error { return ev.Sign(k.sk) }

func signed(t *testing.T, content string) *nostr.Event {
	t.Helper()
	ev := &nostr.Event{Kind: 1, CreatedAt: nostr.Now(), Tags: nostr.Tags{}, Content: content}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		t.Fatal(err)
	}
	return ev
}

func testPool(t *testing.T, o Options) *Pool {
	o.AllowPrivate = true // everything here is on loopback
	p := NewPool(o)
	t.Cleanup(p.Close)
	return p
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// FuzzParse: no frame makes Parse (or go-nostr's MessageParser, which the
// listener uses on the bot's own relays) panic, and what Parse accepts has
// the fields its label needs.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`["EVENT","x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err == nil {
			switch m.Label {
			case "EVENT":
				if m.Event == nil {
					t.Fatal("EVENT without an event")
				}
			case "OK", "EOSE", "CLOSED", "NOTICE", "AUTH":
			default:
				t.Fatalf("accepted label %q", m.Label)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
		_, _ = nostr.NewMessageParser().ParseMessage(string(data))
	})
}

func TestParse(t *testing.T) {
	for _, bad := range []string{`["EVENT","x`, `["EVENT"]`, `["EVENT","s",{"kind":"x"}]`, `["OK","x"]`, `["OK","x","yes"]`, `[]`, `["WHAT","x"]`, `{}`, `["NOTICE",1]`} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", bad, err)
		}
	}
	m, err := Parse([]byte(`["OK","abc",false,"rate-limited: slow"]`))
	if err != nil || m.Label != "OK" || m.EventID != "abc" || m.OK || m.Reason != "rate-limited: slow" {
		t.Fatalf("OK parsed as %+v, %v", m, err)
	}
	m, err = Parse([]byte(`["EVENT","s",{"id":"i","pubkey":"p","created_at":5,"kind":7,"tags":[["e","x"]],"content":"c","sig":"g"}]`))
	if err != nil || m.SubID != "s" || m.Event.Kind != 7 || m.Event.CreatedAt != 5 || m.Event.Tags[0][1] != "x" {
		t.Fatalf("EVENT parsed as %+v, %v", m, err)
	}
}

func TestExcerptCannotStartALogLine(t *testing.T) {
	got := Excerpt("x\ntime=2026 level=INFO msg=forged", 10)
	if strings.ContainsAny(got, "\n\r") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, `x\n`) {
		t.Fatalf("excerpt %q", got)
	}
}

func TestClassify(t *testing.T) {
	for reason, want := range map[string]Class{
		"rate-limited: slow down": RateLimited, "pow: 20 bits": Refused, "restricted: no": Refused,
		"blocked: you": Refused, "invalid: sig": Refused, "error: db": Failed, "whatever": Failed,
		"auth-required: x": AuthRequired, "duplicate: have it": Accepted,
	} {
		if got, _ := classify(false, reason); got != want {
			t.Errorf("%q: %s, want %s", reason, got, want)
		}
	}
	if got, _ := classify(true, ""); got != Accepted {
		t.Errorf("OK true: %s", got)
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n < 20; n++ {
		d := Backoff(n)
		if d < BackoffBase || d > BackoffCap*3/2 {
			t.Fatalf("attempt %d: %s", n, d)
		}
	}
}

func TestPublishOutcomes(t *testing.T) {
	r := relaytest.Start(t)
	p := testPool(t, Options{})
	ctx := ctxT(t)

	ok := signed(t, "ok")
	if res := p.Publish(ctx, r.URL, ok); res.Class != Accepted {
		t.Fatalf("accept: %+v", res)
	}
	r.SetPolicy(func(*nostr.Event) bool { return true }, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{Reason: "pow: 28 bits needed"}
	})
	if res := p.Publish(ctx, r.URL, signed(t, "pow")); res.Class != Refused || res.Prefix != "pow" {
		t.Fatalf("pow: %+v", res)
	}
	r.SetPolicy(func(*nostr.Event) bool { return true }, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{HangUp: true}
	})
	if res := p.Publish(ctx, r.URL, signed(t, "hangup")); res.Class != Dropped {
		t.Fatalf("hang-up counted as %+v", res)
	}
	r.SetPolicy(func(*nostr.Event) bool { return true }, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{Silent: true}
	})
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if res := p.Publish(sctx, r.URL, signed(t, "silent")); res.Class != NoOK {
		t.Fatalf("silence counted as %+v", res)
	}
	r.SetPolicy(nil, nil)
	got, err := p.Query(ctx, r.URL, nostr.Filters{{IDs: []string{ok.ID}}}, 10)
	if err != nil || len(got) != 1 || got[0].ID != ok.ID {
		t.Fatalf("query: %v %v", got, err)
	}
}

func TestPublishAuthenticatesOnce(t *testing.T) {
	r := relaytest.Start(t)
	r.RequireAuthForWrites()
	p := testPool(t, Options{Signer: keySigner{nostr.GeneratePrivateKey()}})
	ev := signed(t, "needs auth")
	if res := p.Publish(ctxT(t), r.URL, ev); res.Class != Accepted {
		t.Fatalf("with auth: %+v", res)
	}
	if n := len(r.Arrivals(ev.ID)); n != 2 {
		t.Fatalf("sent %d times, want 2 (refused, then after AUTH)", n)
	}
	noSigner := testPool(t, Options{})
	if res := noSigner.Publish(ctxT(t), r.URL, signed(t, "x")); res.Class != AuthRequired {
		t.Fatalf("without a signer: %+v", res)
	}
}

// A stranger's relay is closed as soon as it is unused, and the per-host
// cap holds however many distinct paths are named on one host.
func TestStrangerCapsAndShortLife(t *testing.T) {
	r := relaytest.Start(t)
	r.SetPolicy(func(*nostr.Event) bool { return true }, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{Silent: true}
	})
	p := testPool(t, Options{MaxPerHost: 3})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			p.Publish(ctx, r.URL+"/p"+string(rune('a'+i)), signed(t, "x"))
		}()
	}
	wg.Wait()
	if _, most := p.Open(); most > 3 {
		t.Fatalf("%d connections at once to one host, cap 3", most)
	}
	if now, _ := p.Open(); now != 0 {
		t.Fatalf("%d stranger connections left open", now)
	}
	waitFor(t, "relay sees every connection closed", func() bool { n, _ := r.Conns(); return n == 0 })
}

func TestTrustedStaysUntilIdle(t *testing.T) {
	r := relaytest.Start(t)
	p := testPool(t, Options{Trusted: []string{r.URL}, IdleTimeout: time.Hour})
	p.Publish(ctxT(t), r.URL, signed(t, "a"))
	p.Publish(ctxT(t), r.URL, signed(t, "b"))
	if now, most := p.Open(); now != 1 || most != 1 {
		t.Fatalf("open %d, most %d; want one kept connection", now, most)
	}
	if _, most := r.Conns(); most != 1 {
		t.Fatalf("relay saw %d connections", most)
	}
}

// hostile serves one WebSocket that sends frames on connect, then reads.
func hostile(t *testing.T, frames ...string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ws, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for _, f := range frames {
			if ws.Write(req.Context(), websocket.MessageText, []byte(f)) != nil {
				return
			}
		}
		for {
			if _, _, err := ws.Read(req.Context()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// Malformed frames, a NOTICE forging a log line and an oversized frame
// cost nothing but the connection; every relay message is logged through
// slog, quoted, cut to 200 bytes.
func TestHostileFrames(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	forged := "x\ntime=2026-01-01T00:00:00Z level=INFO msg=request outcome=ok"
	url := hostile(t, `["EVENT","x`, `["OK"`, `["NOTICE",`+quote(forged)+`]`, `["NOTICE","`+strings.Repeat("A", 4000)+`"]`,
		`["NOTICE","`+strings.Repeat("B", 5000)+`"]`)
	p := testPool(t, Options{Log: log, MaxMessage: 4500})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res := p.Publish(ctx, url, signed(t, "x"))
	if res.Class != Dropped {
		t.Fatalf("oversized frame did not end the connection: %+v", res)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "time=2026-01-01") {
			t.Fatalf("forged log line: %q", line)
		}
		if len(line) > 1000 {
			t.Fatalf("log line of %d bytes", len(line))
		}
	}
	if !strings.Contains(out, "relay NOTICE") || !strings.Contains(out, "malformed") {
		t.Fatalf("relay messages not logged at debug:\n%s", out)
	}
}

func quote(s string) string {
	b, _ := (&nostr.Event{Content: s}).MarshalJSON()
	i := bytes.Index(b, []byte(`"content":`))
	rest := b[i+len(`"content":`):]
	j := bytes.Index(rest, []byte(`,"sig"`))
	if j < 0 {
		j = bytes.LastIndexByte(rest, '}')
	}
	return string(rest[:j])
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A relay name that resolves to loopback is refused like the literal.
func TestPrivateNamesRefused(t *testing.T) {
	r := relaytest.Start(t)
	port := r.URL[strings.LastIndex(r.URL, ":"):]
	p := NewPool(Options{})
	t.Cleanup(p.Close)
	urls := []string{r.URL, "ws://localhost" + port}
	if name := stack.LoopbackHostname(); name != "" {
		urls = append(urls, "ws://"+name+port)
	}
	for _, u := range urls {
		res := p.Publish(ctxT(t), u, signed(t, "x"))
		if res.Class != Unreachable || !strings.Contains(res.Reason, ErrPrivateAddress.Error()) {
			t.Fatalf("%s: %+v", u, res)
		}
	}
	// A trusted relay may be private.
	own := NewPool(Options{Trusted: []string{r.URL}})
	t.Cleanup(own.Close)
	if res := own.Publish(ctxT(t), r.URL, signed(t, "x")); res.Class != Accepted {
		t.Fatalf("own relay: %+v", res)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A stranger holding the per-host cap on the host of a trusted relay does
// not keep the bot from its own relay.
func TestTrustedOutsideCaps(t *testing.T) {
	r := relaytest.Start(t)
	r.SetPolicy(func(ev *nostr.Event) bool { return ev.Content == "held" }, func(_ *nostr.Event, _ int) relaytest.Reply {
		return relaytest.Reply{Silent: true}
	})
	p := testPool(t, Options{Trusted: []string{r.URL}, MaxPerHost: 1, MaxConns: 1})
	held := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer close(held)
		p.Publish(ctx, r.URL+"/stranger", signed(t, "held"))
	}()
	waitFor(t, "the stranger's connection", func() bool { n, _ := r.Conns(); return n == 1 })
	if res := p.Publish(ctxT(t), r.URL, signed(t, "own")); res.Class != Accepted {
		t.Fatalf("own relay behind a stranger's cap: %+v", res)
	}
	cancel()
	<-held
}

// A relay that wants AUTH before REQ: the query authenticates and asks again.
func TestQueryAuthenticates(t *testing.T) {
	r := relaytest.Start(t)
	r.RequireAuthForReads()
	ev := signed(t, "stored")
	open := testPool(t, Options{Signer: keySigner{nostr.GeneratePrivateKey()}})
	if res := open.Publish(ctxT(t), r.URL, ev); !res.OK() {
		t.Fatalf("publish: %+v", res)
	}
	got, err := open.Query(ctxT(t), r.URL, nostr.Filters{{IDs: []string{ev.ID}}}, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("query with auth: %v %v", got, err)
	}
	anon := testPool(t, Options{})
	if _, err := anon.Query(ctxT(t), r.URL, nostr.Filters{{IDs: []string{ev.ID}}}, 10); err == nil || !strings.Contains(err.Error(), "auth-required") {
		t.Fatalf("query without a signer: %v", err)
	}
}

// OnREQ is told of every REQ: one per query or subscription, and the REQ
// sent again after an auth-required CLOSED.
func TestOnREQCounts(t *testing.T) {
	r := relaytest.Start(t)
	var mu sync.Mutex
	reqs := map[string]int{}
	count := func(u string) { mu.Lock(); reqs[u]++; mu.Unlock() }
	got := func() int { mu.Lock(); defer mu.Unlock(); return reqs[r.URL] }
	p := testPool(t, Options{Signer: keySigner{nostr.GeneratePrivateKey()}, OnREQ: count})
	ev := signed(t, "stored")
	if res := p.Publish(ctxT(t), r.URL, ev); !res.OK() {
		t.Fatalf("publish: %+v", res)
	}
	if n := got(); n != 0 {
		t.Fatalf("a publish counted %d REQs", n)
	}
	if _, err := p.Query(ctxT(t), r.URL, nostr.Filters{{IDs: []string{ev.ID}}}, 10); err != nil {
		t.Fatal(err)
	}
	if n := got(); n != 1 {
		t.Fatalf("one query counted %d REQs", n)
	}
	r.RequireAuthForReads()
	if res, err := p.Query(ctxT(t), r.URL, nostr.Filters{{IDs: []string{ev.ID}}}, 10); err != nil || len(res) != 1 {
		t.Fatalf("query with auth: %v %v", res, err)
	}
	if n := got(); n != 3 {
		t.Fatalf("after a query refused for auth and sent again: %d REQs, want 3", n)
	}
}
