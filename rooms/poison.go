package rooms

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Events whose handling made the bot panic (bot/panics.go) are remembered
// in one sorted set, <bot prefix>poisoned (member: the event id, score: unix
// seconds), so that the next start does not take them again.

func (s *RedisStore) poisonedKey() string { return s.keys.Bot + "poisoned" }

// settlePoisonedClaim marks a claim done, unless it holds a stored answer
// (r:…), which is still delivered on the next sighting.
var settlePoisonedClaim = redis.NewScript(`
local v = redis.call("get", KEYS[1])
if v and string.sub(v, 1, 2) == "r:" then
  return 0
end
redis.call("set", KEYS[1], "done", "PX", ARGV[1])
return 1`)

// Poison records ids as poisoned at now, keeps at most max ids younger
// than window, and settles each id's claim (done, for claimTTL).
func (s *RedisStore) Poison(ctx context.Context, ids []string, now time.Time, window time.Duration, max int, claimTTL time.Duration) error {
	key := s.poisonedKey()
	pipe := s.rdb.TxPipeline()
	for _, id := range ids {
		pipe.ZAdd(ctx, key, redis.Z{Score: float64(now.Unix()), Member: id})
	}
	pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now.Add(-window).Unix(), 10))
	pipe.ZRemRangeByRank(ctx, key, 0, int64(-max-1))
	pipe.Expire(ctx, key, window)
	if _, err := pipe.Exec(ctx); err != nil {
		return redisErr("poisoned", err)
	}
	for _, id := range ids {
		if err := settlePoisonedClaim.Run(ctx, s.rdb, []string{s.keys.Claim(id)}, claimTTL.Milliseconds()).Err(); err != nil {
			return redisErr("settle claim", err)
		}
	}
	return nil
}

// Poisoned returns the newest max ids poisoned within window of now.
func (s *RedisStore) Poisoned(ctx context.Context, now time.Time, window time.Duration, max int) ([]string, error) {
	min := strconv.FormatInt(now.Add(-window).Unix(), 10)
	ids, err := s.rdb.ZRevRangeByScore(ctx, s.poisonedKey(), &redis.ZRangeBy{Min: min, Max: "+inf", Count: int64(max)}).Result()
	if err != nil {
		return nil, redisErr("poisoned", err)
	}
	return ids, nil
}
