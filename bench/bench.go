// Package bench is nestbench's engine: it starts a real stack (Redis,
// LiveKit, the khatru relay) from the binaries devstack/install.sh installs,
// runs nestbot as a child process against it, and measures the bot from a
// requester's side: end-to-end latency of restarts in place and of
// recreations under a new ID, throughput at several concurrencies, the bot's
// CPU time per restart and its memory. See docs/performance.md.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/flood"
)

// Options are nestbench's flags.
type Options struct {
	N               int           // requests per latency scenario (in place, recreate)
	ThroughputN     int           // requests per throughput level
	Concurrency     []int         // throughput levels
	Soak            int           // restarts of the CPU and memory run
	SoakConcurrency int           // concurrency of the soak
	Warmup          int           // restarts before anything is measured
	Flood           int           // junk events a second in the flood run; 0 skips it
	Variants        []Variant     // the bots to measure, each on a fresh stack, in this order
	Rounds          int           // how often the list of variants is run (interleaved: a, b, a, b)
	Relays          int           // the bot's relays (the requesters use the first)
	CPUProfile      string        // write the bot's CPU profile here (nestbot run --cpuprofile)
	BotEnv          []string      // extra environment for the bot (GOMAXPROCS=1, GOGC=50 …)
	Timeout         time.Duration // per exchange
	Log             io.Writer     // progress
}

// Variant is one bot to measure: built from this tree ("pure" or, with
// Libsecp, "libsecp"), or a prebuilt binary Bin (e.g. main's, as the
// baseline of an interleaved comparison).
type Variant struct {
	Name    string
	Bin     string
	Libsecp bool
}

