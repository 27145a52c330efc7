package rooms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/nostrx"
)

// This file batches the Redis round trips of a restart (see
// docs/performance.md): the room lock and every read Engine needs before it
// acts go out in one pipeline, and the writes that end a restart, with the
// lock's release, in one transaction.
//
// That keeps the order of the commands where one connection to one server
// carries them. Redis runs a connection's commands in order, so the reads
// still happen after the lock is taken and the release after the writes.
// A *redis.Client (a single server, or the master Sentinel points to)
// carries everything on one connection. A Cluster client splits a
// pipeline by node and runs the parts concurrently, but the commands for
// one node keep their order on one connection: the key layout (keys.go)
// puts every bot key of a room in the room's slot, so the lock and the
// reads of that room still go together, and only the record (whose key
// belongs to the Nests API server) is read after the lock is held.

// RoomLock is RedisStore's HeldLock: a held per-room lock
// (nestbot:{<d>}:lock). Unlock releases it unless it was released
// already, by Commit or an earlier Unlock.
type RoomLock struct {
	store    *RedisStore
	key      string
	token    string
	released atomic.Bool
	// handed: a CommitLater took the lock over, and releases it with its
	// writes; Unlock leaves it alone until then.
	handed atomic.Bool
	renew  *renewal // see lease.go
}

func (s *RedisStore) newRoomLock(room string) *RoomLock {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return &RoomLock{store: s, key: s.keys.Lock(room), token: hex.EncodeToString(b[:])}
}

// Unlock releases the lock if this holder still has it. It is safe to call
// more than once and on a nil lock.
func (l *RoomLock) Unlock() {
	if l == nil || l.handed.Load() || l.released.Swap(true) {
		return
	}
	l.stopHold()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = unlockScript.Run(ctx, l.store.rdb, []string{l.key}, l.token).Err()
}

// RoomView is what Engine reads about the requested room before it acts.
// Each field has its own error; Engine reads a field whose error is set
// again on its own, with its usual retries.
type RoomView struct {
	Replacement    string // the ID of the room that replaced it, or ""
	ReplacementErr error
	Record         *Record // its record; nil when there is none
	RecordErr      error
	Cooling        bool // restarted within its cool-down
	CoolingErr     error
	Last           *nostr.Event // the last 30312 the bot published for it
	LastErr        error
	// Recreating: a restart in place was cut off after it deleted its
	// LiveKit room; RecreatingMark says which rooms that delete replaced
	// (ParseMark: "at:<ms>" or the old SID; see RedisStore.MarkRecreating).
	Recreating     bool
	RecreatingMark string
	RecreatingErr  error
	// Pending is the new ID a recreation of c that did not finish chose.
	Pending    string
	PendingErr error
}

// singleServer reports whether a pipeline goes to one server over one
// connection, so that Redis runs its commands in order.
func (s *RedisStore) singleServer() bool {
	_, ok := s.rdb.(*redis.Client)
	return ok
}

// LockView takes the lock of room c.D, waiting for it until ctx ends as
// Lock does, and then reads c's replacement and c.D's record, cool-down and
// last event. When nobody holds the lock, all of it is one round trip on
// a single server and two on a cluster (the record is in another slot).
func (s *RedisStore) LockView(ctx context.Context, c nostrx.Coordinate, ttl time.Duration) (HeldLock, RoomView, error) {
	l := s.newRoomLock(c.D)
	single := s.singleServer()
	pipe := s.rdb.Pipeline()
	locked := pipe.SetNX(ctx, l.key, l.token, leaseTTL(ttl))
	repl := pipe.Get(ctx, s.keys.Replaced(c))
	cool := pipe.Exists(ctx, s.keys.Cooldown(c.D))
	last := pipe.Get(ctx, s.keys.Event(c.D))
	mark := pipe.Get(ctx, s.recreatingKey(c.D))
	pending := pipe.Get(ctx, s.keys.Pending(c))
	var rec *redis.StringCmd
	if single {
		rec = pipe.Get(ctx, s.keys.RecordKey(c.D))
	}
	_, _ = pipe.Exec(ctx) // each command carries its own result or error
	ok, err := locked.Result()
	if err != nil || !ok {
		// Someone holds the room, or Redis did not answer: wait as Lock
		// does, then read afresh.
		if err := s.waitLock(ctx, c.D, l, ttl, err == nil); err != nil {
			return nil, RoomView{}, err
		}
		return l, s.readView(ctx, c), nil
	}
	l.hold(ttl)
	var v RoomView
	v.Replacement, v.ReplacementErr = decodeString(repl, "replacement of "+c.String())
	if rec != nil {
		v.Record, v.RecordErr = decodeRecord(rec, c.D)
	} else {
		v.Record, v.RecordErr = s.Record(ctx, c.D)
	}
	if n, err := cool.Result(); err != nil {
		v.CoolingErr = redisErr("cool-down of "+c.D, err)
	} else {
		v.Cooling = n > 0
	}
	v.Last, v.LastErr = decodeEvent(last, c.D)
	v.RecreatingMark, v.Recreating, v.RecreatingErr = decodeMark(mark, c.D)
	v.Pending, v.PendingErr = decodeString(pending, "pending replacement of "+c.String())
	return l, v, nil
}

