package rooms

import (
	"context"
	"time"
)

// minuteWindowTTL keeps a window's counter past its minute, for the
// requests that straddle its end.
const minuteWindowTTL = 2 * time.Minute

// countMinute is the one rate limiter: a fixed one-minute window counted
// in Redis so that it holds across replicas. key names the window (its
// unix minute is part of it, see keys.go: Rate, NewRooms); it returns the
// window's count so far, this call included. what names the step in the
// error (ErrUnavailable when Redis does not answer).
func (s *RedisStore) countMinute(ctx context.Context, key, what string) (int64, error) {
	pipe := s.rdb.TxPipeline()
	n := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, minuteWindowTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, redisErr(what, err)
	}
	return n.Val(), nil
}
