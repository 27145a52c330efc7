package rooms

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/nostrx"
)

// MigrateKeys moves the long-lived keys of the layout before hash tags
// (see keys.go) to their new names: replacements (<bot>replaced:<a>:<d>),
// pending choices (<bot>pending:<a>:<d>) and last events (<bot>event:<d>).
// Each is copied with its remaining TTL unless the new key exists already
// (SET NX: replicas may run this at once, and a key written by the new
// version wins), then the old key is deleted. It scans every master, so it
// runs once at start-up, in the background; it returns how many keys it
// moved. Keys of other kinds under the old names are left to expire (see
// keys.go for what that means for requests in flight during an upgrade).
func (s *RedisStore) MigrateKeys(ctx context.Context) (int, error) {
	var mu sync.Mutex
	moved := 0
	scan := func(ctx context.Context, c redis.Cmdable) error {
		for _, kind := range []string{"replaced:", "pending:", "event:"} {
			it := c.Scan(ctx, 0, globEscape(s.keys.Bot+kind)+"*", 1000).Iterator()
			for it.Next(ctx) {
				old := it.Val()
				key := s.migratedKey(kind, strings.TrimPrefix(old, s.keys.Bot+kind))
				if key == "" {
					continue
				}
				ok, err := s.moveKey(ctx, old, key)
				if err != nil {
					return err
				}
				if ok {
					mu.Lock()
					moved++
					mu.Unlock()
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.forEachMaster(ctx, scan); err != nil {
		return moved, redisErr("migrate keys", err)
	}
	return moved, nil
}

// migratedKey is the new name of an old key of kind whose name after the
// kind is rest, or "" for a name the old layout never wrote.
func (s *RedisStore) migratedKey(kind, rest string) string {
	if kind == "event:" {
		if !nostrx.ValidD(rest) {
			return ""
		}
		return s.keys.Event(rest)
	}
	author, d, ok := strings.Cut(rest, ":")
	if !ok || len(author) != 64 || !nostrx.ValidD(d) {
		return ""
	}
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: author, D: d}
	if kind == "replaced:" {
		return s.keys.Replaced(c)
	}
	return s.keys.Pending(c)
}

// moveKey copies old to key with old's remaining TTL unless key exists,
// then deletes old. It reports whether it copied.
func (s *RedisStore) moveKey(ctx context.Context, old, key string) (bool, error) {
	v, err := s.rdb.Get(ctx, old).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ttl, err := s.rdb.PTTL(ctx, old).Result()
	if err != nil {
		return false, err
	}
	if ttl <= 0 && ttl != -1 { // expired meanwhile (-2)
		return false, nil
	}
	if ttl == -1 {
		ttl = 0 // no expiry
	}
	ok, err := s.rdb.SetNX(ctx, key, v, ttl).Result()
	if err != nil {
		return false, err
	}
	if err := s.rdb.Del(ctx, old).Err(); err != nil {
		return ok, err
	}
	return ok, nil
}
