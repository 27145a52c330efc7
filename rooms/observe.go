package rooms

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// CountRoundTrips makes the store report each Redis round trip it starts
// to f with what it was: the command's name ("get", "evalsha" …) for a
// command on its own, "pipeline:<first command>" for a pipeline and
// "multi:<first command>" for a MULTI/EXEC transaction (one write and one
// read on a single server; a cluster client may split a pipeline across
// nodes, which still counts once). nestbench reads the count per restart
// from the bot's metrics. Call it before the store is used.
func (s *RedisStore) CountRoundTrips(f func(what string)) {
	s.rdb.AddHook(roundTrips(f))
}

// roundTrips is a go-redis hook that calls itself once per round trip.
type roundTrips func(what string)

func (h roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h(cmd.Name())
		return next(ctx, cmd)
	}
}

func (h roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		what, first := "pipeline:", cmds
		if len(first) > 1 && first[0].Name() == "multi" {
			what, first = "multi:", first[1:]
		}
		if len(first) > 0 {
			what += first[0].Name()
		}
		h(what)
		return next(ctx, cmds)
	}
}

var _ redis.Hook = roundTrips(nil)