// Results is what a bench run writes as JSON.
type Results struct {
	Started  time.Time `json:"started"`
	Command  []string  `json:"command"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Runs     []Run     `json:"runs"`
}

// Machine describes where the figures were taken.
type Machine struct {
	NProc     int    `json:"nproc"`
	CPU       string `json:"cpu"`
	GoVersion string `json:"go"`
	Kernel    string `json:"kernel"`
}

// Settings are the sizes of the run and the bot's configuration for it.
type Settings struct {
	N               int    `json:"latency_requests"`
	ThroughputN     int    `json:"throughput_requests"`
	Concurrency     []int  `json:"concurrency"`
	Soak            int    `json:"soak_restarts"`
	SoakConcurrency int    `json:"soak_concurrency"`
	Warmup          int    `json:"warmup"`
	Flood           int    `json:"flood_rate"`
	Relays          int    `json:"relays"`
	BotLimits       string `json:"bot_limits"`
}

// Run is one bot build measured on a fresh stack.
type Run struct {
	Variant string    `json:"variant"`
	Round   int       `json:"round"`
	Bot     buildInfo `json:"bot"`
	// LoadAvg is the machine's 1-minute load average when the run started
	// and when it ended (other work shares the two cores).
	LoadAvg [2]float64 `json:"load_avg_1m"`
	// Floor is the sum of the round trips a restart in place cannot avoid,
	// timed in this run, and the p50s' ratios to it.
	Floor Floor `json:"floor"`
	// Processes are the processes whose CPU per restart each batch reports.
	Processes []string `json:"processes"`
	// Idle is each process's CPU while the bot was connected and
	// subscribed but nothing was asked (ms of CPU per second).
	Idle       map[string]float64 `json:"idle_cpu_ms_per_s,omitempty"`
	RelayHop   Latency            `json:"relay_hop"`
	Deps       Deps               `json:"dependencies"`
	InPlace    Latency            `json:"restart_in_place"`
	Recreate   Latency            `json:"recreate_new_id"`
	Throughput []Latency          `json:"throughput"`
	Soak       Soak               `json:"soak"`
	Flood      FloodRun           `json:"flood"`
	Targets    []Target           `json:"targets"`
	BotLog     BotLogCounts       `json:"bot_log"`
	Profile    string             `json:"cpu_profile,omitempty"`
	// HeapProfile is the bot's heap when it was stopped, after a GC.
	HeapProfile string   `json:"heap_profile,omitempty"`
	BotEnv      []string `json:"bot_env,omitempty"`
}

// Deps are the round trips the bot's work is made of, timed from the
// bench's own clients on the same stack (ms, p50 / p99): a Redis PING and
// the three LiveKit calls of a restart in place.
type Deps struct {
	RedisPing [2]float64 `json:"redis_ping_ms"`
	LKList    [2]float64 `json:"livekit_list_ms"`
	LKDelete  [2]float64 `json:"livekit_delete_ms"`
	LKCreate  [2]float64 `json:"livekit_create_ms"`
}

// Latency is one batch of exchanges. Times are milliseconds.
type Latency struct {
	Concurrency int            `json:"concurrency"`
	N           int            `json:"n"`
	OK          int            `json:"ok"`
	Errors      map[string]int `json:"errors"`
	FirstError  string         `json:"first_error,omitempty"`
	P50         float64        `json:"p50_ms"`
	P90         float64        `json:"p90_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	Mean        float64        `json:"mean_ms"`
	Seconds     float64        `json:"seconds"`
	PerSecond   float64        `json:"per_second"`
	CPUPerReq   float64        `json:"bot_cpu_ms_per_restart"`
	// CPU is each process's CPU time per restart (ms): nestbot, livekit,
	// relay1…, redis, and the sums relays, others (all but the bot) and
	// stack (all).
	CPU map[string]float64 `json:"cpu_ms_per_restart,omitempty"`
	// Calls are the bot's LiveKit calls, Redis round trips and relay REQs
	// per restart, from its metrics; absent for a bot without the counters.
	Calls *Calls `json:"per_restart,omitempty"`
	// Stages is the bot's mean time per step of a request (ms: queue,
	// claim, work, build, store, send), from nestbot_request_stage_seconds
	// read before and after the batch; absent for a bot without it.
	Stages  map[string]float64 `json:"stage_mean_ms,omitempty"`
	LoadAvg float64            `json:"load_avg_1m"` // when the batch ended
	// Samples are the successful exchanges' latencies (ms), in order of
	// completion; the CDF plots are drawn from them.
	Samples []float64 `json:"samples_ms,omitempty"`
	// The bot's own time per request, from its log (duration_ms: taken off
	// its queue → a relay accepted the answer), successful requests only.
	BotP50 float64 `json:"bot_handle_p50_ms,omitempty"`
	BotP90 float64 `json:"bot_handle_p90_ms,omitempty"`
	BotP99 float64 `json:"bot_handle_p99_ms,omitempty"`
}

// Soak is the CPU and memory run.
type Soak struct {
	Latency
	IdleRSS    float64 `json:"idle_rss_mb"`
	PeakRSS    float64 `json:"peak_rss_mb"`      // highest VmRSS sampled during the soak
	HWM        float64 `json:"vm_hwm_mb"`        // the kernel's high-water mark since start
	AfterRSS   float64 `json:"after_rss_mb"`     // VmRSS 2 s after the last answer
	AfterRatio float64 `json:"after_idle_ratio"` // AfterRSS / IdleRSS
	PeakRatio  float64 `json:"peak_idle_ratio"`
	// SettledRSS is VmRSS settleTime after the last answer.
	SettledRSS   float64 `json:"settled_rss_mb"`
	SettledRatio float64 `json:"settled_idle_ratio"`
}

// settleTime is when the second RSS reading after the soak is taken.
const settleTime = 15 * time.Second

// BotLogCounts are warnings and errors the bot logged during the run.
type BotLogCounts struct {
	Warn  int `json:"warn"`
	Error int `json:"error"`
	// The flood run's bot, whose overload reports are warnings.
	FloodWarn  int `json:"flood_warn"`
	FloodError int `json:"flood_error"`
}

// Target is one goal of issue 15 and whether this run met it.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Met  bool    `json:"met"`
}

