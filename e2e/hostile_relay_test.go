//go:build faults

package e2e

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/flood"
	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// Issue 9, items 2, 3, 4 and 9: relays named by strangers (a request's
// hint) that answer with malformed frames, forged or huge NOTICEs, hold
// their connections, or sit on this machine behind a public-looking name.

// hintStatus asks for the status of a room that has no record, naming
// hint as where its event is: the bot looks the event up there.
func (w *world) hintStatus(u *user, hint string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := waitCtx(30 * time.Second)
		defer cancel()
		_, err := w.client(u).Send(ctx, coord(u.pk, uuid.NewString()), "status", hint, "")
		done <- err
	}()
	return done
}

// Item 2: a relay whose first frame is `["EVENT","x` (and other malformed
// frames) crashed the bot from inside go-nostr. The bot, a real process,
// looks up on it, stays up and answers a real restart after.
func TestFaultHostileFramesNoCrash(t *testing.T) {
	w := newWorld(t, 1)
	evil := startMalformedRelay(t)
	p := w.startBotProc(w.cfg, "bot")
	u := newUser(t)
	if err := <-w.hintStatus(u, evil.URL); err != nil {
		t.Fatalf("status with a hostile hint: %v", err)
	}
	if evil.Accepted.Load() == 0 {
		t.Fatal("the bot never connected to the hostile relay: the test proves nothing")
	}
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	if r := restartResult(t, w.ask(host, coord(host.pk, id), "restart").Payload); r.RoomID != id {
		t.Fatalf("%+v", r)
	}
	select {
	case <-p.done:
		t.Fatalf("the bot exited:\n%s", p.log())
	default:
	}
}

// Item 3: requests naming many distinct hint paths on one host open at
// most the per-host cap of connections there at once, and none stays open.
func TestFaultHintConnectionsBounded(t *testing.T) {
	w := newWorld(t, 1)
	evil := startFakeRelay(t) // answers EOSE and OK at once, like the attack's relay
	w.cfg.Limits.RestartsPerMinute = 1000
	w.start()
	const n = 40
	var errs []<-chan error
	for i := range n {
		errs = append(errs, w.hintStatus(newUser(t), fmt.Sprintf("%s/p%d", evil.URL, i)))
	}
	for _, e := range errs {
		if err := <-e; err != nil {
			t.Fatalf("status: %v", err)
		}
	}
	if evil.Accepted.Load() == 0 {
		t.Fatal("the bot never connected to the hint: the test proves nothing")
	}
	// The cap is 4 as the bot counts (internal/relay's
	// TestStrangerCapsAndShortLife checks it exactly); the relay sees a
	// closed connection go a moment later than the bot, so a few more
	// may overlap here. Before the fix it was one per request.
	if most := evil.MostOpen.Load(); most > 8 {
		t.Fatalf("%d connections at once to one host, cap 4", most)
	}
	waitFor(t, "no connection left open at the hint's host", func() bool { return evil.OpenNow.Load() == 0 })
	t.Logf("FIGURES hints: requests=%d connections=%d most_open=%d", n, evil.Accepted.Load(), evil.MostOpen.Load())
}

