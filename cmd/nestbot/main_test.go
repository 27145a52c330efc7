package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/flood"
)

// The adopted room event goes to the relays of the room's relays tag,
// which whoever wrote the room event chose: one that greets with the
// frames that crash go-nostr's Relay reader (issue 9, item 2) must cost
// the command that relay, not the process.
func TestPublishOnceHostileRelay(t *testing.T) {
	evil := flood.StartRelay()
	t.Cleanup(evil.Close)
	evil.OnConnect = func(c *flood.Conn) {
		for _, f := range flood.MalformedFrames {
			if c.Send([]byte(f)) != nil {
				return
			}
		}
	}
	ev := nostr.Event{Kind: 30312, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", "x"}}}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := publishOnce(ctx, evil.URL, ev); err != nil {
		t.Fatalf("the relay answers OK after its junk: %v", err)
	}
	if evil.Published.Load() != 1 {
		t.Fatalf("the relay got %d events", evil.Published.Load())
	}
	evil.Silent.Store(true)
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if err := publishOnce(sctx, evil.URL, ev); err == nil {
		t.Fatal("a relay that never answers counted as having the event")
	}
}

// A zero or negative --timeout is refused with the flag's name, before
// anything is sent (it made a request that could never be answered and
// an error about a context deadline).
func TestRestartTimeoutFlag(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	for _, v := range []string{"0s", "-5s"} {
		cmd := rootCmd()
		cmd.SetArgs([]string{"restart", "30312:" + pk + ":room", "--key", sk, "--bot", pk, "--relay", "ws://127.0.0.1:1", "--timeout", v})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "--timeout") {
			t.Fatalf("--timeout %s: %v", v, err)
		}
	}
}