// Bench runs the variants in o, each on a fresh stack, one after the other.
func Bench(ctx context.Context, root string, o Options) (*Results, error) {
	res := &Results{
		Started: time.Now().UTC(),
		Command: os.Args,
		Machine: Machine{NProc: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(), Kernel: kernel()},
		Settings: Settings{
			N: o.N, ThroughputN: o.ThroughputN, Concurrency: o.Concurrency, Soak: o.Soak,
			SoakConcurrency: o.SoakConcurrency, Warmup: o.Warmup, Flood: o.Flood, Relays: max(o.Relays, 1),
			BotLimits: "restarts_per_minute=1000000 (default 5), new_rooms_per_minute=0 (no limit; default 60), room_cooldown=10s (default; every request is for a room of its own), workers=16, queue=1024, dependency_timeout=30s, log.level=info",
		},
	}
	for round := range max(o.Rounds, 1) {
		for _, v := range o.Variants {
			run, err := benchVariant(ctx, root, v, o)
			if err != nil {
				return res, fmt.Errorf("%s: %w", v.Name, err)
			}
			run.Round = round + 1
			res.Runs = append(res.Runs, *run)
		}
	}
	return res, nil
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "nestbench: "+format+"\n", args...)
	}
}

func benchVariant(ctx context.Context, root string, v Variant, o Options) (*Run, error) {
	variant, libsecp := v.Name, v.Libsecp
	w, err := startWorld(io.Discard, o.Relays)
	if err != nil {
		return nil, fmt.Errorf("start stack (run devstack/install.sh, i.e. make deps, first): %w", err)
	}
	defer w.close()
	dir := w.sess.TempDir()

	bin := v.Bin
	env := append([]string(nil), o.BotEnv...)
	run := &Run{Variant: variant, BotEnv: o.BotEnv, LoadAvg: [2]float64{loadAvg()}}
	var profile []string // nestbot run's profiling flags, for the main bot only
	if o.CPUProfile != "" {
		run.Profile = o.CPUProfile
		if len(o.Variants) > 1 {
			run.Profile = strings.TrimSuffix(o.CPUProfile, ".prof") + "." + variant + ".prof"
		}
		abs, _ := filepath.Abs(run.Profile)
		if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
			return nil, err
		}
		run.HeapProfile = strings.TrimSuffix(abs, ".prof") + ".heap.prof"
		profile = []string{"--cpuprofile", abs, "--heapprofile", run.HeapProfile}
	}
	if bin == "" {
		bin = filepath.Join(dir, "nestbot-"+variant)
		o.logf("%s: building ./cmd/nestbot", variant)
		if err := buildBot(root, "./cmd/nestbot", bin, libsecp); err != nil {
			return nil, err
		}
	}
	if run.Bot, err = readBuildInfo(bin); err != nil {
		return nil, err
	}

	botSK := nostr.GeneratePrivateKey()
	bot, _ := nostr.GetPublicKey(botSK)
	// launch starts the bot as name, on the bench's relay and extraRelays.
	var metricsURL string
	launch := func(name string, args []string, extraRelays ...string) (*botProc, error) {
		cfgPath := filepath.Join(dir, name+".yaml")
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		metricsURL = "http://" + addr + "/metrics"
		if err := os.WriteFile(cfgPath, []byte(botConfig(w, botSK, addr, extraRelays...)), 0o600); err != nil {
			return nil, err
		}
		return startBot(bin, cfgPath, filepath.Join(dir, name+".log"), env, args...)
	}
	proc, err := launch("bot", profile)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			proc.stop()
		}
	}()

	procs := &procSet{}
	procs.set("nestbot", proc.pid())
	procs.set("livekit", w.lk.PID())
	for i, rl := range w.relays {
		procs.set(fmt.Sprintf("relay%d", i+1), rl.PID())
	}
	procs.set("redis", w.redis.PID())
	run.Processes = procs.names

	// Idle: connected and subscribed, nothing asked yet. Each process's
	// CPU meanwhile is what it costs with nothing to do (a relay's
	// runtime and store tick on their own), subtracted below where the
	// relays' CPU is split.
	idle0, t0 := procs.cpuPrecise(), time.Now()
	ctxSleep(ctx, 2*time.Second)
	run.Idle = perSecond(idle0, procs.cpuPrecise(), time.Since(t0))
	idle, _, err := memStatus(proc.pid())
	if err != nil {
		return nil, err
	}
	run.Soak.IdleRSS = mb(idle)
	o.logf("%s: bot pid %d subscribed, idle RSS %.1f MB", variant, proc.pid(), run.Soak.IdleRSS)

	maxConc := slices.Max(append(slices.Clone(o.Concurrency), o.SoakConcurrency, 1))
	conns := make([]*conn, maxConc)
	for i := range conns {
		if conns[i], err = dial(ctx, w.relay.URL, bot); err != nil {
			return nil, err
		}
		defer conns[i].close()
	}
	r := &runner{w: w, bot: bot, proc: proc, pid: proc.pid(), conns: conns, timeout: o.Timeout, procs: procs, metricsURL: metricsURL}

	o.logf("%s: Redis and LiveKit round trips, %d each", variant, o.N)
	if run.Deps, err = w.deps(ctx, o.N); err != nil {
		return nil, err
	}
	o.logf("%s: relay hop, %d events, one at a time", variant, o.N)
	if run.RelayHop, err = r.relayHop(ctx, o.N); err != nil {
		return nil, err
	}

	if o.Warmup > 0 {
		o.logf("%s: warm-up, %d restarts in place and %d recreations", variant, o.Warmup, max(o.Warmup/4, 1))
		if _, err := r.scenario(ctx, o.Warmup, 1, true); err != nil {
			return nil, err
		}
		if _, err := r.scenario(ctx, max(o.Warmup/4, 1), 1, false); err != nil {
			return nil, err
		}
	}
	o.logf("%s: restart in place, %d requests, one at a time", variant, o.N)
	if run.InPlace, err = r.scenario(ctx, o.N, 1, true); err != nil {
		return nil, err
	}
	o.logf("%s: recreate under a new ID, %d requests, one at a time", variant, o.N)
	if run.Recreate, err = r.scenario(ctx, o.N, 1, false); err != nil {
		return nil, err
	}
	for _, c := range o.Concurrency {
		o.logf("%s: throughput, %d restarts in place at concurrency %d", variant, o.ThroughputN, c)
		l, err := r.scenario(ctx, o.ThroughputN, c, true)
		if err != nil {
			return nil, err
		}
		run.Throughput = append(run.Throughput, l)
	}
	if o.Soak > 0 {
		o.logf("%s: soak, %d restarts in place at concurrency %d (CPU and RSS)", variant, o.Soak, o.SoakConcurrency)
		if err := r.soak(ctx, o.Soak, o.SoakConcurrency, &run.Soak); err != nil {
			return nil, err
		}
	}
	stopped = true
	if err := proc.stop(); err != nil {
		return nil, err
	}
	run.BotLog = BotLogCounts{Warn: proc.countLines("level=WARN"), Error: proc.countLines("level=ERROR")}

	// The flood runs on a bot started again with the hostile relay among
	// its relays, so that the runs above publish to one relay as before,
	// and without the profiler (the profile is the runs above).
	if o.Flood > 0 {
		o.logf("%s: flood, %d restarts in place one at a time while a hostile relay sends %d junk events/s", variant, o.N, o.Flood)
		hostile := flood.StartRelay()
		defer hostile.Close()
		hostile.TargetBot()
		fproc, err := launch("bot-flood", nil, hostile.URL)
		if err != nil {
			return nil, err
		}
		defer fproc.stop()
		r.proc, r.pid = fproc, fproc.pid()
		r.procs.set("nestbot", fproc.pid())
		r.metricsURL = metricsURL
		if run.Flood, err = r.flood(ctx, hostile, o.N, o.Flood); err != nil {
			return nil, err
		}
		if err := fproc.stop(); err != nil {
			return nil, err
		}
		run.BotLog.FloodWarn = fproc.countLines("level=WARN")
		run.BotLog.FloodError = fproc.countLines("level=ERROR")
	}
	run.Floor = floorOf(run)
	run.splitRelays()
	run.LoadAvg[1] = loadAvg()
	run.Targets = targets(run)
	return run, nil
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// runner sends batches of requests over its connections.
type runner struct {
	w       *world
	bot     string
	proc    *botProc
	pid     int
	conns   []*conn
	timeout time.Duration
	// procs are the processes whose CPU is read around each batch;
	// metricsURL is the bot's /metrics, for its dependency counters.
	procs      *procSet
	metricsURL string
}

