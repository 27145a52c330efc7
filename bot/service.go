package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Service is one running nestbot. Several may share one Redis: claims and
// room locks make each request and each room's recreation happen once.
type Service struct {
	cfg       config.Config
	log       *slog.Logger
	signer    *nostrx.Signer
	store     *rooms.RedisStore
	engine    *rooms.Engine
	livekit   *rooms.LiveKitRooms // the one LiveKit client: engine, lifecycle and healer
	outbox    *outbox
	claims    *claims
	pending   *deliveries // answers no relay has accepted yet (pending.go)
	seen      *seenSet
	metrics   *ops.Metrics // every series (internal/ops/metrics.go)
	listeners []*listener
	queue     chan job // verified requests and commands, in arrival order
	priority  chan job // requests from known hosts and admins: served first
	known     *knownSet
	deferred  *deferredQueue
	overload  overload
	// verifySlots bounds the signature checks of unknown signers running at
	// once across all relays, so that junk never takes every core.
	verifySlots chan struct{}
	relayLists  *relayLists // requesters' 10050 and 10002 lists, cached
	guard       *panicGuard // recovers panics of goroutines that handle outside input (panics.go)

	access access // the operator's allow and deny lists (access.go)

	jobsTaken atomic.Uint64 // jobs workers took since start: releaseWhenIdle's sign of traffic
}

// ShutdownGrace is how long in-flight requests may run after Run's context
// ends before their work is cancelled.
const ShutdownGrace = 20 * time.Second

// New wires a service from a validated configuration. It opens no
// connection yet; Run does.
func New(cfg config.Config, log *slog.Logger) (*Service, error) {
	signer, err := nostrx.NewSigner(cfg.Nostr.SecretKey.Reveal(), 10_000)
	if err != nil {
		return nil, fmt.Errorf("nostr.secret_key: %w", err)
	}
	store, err := rooms.OpenRedisStore(rooms.RedisOptions{
		URL: cfg.Redis.URL.Reveal(), Mode: cfg.Redis.Mode, Addrs: cfg.Redis.Addrs, MasterName: cfg.Redis.MasterName,
		SentinelUsername: cfg.Redis.SentinelUsername, SentinelPassword: cfg.Redis.SentinelPassword.Reveal(), TLSCAFile: cfg.Redis.TLSCAFile,
	}, cfg.Redis.KeyPrefix, cfg.Redis.BotPrefix, cfg.Redis.RoomTTL)
	if oe := (*rooms.OptionError)(nil); errors.As(err, &oe) {
		return nil, &config.Error{Key: oe.Key, Reason: oe.Reason}
	}
	if err != nil {
		return nil, err
	}
	store.SetWait(cfg.Redis.WaitReplicas, cfg.Redis.WaitTimeout)
	endpoint, err := nostrx.LiveKitEndpoint(cfg.LiveKit.PublicURL)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:        cfg,
		log:        log,
		signer:     signer,
		store:      store,
		seen:       newSeenSet(cfg.Limits.SeenCache),
		queue:      make(chan job, cfg.Limits.Queue),
		priority:   make(chan job, cfg.Limits.Queue),
		known:      newKnownSet(knownPubkeys),
		deferred:   newDeferredQueue(cfg.Limits.Queue),
		relayLists: newRelayLists(),

		verifySlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}
	s.metrics = ops.NewMetrics(ops.Gauges{
		Queue:    func() float64 { return float64(len(s.queue) + len(s.priority)) },
		Deferred: func() float64 { return float64(s.deferred.Len()) },
		Known:    func() float64 { return float64(s.known.Len()) },
		Pending:  func() float64 { return float64(s.pending.pending.Load()) },
	})
	s.store.CountRoundTrips(s.metrics.RedisRoundTrip)
	s.claims = &claims{
		store: s.store, instance: newInstanceID(), step: cfg.Limits.DependencyTimeout,
		lease: 3*cfg.Limits.DependencyTimeout + cfg.Nostr.LookupTimeout + 30*time.Second,
		ttl:   2*max(cfg.Nostr.MaxRequestAge, cfg.Nostr.MaxDMAge) + time.Hour,
	}
	s.pending = newDeliveries(s, &pendingStore{store: s.store, instance: s.claims.instance})
	s.guard = newPanicGuard(s.metrics.Panics, log, s.seen)
	s.guard.store, s.guard.ttl = s.store, s.claims.ttl
	// A relay may bring an event back as long as the bot would still take
	// it: gift wraps are backdated up to two days beyond max_dm_age.
	s.guard.window = wrapBackdate + max(cfg.Nostr.MaxRequestAge, cfg.Nostr.MaxDMAge) + time.Hour
	s.livekit = rooms.NewLiveKitRooms(cfg.LiveKit.URL, cfg.LiveKit.APIKey, cfg.LiveKit.APISecret.Reveal(), rooms.RoomOptions{
		MaxParticipants:  uint32(cfg.LiveKit.MaxParticipants),
		EmptyTimeout:     cfg.LiveKit.EmptyTimeout,
		DepartureTimeout: cfg.LiveKit.DepartureTimeout,
	}).OnCall(s.metrics.LiveKitCall)
	s.engine = &rooms.Engine{
		State:   observedState{s.store, s.known},
		LiveKit: s.livekit,
		Signer:  signer,
		Tokens:  rooms.Tokens{APIKey: cfg.LiveKit.APIKey, APISecret: cfg.LiveKit.APISecret.Reveal(), TTL: cfg.LiveKit.TokenTTL},
		Set: rooms.Settings{
			Relays: cfg.Nostr.Relays, ServiceURL: cfg.Nests.ServiceURL, Endpoint: endpoint,
			Cooldown: cfg.Limits.RoomCooldown, DependencyBudget: cfg.Limits.DependencyTimeout,
			LookupTimeout: cfg.Nostr.LookupTimeout, NewRoomsPerMinute: cfg.Limits.NewRoomsPerMinute,
			Hosted: cfg.HostedURLs(),
		},
	}
	for _, url := range cfg.Nostr.Relays {
		s.listeners = append(s.listeners, newListener(url, s))
	}
	return s, nil
}

