package rooms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// TestStoreOnCluster runs every multi-key step of a restart on a real
// six-node Redis Cluster: the lock with the batched reads, the pending
// choice, the commit of a recreation under a new ID (the old room's and
// the new room's keys are in different slots), and the
// claim scripts, taking over a claim whose owner's lease ended. Before
// the hash-tagged layout the commit failed with CROSSSLOT and the claim
// take-over with "Script attempted to access a non local key".
func TestStoreOnCluster(t *testing.T) {
	c := stack.StartRedisCluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { cc.Close() })
	for _, wait := range []int{0, 1} {
		s := NewRedisStore(cc, "nest:", "nestbot:", time.Hour)
		s.SetWait(wait, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		host := hexKey(1)
		old := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: "gone-" + string(rune('a'+wait))}

		lk, view, err := s.LockView(ctx, old, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if view.Record != nil || view.RecordErr != nil || view.ReplacementErr != nil || view.LastErr != nil {
			t.Fatalf("view of a gone room: %+v", view)
		}
		newID, last, err := s.ChoosePendingLast(ctx, old, "new-"+old.D, time.Hour)
		if err != nil || newID != "new-"+old.D || last != nil {
			t.Fatalf("ChoosePendingLast = %q %v %v", newID, last, err)
		}
		rec := &Record{ID: newID, Host: host, Status: StatusActive}
		if err := s.PutRecord(ctx, rec); err != nil {
			t.Fatal(err)
		}
		ev := nostrx.BuildRoomEvent(nostrx.RoomSpec{D: newID, Starts: 1, Host: host}, 42)
		if err := s.Commit(ctx, Writes{Event: &ev, Replaced: &old, ReplacedBy: newID, ReplacementTTL: time.Hour,
			Restarted: newID, Cooldown: time.Minute}, lk); err != nil {
			t.Fatalf("commit of a recreation on a cluster: %v", err)
		}
		if got, err := s.Replacement(ctx, old); err != nil || got != newID {
			t.Fatalf("replacement = %q, %v", got, err)
		}
		if got, err := pendingOf(ctx, s, old); err != nil || got != "" {
			t.Fatalf("pending after commit = %q, %v", got, err)
		}
		if n := cc.Exists(ctx, s.keys.Lock(old.D)).Val(); n != 0 {
			t.Fatal("lock not released by the commit")
		}
		if cool, err := s.CoolingDown(ctx, newID); err != nil || !cool {
			t.Fatalf("cool-down of the new room: %v %v", cool, err)
		}
		if got, err := s.LastEvent(ctx, newID); err != nil || got == nil || got.CreatedAt != 42 {
			t.Fatalf("last event = %v, %v", got, err)
		}
		// In place: record, event, cool-down and release.
		lk2, view2, err := s.LockView(ctx, nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: newID}, time.Minute)
		if err != nil || view2.Record == nil || !view2.Cooling || view2.Last == nil {
			t.Fatalf("view of the new room: %+v %v", view2, err)
		}
		ev2 := nostrx.BuildRoomEvent(nostrx.RoomSpec{D: newID, Starts: 1, Host: host}, 43)
		if err := s.Commit(ctx, Writes{Record: rec, Event: &ev2, Restarted: newID, Cooldown: time.Minute}, lk2); err != nil {
			t.Fatalf("commit in place on a cluster: %v", err)
		}
		if rooms, err := s.EventRooms(ctx); err != nil || !contains(rooms, newID) {
			t.Fatalf("EventRooms = %v, %v", rooms, err)
		}

		// Claims: a's lease ends (it is never renewed), b takes over.
		id := "req-" + old.D
		// a's lease must outlast the next call under load (1 s; it is then waited out).
		if res, err := s.Claim(ctx, id, "aaaa", time.Minute, time.Second, true); err != nil || res != "acquired" {
			t.Fatalf("claim = %q, %v", res, err)
		}
		if res, err := s.Claim(ctx, id, "bbbb", time.Minute, time.Second, false); err != nil || res != "busy" {
			t.Fatalf("claim of a live owner = %q, %v", res, err)
		}
		for {
			res, err := s.Claim(ctx, id, "bbbb", time.Minute, time.Second, false)
			if err != nil {
				t.Fatalf("take-over on a cluster: %v", err)
			}
			if res == "taken" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ok, err := s.RenewClaim(ctx, id, "aaaa", time.Second); err != nil || ok {
			t.Fatalf("renewal by the old owner = %v, %v", ok, err)
		}
		if ok, err := s.RenewClaim(ctx, id, "bbbb", time.Second); err != nil || !ok {
			t.Fatalf("renewal by the owner = %v, %v", ok, err)
		}
		if held, err := s.RenewClaims(ctx, []string{id, "req-never"}, "bbbb", time.Second); err != nil || len(held) != 2 || !held[0] || held[1] {
			t.Fatalf("pipelined renewal = %v, %v", held, err)
		}
		if v := cc.Get(ctx, s.keys.Claim(id)).Val(); !strings.HasPrefix(v, "w:bbbb:") {
			t.Fatalf("claim value %q", v)
		}
		if err := s.ReleaseClaim(ctx, id, "bbbb"); err != nil || cc.Exists(ctx, s.keys.Claim(id)).Val() != 0 {
			t.Fatalf("release: %v", err)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestLockWaitIsUnavailable: a restart that waits for a room's lock for
// its whole budget is answered UNAVAILABLE (nothing changed; try again),
// not INTERNAL.
func TestLockWaitIsUnavailable(t *testing.T) {
	s, _ := pipelineStore(t)
	ctx := ctxFor(t)
	host := hexKey(1)
	room := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: "busy-room"}
	unlock, err := s.Lock(ctx, room.D, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	e := &Engine{State: s, Signer: hostSigner{}, Set: Settings{DependencyBudget: 200 * time.Millisecond, LookupTimeout: time.Second}}
	_, err = e.Restart(ctx, nostrx.Request{ID: "r", Requester: host, Action: nostrx.ActionRestart, Room: room})
	if code := nostrx.CodeOf(err); code != nostrx.CodeUnavailable {
		t.Fatalf("lock wait ran out: code %s (%v), want UNAVAILABLE", code, err)
	}
}

// flakyEvents refuses every publish while down, as relays that all
// refuse or are unreachable.
type flakyEvents struct {
	down      atomic.Bool
	published []*nostr.Event
}

func (f *flakyEvents) Latest(context.Context, nostrx.Coordinate, []string) (*nostr.Event, error) {
	return nil, nil
}

func (f *flakyEvents) Publish(_ context.Context, ev *nostr.Event, _ []string) error {
	if f.down.Load() {
		return errors.New("no relay accepted it")
	}
	f.published = append(f.published, ev)
	return nil
}

// TestRecreateAfterPublicChangeIsIncomplete: a recreation whose LiveKit
// room exists but whose replacement event no relay accepts is not a
// failure to answer (UNAVAILABLE) but ErrIncomplete, and running it again
// finishes the same new room, with one replacement event and the mapping.
func TestRecreateAfterPublicChangeIsIncomplete(t *testing.T) {
	s, _ := pipelineStore(t)
	lk := stack.StartLiveKit(t)
	lkRooms := NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute})
	ctx := ctxFor(t)
	sk := fmt.Sprintf("%064x", 7)
	signer, err := nostrx.NewSigner(sk, 10)
	if err != nil {
		t.Fatal(err)
	}
	host := hexKey(1)
	events := &flakyEvents{}
	events.down.Store(true)
	e := &Engine{State: s, LiveKit: lkRooms, Events: events, Signer: signer,
		Tokens: Tokens{APIKey: lk.APIKey, APISecret: lk.APISecret, TTL: time.Minute},
		Set:    Settings{Cooldown: time.Minute, DependencyBudget: 300 * time.Millisecond, LookupTimeout: 300 * time.Millisecond, NewRoomsPerMinute: 1}}
	old := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: "gone-room"}
	req := nostrx.Request{ID: "req-1", Requester: host, Action: nostrx.ActionRestart, Room: old}

	_, err = e.Restart(ctx, req)
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("publish refused after the room was created: %v (code %s), want ErrIncomplete", err, nostrx.CodeOf(err))
	}
	pending, err := pendingOf(ctx, s, old)
	if err != nil || pending == "" {
		t.Fatalf("pending choice after the cut: %q %v", pending, err)
	}
	if live, err := lkRooms.Find(ctx, pending); err != nil || live == nil {
		t.Fatalf("new LiveKit room %s: %v %v", pending, live, err)
	}

	events.down.Store(false)
	// The budget of one new room per minute is spent by the first attempt:
	// finishing it must not count again.
	res, err := e.Restart(ctx, req)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.RoomID != pending || !res.IsNewRoom || len(events.published) != 1 {
		t.Fatalf("resume finished room %s (pending %s), new %v, %d events", res.RoomID, pending, res.IsNewRoom, len(events.published))
	}
	if got, err := s.Replacement(ctx, old); err != nil || got != pending {
		t.Fatalf("replacement = %q, %v", got, err)
	}
}

