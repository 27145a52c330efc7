package rooms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
// That keeps the order of the commands only where one connection to one
// server carries them: a *redis.Client (a single server, or the master
// Sentinel points to). Redis runs a connection's commands in order, so the
// reads still happen after the lock is taken and the release after the
// writes. A Cluster client splits a pipeline across nodes and runs the
// parts concurrently, so there these methods send the commands one at a
// time, as Engine did before.

// RoomLock is a held per-room lock (nestbot:lock:<d>). Unlock releases it
// unless it was released already, by Commit or an earlier Unlock.
type RoomLock struct {
	store    *RedisStore
	key      string
	token    string
	released atomic.Bool
	renew    *renewal // see lease.go
}

func (s *RedisStore) newRoomLock(room string) *RoomLock {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return &RoomLock{store: s, key: s.BotKey("lock", room), token: hex.EncodeToString(b[:])}
}

// Unlock releases the lock if this holder still has it. It is safe to call
// more than once and on a nil lock.
func (l *RoomLock) Unlock() {
	if l == nil || l.released.Swap(true) {
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
	// Recreating: a restart in place was cut off after its LiveKit room
	// RecreatingSID was deleted (see RedisStore.MarkRecreating).
	Recreating    bool
	RecreatingSID string
	RecreatingErr error
}

// singleServer reports whether a pipeline goes to one server over one
// connection, so that Redis runs its commands in order.
func (s *RedisStore) singleServer() bool {
	_, ok := s.rdb.(*redis.Client)
	return ok
}

// LockView takes the lock of room c.D, waiting for it until ctx ends as
// Lock does, and then reads c's replacement and c.D's record, cool-down and
// last event. On a single server, when nobody holds the lock, all of it is
// one round trip.
func (s *RedisStore) LockView(ctx context.Context, c nostrx.Coordinate, ttl time.Duration) (*RoomLock, RoomView, error) {
	l := s.newRoomLock(c.D)
	if !s.singleServer() {
		if err := s.waitLock(ctx, c.D, l, ttl, false); err != nil {
			return nil, RoomView{}, err
		}
		return l, s.readView(ctx, c), nil
	}
	pipe := s.rdb.Pipeline()
	locked := pipe.SetNX(ctx, l.key, l.token, leaseTTL(ttl))
	repl := pipe.Get(ctx, s.BotKey(replacedKey(c)...))
	rec := pipe.Get(ctx, s.recordPrefix+c.D)
	cool := pipe.Exists(ctx, s.BotKey("last", c.D))
	last := pipe.Get(ctx, s.BotKey("event", c.D))
	mark := pipe.Get(ctx, s.recreatingKey(c.D))
	_, _ = pipe.Exec(ctx) // each command carries its own result or error
	ok, err := locked.Result()
	if err != nil {
		return nil, RoomView{}, redisErr("lock "+c.D, err)
	}
	if !ok {
		// Someone holds the room: wait as Lock does, then read afresh.
		if err := s.waitLock(ctx, c.D, l, ttl, true); err != nil {
			return nil, RoomView{}, err
		}
		return l, s.readView(ctx, c), nil
	}
	l.hold(ttl)
	var v RoomView
	v.Replacement, v.ReplacementErr = decodeString(repl, "replacement of "+c.String())
	v.Record, v.RecordErr = decodeRecord(rec, c.D)
	if n, err := cool.Result(); err != nil {
		v.CoolingErr = redisErr("cool-down of "+c.D, err)
	} else {
		v.Cooling = n > 0
	}
	v.Last, v.LastErr = decodeEvent(last, c.D)
	v.RecreatingSID, v.Recreating, v.RecreatingErr = decodeMark(mark, c.D)
	return l, v, nil
}

// readView reads a RoomView one command at a time.
func (s *RedisStore) readView(ctx context.Context, c nostrx.Coordinate) RoomView {
	var v RoomView
	v.Replacement, v.ReplacementErr = s.Replacement(ctx, c)
	v.Record, v.RecordErr = s.Record(ctx, c.D)
	v.Cooling, v.CoolingErr = s.CoolingDown(ctx, c.D)
	v.Last, v.LastErr = s.LastEvent(ctx, c.D)
	v.RecreatingSID, v.Recreating, v.RecreatingErr = s.Recreating(ctx, c.D)
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
	key := s.BotKey(pendingKey(c)...)
	pipe := s.rdb.Pipeline()
	set := pipe.SetNX(ctx, key, newID, ttl)
	get := pipe.Get(ctx, key)
	last := pipe.Get(ctx, s.BotKey("event", newID))
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
	Record         *Record            // PutRecord
	Event          *nostr.Event       // SaveEvent, and AddOwned (RemoveOwned when Closed)
	Closed         bool               // Event closes its room: the bot no longer looks after it
	Replaced       *nostrx.Coordinate // SetReplacement(*Replaced, ReplacedBy, ReplacementTTL)
	ReplacedBy     string
	ReplacementTTL time.Duration
	Restarted      string // MarkRestarted(Restarted, Cooldown), and the end of its recreation mark
	Cooldown       time.Duration
}

// Commit applies w and then releases lock (when not nil). On a single
// server it is one MULTI/EXEC: all the writes and the release, or none.
// Elsewhere the writes go one by one as before and the lock is left to its
// holder's Unlock.
func (s *RedisStore) Commit(ctx context.Context, w Writes, lock *RoomLock) error {
	if !s.singleServer() {
		return s.commitEach(ctx, w)
	}
	var rec, ev []byte
	var err error
	if w.Record != nil {
		if rec, err = json.Marshal(w.Record); err != nil {
			return fmt.Errorf("encode record %s: %w", w.Record.ID, err)
		}
	}
	if w.Event != nil {
		if ev, err = json.Marshal(w.Event); err != nil {
			return err
		}
	}
	release := lock != nil && !lock.released.Load()
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if rec != nil {
			p.Set(ctx, s.recordPrefix+w.Record.ID, rec, s.roomTTL)
		}
		if ev != nil {
			p.Set(ctx, s.BotKey("event", w.Event.Tags.GetD()), ev, eventTTL)
			if w.Closed {
				p.SRem(ctx, s.ownedKey(), w.Event.Tags.GetD())
			} else {
				p.SAdd(ctx, s.ownedKey(), w.Event.Tags.GetD())
			}
		}
		if w.Replaced != nil {
			p.Set(ctx, s.BotKey(replacedKey(*w.Replaced)...), w.ReplacedBy, w.ReplacementTTL)
			p.Del(ctx, s.BotKey(pendingKey(*w.Replaced)...))
		}
		if w.Restarted != "" {
			p.Set(ctx, s.BotKey("last", w.Restarted), time.Now().UnixMilli(), w.Cooldown)
			p.Del(ctx, s.recreatingKey(w.Restarted))
		}
		if release {
			p.Eval(ctx, unlockSource, []string{lock.key}, lock.token)
		}
		return nil
	})
	if err != nil {
		return redisErr("commit restart", err)
	}
	if release {
		lock.released.Store(true)
		lock.stopHold()
	}
	return nil
}

func (s *RedisStore) commitEach(ctx context.Context, w Writes) error {
	if w.Record != nil {
		if err := s.PutRecord(ctx, w.Record); err != nil {
			return err
		}
	}
	if w.Event != nil {
		if err := s.SaveEvent(ctx, w.Event); err != nil {
			return err
		}
		index := s.AddOwned
		if w.Closed {
			index = s.RemoveOwned
		}
		if err := index(ctx, w.Event.Tags.GetD()); err != nil {
			return err
		}
	}
	if w.Replaced != nil {
		if err := s.SetReplacement(ctx, *w.Replaced, w.ReplacedBy, w.ReplacementTTL); err != nil {
			return err
		}
	}
	if w.Restarted != "" {
		if err := s.MarkRestarted(ctx, w.Restarted, w.Cooldown); err != nil {
			return err
		}
		if err := s.rdb.Del(ctx, s.recreatingKey(w.Restarted)).Err(); err != nil {
			return redisErr("end recreation mark of "+w.Restarted, err)
		}
	}
	return nil
}
