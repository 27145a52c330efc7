package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	iretry "github.com/nestbot/nestbot/internal/retry"
	"github.com/nestbot/nestbot/nostrx"
)

// RedisStore keeps room records under the Nests API server's prefix and the
// bot's own bookkeeping (claims, locks, replacements, published events)
// under a prefix of its own, so the two never collide. It is the only
// place that talks to Redis: every key it writes is listed in keys.go.
type RedisStore struct {
	rdb     redis.UniversalClient
	keys    Keys
	roomTTL time.Duration
	// waitReplicas, when above 0, makes claims and commits wait (WAIT) for
	// that many replicas to acknowledge them, for at most waitTimeout.
	waitReplicas int
	waitTimeout  time.Duration
}

// NewRedisStore wraps a go-redis client; recordPrefix is "nest:" for the
// Nests API server, botPrefix "nestbot:".
func NewRedisStore(rdb redis.UniversalClient, recordPrefix, botPrefix string, roomTTL time.Duration) *RedisStore {
	return &RedisStore{rdb: rdb, keys: Keys{Record: recordPrefix, Bot: botPrefix}, roomTTL: roomTTL}
}

// SetWait makes claims and the commits of restarts wait until n replicas
// acknowledged them (Redis WAIT), for at most timeout each: a master that
// dies right after acknowledging them then loses them only if its
// replicas did not get them within timeout either. 0 turns it off.
func (s *RedisStore) SetWait(n int, timeout time.Duration) {
	s.waitReplicas, s.waitTimeout = n, timeout
}

// Keys are the names of the keys this store writes.
func (s *RedisStore) Keys() Keys { return s.keys }

// Ping checks that Redis answers (readiness, start-up).
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return redisErr("ping", err)
	}
	return nil
}

func redisErr(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, ErrUnavailable, err)
}

// Record reads a room's record; it returns nil when there is none.
func (s *RedisStore) Record(ctx context.Context, id string) (*Record, error) {
	return decodeRecord(s.rdb.Get(ctx, s.keys.RecordKey(id)), id)
}

// decodeRecord reads the reply of a GET of id's record.
func decodeRecord(cmd *redis.StringCmd, id string) (*Record, error) {
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, redisErr("get record "+id, err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("record %s is not valid JSON: %w", id, err)
	}
	if err := rec.validate(id); err != nil {
		return nil, err
	}
	return &rec, nil
}

// PutRecord writes a record with the room TTL, as the Nests API server's
// SETEX does.
func (s *RedisStore) PutRecord(ctx context.Context, rec *Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", rec.ID, err)
	}
	if err := s.rdb.Set(ctx, s.keys.RecordKey(rec.ID), b, s.roomTTL).Err(); err != nil {
		return redisErr("set record "+rec.ID, err)
	}
	return nil
}

// unlockScript deletes a lock only if it still holds our token, so a worker
// whose lock expired can never release another worker's lock.
var unlockScript = redis.NewScript(unlockSource)