// PublicKey is the bot's hex public key: requests are addressed to it.
func (s *Service) PublicKey() string { return s.signer.PublicKey() }

// Run serves until ctx ends, then stops listening, lets in-flight requests
// finish for up to ShutdownGrace, and returns.
func (s *Service) Run(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("redis not reachable at start; requests will retry", "err", err)
	}
	// Sends outlive ctx by the shutdown grace, like work does.
	sendCtx, stopSends := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSends()
	s.outbox = newOutbox(sendCtx, s.signer, s.log, newRelayPolicy(s.cfg.Nostr.Relays, s.cfg.Nostr.AllowPrivateRelays), s.cfg.Nostr.Relays, s.metrics.Refusals)
	s.outbox.reqs = s.metrics.RelayREQs
	s.outbox.guard = s.guard
	s.engine.Events = s.outbox // room events feed no lane: see knownSet
	s.log.Info("nestbot starting", "npub", nostrx.Npub(s.PublicKey()), "relays", s.cfg.Nostr.Relays, "workers", s.cfg.Limits.Workers, "instance", s.claims.instance)

	hbCtx, stopHeartbeat := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHeartbeat()
	go s.guard.supervise(hbCtx, "heartbeat", s.claims.heartbeat)
	go func() {
		// Keys of the layout before hash tags (rooms/keys.go), once.
		mctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if n, err := s.store.MigrateKeys(mctx); err != nil {
			s.log.Warn("migrate redis keys", "moved", n, "err", err)
		} else if n > 0 {
			s.log.Info("migrated redis keys to the hash-tagged layout", "moved", n)
		}
	}()

	// Work outlives ctx by the grace period so a SIGTERM never cuts a
	// recreation half way when it can be finished.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var workers sync.WaitGroup
	for i := range s.cfg.Limits.Workers {
		workers.Add(1)
		reserved := i < s.reservedWorkers()
		go func() {
			defer workers.Done()
			for {
				j, ok := s.next(reserved)
				if !ok {
					return
				}
				s.jobsTaken.Add(1)
				s.runJob(workCtx, j)
			}
		}()
	}

	var listeners sync.WaitGroup
	listeners.Add(1)
	go func() {
		defer listeners.Done()
		s.guard.supervise(ctx, "deferred", s.runDeferred)
	}()
	// Events that made a previous run panic are not taken again.
	s.guard.load(ctx)
	for _, l := range s.listeners {
		l.loadCheckpoint(ctx)
		listeners.Add(1)
		go func() {
			defer listeners.Done()
			s.guard.supervise(ctx, "listener", l.run)
		}()
	}
	var tasks sync.WaitGroup
	for _, task := range append(s.background(), s.releaseStartupMemory, s.releaseWhenIdle) {
		tasks.Add(1)
		go func() {
			defer tasks.Done()
			s.guard.supervise(ctx, "background", task)
		}()
	}
	<-ctx.Done()
	listeners.Wait()
	tasks.Wait()
	close(s.queue)
	close(s.priority)

	drained := make(chan struct{})
	go func() { workers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(ShutdownGrace):
		s.log.Warn("shutdown grace over; cancelling in-flight work")
		cancelWork()
		<-drained
	}
	stopSends()
	s.pending.wait()
	stopHeartbeat()
	s.outbox.close()
	s.log.Info("nestbot stopped")
	return nil
}

// RelaysConnected counts relays whose subscription is live; /readyz and
// tests wait on it.
func (s *Service) RelaysConnected() int {
	n := 0
	for _, l := range s.listeners {
		if l.connected.Load() {
			n++
		}
	}
	return n
}

// Metrics is the service's Prometheus registry, served on /metrics.
func (s *Service) Metrics() *prometheus.Registry { return s.metrics.Reg }
