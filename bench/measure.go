package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// procSet names the processes of one run whose CPU time is read around
// each batch: the bot, LiveKit, each relay and Redis (issue 15: what one
// restart costs the services nestbot shares with others).
type procSet struct {
	names []string // in report order: "nestbot", "livekit", "relay1", "relay2", "redis"
	pids  map[string]int
}

func (p *procSet) set(name string, pid int) {
	if p.pids == nil {
		p.pids = map[string]int{}
	}
	if _, ok := p.pids[name]; !ok {
		p.names = append(p.names, name)
	}
	p.pids[name] = pid
}

// cpu reads every process's utime + stime; a process that cannot be read
// (it exited) is left out.
func (p *procSet) cpu() map[string]time.Duration {
	out := make(map[string]time.Duration, len(p.pids))
	for name, pid := range p.pids {
		if d, err := cpuTime(pid); err == nil {
			out[name] = d
		}
	}
	return out
}

// cpuPrecise is cpu from cpuTimePrecise: for short windows.
func (p *procSet) cpuPrecise() map[string]time.Duration {
	out := make(map[string]time.Duration, len(p.pids))
	for name, pid := range p.pids {
		if d, err := cpuTimePrecise(pid); err == nil {
			out[name] = d
		}
	}
	return out
}

// usage is what a batch cost: each process's CPU time and the bot's
// dependency counters, both as increases over the batch.
type usage struct {
	cpu map[string]time.Duration
	ctr counters
}

// snapshot reads every process's CPU time and the bot's counters.
func (r *runner) snapshot(ctx context.Context) (map[string]time.Duration, counters) {
	c, err := scrape(ctx, r.metricsURL)
	if err != nil {
		c.ok = false
	}
	return r.procs.cpu(), c
}

// since is the usage from (cpu0, c0) to (cpu1, c1).
func since(cpu0, cpu1 map[string]time.Duration, c0, c1 counters) usage {
	u := usage{cpu: map[string]time.Duration{}, ctr: counters{ok: c0.ok && c1.ok, livekit: map[string]float64{}, redisBy: map[string]float64{},
		stageSum: map[string]float64{}, stageCount: map[string]float64{}}}
	for name, b := range cpu0 {
		if a, ok := cpu1[name]; ok {
			u.cpu[name] = a - b
		}
	}
	for m, v := range c1.livekit {
		u.ctr.livekit[m] = v - c0.livekit[m]
	}
	for m, v := range c1.redisBy {
		if d := v - c0.redisBy[m]; d != 0 {
			u.ctr.redisBy[m] = d
		}
	}
	for st, v := range c1.stageCount {
		if d := v - c0.stageCount[st]; d > 0 {
			u.ctr.stageCount[st] = d
			u.ctr.stageSum[st] = c1.stageSum[st] - c0.stageSum[st]
		}
	}
	u.ctr.redis, u.ctr.reqs = c1.redis-c0.redis, c1.reqs-c0.reqs
	return u
}

// add accumulates v into u (the soak's chunks).
func (u *usage) add(v usage) {
	if u.cpu == nil {
		*u = usage{cpu: map[string]time.Duration{}, ctr: counters{ok: true, livekit: map[string]float64{}, redisBy: map[string]float64{},
			stageSum: map[string]float64{}, stageCount: map[string]float64{}}}
	}
	for st, x := range v.ctr.stageCount {
		u.ctr.stageCount[st] += x
		u.ctr.stageSum[st] += v.ctr.stageSum[st]
	}
	for k, d := range v.cpu {
		u.cpu[k] += d
	}
	u.ctr.ok = u.ctr.ok && v.ctr.ok
	for m, x := range v.ctr.livekit {
		u.ctr.livekit[m] += x
	}
	for m, x := range v.ctr.redisBy {
		u.ctr.redisBy[m] += x
	}
	u.ctr.redis += v.ctr.redis
	u.ctr.reqs += v.ctr.reqs
}