// readView reads a RoomView one command at a time.
func (s *RedisStore) readView(ctx context.Context, c nostrx.Coordinate) RoomView {
	var v RoomView
	v.Replacement, v.ReplacementErr = s.Replacement(ctx, c)
	v.Record, v.RecordErr = s.Record(ctx, c.D)
	v.Cooling, v.CoolingErr = s.CoolingDown(ctx, c.D)
	v.Last, v.LastErr = s.LastEvent(ctx, c.D)
	v.RecreatingMark, v.Recreating, v.RecreatingErr = s.Recreating(ctx, c.D)
	v.Pending, v.PendingErr = s.getString(ctx, "pending replacement of "+c.String(), s.keys.Pending(c))
	return v
}

// ChoosePendingLast is ChoosePending followed by LastEvent of the ID that
// holds: one round trip on a single server when newID is chosen.
func (s *RedisStore) ChoosePendingLast(ctx context.Context, c nostrx.Coordinate, newID string, ttl time.Duration) (string, *nostr.Event, error) {
	if !s.singleServer() {
		id, err := s.ChoosePending(ctx, c, newID, ttl)
		if err != nil {
			return "", nil, err
		}
		last, err := s.LastEvent(ctx, id)
		return id, last, err
	}
	key := s.keys.Pending(c)
	pipe := s.rdb.Pipeline()
	set := pipe.SetNX(ctx, key, newID, ttl)
	get := pipe.Get(ctx, key)
	last := pipe.Get(ctx, s.keys.Event(newID))
	_, _ = pipe.Exec(ctx)
	ok, err := set.Result()
	if err != nil {
		return "", nil, redisErr("choose replacement of "+c.String(), err)
	}
	id := newID
	if !ok {
		if id, err = decodeString(get, "pending replacement of "+c.String()); err != nil {
			return "", nil, err
		}
	}
	if id != newID {
		ev, err := s.LastEvent(ctx, id) // an earlier, unfinished recreation
		return id, ev, err
	}
	ev, err := decodeEvent(last, id)
	return id, ev, err
}

// Writes are the Redis writes that end a restart. Commit applies the ones
// that are set in this order: the record, the last event, the replacement
// (and the end of the pending choice), the cool-down.
type Writes struct {
	Record         *Record            // as PutRecord writes it
	Event          *nostr.Event       // as SaveEvent writes it, and AddOwned (RemoveOwned when Closed)
	Closed         bool               // Event closes its room: the bot no longer looks after it
	Replaced       *nostrx.Coordinate // *Replaced was replaced by ReplacedBy (for ReplacementTTL); ends its pending choice
	ReplacedBy     string
	ReplacementTTL time.Duration
	Restarted      string // Restarted's cool-down starts (for Cooldown), and its recreation mark ends
	Cooldown       time.Duration
}

// Encode is the JSON a store keeps for w's record and event (nil for
// either one w does not write), shared by every State so that they store
// the same bytes.
func (w Writes) Encode() (record, event []byte, err error) {
	if w.Record != nil {
		if record, err = json.Marshal(w.Record); err != nil {
			return nil, nil, fmt.Errorf("encode record %s: %w", w.Record.ID, err)
		}
	}
	if w.Event != nil {
		if event, err = json.Marshal(w.Event); err != nil {
			return nil, nil, fmt.Errorf("encode event %s: %w", w.Event.ID, err)
		}
	}
	return record, event, nil
}

