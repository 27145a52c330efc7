package bot

import (
	"context"
	"time"

	"github.com/livekit/protocol/auth"

	"github.com/nestbot/nestbot/rooms"
)

// background lists the service's long-running tasks besides the relay
// listeners and workers (HTTP endpoints, identity, room lifecycle). Each
// runs until ctx ends; Run waits for all of them before returning.
//
// Run calls it once, after the outbox exists.
func (s *Service) background() []func(context.Context) {
	m := newOpsMetrics(s.metrics.reg)
	lk := rooms.NewLiveKitRooms(s.cfg.LiveKit.URL, s.cfg.LiveKit.APIKey, s.cfg.LiveKit.APISecret, rooms.RoomOptions{}).OnCall(s.metrics.deps.livekitCall)
	lc := newLifecycle(s, lk, m)
	tasks := []func(context.Context){
		func(ctx context.Context) { s.publishIdentity(ctx, m) },
		lc.run,
		s.pending.run,
	}
	if s.cfg.HTTP.Listen != "" {
		ready := readiness{
			relays: s.RelaysConnected,
			writes: func() string { return s.outbox.writesFailing(time.Now()) },
			redis: func(ctx context.Context) (err error) {
				defer s.guard.catchErr("readyz", &err)
				return s.store.Ping(ctx)
			},
			livekit: func(ctx context.Context) (err error) {
				defer s.guard.catchErr("readyz", &err)
				_, err = lk.Find(ctx, readyProbeRoom)
				return err
			},
		}
		keys := auth.NewSimpleKeyProvider(s.cfg.LiveKit.APIKey, s.cfg.LiveKit.APISecret)
		h := s.guard.handler(s.cfg.HTTP.WebhookPath, opsHandler(s.log, s.metrics.reg, ready, s.cfg.HTTP.WebhookPath, keys, lc.webhook, m))
		tasks = append(tasks, func(ctx context.Context) { serveOps(ctx, s.log, s.cfg.HTTP.Listen, h) })
	}
	return tasks
}

// readyProbeRoom is the room /readyz asks LiveKit about: ListRooms for one
// name proves LiveKit answers and accepts the bot's credentials without
// listing every room.
const readyProbeRoom = "nestbot-readyz-probe"