// scenario prepares n fresh hosts and rooms (in place: record and LiveKit
// room present; otherwise: only the host's 30312 on the relay) and sends
// their requests at concurrency conc.
func (r *runner) scenario(ctx context.Context, n, conc int, inPlace bool) (Latency, error) {
	preps, err := prepareHosts(r.bot, n)
	if err != nil {
		return Latency{}, err
	}
	want := expectRecreated
	if inPlace {
		want = expectInPlace
		err = r.w.setupInPlace(ctx, preps)
	} else {
		err = r.w.setupRecreate(ctx, preps)
	}
	if err != nil {
		return Latency{}, err
	}
	ctxSleep(ctx, 200*time.Millisecond) // let setup's traffic settle
	off := r.proc.logSize()
	outs, elapsed, u, err := r.batch(ctx, preps, conc)
	if err != nil {
		return Latency{}, err
	}
	l := summarize(r.bot, outs, want, conc, elapsed, u.cpu["nestbot"])
	l.CPU, l.Calls, l.LoadAvg = r.procs.perRestart(u, len(outs)), u.perRestart(len(outs)), loadAvg()
	l.Stages = u.stageMeans()
	ctxSleep(ctx, 200*time.Millisecond) // the bot logs a request after its answer went out
	l.botTimes(r.proc.handleTimes(off))
	return l, nil
}

