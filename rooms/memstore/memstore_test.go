package memstore_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
	"github.com/nestbot/nestbot/rooms/memstore"
)

// Keys expire on the store's clock: a test moves past a TTL at once.
func TestStoreExpiresOnItsClock(t *testing.T) {
	ctx := context.Background()
	clock := memstore.NewClock(time.Unix(1_760_000_000, 0))
	s := memstore.New(time.Hour, clock.Now)
	if err := s.Commit(ctx, rooms.Writes{Restarted: "r", Cooldown: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	if ttl := s.TTL(s.Keys().Cooldown("r")); ttl != time.Minute {
		t.Fatalf("TTL %v, want 1m", ttl)
	}
	clock.Advance(time.Minute - time.Millisecond)
	if cooling, _ := s.CoolingDown(ctx, "r"); !cooling {
		t.Fatal("cool-down over early")
	}
	clock.Advance(time.Millisecond)
	if cooling, _ := s.CoolingDown(ctx, "r"); cooling {
		t.Fatal("cool-down outlived its TTL")
	}
	if ttl := s.TTL(s.Keys().Cooldown("r")); ttl != -2 {
		t.Fatalf("TTL of an expired key %v, want -2", ttl)
	}
}

// A waiting Lock takes the lock once its holder releases it, and a
// released holder's Unlock never releases the next holder's lock.
func TestStoreLockHandOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := memstore.New(time.Hour, nil)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: "a", D: "r"}
	first, _, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		unlock, err := s.Lock(ctx, "r", time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- unlock
	}()
	first.Unlock()
	second := <-got
	first.Unlock() // again: a no-op
	if _, held := s.Snapshot()[s.Keys().Lock("r")]; !held {
		t.Fatal("a stale Unlock released the next holder's lock")
	}
	second()
	if _, held := s.Snapshot()[s.Keys().Lock("r")]; held {
		t.Fatal("lock not released")
	}
}

// A Commit that fails writes nothing and keeps the lock; the Fail hook's
// error is an ErrUnavailable, as a Redis that does not answer.
func TestStoreCommitFailsWhole(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(time.Hour, nil)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: "a", D: "r"}
	lk, _, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot()
	s.Fail = func(op string) error {
		if op == "commit" {
			return errors.New("connection reset")
		}
		return nil
	}
	err = s.Commit(ctx, rooms.Writes{Record: &rooms.Record{ID: "r"}, Replaced: &c, ReplacedBy: "n", ReplacementTTL: time.Hour}, lk)
	if !errors.Is(err, rooms.ErrUnavailable) {
		t.Fatalf("Commit = %v, want ErrUnavailable", err)
	}
	if after := s.Snapshot(); !maps.Equal(before, after) {
		t.Fatalf("a failed commit wrote: %v → %v", before, after)
	}
}