// Commit applies w and then releases lock (when not nil). On a single
// server it is one MULTI/EXEC: all the writes and the release, or none.
// On a cluster the record and the index of owned rooms go first, then one
// MULTI per room slot, the slot of the locked room last: an in-place
// restart's event, cool-down, end of its recreation mark and the release
// of its lock are one MULTI; a recreation writes the new room's event and
// cool-down, then the replacement, the end of the pending choice and the
// release together. A commit cut off half way is applied again by the
// retry (every write is idempotent); until the last MULTI the lock is held
// and the recreation stays pending, so no other request sees half of it.
func (s *RedisStore) Commit(ctx context.Context, w Writes, held HeldLock) error {
	lock, ok := held.(*RoomLock)
	if held != nil && !ok {
		return fmt.Errorf("commit restart: lock %T is not a RedisStore lock", held)
	}
	groups, release, err := s.commitOps(ctx, w, lock)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if len(g.fn) == 0 {
			continue
		}
		if err := s.tx(ctx, g.key, g.run); err != nil {
			return redisErr("commit restart", err)
		}
	}
	if release {
		lock.released.Store(true)
		lock.stopHold()
	}
	return nil
}

// ops are the writes of one slot, named by a key in it.
type ops struct {
	key string
	fn  []func(p redis.Pipeliner)
}

// run queues g's writes on p.
func (g *ops) run(p redis.Pipeliner) error {
	for _, f := range g.fn {
		f(p)
	}
	return nil
}

// commitOps are Commit's writes of w, grouped as Commit sends them: one
// group per slot, the locked room's slot last with the release of lock,
// all in one group on a single server. release says the lock is released
// by them.
func (s *RedisStore) commitOps(ctx context.Context, w Writes, lock *RoomLock) (groups []*ops, release bool, err error) {
	rec, ev, err := w.Encode()
	if err != nil {
		return nil, false, err
	}
	release = lock != nil && !lock.released.Load()
	group := func(key string, f func(p redis.Pipeliner)) {
		slot := redisHashTag(key)
		for _, g := range groups {
			if redisHashTag(g.key) == slot {
				g.fn = append(g.fn, f)
				return
			}
		}
		groups = append(groups, &ops{key: key, fn: []func(p redis.Pipeliner){f}})
	}
	if rec != nil {
		group(s.keys.RecordKey(w.Record.ID), func(p redis.Pipeliner) { p.Set(ctx, s.keys.RecordKey(w.Record.ID), rec, s.roomTTL) })
	}
	if ev != nil {
		d := w.Event.Tags.GetD()
		group(s.keys.Owned(), func(p redis.Pipeliner) {
			if w.Closed {
				p.SRem(ctx, s.keys.Owned(), d)
			} else {
				p.SAdd(ctx, s.keys.Owned(), d)
			}
		})
		group(s.keys.Event(d), func(p redis.Pipeliner) { p.Set(ctx, s.keys.Event(d), ev, eventTTL) })
	}
	if w.Restarted != "" {
		group(s.keys.Cooldown(w.Restarted), func(p redis.Pipeliner) {
			p.Set(ctx, s.keys.Cooldown(w.Restarted), time.Now().UnixMilli(), w.Cooldown)
			p.Del(ctx, s.recreatingKey(w.Restarted))
		})
	}
	if w.Replaced != nil {
		c := *w.Replaced
		group(s.keys.Replaced(c), func(p redis.Pipeliner) {
			p.Set(ctx, s.keys.Replaced(c), w.ReplacedBy, w.ReplacementTTL)
			p.Del(ctx, s.keys.Pending(c))
		})
	}
	if release {
		// The lock's slot goes last, with its release.
		tag := redisHashTag(lock.key)
		for i, g := range groups {
			if redisHashTag(g.key) == tag {
				groups = append(append(groups[:i:i], groups[i+1:]...), g)
				break
			}
		}
		group(lock.key, func(p redis.Pipeliner) { p.Eval(ctx, unlockSource, []string{lock.key}, lock.token) })
	}
	if s.singleServer() {
		all := &ops{}
		for _, g := range groups {
			all.key = g.key
			all.fn = append(all.fn, g.fn...)
		}
		groups = []*ops{all}
	}
	return groups, release, nil
}

