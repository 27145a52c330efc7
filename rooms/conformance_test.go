package rooms_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
	"github.com/nestbot/nestbot/rooms/memstore"
)

// conformStore is a State whose keys a test can read back.
type conformStore struct {
	rooms.State
	dump func(t *testing.T) map[string]string // every key and its value
	ttl  func(t *testing.T, key string) time.Duration
}

// conformSteps runs the same steps against a store and checks what each
// returns; TestMemstoreConformsToRedis runs it against memstore and a real
// RedisStore and then compares the keys they hold, so memstore cannot
// drift from the store it stands in for.
func conformSteps(t *testing.T, s conformStore) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hostKey.pk, D: "room-a"}
	rec := &rooms.Record{ID: "room-a", Host: hostKey.pk, Admins: []string{hostKey.pk}, Speakers: []string{hostKey.pk},
		Relays: []string{"wss://relay.example.com"}, CreatedAt: 5, Status: rooms.StatusActive}

	if got, err := s.Record(ctx, "room-a"); got != nil || err != nil {
		t.Fatalf("Record of a missing room: %+v %v", got, err)
	}
	if err := s.PutRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Record(ctx, "room-a"); err != nil || got == nil || got.Host != rec.Host || !slices.Equal(got.Relays, rec.Relays) {
		t.Fatalf("Record: %+v %v", got, err)
	}
	if id, err := s.Replacement(ctx, c); id != "" || err != nil {
		t.Fatalf("Replacement of a room never replaced: %q %v", id, err)
	}
	if err := s.MarkRecreating(ctx, "room-a", "RM_old", time.Minute); err != nil {
		t.Fatal(err)
	}

	lk, v, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v.Record == nil || v.Record.ID != "room-a" || v.Cooling || v.Last != nil || v.Replacement != "" || v.Pending != "" ||
		!v.Recreating || v.RecreatingMark != "RM_old" ||
		v.RecordErr != nil || v.CoolingErr != nil || v.LastErr != nil || v.ReplacementErr != nil || v.PendingErr != nil || v.RecreatingErr != nil {
		t.Fatalf("LockView: %+v", v)
	}
	// The lock is held: another taker waits until its context ends.
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	if _, err := s.Lock(short, "room-a", time.Minute); !errors.Is(err, rooms.ErrUnavailable) {
		t.Fatalf("Lock of a held room: %v, want ErrUnavailable", err)
	}
	cancelShort()

	if id, last, err := s.ChoosePendingLast(ctx, c, "new-1", time.Hour); id != "new-1" || last != nil || err != nil {
		t.Fatalf("first choice: %q %v %v", id, last, err)
	}
	if id, _, err := s.ChoosePendingLast(ctx, c, "new-2", time.Hour); id != "new-1" || err != nil {
		t.Fatalf("second choice: %q %v, want the first to hold", id, err)
	}
	minute := time.Unix(1_760_000_000, 0)
	for want := int64(1); want <= 2; want++ {
		if n, err := s.CountNewRoom(ctx, minute); n != want || err != nil {
			t.Fatalf("CountNewRoom: %d %v, want %d", n, err, want)
		}
	}
	if err := s.Commit(ctx, rooms.Writes{Restarted: "room-x"}, foreignLock{}); err == nil {
		t.Fatal("Commit took another store's lock")
	}

	ev := &nostr.Event{Kind: nostrx.KindRoom, PubKey: botKey.pk, CreatedAt: 100, Tags: nostr.Tags{{"d", "new-1"}}, Content: ""}
	newRec := *rec
	newRec.ID = "new-1"
	if err := s.Commit(ctx, rooms.Writes{Record: &newRec, Event: ev, Replaced: &c, ReplacedBy: "new-1", ReplacementTTL: time.Hour,
		Restarted: "room-a", Cooldown: time.Minute}, lk); err != nil {
		t.Fatal(err)
	}
	lk.Unlock() // released by Commit already: a no-op
	unlock, err := s.Lock(ctx, "room-a", time.Minute)
	if err != nil {
		t.Fatalf("lock not released by Commit: %v", err)
	}
	unlock()
	if id, err := s.Replacement(ctx, c); id != "new-1" || err != nil {
		t.Fatalf("Replacement after Commit: %q %v", id, err)
	}
	if cooling, err := s.CoolingDown(ctx, "room-a"); !cooling || err != nil {
		t.Fatalf("CoolingDown after Commit: %v %v", cooling, err)
	}
	if _, marked, err := s.Recreating(ctx, "room-a"); marked || err != nil {
		t.Fatalf("recreation mark after Commit: %v %v", marked, err)
	}
	if last, err := s.LastEvent(ctx, "new-1"); err != nil || last == nil || last.CreatedAt != 100 || last.Tags.GetD() != "new-1" {
		t.Fatalf("LastEvent after Commit: %v %v", last, err)
	}
	if got, err := s.Record(ctx, "new-1"); err != nil || got == nil || got.ID != "new-1" {
		t.Fatalf("new record: %+v %v", got, err)
	}
	// A closing commit takes the room out of the owned index.
	closed := *ev
	closed.CreatedAt = 101
	if err := s.Commit(ctx, rooms.Writes{Event: &closed, Closed: true}, nil); err != nil {
		t.Fatal(err)
	}
}

