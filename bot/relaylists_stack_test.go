//go:build !race

// go-nostr v0.52.3's Relay races with itself when a connection closes (see
// e2e/doc.go), so the test that dials a real relay through the outbox pool
// runs without the race detector; TestRelayListsShared covers the cache's
// own concurrency under it.

package bot

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
)

// TestRelayListsLookup looks lists up on a real relay from many goroutines
// at once (one lookup, shared), then serves them from the cache.
func TestRelayListsLookup(t *testing.T) {
	relay := stack.StartRelay(t)
	s := testService(t)
	s.cfg.Nostr.Relays = []string{relay.URL}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Its relays are all on loopback, and not all of them are the bot's.
	s.outbox = newOutbox(ctx, s.signer, s.log, newRelayPolicy(s.cfg.Nostr.Relays, true), s.cfg.Nostr.Relays, nil)
	defer s.outbox.close()

	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	rl, err := nostr.RelayConnect(ctx, relay.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	for _, ev := range []nostr.Event{
		{Kind: 10050, CreatedAt: nostr.Now() - 10, Tags: nostr.Tags{{"relay", "wss://old-dm.example.com"}}},
		{Kind: 10050, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"relay", "wss://dm.example.com"}}},
		{Kind: 10002, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"r", "wss://read.example.com", "read"}, {"r", "wss://write.example.com", "write"}}},
	} {
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		if err := rl.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	want := relayList{DM: []string{"wss://dm.example.com"}, Read: []string{"wss://read.example.com"}}
	var wg sync.WaitGroup
	got := make([]relayList, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = s.relayListsOf(ctx, pk)
		}()
	}
	wg.Wait()
	for _, l := range got {
		if !slices.Equal(l.DM, want.DM) || !slices.Equal(l.Read, want.Read) {
			t.Fatalf("lists %+v, want %+v", l, want)
		}
	}
	if l, ok := s.relayLists.cached(pk); !ok || !slices.Equal(l.DM, want.DM) {
		t.Fatalf("not cached: %+v %v", l, ok)
	}

	nobody, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	if l := s.relayListsOf(ctx, nobody); len(l.DM)+len(l.Read) != 0 {
		t.Fatalf("lists of a pubkey that published none: %+v", l)
	}
	if _, ok := s.relayLists.cached(nobody); !ok {
		t.Fatal("a miss is not cached")
	}
}
