package bot

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/rooms"
)

// TestClaimsLifecycle walks one request id through every claim state on a
// real Redis, with two instances: one claims, the other is told it is busy
// while the first renews its lease, the first dies (its lease ends), the
// second takes over, answers and delivers.
func TestClaimsLifecycle(t *testing.T) {
	r := stack.StartRedis(t)
	opt, _ := redis.ParseURL(r.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	store := rooms.NewRedisStore(rdb, "nest:", "nestbot:", time.Hour)
	ctx := context.Background()
	// An owner lease of 1 s (renewed every 1/3 s): long enough that a
	// loaded machine running the race detector does not starve a's
	// renewals past it, as 300 ms could (see rooms.TestLockLease).
	mk := func() *claims {
		return &claims{store: store, instance: newInstanceID(), lease: time.Minute, ttl: time.Hour, renewEvery: time.Second / 3}
	}
	a, b := mk(), mk()
	hbCtx, stopA := context.WithCancel(ctx)
	go a.heartbeat(hbCtx)

	const id = "req-1"
	key := rooms.DefaultKeys.Claim(id)
	state := func(c *claims) claimOutcome {
		t.Helper()
		s, _, err := c.acquire(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := state(a); s != claimAcquired {
		t.Fatalf("first claim: %v", s)
	}
	if v := rdb.Get(ctx, key).Val(); !strings.HasPrefix(v, "w:"+a.instance+":") {
		t.Fatalf("claim value %q, want a's lease", v)
	}
	// a's heartbeat renews the lease: it is still busy after several leases.
	first := rdb.Get(ctx, key).Val()
	for rdb.Get(ctx, key).Val() == first {
		time.Sleep(10 * time.Millisecond)
	}
	if s := state(b); s != claimBusy {
		t.Fatalf("claim held by a live instance: %v, want busy", s)
	}
	if s, _, err := b.takeOver(ctx, id); err != nil || s != claimBusy {
		t.Fatalf("take-over of a live instance's claim: %v %v, want busy", s, err)
	}
	stopA() // a dies: its lease is no longer renewed and ends
	hbB, stopB := context.WithCancel(ctx)
	defer stopB()
	go b.heartbeat(hbB)
	for {
		s, _, err := b.takeOver(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s == claimTaken {
			break
		}
		if s != claimBusy {
			t.Fatalf("take-over of a dead instance's claim: %v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := state(a); s != claimBusy {
		t.Fatalf("b, alive, holds it now: %v, want busy", s)
	}
	if s, _, err := b.takeOver(ctx, "never-claimed"); err != nil || s != claimGone {
		t.Fatalf("take-over of no claim: %v %v, want gone", s, err)
	}

	resp := &nostr.Event{ID: "resp", Kind: 4313, Content: "x"}
	if err := b.answered(ctx, id, resp); err != nil {
		t.Fatal(err)
	}
	s, stored, err := a.acquire(ctx, id)
	if err != nil || s != claimAnswered || stored == nil || stored.ID != "resp" {
		t.Fatalf("answered claim: %v %+v %v", s, stored, err)
	}
	if err := b.delivered(ctx, id); err != nil {
		t.Fatal(err)
	}
	if s := state(a); s != claimDone {
		t.Fatalf("delivered claim: %v", s)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("done claim TTL %v", ttl)
	}
}

func TestSeenSetBounded(t *testing.T) {
	s := newSeenSet(3)
	for _, id := range []string{"a", "b", "c", "d"} {
		if !s.Add(id) {
			t.Fatalf("%s reported as seen", id)
		}
	}
	if s.Len() != 3 || s.Contains("a") || !s.Contains("d") {
		t.Fatalf("len %d, a=%v d=%v", s.Len(), s.Contains("a"), s.Contains("d"))
	}
	if s.Add("d") {
		t.Fatal("d added twice")
	}
	s.forget("d")
	if s.Contains("d") || !s.Add("d") {
		t.Fatal("forget did not forget")
	}
}
