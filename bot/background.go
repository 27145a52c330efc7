package bot

import (
	"context"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"

	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/nostrx"
)

// background lists the service's long-running tasks besides the relay
// listeners and workers (HTTP endpoints, identity, room lifecycle). Each
// runs until ctx ends; Run waits for all of them before returning.
//
// Run calls it once, after the outbox exists.
func (s *Service) background() []func(context.Context) {
	m := s.metrics
	lk := s.livekit
	lc := newLifecycle(s, lk, m)
	tasks := []func(context.Context){
		func(ctx context.Context) { s.publishIdentity(ctx, m) },
		lc.run,
		s.pending.run,
	}
	sink := lc.webhook
	if h := s.newHealer(lk); h != nil { // auto-heal (bot/heal.go, internal/heal)
		tasks = append(tasks, h.Run)
		sink = func(ev *livekit.WebhookEvent) { lc.webhook(ev); h.Webhook(ev) }
		lc.occupied = func(d string) bool {
			return h.Present(nostrx.Coordinate{Kind: nostrx.KindRoom, Author: s.PublicKey(), D: d}) >= s.cfg.Heal.MinPresent
		}
	}
	if s.cfg.HTTP.Listen != "" {
		ready := ops.Readiness{
			Relays: s.RelaysConnected,
			Writes: func() string { return s.outbox.writesFailing(time.Now()) },
			Redis: func(ctx context.Context) (err error) {
				defer s.guard.catchErr("readyz", &err)
				return s.store.Ping(ctx)
			},
			LiveKit: func(ctx context.Context) (err error) {
				defer s.guard.catchErr("readyz", &err)
				_, err = lk.Find(ctx, readyProbeRoom)
				return err
			},
		}
		keys := auth.NewSimpleKeyProvider(s.cfg.LiveKit.APIKey, s.cfg.LiveKit.APISecret.Reveal())
		h := s.guard.handler(s.cfg.HTTP.WebhookPath, ops.Handler(s.log, s.metrics.Reg, ready, s.cfg.HTTP.WebhookPath, keys, sink, m))
		tasks = append(tasks, func(ctx context.Context) { ops.Serve(ctx, s.log, s.cfg.HTTP.Listen, h) })
	}
	return tasks
}

// readyProbeRoom is the room /readyz asks LiveKit about: ListRooms for one
// name proves LiveKit answers and accepts the bot's credentials without
// listing every room.
const readyProbeRoom = "nestbot-readyz-probe"