func (l *Latency) botTimes(d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	l.BotP50, l.BotP90, l.BotP99 = ms(pct(d, 50)), ms(pct(d, 90)), ms(pct(d, 99))
}

// relayHop times n single relay hops (see conn.echo) with events signed
// beforehand, and reads every process's CPU around them: a hop is what a
// requester's exchange costs the relay it uses without the bot (its REQ,
// its EVENT, the event sent back, its CLOSE), so the relays' CPU per hop
// is the client's own share of a restart's (splitRelays). Each event is
// tagged like an answer (an "e" and a "p" tag) so that the hop's
// subscription has the requester's filter shape.
func (r *runner) relayHop(ctx context.Context, n int) (Latency, error) {
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return Latency{}, err
	}
	evs := make([]nostr.Event, n)
	for i := range evs {
		evs[i] = nostr.Event{Kind: 1, CreatedAt: nostr.Now(), Content: fmt.Sprintf("nestbench relay hop %d %s", i, newRoomID()),
			Tags: nostr.Tags{{"e", nostr.GeneratePrivateKey()}, {"p", pk}}}
		if err := evs[i].Sign(sk); err != nil {
			return Latency{}, err
		}
	}
	l := Latency{Concurrency: 1, N: n, Errors: map[string]int{}}
	var lat []time.Duration
	cpu0 := r.procs.cpuPrecise() // a few hundred ms of CPU: ticks are too coarse
	start := time.Now()
	for i := range evs {
		d, err := r.conns[0].echo(ctx, evs[i], r.timeout)
		if err != nil {
			l.Errors["echo"]++
			if l.FirstError == "" {
				l.FirstError = err.Error()
			}
			continue
		}
		lat = append(lat, d)
	}
	l.Seconds = time.Since(start).Seconds()
	l.CPU = r.procs.perRestart(since(cpu0, r.procs.cpuPrecise(), counters{}, counters{}), n)
	l.OK = len(lat)
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		l.P50, l.P90, l.P99, l.Max = ms(pct(lat, 50)), ms(pct(lat, 90)), ms(pct(lat, 99)), ms(lat[len(lat)-1])
	}
	return l, nil
}