// Item 4: NOTICEs forging a log line, and huge ones, never reach the
// standard logger, never forge a line of the bot's log, and cost at most a
// frame limit each.
func TestFaultHostileNoticesLogged(t *testing.T) {
	var std bytes.Buffer
	var stdMu sync.Mutex
	log.SetOutput(lockedWriter{&stdMu, &std})
	defer log.SetOutput(os.Stderr)
	w := newWorld(t, 1)
	evil := startFakeRelay(t)
	forged := "time=2026-01-01T00:00:00Z level=INFO msg=request id=forged outcome=ok"
	evil.OnConnect = func(c *flood.Conn) {
		c.Send(flood.ForgedNotice(forged))
		for range 4 {
			if c.Send(flood.HugeNotice(4<<20)) != nil {
				return
			}
		}
	}
	_, botLog, _ := w.startLogged(w.cfg)
	u := newUser(t)
	if err := <-w.hintStatus(u, evil.URL); err != nil {
		t.Fatal(err)
	}
	if evil.Accepted.Load() == 0 {
		t.Fatal("the bot never connected to the hostile relay")
	}
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.ask(host, coord(host.pk, id), "restart")
	stdMu.Lock()
	stdOut := std.String()
	stdMu.Unlock()
	if stdOut != "" {
		t.Fatalf("the standard logger printed:\n%.500s", stdOut)
	}
	out := botLog.String()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "time=2026-01-01") {
			t.Fatalf("forged log line: %q", l)
		}
	}
	if len(out) > 1<<20 {
		t.Fatalf("log grew by %d bytes", len(out))
	}
	if !strings.Contains(out, "relay NOTICE") || !strings.Contains(out, `msg=request id=forged`) {
		t.Fatalf("the NOTICE is not logged at debug, escaped:\n%.2000s", out)
	}
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

// Item 9: a hint whose name resolves to loopback is judged like the IP
// literal: with nostr.allow_private_relays off, the bot never connects.
func TestFaultPrivateNameRefused(t *testing.T) {
	name := stack.LoopbackHostname()
	if name == "" {
		t.Skip("this machine's host name does not resolve to loopback only")
	}
	w := newWorld(t, 1)
	w.cfg.Nostr.AllowPrivateRelays = false
	evil := startFakeRelay(t)
	w.start()
	port := evil.URL[strings.LastIndex(evil.URL, ":"):]
	for _, hint := range []string{evil.URL, "ws://" + name + port + "/"} {
		if err := <-w.hintStatus(newUser(t), hint); err != nil {
			t.Fatal(err)
		}
	}
	if n := evil.Accepted.Load(); n != 0 {
		t.Fatalf("the bot connected %d times to a relay on loopback named by a stranger", n)
	}
}

// Refusals go to the bot's relays (where the requester reads the answer),
// never to a hint: a stranger cannot make the bot write to a relay of its
// choosing with a request that fails the checks.
func TestFaultRefusalNotSentToHint(t *testing.T) {
	w := newWorld(t, 1)
	evil := startFakeRelay(t)
	w.start()
	u := newUser(t)
	req := nostrx.NewRequest(nostrx.DefaultRequestKind, w.botPub(), coord(u.pk, "x"), "restart", evil.URL, "", nostr.Now(), 0)
	req.Tags[0][1] = "x" // not a coordinate: BAD_REQUEST
	if err := u.signer.Sign(&req); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := waitCtx(20 * time.Second)
	defer cancel()
	ex, err := w.client(u).SendEvent(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, ex.Payload, nostrx.CodeBadRequest)
	// A second request's full round trip: the first answer's sends are over.
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.ask(host, coord(host.pk, id), "restart")
	if n := evil.Published.Load(); n != 0 {
		t.Fatalf("the bot published %d events to the hint of a refused request", n)
	}
}

// Item 2, the other way in: a kind 10050 naming a hostile relay, then a
// NIP-17 help. The bot (a real process) replies there too, stays up, and
// answers a real restart after.
func TestFaultHostileDMRelayNoCrash(t *testing.T) {
	w := newWorld(t, 1)
	evil := startMalformedRelay(t)
	p := w.startBotProc(w.cfg, "bot")
	u := newUser(t)
	w.publishRelayLists(u, []string{evil.URL}, nil)
	w.sendDM(u, w.relayURLs(), "nip17", "help")
	waitFor(t, "the bot connected to the hostile DM relay", func() bool { return evil.Accepted.Load() > 0 })
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	if r := restartResult(t, w.ask(host, coord(host.pk, id), "restart").Payload); r.RoomID != id {
		t.Fatalf("%+v", r)
	}
	select {
	case <-p.done:
		t.Fatalf("the bot exited:\n%s", p.log())
	default:
	}
}
