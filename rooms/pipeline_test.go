package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

func pipelineStore(t *testing.T) (*RedisStore, *redis.Client) {
	t.Helper()
	srv := stack.StartRedis(t)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return NewRedisStore(rdb, "nest:", "nestbot:", time.Hour), rdb
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The batched reads see what the one-by-one reads see, and Commit writes
// what PutRecord and SaveEvent write, with a replacement and a cool-down.
func TestLockViewAndCommit(t *testing.T) {
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-a"}
	rec := &Record{ID: "room-a", Host: hexKey(1), Admins: []string{hexKey(1)}, Status: StatusActive, CreatedAt: 5}
	ev := &nostr.Event{Kind: nostrx.KindRoom, PubKey: hexKey(9), CreatedAt: 100, Tags: nostr.Tags{{"d", "room-a"}}}
	if err := s.PutRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, Writes{Restarted: "room-a", Cooldown: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "nestbot:{room-a}:replaced:"+hexKey(1), "room-b", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	if err := s.MarkRecreating(ctx, "room-a", "RM_old", time.Minute); err != nil {
		t.Fatal(err)
	}
	lk, v, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Recreating || v.RecreatingMark != "RM_old" || v.RecreatingErr != nil {
		t.Fatalf("recreation mark in the view: %v %q %v", v.Recreating, v.RecreatingMark, v.RecreatingErr)
	}
	want := s.readView(ctx, c)
	if v.Replacement != "room-b" || v.Record == nil || v.Record.Host != hexKey(1) || !v.Cooling || v.Last == nil || v.Last.CreatedAt != 100 {
		t.Fatalf("view %+v", v)
	}
	if v.Replacement != want.Replacement || !v.Cooling || v.Record.ID != want.Record.ID || v.Last.PubKey != want.Last.PubKey ||
		v.ReplacementErr != nil || v.RecordErr != nil || v.CoolingErr != nil || v.LastErr != nil {
		t.Fatalf("batched view %+v differs from one-by-one %+v", v, want)
	}
	if tok, _ := rdb.Get(ctx, "nestbot:{room-a}:lock").Result(); tok != lk.(*RoomLock).token {
		t.Fatalf("lock holds %q, want our token", tok)
	}

	// A second taker waits until Commit releases the lock.
	got := make(chan error, 1)
	go func() {
		l2, v2, err := s.LockView(ctx, c, time.Minute)
		if err == nil && (v2.Record == nil || v2.Record.Status != "changed") {
			err = errors.New("second holder read the record from before the commit")
		}
		l2.Unlock()
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second LockView returned while the lock was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}

	rec.Status = "changed"
	ev2 := &nostr.Event{Kind: nostrx.KindRoom, PubKey: hexKey(9), CreatedAt: 101, Tags: nostr.Tags{{"d", "room-a"}}}
	if err := rdb.Set(ctx, "nestbot:{room-a}:pending:"+hexKey(1), "room-b", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, Writes{Record: rec, Event: ev2, Replaced: &c, ReplacedBy: "room-c", ReplacementTTL: time.Hour,
		Restarted: "room-a", Cooldown: time.Minute}, lk); err != nil {
		t.Fatal(err)
	}
	if !lk.(*RoomLock).released.Load() {
		t.Fatal("Commit did not mark the lock released")
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	after := s.readView(ctx, c)
	if after.Replacement != "room-c" || after.Record.Status != "changed" || after.Last.CreatedAt != 101 || !after.Cooling {
		t.Fatalf("after commit %+v", after)
	}
	if n, _ := rdb.Exists(ctx, "nestbot:{room-a}:pending:"+hexKey(1)).Result(); n != 0 {
		t.Fatal("commit kept the pending choice")
	}
	if _, marked, err := s.Recreating(ctx, "room-a"); marked || err != nil {
		t.Fatalf("recreation mark after the commit: %v %v", marked, err)
	}
	if owned, _ := s.Owned(ctx); !slices.Equal(owned, []string{"room-a"}) {
		t.Fatalf("owned after commit %v: the lifecycle would not look after the room", owned)
	}
	if ttl := rdb.TTL(ctx, "nest:room-a").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("record TTL %s, want the room TTL", ttl)
	}
	var raw map[string]any
	b, _ := rdb.Get(ctx, "nestbot:{room-a}:event").Bytes()
	if json.Unmarshal(b, &raw) != nil || raw["created_at"] != float64(101) {
		t.Fatalf("saved event %s", b)
	}
	lk.Unlock() // a no-op after Commit
}

// A lock taken by someone else is not released by our Unlock or Commit.
func TestCommitKeepsForeignLock(t *testing.T) {
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-x"}
	lk, _, err := s.LockView(ctx, c, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // our lock expired
	other, err := s.Lock(ctx, "room-x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer other()
	if err := s.Commit(ctx, Writes{Restarted: "room-x", Cooldown: time.Minute}, lk); err != nil {
		t.Fatal(err)
	}
	lk.Unlock()
	if n, _ := rdb.Exists(ctx, "nestbot:{room-x}:lock").Result(); n != 1 {
		t.Fatal("another holder's lock was released")
	}
}

func TestChoosePendingLast(t *testing.T) {
	s, _ := pipelineStore(t)
	ctx := ctxFor(t)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "gone"}
	id, last, err := s.ChoosePendingLast(ctx, c, "new-1", time.Minute)
	if err != nil || id != "new-1" || last != nil {
		t.Fatalf("first choice: %q %v %v", id, last, err)
	}
	ev := &nostr.Event{Kind: nostrx.KindRoom, CreatedAt: 7, Tags: nostr.Tags{{"d", "new-1"}}}
	if err := s.SaveEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	id, last, err = s.ChoosePendingLast(ctx, c, "new-2", time.Minute)
	if err != nil || id != "new-1" || last == nil || last.CreatedAt != 7 {
		t.Fatalf("resumed choice: %q %v %v", id, last, err)
	}
	if id, err := s.ChoosePending(ctx, c, "new-3", time.Minute); err != nil || id != "new-1" {
		t.Fatalf("ChoosePending disagrees: %q %v", id, err)
	}
}

// TestCountNewRoom: the count is per clock minute, shared by every store on
// the same Redis (replicas), and its key expires.
func TestCountNewRoom(t *testing.T) {
	s, rdb := pipelineStore(t)
	other := NewRedisStore(rdb, "nest:", "nestbot:", time.Hour) // a second replica
	ctx := ctxFor(t)
	minute := time.Unix(1_800_000_000/60*60, 0)
	for i, st := range []*RedisStore{s, other, s} {
		n, err := st.CountNewRoom(ctx, minute.Add(time.Duration(i)*10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(i+1) {
			t.Fatalf("count %d, want %d", n, i+1)
		}
	}
	if n, err := s.CountNewRoom(ctx, minute.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("next minute: %d, %v", n, err)
	}
	if ttl := rdb.TTL(ctx, "nestbot:newrooms:30000000").Val(); ttl <= 0 || ttl > 2*time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
}

// A mark for a room that had no LiveKit room is still a mark.
func TestRecreatingMarkWithoutOldRoom(t *testing.T) {
	s, _ := pipelineStore(t)
	ctx := ctxFor(t)
	if _, marked, err := s.Recreating(ctx, "r"); marked || err != nil {
		t.Fatalf("no mark: %v %v", marked, err)
	}
	if err := s.MarkRecreating(ctx, "r", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if sid, marked, err := s.Recreating(ctx, "r"); !marked || sid != "" || err != nil {
		t.Fatalf("mark of a room without one: %q %v %v", sid, marked, err)
	}
}

// pendingOf reads the new ID a recreation of c that did not finish chose.
func pendingOf(ctx context.Context, s *RedisStore, c nostrx.Coordinate) (string, error) {
	return s.getString(ctx, "pending replacement of "+c.String(), s.keys.Pending(c))
}

// A restart's final writes handed to a CommitLater wait, with the room
// lock held (Unlock leaves it alone), until CommitAnswered writes them and
// the answer, the claim's answered state and the sending lease in one
// transaction and releases the lock; Abort releases the lock and writes
// nothing; a CommitAnswered that fails writes nothing and keeps the lock
// for a retry.
func TestCommitAnswered(t *testing.T) {
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-ca"}
	old := &Record{ID: "room-ca", Host: hexKey(1), Status: StatusActive, RestartedAt: 1}
	if err := s.PutRecord(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecreating(ctx, "room-ca", "RM_old", time.Minute); err != nil {
		t.Fatal(err)
	}
	rec := &Record{ID: "room-ca", Host: hexKey(1), Status: StatusActive, RestartedAt: 2}
	w := Writes{Record: rec, Restarted: "room-ca", Cooldown: time.Minute}
	lockKey := s.keys.Lock("room-ca")
	held := func() bool {
		n, err := rdb.Exists(ctx, lockKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	restartedAt := func() int64 {
		got, err := s.Record(ctx, "room-ca")
		if err != nil || got == nil {
			t.Fatalf("record: %+v %v", got, err)
		}
		return got.RestartedAt
	}
	answer := func(id string) PendingAnswer {
		return PendingAnswer{ID: id, Event: `{"id":"` + id + `"}`, Relays: []string{"wss://r.example.com"}, Deadline: time.Now().Add(time.Minute)}
	}

	// Aborted: the lock goes, nothing is written.
	lk, _, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cl := &CommitLater{}
	if !cl.take(w, lk) || !cl.Pending() {
		t.Fatal("CommitLater did not take a held lock's writes")
	}
	if (&CommitLater{}).take(w, lk) {
		t.Fatal("a second CommitLater took a lock already handed over")
	}
	lk.Unlock() // the restart's own deferred Unlock
	if !held() {
		t.Fatal("Unlock released a lock handed to a CommitLater")
	}
	cl.Abort()
	if held() || cl.Pending() {
		t.Fatal("Abort left the lock held")
	}
	if restartedAt() != 1 {
		t.Fatal("Abort wrote the record")
	}

	// A CommitAnswered that fails (here its context is over) writes
	// nothing and keeps the lock handed over, for a retry.
	lk, _, err = s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cl = &CommitLater{}
	if !cl.take(w, lk) {
		t.Fatal("CommitLater did not take the writes")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.CommitAnswered(done, cl, answer("req-ca1"), "r:x", time.Hour, "owner1", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("CommitAnswered with its context over: %v, want ErrUnavailable", err)
	}
	lk.Unlock()
	if !held() || !cl.Pending() || restartedAt() != 1 {
		t.Fatalf("after a failed CommitAnswered: lock held %v, pending %v, restarted_at %d; want held, pending, 1", held(), cl.Pending(), restartedAt())
	}
	if n, err := rdb.Exists(ctx, s.keys.Claim("req-ca1"), s.keys.Answer("req-ca1")).Result(); err != nil || n != 0 {
		t.Fatalf("a failed CommitAnswered wrote %d of the claim and the answer (%v)", n, err)
	}

	// The retry writes it all and releases the lock.
	stored, leased, err := s.CommitAnswered(ctx, cl, answer("req-ca1"), "r:x", time.Hour, "owner1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if stored == nil || stored.Event != `{"id":"req-ca1"}` || !leased {
		t.Fatalf("CommitAnswered returned %+v leased %v, want its answer, leased", stored, leased)
	}
	if held() || cl.Pending() {
		t.Fatal("CommitAnswered left the lock held")
	}
	if restartedAt() != 2 {
		t.Fatal("CommitAnswered did not write the record")
	}
	if _, marked, err := s.Recreating(ctx, "room-ca"); err != nil || marked {
		t.Fatalf("recreation mark after CommitAnswered: %v %v, want gone", marked, err)
	}
	if cooling, err := s.CoolingDown(ctx, "room-ca"); err != nil || !cooling {
		t.Fatalf("cool-down after CommitAnswered: %v %v", cooling, err)
	}
	if v, err := rdb.Get(ctx, s.keys.Claim("req-ca1")).Result(); err != nil || v != "r:x" {
		t.Fatalf("claim after CommitAnswered: %q %v", v, err)
	}
	if ids, err := rdb.ZRange(ctx, s.keys.Answers(), 0, -1).Result(); err != nil || !slices.Equal(ids, []string{"req-ca1"}) {
		t.Fatalf("index after CommitAnswered: %v %v", ids, err)
	}
	if ok, err := s.LeaseAnswer(ctx, "req-ca1", "owner2", time.Minute); err != nil || ok {
		t.Fatalf("another owner's lease after CommitAnswered: %v %v, want held by owner1", ok, err)
	}

	// Nothing pending: CommitAnswered is AddAnswered.
	if _, _, err := s.CommitAnswered(ctx, cl, answer("req-ca2"), "r:y", time.Hour, "owner1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, s.keys.Claim("req-ca2")).Result(); err != nil || v != "r:y" {
		t.Fatalf("claim after CommitAnswered with nothing pending: %q %v", v, err)
	}
	// A lock released already is not taken over.
	if (&CommitLater{}).take(w, lk) {
		t.Fatal("CommitLater took a released lock")
	}
}

// ClaimLocked takes the room's lock, and reads what LockView reads, only
// for a claim it acquires within the rate limit; the view is LockView's;
// the lock reaches Engine's first LockView of that room once, through a
// CommitLater, and an unused one is released.
func TestClaimLocked(t *testing.T) {
	s, rdb := pipelineStore(t)
	ctx := ctxFor(t)
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-cl"}
	rec := &Record{ID: "room-cl", Host: hexKey(1), Status: StatusActive, CreatedAt: 5}
	ev := &nostr.Event{Kind: nostrx.KindRoom, PubKey: hexKey(9), CreatedAt: 100, Tags: nostr.Tags{{"d", "room-cl"}}}
	if err := s.PutRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, Writes{Event: ev, Restarted: "room-cl", Cooldown: time.Minute}, nil); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, s.keys.Replaced(c), "room-x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecreating(ctx, "room-cl", "RM_old", time.Minute); err != nil {
		t.Fatal(err)
	}
	lockKey := s.keys.Lock("room-cl")
	held := func() bool {
		n, err := rdb.Exists(ctx, lockKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	now := time.Now()
	claim := func(id, owner string, limit int) (string, int64, *LockedView) {
		t.Helper()
		res, n, pre, err := s.ClaimLocked(ctx, id, owner, time.Minute, time.Minute, true, hexKey(5), now, limit, c, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return res, n, pre
	}

	res, n, pre := claim("req-cl1", "owner1", 5)
	if res != "acquired" || n != 1 || pre == nil || !held() {
		t.Fatalf("ClaimLocked of a free claim and room: %q %d pre %v held %v, want acquired 1 with the lock", res, n, pre != nil, held())
	}
	v := pre.view
	if v.Replacement != "room-x" || v.Record == nil || v.Record.CreatedAt != 5 || !v.Cooling || v.Last == nil || v.Last.CreatedAt != 100 ||
		!v.Recreating || v.RecreatingMark != "RM_old" || v.Pending != "" ||
		v.ReplacementErr != nil || v.RecordErr != nil || v.CoolingErr != nil || v.LastErr != nil || v.RecreatingErr != nil || v.PendingErr != nil {
		t.Fatalf("ClaimLocked's view: %+v", v)
	}

	// Another request for the same room while it is held: claimed and
	// counted, no lock (Engine waits for it as before).
	if res, n, pre2 := claim("req-cl2", "owner1", 5); res != "acquired" || n != 2 || pre2 != nil {
		t.Fatalf("ClaimLocked of a held room: %q %d pre %v, want acquired 2 without the lock", res, n, pre2 != nil)
	}
	// A claim another owner holds: busy, not counted, no lock.
	pre.Unlock()
	if res, n, pre3 := claim("req-cl1", "owner2", 5); res != "busy" || n != 0 || pre3 != nil || held() {
		t.Fatalf("ClaimLocked of a busy claim: %q %d pre %v held %v, want busy, nothing", res, n, pre3 != nil, held())
	}
	// Over the rate limit: claimed and counted (admit refuses it), no lock.
	if res, n, pre4 := claim("req-cl3", "owner1", 2); res != "acquired" || n != 3 || pre4 != nil || held() {
		t.Fatalf("ClaimLocked over the limit: %q %d pre %v held %v, want acquired 3 without the lock", res, n, pre4 != nil, held())
	}

	// Handed through a CommitLater to the first LockView of that room, once.
	_, _, pre = claim("req-cl4", "owner1", 10)
	if pre == nil {
		t.Fatal("ClaimLocked did not take the free lock")
	}
	cl := &CommitLater{}
	cl.Prefetched(pre)
	other := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(2), D: "room-cl"}
	if _, _, ok := cl.usePrefetched(other); ok {
		t.Fatal("a prefetched lock served another coordinate")
	}
	lk, got, ok := cl.usePrefetched(c)
	if !ok || lk != pre.lock || got.Record == nil {
		t.Fatal("the prefetched lock did not reach its room's LockView")
	}
	if _, _, ok := cl.usePrefetched(c); ok {
		t.Fatal("a prefetched lock served twice")
	}
	cl.ReleaseUnused()
	if !held() {
		t.Fatal("ReleaseUnused released a lock LockView took")
	}
	lk.Unlock()
	// Not taken by any LockView: released.
	_, _, pre = claim("req-cl5", "owner1", 10)
	cl.Prefetched(pre)
	cl.ReleaseUnused()
	if held() {
		t.Fatal("ReleaseUnused left an unused prefetched lock held")
	}
}