const unlockSource = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`

// Lock takes the per-room lock, waiting for it until ctx ends. ttl bounds how
// long a holder may keep it; a crashed holder blocks the room for at most
// lockLease (see lease.go). The returned func releases it.
func (s *RedisStore) Lock(ctx context.Context, room string, ttl time.Duration) (func(), error) {
	l := s.newRoomLock(room)
	if err := s.waitLock(ctx, room, l, ttl, false); err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// waitLock takes l, retrying with backoff until ctx ends; with taken set,
// a first attempt already found the lock held, so it waits before trying.
// A Redis error is retried like a held lock (a failover passes), and a
// wait that runs out is ErrUnavailable: the room stayed busy, or Redis
// did not answer, for the whole budget.
func (s *RedisStore) waitLock(ctx context.Context, room string, l *RoomLock, ttl time.Duration, taken bool) error {
	backoff := iretry.Lock.Backoff()
	var lastErr error
	for {
		if !taken {
			ok, err := s.rdb.SetNX(ctx, l.key, l.token, leaseTTL(ttl)).Result()
			if err == nil && ok {
				l.hold(ttl)
				return nil
			}
			lastErr = err
		}
		taken = false
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return redisErr("lock "+room, lastErr)
			}
			return fmt.Errorf("lock %s: held by another request: %w: %w", room, ErrUnavailable, ctx.Err())
		case <-time.After(backoff.NextBackOff()):
		}
	}
}

// Replacement returns the ID of the room that replaced the room at c, or "".
func (s *RedisStore) Replacement(ctx context.Context, c nostrx.Coordinate) (string, error) {
	return s.getString(ctx, "replacement of "+c.String(), s.keys.Replaced(c))
}

// ChoosePending records newID as c's replacement-to-be unless one is already
// recorded, and returns the one that holds: the first choice wins, so a
// resumed recreation finishes the same room.
func (s *RedisStore) ChoosePending(ctx context.Context, c nostrx.Coordinate, newID string, ttl time.Duration) (string, error) {
	key := s.keys.Pending(c)
	ok, err := s.rdb.SetNX(ctx, key, newID, ttl).Result()
	if err != nil {
		return "", redisErr("choose replacement of "+c.String(), err)
	}
	if ok {
		return newID, nil
	}
	return s.getString(ctx, "pending replacement of "+c.String(), key)
}

// recreatingKey marks a restart in place of room between the deletion of
// its LiveKit room and the commit. The value is the mark (Replaced.mark):
// "at:<ms>" as it is, or "sid:" and the deleted room's SID, so that an
// empty SID (no room was there) is still a mark; marks of older bots are
// all of the "sid:" form.
func (s *RedisStore) recreatingKey(room string) string { return s.keys.Recreating(room) }

// MarkRecreating notes that room's LiveKit room is gone and its
// replacement is being created; mark is what tells the new room from the
// old (the old SID, "" for none, or "at:<ms>", see Replaced).
func (s *RedisStore) MarkRecreating(ctx context.Context, room, mark string, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.recreatingKey(room), encodeMark(mark), ttl).Err(); err != nil {
		return redisErr("mark recreation of "+room, err)
	}
	return nil
}

// Recreating returns the mark MarkRecreating left for room, if any.
func (s *RedisStore) Recreating(ctx context.Context, room string) (oldSID string, marked bool, err error) {
	return decodeMark(s.rdb.Get(ctx, s.recreatingKey(room)), room)
}

// encodeMark is the stored value of a recreating mark; decodeMark reads
// it back (and marks of older bots, "sid:<SID>").
func encodeMark(mark string) string {
	if strings.HasPrefix(mark, markPrefix) {
		return mark
	}
	return "sid:" + mark
}

func decodeMark(cmd *redis.StringCmd, room string) (string, bool, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, redisErr("recreation mark of "+room, err)
	}
	return strings.TrimPrefix(v, "sid:"), true, nil
}

// CountNewRoom counts one room recreation under a new ID against the
// clock minute of now, across replicas, and returns the minute's count so
// far including it.
func (s *RedisStore) CountNewRoom(ctx context.Context, now time.Time) (int64, error) {
	return s.countMinute(ctx, s.keys.NewRooms(now.Unix()/60), "count new room")
}

// CoolingDown reports whether room was (re)created within its cool-down.
func (s *RedisStore) CoolingDown(ctx context.Context, room string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.Cooldown(room)).Result()
	if err != nil {
		return false, redisErr("cool-down of "+room, err)
	}
	return n > 0, nil
}

// eventTTL keeps the last event the bot published for a room long after the
// room's record, so created_at keeps increasing across long gaps.
const eventTTL = 30 * 24 * time.Hour

// LastEvent returns the last 30312 the bot published for d, or nil.
func (s *RedisStore) LastEvent(ctx context.Context, d string) (*nostr.Event, error) {
	return decodeEvent(s.rdb.Get(ctx, s.keys.Event(d)), d)
}

// decodeEvent reads the reply of a GET of d's last event.
func decodeEvent(cmd *redis.StringCmd, d string) (*nostr.Event, error) {
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, redisErr("get last event of "+d, err)
	}
	var ev nostr.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("last event of %s is not valid JSON: %w", d, err)
	}
	return &ev, nil
}

// SaveEvent stores ev as the last 30312 the bot published for its d.
func (s *RedisStore) SaveEvent(ctx context.Context, ev *nostr.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	d := ev.Tags.GetD()
	if err := s.rdb.Set(ctx, s.keys.Event(d), b, eventTTL).Err(); err != nil {
		return redisErr("save event of "+d, err)
	}
	return nil
}

func (s *RedisStore) getString(ctx context.Context, what, key string) (string, error) {
	return decodeString(s.rdb.Get(ctx, key), what)
}

// decodeString reads the reply of a GET, "" for a missing key.
func decodeString(cmd *redis.StringCmd, what string) (string, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", redisErr("get "+what, err)
	}
	return v, nil
}

// nextCreatedAt is strictly greater than last, and now when possible: a
// relay keeps only the newest version of an addressable event, so two
// versions within one second must not share a timestamp.
func nextCreatedAt(now time.Time, last *nostr.Event) nostr.Timestamp {
	ts := nostr.Timestamp(now.Unix())
	if last != nil && ts <= last.CreatedAt {
		ts = last.CreatedAt + 1
	}
	return ts
}