// CommitLater lets the caller of Engine.Restart put the restart's final
// writes (Commit's, with the release of the room's lock) in the same
// transaction as the answer it builds from the Result: one round trip
// instead of two at the end of a restart (issue 15, CommitAnswered). The
// Result needs none of the writes, only what was decided before them.
//
// Engine.commit hands its writes and lock to the CommitLater of its Run
// (Engine.RestartRun) instead of applying them when the lock is a
// RedisStore's on a single server (on a cluster the answer and the room
// are in different slots, so nothing is won, and Commit runs as before).
// The lock stays held, and renewed, until the writes are applied, so no
// other request sees the room between the restart and its writes, as
// with Commit. The caller must then end it exactly once: CommitAnswered
// (the writes and the answer), Commit (the writes alone, as Engine would
// have) or Abort (neither: the restart is incomplete, the lock is
// released and the request is run again, as when Commit fails).
//
// It also carries a room lock taken, and the room read, with the
// request's claim (RedisStore.ClaimLocked, Prefetched) to Engine's first
// LockView of that room, so that the claim and the lock are one round
// trip on the way in.
type CommitLater struct {
	store *RedisStore
	w     Writes
	lock  *RoomLock
	pre   *LockedView
}

// Prefetched hands pre (nil: nothing) to the first LockView of its room
// in Engine.Restart. A pre no LockView took is released by ReleaseUnused.
func (cl *CommitLater) Prefetched(pre *LockedView) {
	if pre == nil {
		return
	}
	cl.ReleaseUnused()
	cl.pre = pre
}

// usePrefetched returns, once, the lock and view prefetched for c.
func (cl *CommitLater) usePrefetched(c nostrx.Coordinate) (*RoomLock, RoomView, bool) {
	if cl == nil || cl.pre == nil || cl.pre.room.Kind != c.Kind || cl.pre.room.Author != c.Author || cl.pre.room.D != c.D {
		return nil, RoomView{}, false
	}
	pre := cl.pre
	cl.pre = nil
	return pre.lock, pre.view, true
}

// ReleaseUnused releases a prefetched lock no LockView took (the request
// ended before its restart reached the room).
func (cl *CommitLater) ReleaseUnused() {
	if cl != nil && cl.pre != nil {
		cl.pre.Unlock()
		cl.pre = nil
	}
}

// LockTTL is how long a restart may hold its room's lock: its dependency
// budget three times over plus a relay look-up (ClaimLocked takes the
// lock for it).
func (e *Engine) LockTTL() time.Duration {
	return e.Set.DependencyBudget*3 + e.Set.LookupTimeout
}

// take keeps w and held for later when it can (see CommitLater); false:
// the caller commits now.
func (cl *CommitLater) take(w Writes, held HeldLock) bool {
	lock, ok := held.(*RoomLock)
	if cl == nil || !ok || lock == nil || cl.lock != nil || lock.released.Load() || !lock.store.singleServer() || !lock.handed.CompareAndSwap(false, true) {
		return false
	}
	cl.store, cl.w, cl.lock = lock.store, w, lock
	return true
}

// Pending reports whether cl holds writes not yet applied nor aborted.
func (cl *CommitLater) Pending() bool { return cl != nil && cl.lock != nil }

// end forgets the writes; the lock is released (by the writes, or by
// release true).
func (cl *CommitLater) end(release bool) {
	lock := cl.lock
	cl.lock, cl.w = nil, Writes{}
	lock.handed.Store(false)
	if release {
		lock.Unlock()
	}
}

// Commit applies the writes alone (RedisStore.Commit) and releases the
// lock with them. On an error the lock stays handed over: the caller
// retries, or Aborts. Nothing pending: nil.
func (cl *CommitLater) Commit(ctx context.Context) error {
	if !cl.Pending() {
		return nil
	}
	if err := cl.store.Commit(ctx, cl.w, cl.lock); err != nil {
		return err
	}
	cl.end(false)
	return nil
}

