// Package memstore holds in-memory implementations of what rooms.Engine
// depends on, for table tests of its decisions that run in milliseconds:
// Store (rooms.State), LiveKit (rooms.LiveKit) and Relays
// (rooms.RoomEvents). They are honest implementations, not scripted mocks:
// Store keeps the same keys, values, TTLs and atomicity as rooms.RedisStore
// on a single server (a conformance test in package rooms runs the same
// steps against both), LiveKit gives every created room a new SID as
// LiveKit does, and Relays keeps the newest version of each addressable
// event as a NIP-01 relay does. Each takes a Fail hook that makes an
// operation fail as its real counterpart fails when it is down.
//
// The real-Redis, real-LiveKit and real-relay tests stay; these sit
// beside them (the litestream mock/ idea).
package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// EventTTL is how long the last event the bot published for a room is
// kept, as rooms.RedisStore keeps it.
const EventTTL = 30 * 24 * time.Hour

// Clock is a settable clock shared by a Store and the Engine under test,
// so a test moves past a cool-down or a TTL without waiting.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// entry is one key: a string, or a set (the index of owned rooms).
type entry struct {
	val string
	set map[string]bool
	exp time.Time // zero: no expiry
}

// Store is an in-memory rooms.State. Keys are named by rooms.Keys exactly
// as rooms.RedisStore names them, values are written in the same form,
// and a key expires when its TTL has passed on the store's clock. Commit
// applies all its writes or none, as one MULTI/EXEC on a single Redis
// server does. A lock is held until it is released or its ttl has passed
// (RedisStore's holder renews its lease up to the ttl while it lives).
type Store struct {
	// Fail, when set, is called with an operation's name ("lock",
	// "record", "put record", "replacement", "choose pending", "cooling",
	// "mark recreating", "recreating", "count new room", "last event",
	// "commit") before it runs. An error it returns fails that operation
	// with nothing written, wrapped in rooms.ErrUnavailable as a Redis
	// error is.
	Fail func(op string) error

	mu      sync.Mutex
	keys    rooms.Keys
	roomTTL time.Duration
	now     func() time.Time
	data    map[string]entry
	freed   chan struct{} // closed, and replaced, whenever a lock is released
	tokens  int
}

var _ rooms.State = (*Store)(nil)

// New makes an empty store with the default key prefixes and roomTTL for
// records. now is its clock (nil: time.Now).
func New(roomTTL time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{keys: rooms.DefaultKeys, roomTTL: roomTTL, now: now, data: map[string]entry{}, freed: make(chan struct{})}
}

// Keys are the names of the keys the store writes.
func (s *Store) Keys() rooms.Keys { return s.keys }

// Snapshot returns every live key and its value (a set as its sorted
// members joined by ","), so a test can tell what an operation changed.
func (s *Store) Snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k := range s.data {
		e, ok := s.get(k)
		if !ok {
			continue
		}
		if e.set != nil {
			members := make([]string, 0, len(e.set))
			for m := range e.set {
				members = append(members, m)
			}
			slices.Sort(members)
			out[k] = strings.Join(members, ",")
			continue
		}
		out[k] = e.val
	}
	return out
}

// TTL is key's remaining time to live as Redis's PTTL reports it: -1 for
// a key without expiry, -2 for a missing key.
func (s *Store) TTL(key string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key)
	switch {
	case !ok:
		return -2
	case e.exp.IsZero():
		return -1
	}
	return e.exp.Sub(s.now())
}

// fail runs the Fail hook for op.
func (s *Store) fail(op string) error {
	if s.Fail == nil {
		return nil
	}
	if err := s.Fail(op); err != nil {
		return fmt.Errorf("memstore %s: %w: %w", op, rooms.ErrUnavailable, err)
	}
	return nil
}

// get returns key's entry unless it is missing or expired. Callers hold mu.
func (s *Store) get(key string) (entry, bool) {
	e, ok := s.data[key]
	if !ok {
		return entry{}, false
	}
	if !e.exp.IsZero() && !s.now().Before(e.exp) {
		delete(s.data, key)
		return entry{}, false
	}
	return e, true
}

