package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Service is one running nestbot. Several may share one Redis: claims and
// room locks make each request and each room's recreation happen once.
type Service struct {
	cfg       Config
	log       *slog.Logger
	signer    *nostrx.Signer
	store     *rooms.RedisStore
	engine    *rooms.Engine
	outbox    *outbox
	claims    *claims
	pending   *deliveries // answers no relay has accepted yet (pending.go)
	seen      *seenSet
	metrics   *metrics
	listeners []*listener
	queue     chan job // verified requests and commands, in arrival order
	priority  chan job // requests from known hosts and admins: served first
	known     *knownSet
	deferred  *deferredQueue
	overload  *overload
	// verifySlots bounds the signature checks of unknown signers running at
	// once across all relays, so that junk never takes every core.
	verifySlots chan struct{}
	ready       chan struct{}
	relayLists  *relayLists // requesters' 10050 and 10002 lists, cached
	guard       *panicGuard // recovers panics of goroutines that handle outside input (panics.go)

	listsOnce       sync.Once
	allowed, denied map[string]bool
}

// job is one verified request waiting for a worker: a kind 4312 request
// (ev) or a command that arrived by direct message (dm).
type job struct {
	ev       *nostr.Event
	dm       *dmCommand
	via      string
	received time.Time

	attempt    int       // claim attempts that failed because Redis did not answer
	watching   bool      // another instance held the claim; we look again later
	watchUntil time.Time // when to stop watching
}

// id is the request id the job is claimed under: the event id of a 4312,
// the rumor or event id of a direct message.
func (j job) id() string {
	if j.dm != nil {
		return j.dm.id
	}
	return j.ev.ID
}

// requester is the pubkey the job is answered to.
func (j job) requester() string {
	if j.dm != nil {
		return j.dm.sender
	}
	return j.ev.PubKey
}

// staleAt is when the job's request is too old to be answered.
func (s *Service) staleAt(j job) time.Time {
	if j.dm != nil {
		return j.dm.createdAt.Time().Add(s.cfg.Nostr.MaxDMAge)
	}
	return j.ev.CreatedAt.Time().Add(s.cfg.Nostr.MaxRequestAge)
}

// forgetJob lets a job's request be taken again when a relay brings it
// again (its gift wrap too), after it could not be finished here.
func (s *Service) forgetJob(j job) {
	s.seen.forget(j.id())
	if j.dm != nil && j.dm.wrapID != "" {
		s.seen.forget(j.dm.wrapID)
	}
}

// ShutdownGrace is how long in-flight requests may run after Run's context
// ends before their work is cancelled.
const ShutdownGrace = 20 * time.Second

