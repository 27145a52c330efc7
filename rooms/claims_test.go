package rooms

import (
	"testing"
	"time"

	"github.com/nestbot/nestbot/nostrx"
)

// A request is counted against its requester's rate once, when its claim
// is new: taking the claim again (its owner after a lost reply) or over
// (from a dead owner) is the same request. A take-over at the limit still
// gets the room lock, so the recreation its dead owner started is
// finished, not refused.
func TestClaimCountsOnlyNew(t *testing.T) {
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)
	pk := hexKey(3)
	now := time.Now()
	window := s.keys.Rate(pk, now.Unix()/60)
	count := func() string { return rdb.Get(ctx, window).Val() }
	const lease = 50 * time.Millisecond

	res, n, err := s.ClaimCounted(ctx, "req-once", "owner1", time.Minute, lease, true, pk, now)
	if err != nil || res != "acquired" || n != 1 {
		t.Fatalf("new claim: %q %d %v, want acquired 1", res, n, err)
	}
	res, n, err = s.ClaimCounted(ctx, "req-once", "owner1", time.Minute, lease, true, pk, now)
	if err != nil || res != "taken" || n != 0 || count() != "1" {
		t.Fatalf("the owner's claim again: %q %d %v, window %s: want taken, not counted", res, n, err, count())
	}
	takeOver := func(owner string) {
		t.Helper()
		for {
			res, n, err := s.ClaimCounted(ctx, "req-once", owner, time.Minute, lease, false, pk, now)
			if err != nil {
				t.Fatal(err)
			}
			if res == "taken" {
				if n != 0 || count() != "1" {
					t.Fatalf("take-over by %s counted: %d, window %s", owner, n, count())
				}
				return
			}
			if res != "busy" {
				t.Fatalf("take-over by %s: %q", owner, res)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	takeOver("owner2") // owner1's lease ends: it died

	// At the limit (the window is full), a take-over still takes the room
	// lock and reads the room, uncounted; a new request is refused the lock.
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: pk, D: "room-once"}
	if err := rdb.Set(ctx, window, 5, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for {
		res, n, pre, err := s.ClaimLocked(ctx, "req-once", "owner3", time.Minute, lease, false, pk, now, 1, c, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if res == "busy" {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if res != "taken" || n != 0 || pre == nil || count() != "5" {
			t.Fatalf("take-over at the limit: %q %d pre %v window %s, want taken, uncounted, with the lock", res, n, pre != nil, count())
		}
		pre.Unlock()
		break
	}
	res, n, pre, err := s.ClaimLocked(ctx, "req-new", "owner3", time.Minute, lease, true, pk, now, 1, c, time.Minute)
	if err != nil || res != "acquired" || n != 6 || pre != nil {
		t.Fatalf("new request over the limit: %q %d pre %v %v, want acquired 6 without the lock", res, n, pre != nil, err)
	}
}
