package bot

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the service's Prometheus series. Each Service has its own
// registry so that several services (tests, replicas in one process) never
// collide.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec   // by action and outcome code
	latency    *prometheus.HistogramVec // request received → response accepted
	dropped    *prometheus.CounterVec   // events dropped before work, by reason
	reconnects *prometheus.CounterVec   // by relay
	connected  *prometheus.GaugeVec     // by relay
	queue      prometheus.GaugeFunc
	published  *prometheus.CounterVec // by kind
	// retries counts Redis steps of requests tried again (claim: the claim
	// itself; resume: a restart finished after a public change).
	retries *prometheus.CounterVec
	deps    *dependencyCalls // what the bot asks of LiveKit, Redis and relays
}

func newMetrics(queueDepth func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_requests_total", Help: "Requests answered, by action and outcome (ok or an error code).",
		}, []string{"action", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nestbot_request_duration_seconds", Help: "From a verified request to its response accepted by a relay.",
			Buckets: []float64{.002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_events_dropped_total", Help: "Events dropped without an answer, by reason.",
		}, []string{"reason"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_relay_reconnects_total", Help: "Relay subscriptions that ended and were retried.",
		}, []string{"relay"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nestbot_relay_connected", Help: "1 while the relay subscription is live.",
		}, []string{"relay"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_events_published_total", Help: "Events accepted by at least one relay, by kind.",
		}, []string{"kind"}),
	}
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nestbot_request_retries_total", Help: "Requests tried again later, by step (claim: Redis did not answer the claim; resume: a restart is finished after a public change).",
	}, []string{"step"})
	m.reg.MustRegister(m.retries)
	m.queue = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nestbot_queue_depth", Help: "Verified requests waiting for a worker.",
	}, queueDepth)
	m.reg.MustRegister(m.requests, m.latency, m.dropped, m.reconnects, m.connected, m.queue, m.published,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.deps = newDependencyCalls(m.reg)
	return m
}

// dependencyCalls count the work the bot asks of the services it shares
// with others (issue 15): LiveKit API calls by method, Redis round trips
// (a command, or a pipeline or transaction) and REQs sent to relays by
// relay host ("other" for strangers' relays). nestbench divides their
// increase over a run by the restarts in it.
type dependencyCalls struct {
	livekit *prometheus.CounterVec
	redis   *prometheus.CounterVec
	reqs    *prometheus.CounterVec
}

func newDependencyCalls(reg *prometheus.Registry) *dependencyCalls {
	d := &dependencyCalls{
		livekit: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_livekit_calls_total", Help: "LiveKit RoomService API calls made, by method.",
		}, []string{"method"}),
		redis: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_redis_roundtrips_total", Help: "Redis round trips started by the room store, by command (a command's name, pipeline:<first command>, multi:<first command>).",
		}, []string{"cmd"}),
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nestbot_relay_reqs_total", Help: "REQs sent by the outbox (look-ups, relay lists, forwards), by relay host (the bot's relays; others are \"other\").",
		}, []string{"relay_host"}),
	}
	reg.MustRegister(d.livekit, d.redis, d.reqs)
	return d
}

func (d *dependencyCalls) livekitCall(method string)  { d.livekit.WithLabelValues(method).Inc() }
func (d *dependencyCalls) redisRoundTrip(what string) { d.redis.WithLabelValues(what).Inc() }
