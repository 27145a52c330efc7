package bot

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
)

// TestClaimsLifecycle walks one request id through every claim state on a
// real Redis, with two instances: one claims, the other is told it is busy,
// the first dies, the second takes over, answers and delivers.
func TestClaimsLifecycle(t *testing.T) {
	r := stack.StartRedis(t)
	opt, _ := redis.ParseURL(r.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	mk := func() *claims {
		return &claims{rdb: rdb, prefix: "nestbot:", instance: newInstanceID(), lease: time.Minute, ttl: time.Hour}
	}
	a, b := mk(), mk()
	hbCtx, stopA := context.WithCancel(ctx)
	go a.heartbeat(hbCtx)
	waitAlive := func(c *claims, want bool) {
		deadline := time.Now().Add(5 * time.Second)
		for (rdb.Exists(ctx, c.alive(c.instance)).Val() == 1) != want {
			if time.Now().After(deadline) {
				t.Fatalf("instance %s alive=%v never observed", c.instance, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAlive(a, true)

	const id = "req-1"
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
	if s := state(b); s != claimBusy {
		t.Fatalf("claim held by a live instance: %v, want busy", s)
	}
	stopA() // a dies: its heartbeat key goes away
	waitAlive(a, false)
	hbB, stopB := context.WithCancel(ctx)
	defer stopB()
	go b.heartbeat(hbB)
	waitAlive(b, true)
	if s := state(b); s != claimAcquired {
		t.Fatalf("claim of a dead instance: %v, want taken over", s)
	}
	if s := state(a); s != claimBusy {
		t.Fatalf("b, alive, holds it now: %v, want busy", s)
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
	if ttl := rdb.TTL(ctx, a.key(id)).Val(); ttl <= 0 || ttl > time.Hour {
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