// batch sends every prepared request, conc at a time, and measures the
// wall time and, around it, every process's CPU time and the bot's
// dependency counters.
func (r *runner) batch(ctx context.Context, preps []*prepared, conc int) ([]outcome, time.Duration, usage, error) {
	outs := make([]outcome, len(preps))
	if _, err := cpuTime(r.pid); err != nil {
		return nil, 0, usage{}, err
	}
	cpu0, c0 := r.snapshot(ctx)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func(c *conn) {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(preps) || ctx.Err() != nil {
					return
				}
				outs[k] = c.do(ctx, preps[k], r.timeout)
			}
		}(r.conns[i])
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, c1 := r.snapshot(ctx)
	if _, ok := cpu1["nestbot"]; !ok {
		return nil, 0, usage{}, fmt.Errorf("bot pid %d: CPU time unreadable (exited?)\n%s", r.pid, r.proc.tail(20))
	}
	if ctx.Err() != nil {
		return nil, 0, usage{}, ctx.Err()
	}
	return outs, elapsed, since(cpu0, cpu1, c0, c1), nil
}

// soak runs n restarts in place in chunks (prepared between chunks, off
// the bot's CPU count; each chunk's LiveKit rooms closed after it) and
// samples the bot's RSS while they run.
func (r *runner) soak(ctx context.Context, n, conc int, s *Soak) error {
	const chunk = 1000
	var all []outcome
	var elapsed time.Duration
	var used usage
	var peak int64
	var times []time.Duration
	for lo := 0; lo < n; lo += chunk {
		preps, err := prepareHosts(r.bot, min(chunk, n-lo))
		if err != nil {
			return err
		}
		if err := r.w.setupInPlace(ctx, preps); err != nil {
			return err
		}
		stopSampling := sampleRSS(r.pid)
		off := r.proc.logSize()
		outs, e, u, err := r.batch(ctx, preps, conc)
		ctxSleep(ctx, 100*time.Millisecond)
		times = append(times, r.proc.handleTimes(off)...)
		peak = max(peak, stopSampling())
		if err != nil {
			return err
		}
		all = append(all, outs...)
		elapsed += e
		used.add(u)
		// Close the chunk's LiveKit rooms, as their empty_timeout would in
		// time: LiveKit keeps about one chunk of rooms, not all of them, so
		// the rooms the bot's lifecycle looks after stay the number they
		// would be in production.
		if err := r.w.closeRooms(ctx, preps); err != nil {
			return err
		}
	}
	s.Latency = summarize(r.bot, all, expectInPlace, conc, elapsed, used.cpu["nestbot"])
	s.Latency.CPU, s.Latency.Calls, s.Latency.LoadAvg = r.procs.perRestart(used, len(all)), used.perRestart(len(all)), loadAvg()
	s.Latency.Stages = used.stageMeans()
	s.Latency.botTimes(times)
	ctxSleep(ctx, 2*time.Second)
	after, hwm, err := memStatus(r.pid)
	if err != nil {
		return err
	}
	s.PeakRSS, s.HWM, s.AfterRSS = mb(peak), mb(hwm), mb(after)
	// Go returns freed heap to the OS gradually (the background
	// scavenger); a second reading shows what the bot keeps.
	ctxSleep(ctx, settleTime-2*time.Second)
	if settled, _, err := memStatus(r.pid); err == nil {
		s.SettledRSS = mb(settled)
	}
	if s.IdleRSS > 0 {
		s.AfterRatio = s.AfterRSS / s.IdleRSS
		s.PeakRatio = s.PeakRSS / s.IdleRSS
		s.SettledRatio = s.SettledRSS / s.IdleRSS
	}
	return nil
}