// set writes key with ttl (0: no expiry). Callers hold mu.
func (s *Store) set(key, val string, ttl time.Duration) {
	e := entry{val: val}
	if ttl > 0 {
		e.exp = s.now().Add(ttl)
	}
	s.data[key] = e
}

// Record reads a room's record; nil when there is none.
func (s *Store) Record(ctx context.Context, id string) (*rooms.Record, error) {
	if err := s.fail("record"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.record(id)
}

func (s *Store) record(id string) (*rooms.Record, error) {
	e, ok := s.get(s.keys.RecordKey(id))
	if !ok {
		return nil, nil
	}
	var rec rooms.Record
	if err := json.Unmarshal([]byte(e.val), &rec); err != nil {
		return nil, fmt.Errorf("record %s is not valid JSON: %w", id, err)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("record for %s has id %q", id, rec.ID)
	}
	return &rec, nil
}

// PutRecord writes rec with the room TTL.
func (s *Store) PutRecord(ctx context.Context, rec *rooms.Record) error {
	if err := s.fail("put record"); err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", rec.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set(s.keys.RecordKey(rec.ID), string(b), s.roomTTL)
	return nil
}

// lock is the Store's rooms.HeldLock.
type lock struct {
	s        *Store
	key      string
	token    string
	released atomic.Bool
}

// Unlock releases the lock if this holder still has it.
func (l *lock) Unlock() {
	if l == nil || l.released.Swap(true) {
		return
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.release(l)
}

// release deletes l's key if it still holds l's token. Callers hold mu.
func (s *Store) release(l *lock) {
	if e, ok := s.get(l.key); ok && e.val == l.token {
		delete(s.data, l.key)
		close(s.freed)
		s.freed = make(chan struct{})
	}
}

// take takes room's lock, waiting for its release until ctx ends.
func (s *Store) take(ctx context.Context, room string, ttl time.Duration) (*lock, error) {
	if err := s.fail("lock"); err != nil {
		return nil, err
	}
	key := s.keys.Lock(room)
	for {
		s.mu.Lock()
		if _, held := s.get(key); !held {
			s.tokens++
			l := &lock{s: s, key: key, token: "token-" + strconv.Itoa(s.tokens)}
			s.set(key, l.token, ttl)
			s.mu.Unlock()
			return l, nil
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: held by another request: %w: %w", room, rooms.ErrUnavailable, ctx.Err())
		case <-freed:
		}
	}
}

// Lock takes room's lock, waiting for it until ctx ends.
func (s *Store) Lock(ctx context.Context, room string, ttl time.Duration) (func(), error) {
	l, err := s.take(ctx, room, ttl)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// LockView takes c.D's lock and reads what Engine reads before it acts;
// each field fails on its own (its operation's Fail hook), as each
// command of RedisStore's pipeline does.
func (s *Store) LockView(ctx context.Context, c nostrx.Coordinate, ttl time.Duration) (rooms.HeldLock, rooms.RoomView, error) {
	l, err := s.take(ctx, c.D, ttl)
	if err != nil {
		return nil, rooms.RoomView{}, err
	}
	var v rooms.RoomView
	v.Replacement, v.ReplacementErr = s.Replacement(ctx, c)
	v.Record, v.RecordErr = s.Record(ctx, c.D)
	v.Cooling, v.CoolingErr = s.CoolingDown(ctx, c.D)
	v.Last, v.LastErr = s.LastEvent(ctx, c.D)
	v.RecreatingMark, v.Recreating, v.RecreatingErr = s.Recreating(ctx, c.D)
	v.Pending, v.PendingErr = s.pending(c)
	return l, v, nil
}

func (s *Store) str(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, _ := s.get(key)
	return e.val
}

// Replacement returns the ID of the room that replaced c, or "".
func (s *Store) Replacement(ctx context.Context, c nostrx.Coordinate) (string, error) {
	if err := s.fail("replacement"); err != nil {
		return "", err
	}
	return s.str(s.keys.Replaced(c)), nil
}

func (s *Store) pending(c nostrx.Coordinate) (string, error) {
	if err := s.fail("pending"); err != nil {
		return "", err
	}
	return s.str(s.keys.Pending(c)), nil
}

// ChoosePendingLast records newID as c's pending replacement unless one is
// recorded, and returns the one that holds with its last event.
func (s *Store) ChoosePendingLast(ctx context.Context, c nostrx.Coordinate, newID string, ttl time.Duration) (string, *nostr.Event, error) {
	if err := s.fail("choose pending"); err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	key := s.keys.Pending(c)
	e, ok := s.get(key)
	id := e.val
	if !ok {
		s.set(key, newID, ttl)
		id = newID
	}
	s.mu.Unlock()
	last, err := s.LastEvent(ctx, id)
	return id, last, err
}

// CoolingDown reports whether room was (re)started within its cool-down.
func (s *Store) CoolingDown(ctx context.Context, room string) (bool, error) {
	if err := s.fail("cooling"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.get(s.keys.Cooldown(room))
	return ok, nil
}

// MarkRecreating notes that room's LiveKit room is gone; mark tells the
// new room from it (the old SID or "at:<ms>", see rooms.Replaced).
func (s *Store) MarkRecreating(ctx context.Context, room, mark string, ttl time.Duration) error {
	if err := s.fail("mark recreating"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := "sid:" + mark
	if strings.HasPrefix(mark, "at:") {
		v = mark
	}
	s.set(s.keys.Recreating(room), v, ttl)
	return nil
}

// Recreating returns the mark MarkRecreating left for room, if any.
func (s *Store) Recreating(ctx context.Context, room string) (string, bool, error) {
	if err := s.fail("recreating"); err != nil {
		return "", false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(s.keys.Recreating(room))
	if !ok {
		return "", false, nil
	}
	return strings.TrimPrefix(e.val, "sid:"), true, nil
}

// CountNewRoom counts a recreation under a new ID in now's minute.
func (s *Store) CountNewRoom(ctx context.Context, now time.Time) (int64, error) {
	if err := s.fail("count new room"); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := s.keys.NewRooms(now.Unix() / 60)
	e, _ := s.get(key)
	n, _ := strconv.ParseInt(e.val, 10, 64)
	n++
	s.set(key, strconv.FormatInt(n, 10), 2*time.Minute)
	return n, nil
}

// LastEvent returns the last 30312 the bot published for d, or nil.
func (s *Store) LastEvent(ctx context.Context, d string) (*nostr.Event, error) {
	if err := s.fail("last event"); err != nil {
		return nil, err
	}
	v := s.str(s.keys.Event(d))
	if v == "" {
		return nil, nil
	}
	var ev nostr.Event
	if err := json.Unmarshal([]byte(v), &ev); err != nil {
		return nil, fmt.Errorf("last event of %s is not valid JSON: %w", d, err)
	}
	return &ev, nil
}

// Commit applies w and releases held (when not nil), all at once, in the
// order RedisStore applies them.
func (s *Store) Commit(ctx context.Context, w rooms.Writes, held rooms.HeldLock) error {
	l, ok := held.(*lock)
	if held != nil && (!ok || l.s != s) {
		return fmt.Errorf("commit restart: lock %T is not this store's", held)
	}
	if err := s.fail("commit"); err != nil {
		return err
	}
	rec, ev, err := w.Encode()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec != nil {
		s.set(s.keys.RecordKey(w.Record.ID), string(rec), s.roomTTL)
	}
	if ev != nil {
		d := w.Event.Tags.GetD()
		owned, _ := s.get(s.keys.Owned())
		members := maps.Clone(owned.set)
		if members == nil {
			members = map[string]bool{}
		}
		if w.Closed {
			delete(members, d)
		} else {
			members[d] = true
		}
		if len(members) == 0 {
			delete(s.data, s.keys.Owned())
		} else {
			s.data[s.keys.Owned()] = entry{set: members}
		}
		s.set(s.keys.Event(d), string(ev), EventTTL)
	}
	if w.Restarted != "" {
		s.set(s.keys.Cooldown(w.Restarted), strconv.FormatInt(s.now().UnixMilli(), 10), w.Cooldown)
		delete(s.data, s.keys.Recreating(w.Restarted))
	}
	if w.Replaced != nil {
		s.set(s.keys.Replaced(*w.Replaced), w.ReplacedBy, w.ReplacementTTL)
		delete(s.data, s.keys.Pending(*w.Replaced))
	}
	if l != nil && !l.released.Swap(true) {
		s.release(l)
	}
	return nil
}