// perRestart is the CPU each process spent in u divided by n restarts,
// in milliseconds; "relays" is the relays' sum, "stack" everyone's and
// "others" everyone's but the bot's.
func (p *procSet) perRestart(u usage, n int) map[string]float64 {
	if n == 0 {
		return nil
	}
	out := map[string]float64{}
	var all, others float64
	for _, name := range p.names {
		d, ok := u.cpu[name]
		if !ok {
			continue
		}
		v := ms(d) / float64(n)
		out[name] = v
		all += v
		if name != "nestbot" {
			others += v
		}
		if strings.HasPrefix(name, "relay") {
			out["relays"] += v
		}
	}
	out["stack"], out["others"] = all, others
	return out
}

// loadAvg is the 1-minute load average from /proc/loadavg (0 when it
// cannot be read).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// freeAddr is a loopback address no one listens on right now, for the
// bot's ops listener (/metrics).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// counters are the bot's dependency counters at one moment
// (nestbot_livekit_calls_total by method, nestbot_redis_roundtrips_total,
// nestbot_relay_reqs_total summed over relays), read from its /metrics.
// ok is false when the bot does not export them (an older build).
type counters struct {
	ok      bool
	livekit map[string]float64
	redis   float64
	redisBy map[string]float64 // by command
	reqs    float64
	// stageSum and stageCount are nestbot_request_stage_seconds' sum
	// (seconds) and count by stage (absent from older builds).
	stageSum, stageCount map[string]float64
}

