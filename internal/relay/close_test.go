package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// frameLog is a relay that answers REQ with EOSE and EVENT with OK and
// records every frame's label and first argument, in order.
type frameLog struct {
	mu     sync.Mutex
	frames []string
}

func (l *frameLog) serve(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := context.Background()
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var parts []json.RawMessage
			var label, arg string
			if json.Unmarshal(b, &parts) != nil || len(parts) < 2 || json.Unmarshal(parts[0], &label) != nil {
				continue
			}
			if label == "EVENT" {
				var ev nostr.Event
				_ = json.Unmarshal(parts[1], &ev)
				arg = ev.ID
			} else {
				_ = json.Unmarshal(parts[1], &arg)
			}
			l.mu.Lock()
			l.frames = append(l.frames, label+" "+arg)
			l.mu.Unlock()
			switch label {
			case "REQ":
				out, _ := json.Marshal([]any{"EOSE", arg})
				_ = ws.Write(ctx, websocket.MessageText, out)
			case "EVENT":
				out, _ := json.Marshal([]any{"OK", arg, true, ""})
				_ = ws.Write(ctx, websocket.MessageText, out)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func (l *frameLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.frames...)
}

// waitFrames waits until the relay has n frames (or the test's deadline).
func (l *frameLog) waitFrames(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if f := l.got(); len(f) >= n {
			return f
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("relay got %v, want %d frames", l.got(), n)
	return nil
}

// A look-up's CLOSE goes out right before the connection's next frame, so
// a relay handles both in one wake-up; with no next frame it still goes
// out (closeDelay later). Either way every subscription the pool opened
// is closed on the relay, and the CLOSE never overtakes its REQ's EOSE.
func TestCloseRidesWithNextFrame(t *testing.T) {
	defer func(d time.Duration) { closeDelay = d }(closeDelay)
	filter := nostr.Filters{{Kinds: []int{10002}, Authors: []string{nostr.GeneratePrivateKey()}}}

	// The timer can not fire in this test: the CLOSE can only have gone
	// out with the EVENT.
	closeDelay = time.Hour
	var l frameLog
	url := l.serve(t)
	p := testPool(t, Options{Trusted: []string{url}})
	if _, err := p.Query(ctxT(t), url, filter, 10); err != nil {
		t.Fatal(err)
	}
	// Query has returned: the CLOSE waits on the connection, unsent.
	p.mu.Lock()
	c := p.conns[nostr.NormalizeURL(url)]
	p.mu.Unlock()
	if c == nil {
		t.Fatal("the pool dropped its own relay's connection")
	}
	c.mu.Lock()
	waiting := strings.Join(c.closing, ",")
	c.mu.Unlock()
	if waiting != "q1" {
		t.Fatalf("CLOSEs waiting after the look-up: %q, want q1", waiting)
	}
	ev := signed(t, "answer")
	if res := p.Publish(ctxT(t), url, ev); !res.OK() {
		t.Fatalf("publish: %+v", res)
	}
	if f := l.waitFrames(t, 3); strings.Join(f, "|") != "REQ q1|CLOSE q1|EVENT "+ev.ID {
		t.Fatalf("frames %v, want REQ, its CLOSE, then the EVENT", f)
	}

	// No next frame: the timer sends it.
	closeDelay = time.Millisecond
	var l2 frameLog
	url2 := l2.serve(t)
	p2 := testPool(t, Options{Trusted: []string{url2}})
	if _, err := p2.Query(ctxT(t), url2, filter, 10); err != nil {
		t.Fatal(err)
	}
	if f := l2.waitFrames(t, 2); strings.Join(f, "|") != "REQ q1|CLOSE q1" {
		t.Fatalf("frames %v, want REQ then its CLOSE", f)
	}
}
