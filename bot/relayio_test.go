package bot

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/flood"
	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/nostrx"
)

// Look-ups on relays named by others share a small budget and end after
// strangerLookupTimeout: silent hints cannot hold more than strangerLookups
// connections, nor a caller longer than the timeout (plus the wait for a
// slot, bounded by the same timeout).
func TestStrangerLookupBudget(t *testing.T) {
	silent := flood.StartRelay()
	t.Cleanup(silent.Close)
	silent.Silent.Store(true)
	s := testService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.outbox = newOutbox(ctx, s.signer, s.log, newRelayPolicy(nil, true), nil, nil)
	defer s.outbox.close()
	// Lift the per-host cap (every test relay is on 127.0.0.1) so that the
	// budget is what bounds the look-ups.
	s.outbox.pool = relay.NewPool(relay.Options{AllowPrivate: true, MaxPerHost: 100, MaxConns: 100})

	const n = 3 * strangerLookups
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: nostr.GeneratePrivateKey(), D: "x"}
			ev, err := s.outbox.Latest(lctx, c, []string{fmt.Sprintf("%s/p%d", silent.URL, i)})
			if ev != nil || err != nil {
				t.Errorf("silent relay: %v %v", ev, err)
			}
			if lctx.Err() != nil {
				t.Error("a look-up on a silent hint ran until its caller's deadline")
			}
		}()
	}
	wg.Wait()
	if silent.Accepted.Load() == 0 {
		t.Fatal("no look-up reached the relay: the test proves nothing")
	}
	// Counted on the bot's side: the pool counts a connection from its
	// dial to the moment it closes the socket, which for a stranger's relay
	// is inside the look-up, before its slot is given back. The relay's own
	// count (flood.Relay.MostOpen) lags: it sees a close only when its
	// reader notices, after the next look-up may have connected.
	now, most := s.outbox.pool.Open()
	if most > strangerLookups {
		t.Fatalf("%d look-ups at once on strangers' relays, budget %d", most, strangerLookups)
	}
	if most < 2 {
		t.Fatalf("at most %d look-up at once: the budget was never approached", most)
	}
	if now != 0 {
		t.Fatalf("%d connections to strangers' relays left open after every look-up ended", now)
	}
}

// Look-ups on strangers' relays that find the budget in use skip the
// relay at once, beyond strangerWaiters of them: requests whose hints
// never answer held a worker each for the whole timeout waiting for a
// slot, so that a burst of them stalled every worker. Here the silent
// relays hold their slots until the test lets go (the timeout is lifted),
// and every look-up beyond the slots and the waiters must return while
// they still hold.
func TestStrangerLookupWaitersBounded(t *testing.T) {
	silent := flood.StartRelay()
	t.Cleanup(silent.Close)
	silent.Silent.Store(true)
	saved := strangerLookupTimeout
	strangerLookupTimeout = time.Hour
	t.Cleanup(func() { strangerLookupTimeout = saved })
	s := testService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.outbox = newOutbox(ctx, s.signer, s.log, newRelayPolicy(nil, true), nil, nil)
	defer s.outbox.close()
	s.outbox.pool = relay.NewPool(relay.Options{AllowPrivate: true, MaxPerHost: 100, MaxConns: 100})

	held, release := context.WithCancel(ctx)
	var done sync.WaitGroup
	var returned atomic.Int64
	look := func(i int) {
		defer done.Done()
		c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: nostr.GeneratePrivateKey(), D: "x"}
		s.outbox.Latest(held, c, []string{fmt.Sprintf("%s/p%d", silent.URL, i)})
		returned.Add(1)
	}
	for i := range strangerLookups {
		done.Add(1)
		go look(i)
	}
	waitUntil(t, "every slot held by a silent relay", func() bool { return silent.REQs.Load() == strangerLookups })
	const more = 3 * strangerLookups
	for i := range more {
		done.Add(1)
		go look(strangerLookups + i)
	}
	waitUntil(t, "the look-ups beyond the slots and the waiters returned", func() bool {
		return returned.Load() == more-strangerWaiters
	})
	release()
	done.Wait()
	if n := silent.REQs.Load(); n > strangerLookups+strangerWaiters {
		t.Fatalf("%d look-ups reached the silent relays, budget %d + %d waiting", n, strangerLookups, strangerWaiters)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// /readyz names the bot's relays refusing every write for writesStale, and
// clears once one accepts again.
func TestReadyzWritesFailing(t *testing.T) {
	o := newOutbox(context.Background(), nil, testService(t).log, newRelayPolicy([]string{"wss://own.example"}, false), []string{"wss://own.example"}, nil)
	defer o.close()
	ev := &nostr.Event{ID: "x", Kind: 4313}
	now := time.Now()
	o.observe(ev, relay.Result{URL: "wss://own.example", Class: relay.RateLimited})
	o.observe(ev, relay.Result{URL: "wss://stranger.example", Class: relay.Accepted}) // not one of the bot's relays
	if why := o.writesFailing(now.Add(writesStale / 2)); why != "" {
		t.Fatalf("not ready after %s: %s", writesStale/2, why)
	}
	ready := ops.Readiness{
		Relays: func() int { return 1 }, Redis: func(context.Context) error { return nil }, LiveKit: func(context.Context) error { return nil },
		Writes: func() string { return o.writesFailing(now.Add(writesStale + time.Second)) },
	}
	if why := ready.Check(context.Background(), o.log); why != "no configured relay has accepted a write for 2m0s" {
		t.Fatalf("readyz reason %q", why)
	}
	o.observe(ev, relay.Result{URL: "wss://own.example", Class: relay.Accepted})
	if why := ready.Check(context.Background(), o.log); why != "" {
		t.Fatalf("still not ready after an OK: %s", why)
	}
}