// Abort releases the lock without the writes: the restart is incomplete
// and is run again (the recreation mark and the pending choice lead the
// rerun to the same room, as after a failed Commit).
func (cl *CommitLater) Abort() {
	if cl.Pending() {
		cl.end(true)
	}
}

// CommitAnswered applies cl's writes, releases its lock and stores the
// answer a as AddAnswered does, all in one MULTI/EXEC on the single
// server (with SetWait, one WAIT after it): either the restart's writes
// and its answer, with the claim's answered state, or none of them. On an
// error the lock stays handed over, so the caller may retry or then
// Abort (or Commit alone). Every write is idempotent, so a retry of a
// transaction whose reply was lost changes nothing. cl not pending:
// AddAnswered.
func (s *RedisStore) CommitAnswered(ctx context.Context, cl *CommitLater, a PendingAnswer, claim string, claimTTL time.Duration, owner string, lease time.Duration) (stored *PendingAnswer, leased bool, err error) {
	if !cl.Pending() {
		return s.AddAnswered(ctx, a, claim, claimTTL, owner, lease)
	}
	if claim == "" {
		return nil, false, fmt.Errorf("pending answer %s: empty claim", a.ID)
	}
	groups, release, err := s.commitOps(ctx, cl.w, cl.lock)
	if err != nil {
		return nil, false, err
	}
	if len(groups) != 1 || !release {
		// take hands over only a held lock on a single server: one group.
		return nil, false, fmt.Errorf("commit restart with answer %s: %d groups", a.ID, len(groups))
	}
	q, err := s.answerOps(a, claim, claimTTL, owner, lease)
	if err != nil {
		return nil, false, err
	}
	err = s.tx(ctx, cl.lock.key, func(p redis.Pipeliner) error {
		_ = groups[0].run(p)
		q.queue(ctx, p)
		return nil
	})
	if err != nil {
		return nil, false, redisErr("commit restart with answer "+a.ID, err)
	}
	cl.lock.released.Store(true)
	cl.lock.stopHold()
	cl.end(false)
	return q.result(ctx)
}

// tx runs fn's commands as one MULTI/EXEC on the server that holds key's
// slot. With SetWait, it then waits on the same connection until the
// replicas acknowledged the writes (WAIT counts a connection's own writes).
func (s *RedisStore) tx(ctx context.Context, key string, fn func(redis.Pipeliner) error) error {
	if s.waitReplicas <= 0 {
		_, err := s.rdb.TxPipelined(ctx, fn)
		return err
	}
	return s.onConn(ctx, key, func(c *redis.Conn) error {
		_, err := c.TxPipelined(ctx, fn)
		return err
	})
}

// onConn runs fn on one connection to the master of key's slot and then,
// with SetWait, WAITs there for the replicas.
// Without SetWait fn gets nil and uses the client.
func (s *RedisStore) onConn(ctx context.Context, key string, fn func(*redis.Conn) error) error {
	if s.waitReplicas <= 0 {
		return fn(nil)
	}
	var node *redis.Client
	switch c := s.rdb.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, key)
		if err != nil {
			c.ReloadState(ctx)
			return err
		}
		node = n
	default:
		return fn(nil)
	}
	conn := node.Conn()
	defer conn.Close()
	if err := fn(conn); err != nil {
		if cc, ok := s.rdb.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx) // MOVED or a dead master: the slot map is stale
		}
		return err
	}
	if s.waitReplicas > 0 {
		// WAIT answering fewer replicas than asked (its timeout) is fine:
		// the write is done, the bot goes on. WAIT failing is not: the
		// connection broke, maybe with the master, before the write
		// reached a replica, so the caller writes it again (every write
		// through here is idempotent), on the new master if there is one.
		if err := conn.Wait(ctx, s.waitReplicas, s.waitTimeout).Err(); err != nil {
			if cc, ok := s.rdb.(*redis.ClusterClient); ok {
				cc.ReloadState(ctx)
			}
			return fmt.Errorf("wait for replicas: %w", err)
		}
	}
	return nil
}

// redisHashTag is the part of key that Redis Cluster hashes: the text
// between the first "{" and the next "}" when it is not empty, else the
// whole key. Keys with the same tag share a slot.
func redisHashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
