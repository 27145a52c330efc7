package rooms

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// CountRoundTrips makes the store report each Redis round trip it starts
// to f: a command on its own, or a pipeline or MULTI/EXEC transaction
// (one write and one read on a single server; a cluster client may split
// a pipeline across nodes, which still counts once). nestbench reads the
// count per restart from the bot's metrics. Call it before the store is
// used.
func (s *RedisStore) CountRoundTrips(f func()) {
	s.rdb.AddHook(roundTrips(f))
}

// roundTrips is a go-redis hook that calls itself once per round trip.
type roundTrips func()

func (h roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h()
		return next(ctx, cmd)
	}
}

func (h roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h()
		return next(ctx, cmds)
	}
}

var _ redis.Hook = roundTrips(nil)