// TestMigrateKeys: the long-lived keys of the layout before hash tags are
// found under their new names after MigrateKeys, with their TTL; a key the
// new version already wrote wins; other names are left alone.
func TestMigrateKeys(t *testing.T) {
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)
	a := hexKey(1)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: a, D: "old-room"}
	rdb.Set(ctx, "nestbot:replaced:"+a+":old-room", "new-room", time.Hour)
	rdb.Set(ctx, "nestbot:pending:"+a+":other-room", "pending-room", time.Hour)
	rdb.Set(ctx, "nestbot:event:new-room", `{"kind":30312}`, 0)
	rdb.Set(ctx, "nestbot:event:kept", "old", 0)
	rdb.Set(ctx, s.keys.Event("kept"), "new", 0)
	rdb.Set(ctx, "nestbot:replaced:nonsense", "x", 0)
	n, err := s.MigrateKeys(ctx)
	if err != nil || n != 3 {
		t.Fatalf("MigrateKeys = %d, %v; want 3", n, err)
	}
	if got, err := s.Replacement(ctx, c); err != nil || got != "new-room" {
		t.Fatalf("replacement after migration = %q, %v", got, err)
	}
	if ttl := rdb.TTL(ctx, s.keys.Replaced(c)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("migrated TTL %v", ttl)
	}
	if got, _ := pendingOf(ctx, s, nostrx.Coordinate{Kind: nostrx.KindRoom, Author: a, D: "other-room"}); got != "pending-room" {
		t.Fatalf("pending after migration = %q", got)
	}
	if got := rdb.Get(ctx, s.keys.Event("kept")).Val(); got != "new" {
		t.Fatalf("a key the new version wrote was overwritten: %q", got)
	}
	if rdb.Exists(ctx, "nestbot:replaced:"+a+":old-room", "nestbot:event:kept").Val() != 0 || rdb.Exists(ctx, "nestbot:replaced:nonsense").Val() != 1 {
		t.Fatal("old keys not removed, or a foreign key touched")
	}
	if n, err := s.MigrateKeys(ctx); err != nil || n != 0 {
		t.Fatalf("second MigrateKeys = %d, %v", n, err)
	}
}
