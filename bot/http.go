package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"
	"github.com/nestbot/nestbot/internal/retry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The ops listener (http.listen) serves, for operators and LiveKit only:
//
//	/healthz  200 while the process runs
//	/readyz   200 when a relay subscription is live, Redis answers PING and
//	          LiveKit answers ListRooms; 503 and a one-line reason otherwise
//	/metrics  Prometheus exposition of Service.Metrics
//	<http.webhook_path>  LiveKit webhooks, signed with the API key and secret
//
// It is not the bot's API (there is none): keep it off public interfaces,
// except the webhook path, which LiveKit must reach.

const (
	// readyTimeout bounds each dependency probe of /readyz.
	readyTimeout = 2 * time.Second
	// maxWebhookBody bounds a webhook body; LiveKit's are a few KB.
	maxWebhookBody = 1 << 20
	// opsShutdown bounds the listener's graceful shutdown.
	opsShutdown = 5 * time.Second
)

// readiness is what /readyz checks, each as a function so tests can fake it.
type readiness struct {
	relays  func() int                      // live relay subscriptions
	writes  func() string                   // "" while own relays accept writes, else why not (nil: not checked)
	redis   func(ctx context.Context) error // PING
	livekit func(ctx context.Context) error // ListRooms
}

// check returns "" when ready, else a short reason fit for the response.
// Details, which may name hosts, go to the debug log only.
func (r readiness) check(ctx context.Context, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var redisErr, lkErr error
	wg.Add(2)
	go func() { defer wg.Done(); redisErr = r.redis(ctx) }()
	go func() { defer wg.Done(); lkErr = r.livekit(ctx) }()
	wg.Wait()
	var reasons []string
	if r.relays() < 1 {
		reasons = append(reasons, "no relay subscription is live")
	}
	if r.writes != nil {
		if why := r.writes(); why != "" {
			reasons = append(reasons, why)
		}
	}
	if redisErr != nil {
		reasons = append(reasons, "redis is not answering")
		log.Debug("readyz: redis", "err", redisErr)
	}
	if lkErr != nil {
		reasons = append(reasons, "livekit is not answering")
		log.Debug("readyz: livekit", "err", lkErr)
	}
	return strings.Join(reasons, "; ")
}

// webhookSink receives verified LiveKit webhook events. It must not block:
// LiveKit waits for the answer.
type webhookSink func(ev *livekit.WebhookEvent)

// opsMetrics are the series of the ops listener, the identity and the room
// lifecycle, registered on the service's registry.
type opsMetrics struct {
	webhooks  *prometheus.CounterVec // by event and outcome
	identity  *prometheus.CounterVec // by kind and outcome
	lifecycle *prometheus.CounterVec // by action
	checks    *prometheus.CounterVec // by trigger and outcome
}

func newOpsMetrics(reg prometheus.Registerer) *opsMetrics {
	m := &opsMetrics{
		webhooks: registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_webhooks_total", Help: "LiveKit webhook requests, by event and outcome (accepted, unauthorized, bad_request).",
		}, []string{"event", "outcome"})),
		identity: registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_identity_checks_total", Help: "Start-up checks of the bot's profile and relay lists, by kind and outcome (unchanged, published, failed).",
		}, []string{"kind", "outcome"})),
		lifecycle: registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_room_lifecycle_total", Help: "Room events the bot published on its own, by action (republish, close_gone, close_replaced).",
		}, []string{"action"})),
		checks: registerVec(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_lifecycle_checks_total", Help: "Checks of the bot's rooms against LiveKit, by trigger (reconcile: all rooms; webhook: one room) and outcome (ok, error).",
		}, []string{"trigger", "outcome"})),
	}
	return m
}

// registerVec registers c, or returns the collector already registered under
// its name (a second Run of one registry).
func registerVec(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// knownWebhookEvents bounds the event label of nestbot_webhooks_total.
var knownWebhookEvents = []string{
	webhook.EventRoomStarted, webhook.EventRoomFinished, webhook.EventParticipantJoined,
	webhook.EventParticipantLeft, webhook.EventParticipantConnectionAborted,
	webhook.EventTrackPublished, webhook.EventTrackUnpublished,
}

func webhookLabel(event string) string {
	if slices.Contains(knownWebhookEvents, event) {
		return event
	}
	return "other"
}

// opsHandler routes the ops endpoints. webhookPath "" leaves the webhook out.
func opsHandler(log *slog.Logger, reg prometheus.Gatherer, ready readiness, webhookPath string,
	keys auth.KeyProvider, sink webhookSink, m *opsMetrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if reason := ready.check(r.Context(), log); reason != "" {
			plain(w, http.StatusServiceUnavailable, "not ready: "+reason)
			return
		}
		plain(w, http.StatusOK, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	if webhookPath != "" {
		mux.Handle(webhookPath, webhookHandler(log, keys, sink, m))
	}
	return mux
}

// webhookHandler verifies a LiveKit webhook the way LiveKit signs it (a JWT
// from the API key and secret in Authorization, carrying the body's
// SHA-256) before reading it. Anything unsigned, signed with another key or
// altered is refused with 401 and never parsed.
func webhookHandler(log *slog.Logger, keys auth.KeyProvider, sink webhookSink, m *opsMetrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			plain(w, http.StatusMethodNotAllowed, "POST only")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBody)
		data, err := webhook.Receive(r, keys)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				m.webhooks.WithLabelValues("unverified", "bad_request").Inc()
				plain(w, http.StatusRequestEntityTooLarge, "body too large")
				return
			}
			m.webhooks.WithLabelValues("unverified", "unauthorized").Inc()
			// The reason only: never the header, the token or the body.
			log.Warn("webhook refused", "remote", r.RemoteAddr, "reason", webhookReason(err))
			plain(w, http.StatusUnauthorized, "invalid webhook signature")
			return
		}
		var ev livekit.WebhookEvent
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}).Unmarshal(data, &ev); err != nil {
			m.webhooks.WithLabelValues("unverified", "bad_request").Inc()
			plain(w, http.StatusBadRequest, "not a webhook event")
			return
		}
		m.webhooks.WithLabelValues(webhookLabel(ev.Event), "accepted").Inc()
		log.Debug("webhook", "event", ev.Event, "room", ev.GetRoom().GetName(), "id", ev.Id)
		sink(&ev)
		plain(w, http.StatusOK, "ok")
	})
}

// webhookReason names why a webhook failed verification without repeating
// anything from the request.
func webhookReason(err error) string {
	switch {
	case errors.Is(err, webhook.ErrNoAuthHeader):
		return "no Authorization header"
	case errors.Is(err, webhook.ErrSecretNotFound):
		return "unknown API key"
	case errors.Is(err, webhook.ErrInvalidChecksum):
		return "body does not match the signed checksum"
	}
	return "token does not verify"
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// serveOps runs the ops listener on addr until ctx ends, then shuts it down
// gracefully. An address in use is retried rather than fatal: the bot's work
// does not depend on it.
func serveOps(ctx context.Context, log *slog.Logger, addr string, h http.Handler) {
	var ln net.Listener
	for {
		var err error
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", addr); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		wait := retry.Rebind.Wait(1)
		log.Error("ops listener cannot bind; retrying", "listen", addr, "err", err, "retry_in", wait)
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opsShutdown)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	log.Info("ops listener", "listen", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("ops listener stopped", "err", err)
	}
	<-stopped
}
