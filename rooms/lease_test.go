package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/nestbot/nestbot/nostrx"
)

// TestLockLease: a held lock outlives its lease because its holder renews
// it; a holder that stops renewing (it died) blocks the room for one lease
// only, not for the ttl it asked for; renewal never outlives the ttl.
func TestLockLease(t *testing.T) {
	saved := lockLease
	// Short, for a fast test, but a renewal (every lease/3, each bounded
	// by lease/3) must not be starved for a whole lease by a loaded machine
	// running the race detector: at 300 ms one in about 30 runs lost a
	// held lock at load 15.
	lockLease = time.Second
	t.Cleanup(func() { lockLease = saved })
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)

	unlock, err := s.Lock(ctx, "room-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * lockLease)
	if ttl := rdb.PTTL(ctx, "nestbot:{room-a}:lock").Val(); ttl <= 0 || ttl > lockLease {
		t.Fatalf("held lock's TTL %v, want renewed within one lease", ttl)
	}
	unlock()
	if rdb.Exists(ctx, "nestbot:{room-a}:lock").Val() != 0 {
		t.Fatal("lock not released")
	}

	// A holder that dies: its lock stops being renewed.
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-b"}
	dead, _, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dead.(*RoomLock).stopHold()
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 10*lockLease)
	defer cancel()
	next, _, err := s.LockView(wctx, c, time.Minute)
	if err != nil {
		t.Fatalf("the dead holder's lock still blocks the room after %v: %v", time.Since(start), err)
	}
	if waited := time.Since(start); waited > 2*lockLease {
		t.Fatalf("waited %v for a dead holder's lock, want at most about one lease (%v)", waited, lockLease)
	}
	dead.Unlock() // not ours any more: must not release next's lock
	if rdb.Get(ctx, "nestbot:{room-b}:lock").Val() != next.(*RoomLock).token {
		t.Fatal("a stale holder released the new holder's lock")
	}
	next.Unlock()

	// Renewal ends with the ttl asked for.
	short, err := s.Lock(ctx, "room-c", 2*lockLease)
	if err != nil {
		t.Fatal(err)
	}
	_ = short
	time.Sleep(4 * lockLease)
	if rdb.Exists(ctx, "nestbot:{room-c}:lock").Val() != 0 {
		t.Fatal("a lock was renewed past its ttl")
	}
}
