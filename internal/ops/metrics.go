// Package ops is what operators and LiveKit see of a running nestbot: every
// Prometheus series (this file), and the ops listener (http.go): /healthz,
// /readyz, /metrics and the LiveKit webhook. It knows nothing of requests;
// the bot hands it the series' sources and the readiness probes.
package ops

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are every series nestbot exports, on one registry of their own so
// that several services in one process (tests, replicas) never collide.
// Names and labels are a contract with deploy/ (dashboards and alerts,
// checked by deploy/deploy_test.go): change them there too.
type Metrics struct {
	Reg *prometheus.Registry

	// Requests and the path before them.
	Requests   *prometheus.CounterVec   // by action and outcome (ok or an error code)
	Latency    *prometheus.HistogramVec // by action: request received → response accepted
	Stages     *prometheus.HistogramVec // by stage: one step of a request (bot/stages.go)
	Dropped    *prometheus.CounterVec   // events dropped before work, by reason
	Retries    *prometheus.CounterVec   // by step: claim, resume
	Shed       prometheus.Counter       // refusals shed under overload
	Panics     *prometheus.CounterVec   // by where
	Published  *prometheus.CounterVec   // events accepted by a relay, by kind
	GivenUp    prometheus.Counter       // answers no relay accepted in time
	Reconnects *prometheus.CounterVec   // by relay
	Connected  *prometheus.GaugeVec     // by relay
	Refusals   *prometheus.CounterVec   // publish attempts not accepted, by relay_host and class

	// The ops listener, identity and room lifecycle.
	Webhooks  *prometheus.CounterVec // by event and outcome
	Identity  *prometheus.CounterVec // by kind and outcome
	Lifecycle *prometheus.CounterVec // by action
	Checks    *prometheus.CounterVec // by trigger and outcome

	// What the bot asks of the services it shares with others (issue 15);
	// nestbench divides their increase over a run by the restarts in it.
	LiveKitCalls    *prometheus.CounterVec // LiveKit RoomService calls, by method
	RedisRoundTrips *prometheus.CounterVec // by cmd: a command, pipeline:<first>, multi:<first>
	RelayREQs       *prometheus.CounterVec // REQs sent, by relay_host
}

// Gauges are the sources of the series read at scrape time. A nil source
// reads 0.
type Gauges struct {
	Queue    func() float64 // verified requests waiting for a worker
	Deferred func() float64 // requests waiting to be claimed again
	Known    func() float64 // pubkeys in the priority lane
	Pending  func() float64 // answers no relay has accepted yet
}

// NewMetrics creates and registers every series, with the Go runtime and
// process collectors.
func NewMetrics(g Gauges) *Metrics {
	m := &Metrics{
		Reg: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_requests_total", Help: "Requests answered, by action and outcome (ok or an error code).",
		}, []string{"action", "outcome"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nestbot_request_duration_seconds", Help: "From a verified request to its response accepted by a relay.",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		Stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nestbot_request_stage_seconds",
			Help:    "Time a request spent in each step, by stage: queue (read from a relay → a worker, verification included), claim, work (admit + the room's restart or status), build (the signed, encrypted answer), store (the answer's Redis transaction), send (→ the first relay's OK).",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"stage"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_events_dropped_total", Help: "Events dropped without an answer, by reason.",
		}, []string{"reason"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_request_retries_total", Help: "Requests tried again later, by step (claim: Redis did not answer the claim; resume: a restart is finished after a public change).",
		}, []string{"step"}),
		Shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nestbot_refusals_shed_total",
			Help: "Verified requests dropped without an answer under overload because they would have been refused.",
		}),
		Panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_panics_total",
			Help: "Panics recovered, by where (reader, verifier, dm, worker, publish, webhook, …): each is a bug worth reporting.",
		}, []string{"where"}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_events_published_total", Help: "Events accepted by at least one relay, by kind.",
		}, []string{"kind"}),
		GivenUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nestbot_answers_given_up_total", Help: "Answers no relay accepted within nostr.response_ttl.",
		}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_relay_reconnects_total", Help: "Relay subscriptions that ended and were retried.",
		}, []string{"relay"}),
		Connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nestbot_relay_connected", Help: "1 while the relay subscription is live.",
		}, []string{"relay"}),
		Refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_publish_refusals_total",
			Help: "Attempts to publish an event that a relay did not accept, by relay host (the bot's relays; others are \"other\") and class (rate-limited, refused, auth-required, error, no-ok, dropped, unreachable).",
		}, []string{"relay_host", "class"}),
		Webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_webhooks_total", Help: "LiveKit webhook requests, by event and outcome (accepted, unauthorized, bad_request).",
		}, []string{"event", "outcome"}),
		Identity: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_identity_checks_total", Help: "Start-up checks of the bot's profile and relay lists, by kind and outcome (unchanged, published, failed).",
		}, []string{"kind", "outcome"}),
		Lifecycle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_room_lifecycle_total", Help: "Room events the bot published on its own, by action (republish, close_gone, close_replaced).",
		}, []string{"action"}),
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_lifecycle_checks_total", Help: "Checks of the bot's rooms against LiveKit, by trigger (reconcile: all rooms; webhook: one room) and outcome (ok, error).",
		}, []string{"trigger", "outcome"}),
		LiveKitCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_livekit_calls_total", Help: "LiveKit RoomService API calls made, by method.",
		}, []string{"method"}),
		RedisRoundTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_redis_roundtrips_total", Help: "Redis round trips started by the room store, by command (a command's name, pipeline:<first command>, multi:<first command>).",
		}, []string{"cmd"}),
		RelayREQs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_relay_reqs_total", Help: "REQs sent by the outbox (look-ups, relay lists, forwards), by relay host (the bot's relays; others are \"other\").",
		}, []string{"relay_host"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.GaugeFunc {
		if f == nil {
			f = func() float64 { return 0 }
		}
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.Reg.MustRegister(
		m.Requests, m.Latency, m.Stages, m.Dropped, m.Retries, m.Shed, m.Panics, m.Published, m.GivenUp,
		m.Reconnects, m.Connected, m.Refusals, m.Webhooks, m.Identity, m.Lifecycle, m.Checks,
		m.LiveKitCalls, m.RedisRoundTrips, m.RelayREQs,
		gauge("nestbot_queue_depth", "Verified requests waiting for a worker.", g.Queue),
		gauge("nestbot_deferred_requests", "Requests waiting to be claimed again: Redis was unreachable, or another instance holds the claim.", g.Deferred),
		gauge("nestbot_known_pubkeys", "Pubkeys in the priority lane: hosts and admins named by Redis records, and requesters a record authorized.", g.Known),
		gauge("nestbot_answers_pending", "Answers no relay has accepted yet, kept in Redis and retried (as of the last scan).", g.Pending),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// LiveKitCall counts one LiveKit API call (rooms.LiveKitRooms.OnCall).
func (m *Metrics) LiveKitCall(method string) { m.LiveKitCalls.WithLabelValues(method).Inc() }

// RedisRoundTrip counts one Redis round trip (rooms.RedisStore.CountRoundTrips).
func (m *Metrics) RedisRoundTrip(what string) { m.RedisRoundTrips.WithLabelValues(what).Inc() }
