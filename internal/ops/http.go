package ops

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
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"
	"github.com/nestbot/nestbot/internal/retry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"
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
	// refusalWarnEvery is how often a refused webhook is logged at WARN;
	// the others go to DEBUG, and nestbot_webhooks_total counts each one.
	// Anyone who reaches the port can send refusals as fast as the
	// listener reads them: one WARN line each filled the log (and the
	// disk) as fast.
	refusalWarnEvery = time.Minute
	// maxConns bounds the ops listener's connections at once; more wait in
	// the kernel's accept queue. LiveKit, a Prometheus scraper and probes
	// need a handful. Without a bound each connection that never finished
	// its request held a goroutine and a descriptor for ReadHeaderTimeout:
	// 3,000 of them held 3,000 descriptors, a few thousand a second
	// would exhaust the process's, and with them the bot's connections to
	// relays and Redis.
	maxConns = 256
)

// Readiness is what /readyz checks, each as a function so tests can fake it.
type Readiness struct {
	Relays  func() int                      // live relay subscriptions
	Writes  func() string                   // "" while own relays accept writes, else why not (nil: not checked)
	Redis   func(ctx context.Context) error // PING
	LiveKit func(ctx context.Context) error // ListRooms
}

// Check returns "" when ready, else a short reason fit for the response.
// Details, which may name hosts, go to the debug log only.
func (r Readiness) Check(ctx context.Context, log *slog.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var redisErr, lkErr error
	wg.Add(2)
	go func() { defer wg.Done(); redisErr = r.Redis(ctx) }()
	go func() { defer wg.Done(); lkErr = r.LiveKit(ctx) }()
	wg.Wait()
	var reasons []string
	if r.Relays() < 1 {
		reasons = append(reasons, "no relay subscription is live")
	}
	if r.Writes != nil {
		if why := r.Writes(); why != "" {
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

// WebhookSink receives verified LiveKit webhook events. It must not block:
// LiveKit waits for the answer.
type WebhookSink func(ev *livekit.WebhookEvent)

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

// Handler routes the ops endpoints. webhookPath "" leaves the webhook out.
func Handler(log *slog.Logger, reg prometheus.Gatherer, ready Readiness, webhookPath string,
	keys auth.KeyProvider, sink WebhookSink, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		Plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if reason := ready.Check(r.Context(), log); reason != "" {
			Plain(w, http.StatusServiceUnavailable, "not ready: "+reason)
			return
		}
		Plain(w, http.StatusOK, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	if webhookPath != "" {
		mux.Handle(webhookPath, WebhookHandler(log, keys, sink, m))
	}
	return mux
}

// WebhookHandler verifies a LiveKit webhook the way LiveKit signs it (a JWT
// from the API key and secret in Authorization, carrying the body's
// SHA-256) before reading it. Anything unsigned, signed with another key or
// altered is refused with 401 and never parsed.
func WebhookHandler(log *slog.Logger, keys auth.KeyProvider, sink WebhookSink, m *Metrics) http.Handler {
	warn := &rate.Sometimes{First: 1, Interval: refusalWarnEvery}
	var quiet atomic.Int64 // refusals logged at DEBUG since the last WARN
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			Plain(w, http.StatusMethodNotAllowed, "POST only")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBody)
		data, err := webhook.Receive(r, keys)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				m.Webhooks.WithLabelValues("unverified", "bad_request").Inc()
				Plain(w, http.StatusRequestEntityTooLarge, "body too large")
				return
			}
			m.Webhooks.WithLabelValues("unverified", "unauthorized").Inc()
			// The reason only: never the header, the token or the body.
			warned := false
			warn.Do(func() {
				warned = true
				log.Warn("webhook refused", "remote", r.RemoteAddr, "reason", webhookReason(err),
					"refused_before", quiet.Swap(0), "next_warn_in", refusalWarnEvery)
			})
			if !warned {
				quiet.Add(1)
				log.Debug("webhook refused", "remote", r.RemoteAddr, "reason", webhookReason(err))
			}
			Plain(w, http.StatusUnauthorized, "invalid webhook signature")
			return
		}
		var ev livekit.WebhookEvent
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}).Unmarshal(data, &ev); err != nil {
			m.Webhooks.WithLabelValues("unverified", "bad_request").Inc()
			Plain(w, http.StatusBadRequest, "not a webhook event")
			return
		}
		m.Webhooks.WithLabelValues(webhookLabel(ev.Event), "accepted").Inc()
		log.Debug("webhook", "event", ev.Event, "room", ev.GetRoom().GetName(), "id", ev.Id)
		sink(&ev)
		Plain(w, http.StatusOK, "ok")
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

func Plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/Plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// Serve runs the ops listener on addr until ctx ends, then shuts it down
// gracefully. An address in use is retried rather than fatal: the bot's work
// does not depend on it.
func Serve(ctx context.Context, log *slog.Logger, addr string, h http.Handler) {
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
	ln = netutil.LimitListener(ln, maxConns)
	log.Info("ops listener", "listen", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("ops listener stopped", "err", err)
	}
	<-stopped
}
