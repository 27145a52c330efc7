package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// authSink is a relay that greets with an AUTH challenge, answers every
// EVENT with OK false "auth-required:" and never answers an AUTH: a relay
// (possibly one of the bot's own) that keeps the bot authenticating.
type authSink struct{ auths, events atomic.Int64 }

func (a *authSink) serve(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		_ = ws.Write(ctx, websocket.MessageText, []byte(`["AUTH","challenge"]`))
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var parts []json.RawMessage
			var label string
			if json.Unmarshal(b, &parts) != nil || len(parts) < 2 || json.Unmarshal(parts[0], &label) != nil {
				continue
			}
			switch label {
			case "AUTH":
				a.auths.Add(1)
			case "EVENT":
				a.events.Add(1)
				var ev nostr.Event
				_ = json.Unmarshal(parts[1], &ev)
				out, _ := json.Marshal([]any{"OK", ev.ID, false, "auth-required: who are you"})
				_ = ws.Write(ctx, websocket.MessageText, out)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// A relay that asks for AUTH and never confirms it costs each publish one
// bounded wait, and nothing that stays behind on the connection: no OK
// waiter per AUTH left in the connection's table (they piled up for its
// whole life), and publishes that wait at once share one AUTH event. The
// publishes' deadline is the test's: it ends them once every one of them
// is waiting on the AUTH.
func TestAuthNeverConfirmedLeavesNothing(t *testing.T) {
	sink := &authSink{}
	url := sink.serve(t)
	p := testPool(t, Options{Trusted: []string{url}, IdleTimeout: time.Hour, Signer: keySigner{nostr.GeneratePrivateKey()}})
	waiters := func(c *conn) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := 0
		for _, ws := range c.oks {
			n += len(ws)
		}
		return n
	}
	const n = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := p.Publish(ctx, url, signed(t, "x")); res.Class != AuthRequired {
				t.Errorf("publish: %+v, want auth-required", res)
			}
		}()
	}
	var c *conn
	waitFor(t, "every publish refused and waiting on one AUTH", func() bool {
		p.mu.Lock()
		c = p.conns[nostr.NormalizeURL(url)]
		p.mu.Unlock()
		return c != nil && sink.events.Load() == n && sink.auths.Load() >= 1 && waiters(c) == 1
	})
	cancel()
	wg.Wait()
	if left := waiters(c); left != 0 {
		t.Fatalf("%d OK waiters left on the connection after every publish returned", left)
	}
	if got := sink.auths.Load(); got != 1 {
		t.Fatalf("%d concurrent publishes sent %d AUTH events, want them to share one", n, got)
	}
}

// A relay that accepts the connection and never reads: once the socket's
// buffers are full the bot's writes would block, and each publish must
// still end by its deadline (WriteTimeout at most), with the connection
// given up rather than held.
func TestRelayThatNeverReads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	p := testPool(t, Options{Trusted: []string{url}, WriteTimeout: 500 * time.Millisecond})
	big := signed(t, strings.Repeat("x", 900<<10))
	blocked := 0
	for range 40 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		res := p.Publish(ctx, url, big)
		cancel()
		if res.OK() {
			t.Fatalf("a relay that never reads accepted: %+v", res)
		}
		if res.Class == Dropped {
			blocked++
		}
		if d := time.Since(start); d > 30*time.Second { // a bound, not a measurement: a blocked write would hang here
			t.Fatalf("a publish took %s", d)
		}
	}
	if blocked == 0 {
		t.Fatal("no write ever blocked: the socket's buffers never filled, the test proves nothing")
	}
}