type foreignLock struct{}

func (foreignLock) Unlock() {}

// TestMemstoreConformsToRedis runs conformSteps against memstore and a
// real RedisStore, then checks both hold the same keys with the same
// values and the same kind of TTL.
func TestMemstoreConformsToRedis(t *testing.T) {
	mem := memstore.New(time.Hour, nil)
	memStore := conformStore{
		State: mem,
		dump:  func(*testing.T) map[string]string { return mem.Snapshot() },
		ttl:   func(_ *testing.T, key string) time.Duration { return mem.TTL(key) },
	}
	t.Run("memstore", func(t *testing.T) { conformSteps(t, memStore) })
	if t.Failed() {
		return
	}
	srv := stack.StartRedis(t) // skipped under -short
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	onRedis := conformStore{
		State: rooms.NewRedisStore(rdb, "nest:", "nestbot:", time.Hour),
		dump: func(t *testing.T) map[string]string {
			ctx := context.Background()
			out := map[string]string{}
			for _, k := range rdb.Keys(ctx, "*").Val() {
				if rdb.Type(ctx, k).Val() == "set" {
					m := rdb.SMembers(ctx, k).Val()
					slices.Sort(m)
					out[k] = strings.Join(m, ",")
					continue
				}
				out[k] = rdb.Get(ctx, k).Val()
			}
			return out
		},
		ttl: func(_ *testing.T, key string) time.Duration {
			return rdb.PTTL(context.Background(), key).Val() // -1 and -2 as memstore's TTL
		},
	}
	t.Run("redis", func(t *testing.T) { conformSteps(t, onRedis) })

	memKeys, realKeys := memStore.dump(t), onRedis.dump(t)
	cooldown := mem.Keys().Cooldown("room-a")
	for _, m := range []map[string]string{memKeys, realKeys} {
		if _, ok := m[cooldown]; !ok {
			t.Fatalf("no cool-down key %s in %v", cooldown, m)
		}
		delete(m, cooldown) // its value is the time of the commit
	}
	if !maps.Equal(memKeys, realKeys) {
		t.Fatalf("memstore and Redis hold different keys:\nmemstore %v\nredis    %v", memKeys, realKeys)
	}
	for k := range memKeys {
		mt, rt := memStore.ttl(t, k), onRedis.ttl(t, k)
		if (mt < 0) != (rt < 0) || mt-rt > 5*time.Second || rt-mt > 5*time.Second {
			t.Errorf("TTL of %s: memstore %v, Redis %v", k, mt, rt)
		}
	}
}
