package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/nostrx"
)

// This file holds what the upkeep of the bot's own rooms needs from Redis
// and LiveKit: an index of the rooms whose 30312 the bot published, batch
// reads of their last events, the LiveKit room list. The decisions are in
// lifecycle_decide.go, the publisher in publish.go; bot/lifecycle.go runs
// the loop (webhook hints, reconcile ticks) that applies them.

// NextCreatedAt is the created_at of the next version of an addressable
// event whose last version is last: now when possible, and always strictly
// greater than last's, so a relay never keeps the older of two versions.
// Engine uses the same rule.
func NextCreatedAt(now time.Time, last *nostr.Event) nostr.Timestamp {
	return nextCreatedAt(now, last)
}

// ownedKey is the Redis set of the d's whose 30312 the bot published and
// still looks after (neither closed nor forgotten).
func (s *RedisStore) ownedKey() string { return s.keys.Owned() }

// AddOwned adds rooms to the bot's index of rooms it looks after.
func (s *RedisStore) AddOwned(ctx context.Context, ds ...string) error {
	if len(ds) == 0 {
		return nil
	}
	members := make([]any, len(ds))
	for i, d := range ds {
		members[i] = d
	}
	if err := s.rdb.SAdd(ctx, s.ownedKey(), members...).Err(); err != nil {
		return redisErr("add owned rooms", err)
	}
	return nil
}

// RemoveOwned drops rooms from the index (closed, or no longer the bot's).
func (s *RedisStore) RemoveOwned(ctx context.Context, ds ...string) error {
	if len(ds) == 0 {
		return nil
	}
	members := make([]any, len(ds))
	for i, d := range ds {
		members[i] = d
	}
	if err := s.rdb.SRem(ctx, s.ownedKey(), members...).Err(); err != nil {
		return redisErr("remove owned rooms", err)
	}
	return nil
}

// Owned lists the rooms in the index, in no particular order.
func (s *RedisStore) Owned(ctx context.Context) ([]string, error) {
	ds, err := s.rdb.SMembers(ctx, s.ownedKey()).Result()
	if err != nil {
		return nil, redisErr("list owned rooms", err)
	}
	return ds, nil
}

// LastEvents reads the last 30312 the bot published for each d in one
// pipelined round trip. Rooms without one are absent from the map; an
// unreadable stored event is skipped (LastEvent reports it).
func (s *RedisStore) LastEvents(ctx context.Context, ds []string) (map[string]*nostr.Event, error) {
	out := make(map[string]*nostr.Event, len(ds))
	if len(ds) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ds))
	for i, d := range ds {
		cmds[i] = pipe.Get(ctx, s.keys.Event(d))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("get last events", err)
	}
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if err != nil {
			continue
		}
		var ev nostr.Event
		if json.Unmarshal(b, &ev) == nil {
			out[ds[i]] = &ev
		}
	}
	return out, nil
}

// Replacements returns, for each room of the bot among rooms, the d of the
// room that replaced it (Engine's "replaced" mapping), in one pipelined
// round trip. Rooms never replaced are absent from the map.
func (s *RedisStore) Replacements(ctx context.Context, rooms []nostrx.Coordinate) (map[string]string, error) {
	out := map[string]string{}
	if len(rooms) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(rooms))
	for i, c := range rooms {
		cmds[i] = pipe.Get(ctx, s.keys.Replaced(c))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("get replacements", err)
	}
	for i, cmd := range cmds {
		if v, err := cmd.Result(); err == nil && v != "" {
			out[rooms[i].D] = v
		}
	}
	return out, nil
}

// EventRooms lists every d the bot has a saved 30312 for, by scanning its
// keys (on every master of a cluster). It walks the whole keyspace in
// batches, so it is for start-up, not for every tick: it finds rooms
// published before the index existed or while it was lost.
func (s *RedisStore) EventRooms(ctx context.Context) ([]string, error) {
	match := globEscape(s.keys.Bot) + "{*}:event"
	var (
		mu   sync.Mutex
		out  []string
		seen = map[string]bool{}
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 1000).Iterator()
		for it.Next(ctx) {
			d := s.keys.eventKeyD(it.Val())
			mu.Lock()
			if d != "" && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
			mu.Unlock()
		}
		return it.Err()
	}
	if err := s.forEachMaster(ctx, scan); err != nil {
		return nil, redisErr("scan saved events", err)
	}
	return out, nil
}

// globEscape quotes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// listBatch bounds the names asked for in one ListRooms call.
const listBatch = 500

// List returns the rooms among names that LiveKit has, in calls of at most
// listBatch names, so the cost follows the bot's own rooms and not the
// size of a LiveKit shared with other services. No names, no call: an
// empty name list would make LiveKit list every room.
func (l *LiveKitRooms) List(ctx context.Context, names []string) ([]*LiveRoom, error) {
	var out []*LiveRoom
	for batch := range slices.Chunk(names, listBatch) {
		res, err := l.client.ListRooms(ctx, &livekit.ListRoomsRequest{Names: batch})
		if err != nil {
			return nil, livekitErr("list rooms", err)
		}
		for _, r := range res.Rooms {
			out = append(out, liveRoom(r))
		}
	}
	return out, nil
}

// Delete removes the LiveKit room named name, disconnecting everyone in it;
// a room that is already gone is not an error.
func (l *LiveKitRooms) Delete(ctx context.Context, name string) error {
	if _, err := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil && !isNotFound(err) {
		return livekitErr("delete room "+name, err)
	}
	return nil
}