// summarize checks every outcome (signatures are verified here, after the
// clock) and computes the latency distribution of the good ones.
func summarize(bot string, outs []outcome, want expectation, conc int, elapsed, cpu time.Duration) Latency {
	l := Latency{Concurrency: conc, N: len(outs), Errors: map[string]int{}, Seconds: elapsed.Seconds()}
	var lat []time.Duration
	for i := range outs {
		kind, msg := check(bot, &outs[i], want)
		if kind != "" {
			l.Errors[string(kind)]++
			if l.FirstError == "" {
				l.FirstError = string(kind) + ": " + msg
			}
			continue
		}
		l.OK++
		lat = append(lat, outs[i].latency)
		l.Samples = append(l.Samples, ms(outs[i].latency))
	}
	if l.Seconds > 0 {
		l.PerSecond = float64(l.OK) / l.Seconds
	}
	if len(outs) > 0 {
		l.CPUPerReq = ms(cpu) / float64(len(outs))
	}
	if len(lat) == 0 {
		return l
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	l.P50, l.P90, l.P99 = ms(pct(lat, 50)), ms(pct(lat, 90)), ms(pct(lat, 99))
	l.Max, l.Mean = ms(lat[len(lat)-1]), ms(sum/time.Duration(len(lat)))
	return l
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// targets are issue 15's goals (issue 5's, tightened, plus what a restart
// costs the services the bot shares).
func targets(r *Run) []Target {
	best := 0.0
	for _, t := range r.Throughput {
		best = max(best, t.PerSecond)
	}
	t := []Target{
		{Name: "restart in place p50", Want: "<= 4 ms", Got: r.InPlace.P50, Met: r.InPlace.OK > 0 && r.InPlace.P50 <= 4},
		{Name: "restart in place p99", Want: "<= 10 ms", Got: r.InPlace.P99, Met: r.InPlace.OK > 0 && r.InPlace.P99 <= 10},
		{Name: "recreate p50", Want: "<= 5 ms", Got: r.Recreate.P50, Met: r.Recreate.OK > 0 && r.Recreate.P50 <= 5},
		{Name: "restart in place p50 / floor", Want: "<= 1.5", Got: r.Floor.InPlace, Met: r.Floor.InPlace > 0 && r.Floor.InPlace <= 1.5},
		{Name: "bot CPU per restart (c=1)", Want: "<= 2 ms", Got: r.InPlace.CPUPerReq, Met: r.InPlace.CPUPerReq <= 2},
		{Name: "LiveKit CPU per restart in place", Want: "<= 3 ms", Got: r.InPlace.CPU["livekit"], Met: r.InPlace.CPU["livekit"] <= 3},
		{Name: "relays' CPU per restart in place", Want: "<= 1 ms", Got: r.InPlace.CPU["relays"], Met: r.InPlace.CPU["relays"] <= 1},
		{Name: "throughput (best level)", Want: ">= 300 restarts/s", Got: best, Met: best >= 300},
		{Name: "idle RSS", Want: "<= 30 MB", Got: r.Soak.IdleRSS, Met: r.Soak.IdleRSS > 0 && r.Soak.IdleRSS <= 30},
	}
	if c := r.InPlace.Calls; c != nil {
		t = append(t,
			Target{Name: "LiveKit calls per restart in place", Want: "<= 2", Got: c.LiveKit, Met: c.LiveKit <= 2},
			// All of the bot's round trips, background included: an upper
			// bound of those on the critical path.
			Target{Name: "Redis round trips per restart (all)", Want: "<= 3 (critical path)", Got: c.RedisRoundTrips, Met: c.RedisRoundTrips <= 3},
		)
	}
	if r.Flood.N > 0 {
		t = append(t, Target{Name: "restart in place p99 under flood", Want: "<= 100 ms", Got: r.Flood.P99,
			Met: r.Flood.OK == r.Flood.N && r.Flood.P99 <= 100})
	}
	if r.Soak.N > 0 {
		t = append(t,
			Target{Name: "bot CPU per restart (soak)", Want: "<= 1 ms", Got: r.Soak.CPUPerReq, Met: r.Soak.CPUPerReq <= 1},
			Target{Name: fmt.Sprintf("RSS after %d restarts / idle", r.Soak.N), Want: "<= 1.5", Got: r.Soak.AfterRatio, Met: r.Soak.AfterRatio <= 1.5},
			Target{Name: fmt.Sprintf("  same, %s later", settleTime), Want: "<= 1.5", Got: r.Soak.SettledRatio, Met: r.Soak.SettledRatio <= 1.5},
		)
	}
	return t
}