// New wires a service from a validated configuration. It opens no
// connection yet; Run does.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	signer, err := nostrx.NewSigner(cfg.Nostr.SecretKey, 10_000)
	if err != nil {
		return nil, fmt.Errorf("nostr.secret_key: %w", err)
	}
	store, err := rooms.OpenRedisStore(rooms.RedisOptions{
		URL: cfg.Redis.URL, Mode: cfg.Redis.Mode, Addrs: cfg.Redis.Addrs, MasterName: cfg.Redis.MasterName,
		SentinelUsername: cfg.Redis.SentinelUsername, SentinelPassword: cfg.Redis.SentinelPassword, TLSCAFile: cfg.Redis.TLSCAFile,
	}, cfg.Redis.KeyPrefix, cfg.Redis.BotPrefix, cfg.Redis.RoomTTL)
	if oe := (*rooms.OptionError)(nil); errors.As(err, &oe) {
		return nil, &ConfigError{Key: oe.Key, Reason: oe.Reason}
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
		ready:      make(chan struct{}),
		relayLists: newRelayLists(),

		verifySlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}
	s.metrics = newMetrics(func() float64 { return float64(len(s.queue) + len(s.priority)) })
	s.overload = newOverload(s.metrics.reg, func() float64 { return float64(s.deferred.Len()) })
	registerKnown(s.metrics.reg, s.known)
	s.store.CountRoundTrips(s.metrics.deps.redisRoundTrip)
	s.claims = &claims{
		store: s.store, instance: newInstanceID(), step: cfg.Limits.DependencyTimeout,
		lease: 3*cfg.Limits.DependencyTimeout + cfg.Nostr.LookupTimeout + 30*time.Second,
		ttl:   2*max(cfg.Nostr.MaxRequestAge, cfg.Nostr.MaxDMAge) + time.Hour,
	}
	s.pending = newDeliveries(s, &pendingStore{store: s.store, instance: s.claims.instance})
	s.guard = newPanicGuard(s.metrics.reg, log, s.seen)
	s.guard.store, s.guard.ttl = s.store, s.claims.ttl
	// A relay may bring an event back as long as the bot would still take
	// it: gift wraps are backdated up to two days beyond max_dm_age.
	s.guard.window = wrapBackdate + max(cfg.Nostr.MaxRequestAge, cfg.Nostr.MaxDMAge) + time.Hour
	s.engine = &rooms.Engine{
		State: observedState{s.store, s.known},
		LiveKit: rooms.NewLiveKitRooms(cfg.LiveKit.URL, cfg.LiveKit.APIKey, cfg.LiveKit.APISecret, rooms.RoomOptions{
			MaxParticipants:  uint32(cfg.LiveKit.MaxParticipants),
			EmptyTimeout:     cfg.LiveKit.EmptyTimeout,
			DepartureTimeout: cfg.LiveKit.DepartureTimeout,
		}).OnCall(s.metrics.deps.livekitCall),
		Signer: signer,
		Tokens: rooms.Tokens{APIKey: cfg.LiveKit.APIKey, APISecret: cfg.LiveKit.APISecret, TTL: cfg.LiveKit.TokenTTL},
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

// Ready is closed once every relay listener has started.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx ends, then stops listening, lets in-flight requests
// finish for up to ShutdownGrace, and returns.
func (s *Service) Run(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("redis not reachable at start; requests will retry", "err", err)
	}
	// Sends outlive ctx by the shutdown grace, like work does.
	sendCtx, stopSends := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSends()
	s.outbox = newOutbox(sendCtx, s.signer, s.log, newRelayPolicy(s.cfg.Nostr.Relays, s.cfg.Nostr.AllowPrivateRelays), s.cfg.Nostr.Relays, s.metrics.reg)
	s.outbox.reqs = s.metrics.deps.reqs
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
	for _, task := range s.background() {
		tasks.Add(1)
		go func() {
			defer tasks.Done()
			s.guard.supervise(ctx, "background", task)
		}()
	}
	close(s.ready)
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

// runJob runs one job on a worker. A panic ends the job, not the worker,
// and settles the job's claim (see panics.go).
func (s *Service) runJob(ctx context.Context, j job) {
	ids := []string{j.id()}
	if j.dm != nil {
		ids = append(ids, j.dm.wrapID)
	}
	defer s.guard.catch("worker", ids...)
	if j.dm != nil {
		s.handleDM(ctx, j)
	} else {
		s.handle(ctx, j)
	}
}

// intake runs in a relay's verifier goroutine: the cheap checks again (the
// event may have waited in the relay's buffer), then verification, then the
// hand-off to the workers (see dispatch). received is when the event was read
// from the relay; known says the signer is a known host or admin, whose
// events skip the shared limit on verification (see verifySlots). It
// reports whether the event was a verified, new request.
//
// A panic is recovered here (see panics.go): the event is dropped, the
// verifier goes on. intakeDM has its own guard.
func (s *Service) intake(ctx context.Context, ev *nostr.Event, via string, received time.Time, known bool) (verified bool) {
	defer s.guard.catch("verifier", ev.ID)
	if err := nostrx.Screen(ev, s.cfg.Nostr.RequestKind, s.signer.PublicKey()); err != nil {
		s.drop(err)
		return false
	}
	if s.seen.Contains(ev.ID) {
		s.metrics.dropped.WithLabelValues("duplicate").Inc()
		return false
	}
	if err := nostrx.CheckFresh(ev, time.Now(), s.cfg.Nostr.MaxRequestAge); err != nil {
		s.drop(err)
		return false
	}
	// Only a verified id enters the seen set, so a forged copy of a request
	// (bad signature, or an id that is not the hash of the content) can
	// never shadow the real one.
	if err := s.verifyEvent(ctx, ev, known); err != nil {
		s.drop(err)
		s.log.Debug("dropped unverifiable event", "relay", via, "id", ev.ID, "err", err)
		return false
	}
	if !s.seen.Add(ev.ID) {
		s.metrics.dropped.WithLabelValues("duplicate").Inc()
		return false
	}
	s.dispatch(ctx, job{ev: ev, via: via, received: received})
	return true
}

func (s *Service) drop(err error) {
	reason := "other"
	switch {
	case errors.Is(err, nostrx.ErrWrongKind):
		reason = "wrong_kind"
	case errors.Is(err, nostrx.ErrNotAddressed):
		reason = "not_addressed"
	case errors.Is(err, nostrx.ErrMalformed):
		reason = "malformed"
	case errors.Is(err, nostrx.ErrStale), errors.Is(err, nostrx.ErrFuture):
		reason = "stale"
	case errors.Is(err, nostrx.ErrExpired):
		reason = "expired"
	case errors.Is(err, nostrx.ErrBadID):
		reason = "bad_id"
	case errors.Is(err, nostrx.ErrBadSignature):
		reason = "bad_signature"
	}
	s.metrics.dropped.WithLabelValues(reason).Inc()
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
func (s *Service) Metrics() *prometheus.Registry { return s.metrics.reg }