// scrape reads the bot's counters from url (its /metrics).
func scrape(ctx context.Context, url string) (counters, error) {
	c := counters{livekit: map[string]float64{}, redisBy: map[string]float64{}, stageSum: map[string]float64{}, stageCount: map[string]float64{}}
	if url == "" {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return c, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return c, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return c, fmt.Errorf("scrape %s: %w", url, err)
	}
	sum := func(name string, by string, into map[string]float64) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
		var total float64
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue()
			total += v
			if into != nil {
				into[label(m, by)] += v
			}
		}
		return total, true
	}
	_, ok1 := sum("nestbot_livekit_calls_total", "method", c.livekit)
	r, ok2 := sum("nestbot_redis_roundtrips_total", "cmd", c.redisBy)
	q, ok3 := sum("nestbot_relay_reqs_total", "", nil)
	c.redis, c.reqs, c.ok = r, q, ok1 || ok2 || ok3
	if f, ok := fams["nestbot_request_stage_seconds"]; ok {
		for _, m := range f.GetMetric() {
			st := label(m, "stage")
			c.stageSum[st] += m.GetHistogram().GetSampleSum()
			c.stageCount[st] += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return c, nil
}

// stageOrder is the order of a request's steps (bot/stages.go).
var stageOrder = []string{"queue", "claim", "work", "build", "store", "send"}

// stageMeans is the mean time of each step of the requests in u (ms), from
// nestbot_request_stage_seconds, or nil for a bot without it.
func (u usage) stageMeans() map[string]float64 {
	if len(u.ctr.stageCount) == 0 {
		return nil
	}
	out := map[string]float64{}
	for st, n := range u.ctr.stageCount {
		out[st] = 1000 * u.ctr.stageSum[st] / n
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Calls are the bot's dependency calls per restart over one batch, from
// its counters (background work during the batch included: the
// lifecycle's ListRooms each minute, lock heartbeats).
type Calls struct {
	LiveKit         float64            `json:"livekit_calls"`
	LiveKitByMethod map[string]float64 `json:"livekit_by_method"`
	RedisRoundTrips float64            `json:"redis_roundtrips"`
	RedisByCommand  map[string]float64 `json:"redis_by_command"`
	RelayREQs       float64            `json:"relay_reqs"`
}

// perRestart is the counters' increase in u divided by n, or nil when the
// bot has no counters.
func (u usage) perRestart(n int) *Calls {
	if !u.ctr.ok || n == 0 {
		return nil
	}
	c := &Calls{LiveKitByMethod: map[string]float64{}}
	methods := make([]string, 0, len(u.ctr.livekit))
	for m := range u.ctr.livekit {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	for _, m := range methods {
		d := u.ctr.livekit[m] / float64(n)
		if d != 0 {
			c.LiveKitByMethod[m] = d
		}
		c.LiveKit += d
	}
	c.RedisRoundTrips = u.ctr.redis / float64(n)
	c.RedisByCommand = map[string]float64{}
	for m, v := range u.ctr.redisBy {
		c.RedisByCommand[m] = v / float64(n)
	}
	c.RelayREQs = u.ctr.reqs / float64(n)
	return c
}

// Floor is the least a restart in place can take on this stack, from the
// round trips it cannot avoid, each timed by the bench's own clients in
// the same run (p50, ms): the request's hop to the bot and the answer's
// hop back (two relay hops), LiveKit's DeleteRoom and CreateRoom (a real
// recreation deletes before it creates) and one Redis round trip.
type Floor struct {
	Ms         float64 `json:"ms"`
	RelayHops  float64 `json:"two_relay_hops_ms"`
	LKDelete   float64 `json:"livekit_delete_ms"`
	LKCreate   float64 `json:"livekit_create_ms"`
	Redis      float64 `json:"redis_ms"`
	InPlace    float64 `json:"restart_in_place_p50_ratio"`
	Recreate   float64 `json:"recreate_p50_ratio"`
	Definition string  `json:"definition"`
}

func floorOf(r *Run) Floor {
	f := Floor{
		RelayHops: 2 * r.RelayHop.P50, LKDelete: r.Deps.LKDelete[0], LKCreate: r.Deps.LKCreate[0], Redis: r.Deps.RedisPing[0],
		Definition: "2 × relay hop p50 + LiveKit DeleteRoom p50 + CreateRoom p50 + Redis PING p50",
	}
	f.Ms = f.RelayHops + f.LKDelete + f.LKCreate + f.Redis
	if f.Ms > 0 {
		f.InPlace, f.Recreate = r.InPlace.P50/f.Ms, r.Recreate.P50/f.Ms
	}
	return f
}

// perSecond is each process's CPU from cpu0 to cpu1 over d, in ms of CPU
// per second.
func perSecond(cpu0, cpu1 map[string]time.Duration, d time.Duration) map[string]float64 {
	if d <= 0 {
		return nil
	}
	out := map[string]float64{}
	for name, b := range cpu0 {
		if a, ok := cpu1[name]; ok {
			out[name] = ms(a-b) / d.Seconds()
		}
	}
	return out
}

// splitRelays splits the relays' CPU per restart of every batch into what
// the requester's own traffic costs (relays_client: its REQ, request EVENT
// and CLOSE on relay1, the relay hop's CPU per hop less that relay's idle
// CPU over the hop), what the relays spend with nothing to do
// (relays_idle: their idle CPU per second times the batch's seconds, per
// restart) and the rest, what the bot causes (relays_bot: the answer's
// EVENT on every relay, relay-list REQs and their CLOSEs, the request's
// fan-out to the bot's subscription). The hop is timed one at a time, so
// at higher concurrency, where a relay handles several messages per
// wake-up, relays_client overstates the client's share a little and
// relays_bot understates the bot's.
func (r *Run) splitRelays() {
	hop := r.RelayHop.CPU["relay1"]
	if r.RelayHop.OK == 0 || r.RelayHop.CPU == nil {
		return
	}
	client := max(0, hop-r.Idle["relay1"]*r.RelayHop.Seconds/float64(r.RelayHop.N))
	var idleRate float64
	for name, v := range r.Idle {
		if strings.HasPrefix(name, "relay") {
			idleRate += v
		}
	}
	split := func(l *Latency) {
		if l.CPU == nil || l.N == 0 {
			return
		}
		idle := idleRate * l.Seconds / float64(l.N)
		l.CPU["relays_client"], l.CPU["relays_idle"] = client, idle
		l.CPU["relays_bot"] = l.CPU["relays"] - client - idle
	}
	split(&r.InPlace)
	split(&r.Recreate)
	for i := range r.Throughput {
		split(&r.Throughput[i])
	}
	split(&r.Soak.Latency)
}
