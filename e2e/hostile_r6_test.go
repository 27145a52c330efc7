//go:build faults

package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"

	"github.com/nestbot/nestbot/internal/flood"
)

// Review round 6, hostile input: what a stranger can make the bot hold
// (connections, goroutines, file descriptors, log lines) by naming relays
// or by reaching its ports, measured on a real bot process.

// procUse is what a bot process holds at one moment.
type procUse struct {
	goroutines, fds, threads int64
	strangers                int64 // sockets to the relays of the test's strangers
}

func (u procUse) String() string {
	return fmt.Sprintf("goroutines=%d fds=%d threads=%d stranger_sockets=%d", u.goroutines, u.fds, u.threads, u.strangers)
}

// use samples the bot process: goroutines from its /metrics (Go
// collector), open file descriptors, threads, and its TCP sockets whose
// remote address is one of strangers ("127.0.0.9:4242"), from /proc.
func (p *botProc) use(t *testing.T, opsAddr string, strangers map[string]bool) procUse {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", p.pid())
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var n int64
	for remote, inode := range tcpSockets(t, p.pid()) {
		if inodes[inode] && strangers[remote] {
			n++
		}
	}
	return procUse{
		goroutines: int64(scrape(t, opsAddr, "go_goroutines", nil)),
		fds:        int64(len(ents)),
		threads:    procStatus(p.pid(), "Threads"),
		strangers:  n,
	}
}

// tcpSockets maps each IPv4 TCP socket of pid's network namespace, by its
// remote "ip:port", to its inode (/proc/<pid>/net/tcp).
func tcpSockets(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		hostPort := strings.Split(f[2], ":")
		ip, err1 := strconv.ParseUint(hostPort[0], 16, 32)
		port, err2 := strconv.ParseUint(hostPort[1], 16, 16)
		if err1 != nil || err2 != nil {
			continue
		}
		// The kernel prints the address as a little-endian word.
		remote := fmt.Sprintf("%d.%d.%d.%d:%d", ip&0xff, ip>>8&0xff, ip>>16&0xff, ip>>24, port)
		out[remote] = f[9]
	}
	return out
}

// addrsOf are the relays' "ip:port" addresses.
func addrsOf(rs []*flood.Relay) map[string]bool {
	m := map[string]bool{}
	for _, r := range rs {
		m[strings.TrimPrefix(r.URL, "ws://")] = true
	}
	return m
}

// silentHosts starts n relays that accept, read and never answer, each on
// a loopback address of its own (127.0.0.0/8): distinct hosts to the bot,
// so its per-host cap does not apply, only its cap on all strangers'
// connections. It returns them and a sampler of the most connections
// open to all of them together.
func silentHosts(t *testing.T, n int) ([]*flood.Relay, *openSampler) {
	t.Helper()
	var rs []*flood.Relay
	for i := range n {
		r, err := flood.StartRelayAt(fmt.Sprintf("127.0.%d.%d:0", 1+i/200, 10+i%200))
		if err != nil {
			t.Fatal(err)
		}
		r.Silent.Store(true)
		t.Cleanup(r.Close)
		rs = append(rs, r)
	}
	s := &openSampler{relays: rs, stop: make(chan struct{})}
	s.wg.Add(1)
	go s.run()
	t.Cleanup(s.halt)
	return rs, s
}

// openSampler records the most connections open to a set of relays at
// once. Sampling can only miss a peak, never invent one: an assertion that
// the peak stays under a cap cannot fail because of it.
type openSampler struct {
	relays []*flood.Relay
	most   atomic.Int64
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func (s *openSampler) now() int64 {
	var n int64
	for _, r := range s.relays {
		n += r.OpenNow.Load()
	}
	return n
}

func (s *openSampler) run() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		if n := s.now(); n > s.most.Load() {
			s.most.Store(n)
		}
	}
}

func (s *openSampler) halt() { s.once.Do(func() { close(s.stop) }); s.wg.Wait() }

func (s *openSampler) accepted() int64 {
	var n int64
	for _, r := range s.relays {
		n += r.Accepted.Load()
	}
	return n
}

// Many requests, each naming as its hint one of many relays on distinct
// hosts that accept and never answer: the bot holds at most its cap of
// strangers' connections (32) at once, and once the requests are answered
// every connection, goroutine and file descriptor they cost is given back.
func TestFaultManyHintedHostsBounded(t *testing.T) {
	w := newWorld(t, 1)
	evil, open := silentHosts(t, 60)
	addrs := addrsOf(evil)
	cfg := w.cfg
	cfg.HTTP.Listen = freeAddr(t)
	p := w.startBotProc(cfg, "bot")
	waitFor(t, "ops listener up", func() bool { code, _ := httpGet("http://" + cfg.HTTP.Listen + "/healthz"); return code == 200 })
	// As many requests at once without a hint first: the pools the bot
	// keeps (Redis, LiveKit, its relays) grow to what this load needs.
	burst := func(hints func(i int) string, n int) {
		var errs []<-chan error
		for i := range n {
			errs = append(errs, w.hintStatus(newUser(t), hints(i)))
		}
		for _, e := range errs {
			if err := <-e; err != nil {
				t.Fatalf("status: %v", err)
			}
		}
	}
	const n = 3 * 60
	burst(func(int) string { return "" }, n)
	before := p.use(t, cfg.HTTP.Listen, addrs)

	var peak procUse
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			u := p.use(t, cfg.HTTP.Listen, addrs)
			peak.goroutines, peak.fds = max(peak.goroutines, u.goroutines), max(peak.fds, u.fds)
			peak.threads, peak.strangers = max(peak.threads, u.threads), max(peak.strangers, u.strangers)
		}
	}()
	burst(func(i int) string { return evil[i%len(evil)].URL }, n)
	close(stop)
	<-sampled
	if open.accepted() == 0 {
		t.Fatal("the bot never connected to a hint: the test proves nothing")
	}
	if most := max(open.most.Load(), peak.strangers); most > 32 {
		t.Fatalf("%d connections at once to strangers' relays, cap 32", most)
	}
	var after procUse
	settled := func() bool {
		after = p.use(t, cfg.HTTP.Listen, addrs)
		return open.now() == 0 && after.strangers == 0 && after.goroutines <= before.goroutines+10 && after.fds <= before.fds+4
	}
	deadline := time.Now().Add(60 * time.Second)
	for !settled() {
		if time.Now().After(deadline) {
			t.Fatalf("resources not given back: before %v, after %v (relays see %d open)", before, after, open.now())
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.alive(t, "after the hints")
	t.Logf("FIGURES hinted-hosts: requests=%d hosts=%d connections=%d most_open=%d before=[%v] peak=[%v] after=[%v]",
		n, len(evil), open.accepted(), max(open.most.Load(), peak.strangers), before, peak, after)
}

func (s *openSampler) reqs() int64 {
	var n int64
	for _, r := range s.relays {
		n += r.REQs.Load()
	}
	return n
}

// A newcomer's request (the normal lane) sent behind a burst of requests
// that each name a silent relay on a host of its own as their hint, from
// fresh keys (so the per-requester limit never applies). Each silent hint
// costs a look-up slot for 2 s (8 slots); a worker that found the slots
// taken waited for one as long, so the burst held all 16 workers in 2 s
// rounds and the newcomer was answered only once the burst had gone
// through about half its look-ups (measured: after 96 look-ups, 23 s).
// Look-ups beyond the slots and two waiters now skip the stranger's relay
// at once: the newcomer is answered within the first rounds. The bound is
// counted in look-ups started, not in seconds.
func TestFaultSilentHintsDoNotStallTheLane(t *testing.T) {
	w := newWorld(t, 1)
	evil, open := silentHosts(t, 60)
	cfg := w.cfg
	p := w.startBotProc(cfg, "bot")
	const n = 180
	var errs []<-chan error
	for i := range n {
		errs = append(errs, w.hintStatus(newUser(t), evil[i%len(evil)].URL))
	}
	waitFor(t, "the burst reached the bot", func() bool { return open.reqs() > 0 })
	start := time.Now()
	victim := <-w.hintStatus(newUser(t), "")
	took := time.Since(start)
	lookups := open.reqs()
	if victim != nil {
		t.Fatal(victim)
	}
	if lookups > n/4 {
		t.Fatalf("the newcomer was answered only after %d of %d silent hints were looked up (%s)", lookups, n, took.Round(time.Millisecond))
	}
	for _, e := range errs {
		if err := <-e; err != nil {
			t.Fatalf("status with a silent hint: %v", err)
		}
	}
	p.alive(t, "after the burst")
	t.Logf("FIGURES silent-hints: burst=%d victim_answered_after=%s hint_lookups_started_by_then=%d total=%d", n, took.Round(time.Millisecond), lookups, open.reqs())
}

// Refused webhooks at a high rate, bad signatures and bodies over the
// limit, from many connections at once: each is refused with its status,
// counted, and the bot's log gets one WARN line for all of them.
func TestFaultWebhookFlood(t *testing.T) {
	w := newWorld(t, 1)
	cfg := w.cfg
	cfg.HTTP.Listen = freeAddr(t)
	p := w.startBotProc(cfg, "bot")
	base := "http://" + cfg.HTTP.Listen
	waitFor(t, "ops listener up", func() bool { code, _ := httpGet(base + "/healthz"); return code == 200 })
	url := base + cfg.HTTP.WebhookPath
	body := []byte(`{"event":"room_finished","room":{"name":"x"}}`)
	huge := make([]byte, 2<<20)
	bad := []map[string]string{
		{},
		{"Authorization": "not-a-jwt"},
		{"Authorization": signWebhook(t, w.lk.APIKey, "not-the-secret-not-the-secret-not-the", body)},
		{"Authorization": signWebhook(t, "APIstranger", w.lk.APISecret, body)},
	}
	rssBefore := procStatus(p.pid(), "VmRSS")
	const n, par = 2000, 8
	var refused, tooLarge, other atomic.Int64
	var wg sync.WaitGroup
	for g := range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += par {
				b := body
				if i%10 == 0 {
					b = huge
				}
				switch httpPost(t, url, b, bad[i%len(bad)]) {
				case 401:
					refused.Add(1)
				case 413:
					tooLarge.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if other.Load() != 0 || tooLarge.Load() != n/10 {
		t.Fatalf("refused %d, too large %d, other %d", refused.Load(), tooLarge.Load(), other.Load())
	}
	if got := scrape(t, cfg.HTTP.Listen, "nestbot_webhooks_total", map[string]string{"outcome": "unauthorized"}); got != float64(refused.Load()) {
		t.Fatalf("counted %v refusals, sent %d", got, refused.Load())
	}
	warns := p.countLog(`level=WARN msg="webhook refused"`)
	if warns > 1 {
		t.Fatalf("%d refused webhooks made %d WARN lines", refused.Load(), warns)
	}
	p.alive(t, "after the webhook flood")
	t.Logf("FIGURES webhook-flood: requests=%d refused=%d too_large=%d warn_lines=%d rss_kb_before=%d rss_kb_after=%d hwm_kb=%d",
		n, refused.Load(), tooLarge.Load(), warns, rssBefore, procStatus(p.pid(), "VmRSS"), procStatus(p.pid(), "VmHWM"))
}

// Connections to the ops listener that never finish a request: each held
// a goroutine and a descriptor until ReadHeaderTimeout (5 s), so 3,000 of
// them held 3,000 descriptors (and 33 MB); a few thousand a second would
// have exhausted the process's descriptors, and with them its relay and
// Redis connections. The listener now takes at most 256 at once; the rest
// wait in the kernel's queue, and the port serves again once they go.
func TestFaultOpsIdleConnections(t *testing.T) {
	w := newWorld(t, 1)
	cfg := w.cfg
	cfg.HTTP.Listen = freeAddr(t)
	p := w.startBotProc(cfg, "bot")
	base := "http://" + cfg.HTTP.Listen
	waitFor(t, "ops listener up", func() bool { code, _ := httpGet(base + "/healthz"); return code == 200 })
	before := p.use(t, cfg.HTTP.Listen, nil)
	rss := procStatus(p.pid(), "VmRSS")
	const n, limit = 3000, 256
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", cfg.HTTP.Listen)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		c.Write([]byte("POST " + cfg.HTTP.WebhookPath + " HTTP/1.1\r\nHost: x\r\n"))
		conns = append(conns, c)
	}
	fds := func() int64 {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid()))
		return int64(len(ents))
	}
	// The bot's other descriptors (its Redis and relay connections) come
	// and go by a few: the margin covers them both ways.
	deadline := time.Now().Add(20 * time.Second)
	for fds() < before.fds+limit-16 {
		if time.Now().After(deadline) {
			t.Fatalf("the bot never took connections up to its limit: %d descriptors, %d before", fds(), before.fds)
		}
		time.Sleep(20 * time.Millisecond)
	}
	during, duringRSS := fds(), procStatus(p.pid(), "VmRSS")
	if during > before.fds+limit+16 {
		t.Fatalf("%d descriptors with %d idle connections to the ops port (%d before), limit %d", during, n, before.fds, limit)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, "the ops port serves again", func() bool { code, _ := httpGet(base + "/healthz"); return code == 200 })
	p.alive(t, "after the idle connections")
	t.Logf("FIGURES ops-idle: conns=%d fds_before=%d rss_kb_before=%d fds_during=%d rss_kb_during=%d", n, before.fds, rss, during, duringRSS)
}

// Direct messages from fresh keys whose relay lists name relays that never
// answer, on distinct hosts: each reply goes to the sender's relays too,
// and each such relay got a send loop (up to three attempts, about 18 s
// against a silent relay) of its own, beyond the bot's bound on
// background sends (1,024), so that 600 such messages ran 4,300
// goroutines: a bound set by the attacker's rate alone. Now relays named
// by others get no loop beyond that bound, and everything is given back.
func TestFaultListedSilentRelaysSendLoops(t *testing.T) {
	w := newWorld(t, 1)
	evil, open := silentHosts(t, 60)
	cfg := w.cfg
	cfg.HTTP.Listen = freeAddr(t)
	p := w.startBotProc(cfg, "bot")
	waitFor(t, "ops listener up", func() bool { code, _ := httpGet("http://" + cfg.HTTP.Listen + "/healthz"); return code == 200 })
	before := p.use(t, cfg.HTTP.Listen, nil)

	ctx, cancel := waitCtx(5 * time.Minute)
	defer cancel()
	rl, err := nostr.RelayConnect(ctx, w.relays[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	const senders, perList = 600, 5
	const maxSendLoops = 1024 // bot/relayio.go
	for i := range senders {
		u := newUser(t)
		list := nostr.Event{Kind: 10002, CreatedAt: nostr.Now()}
		for j := range perList {
			list.Tags = append(list.Tags, nostr.Tag{"r", evil[(i*perList+j)%len(evil)].URL})
		}
		if err := u.signer.Sign(&list); err != nil {
			t.Fatal(err)
		}
		key, err := nip04.ComputeSharedSecret(w.botPub(), u.sk)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := nip04.Encrypt("hello there", key)
		if err != nil {
			t.Fatal(err)
		}
		dm := nostr.Event{Kind: 4, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", w.botPub()}}, Content: ct}
		if err := u.signer.Sign(&dm); err != nil {
			t.Fatal(err)
		}
		for _, ev := range []nostr.Event{list, dm} {
			if err := rl.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	var peak procUse
	replies := func() int {
		return len(query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{4}, Authors: []string{w.botPub()}, Limit: 1000}))
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		u := p.use(t, cfg.HTTP.Listen, nil)
		peak.goroutines, peak.fds = max(peak.goroutines, u.goroutines), max(peak.fds, u.fds)
		if replies() >= senders && open.now() == 0 && u.goroutines <= before.goroutines+20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: replies %d/%d, open %d, %v", replies(), senders, open.now(), u)
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.alive(t, "after the listed relays")
	// Each answer still being sent keeps two goroutines of its own (its
	// lease renewal and its end, bot/pending.go) until its last loop ends,
	// and each sender's relay-list look-up one while it waits for its
	// batch; the send loops themselves are what the bound is about.
	if limit := before.goroutines + maxSendLoops + 3*senders + 128; peak.goroutines > limit {
		t.Fatalf("%d goroutines at the peak (%d before, at most %d expected): send loops beyond their bound of %d",
			peak.goroutines, before.goroutines, limit, maxSendLoops)
	}
	t.Logf("FIGURES listed-silent: senders=%d relays_each=%d hosts=%d connections=%d before=[%v] peak=[%v] rss_hwm_kb=%d",
		senders, perList, len(evil), open.accepted(), before, peak, procStatus(p.pid(), "VmHWM"))
}

// One of the bot's own relays turns hostile: it confirms the bot's
// subscription, then sends without pause valid, signed requests to the
// bot under subscription ids the bot never opened, AUTH challenges,
// NOTICEs, OKs for events the bot never sent, EOSE and CLOSED for other
// subscriptions. None of it is the bot's business: it keeps its
// subscription there, answers a real request sent through its honest
// relay, writes nothing to its log per frame, and holds no more memory or
// goroutines for it.
func TestFaultOwnRelayNoiseIgnored(t *testing.T) {
	w := newWorld(t, 1)
	noisy := startFakeRelay(t)
	cfg := w.cfg
	cfg.Nostr.Relays = []string{w.relays[0].URL, noisy.URL}
	cfg.HTTP.Listen = freeAddr(t)

	// Requests addressed to the bot, signed, fresh: they would be answered
	// if they came on the bot's subscription.
	var frames [][]byte
	for i := range 200 {
		u := newUser(t)
		req := signRequest(t, w, u, coord(u.pk, fmt.Sprintf("noise-%d", i)), "status", "")
		id := fmt.Sprintf("other-%d", i)
		b, _ := nostr.EventEnvelope{SubscriptionID: &id, Event: req}.MarshalJSON()
		frames = append(frames, b,
			[]byte(fmt.Sprintf(`["AUTH","challenge-%d"]`, i)),
			[]byte(fmt.Sprintf(`["NOTICE","noise %d"]`, i)),
			[]byte(fmt.Sprintf(`["OK","%064x",true,""]`, i)),
			[]byte(fmt.Sprintf(`["EOSE","other-%d"]`, i)),
			[]byte(fmt.Sprintf(`["CLOSED","other-%d","error: no"]`, i)))
	}
	var sent atomic.Int64
	stopNoise := make(chan struct{})
	var noise sync.WaitGroup
	noisy.OnBotREQ = func(c *flood.Conn, sub string, _ nostr.Filters) {
		c.SendJSON(nostr.EOSEEnvelope(sub))
		noise.Add(1)
		go func() {
			defer noise.Done()
			for {
				for _, f := range frames {
					select {
					case <-stopNoise:
						return
					default:
					}
					if c.Send(f) != nil {
						return
					}
					sent.Add(1)
				}
			}
		}()
	}
	p := w.startBotProc(cfg, "bot")
	waitFor(t, "ops listener up", func() bool { code, _ := httpGet("http://" + cfg.HTTP.Listen + "/healthz"); return code == 200 })
	waitFor(t, "the noise started", func() bool { return sent.Load() > int64(len(frames)) })
	before := p.use(t, cfg.HTTP.Listen, nil)
	logBefore := len(strings.Split(p.log(), "\n"))
	waitFor(t, "100,000 frames of noise", func() bool { return sent.Load() >= 100_000 })

	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.clientRelays = []string{w.relays[0].URL}
	if r := restartResult(t, w.ask(host, coord(host.pk, id), "restart").Payload); r.RoomID != id {
		t.Fatalf("%+v", r)
	}
	after := p.use(t, cfg.HTTP.Listen, nil)
	close(stopNoise)
	noise.Wait()
	p.alive(t, "after the noise")
	if n := scrape(t, cfg.HTTP.Listen, "nestbot_relay_connected", map[string]string{"relay": noisy.URL}); n != 1 {
		t.Fatalf("the bot lost its subscription on the noisy relay (connected %v)", n)
	}
	if n := scrape(t, cfg.HTTP.Listen, "nestbot_requests_total", nil); n != 1 {
		t.Fatalf("%v requests handled, want the one real request: the noise was taken for requests", n)
	}
	logged := len(strings.Split(p.log(), "\n")) - logBefore
	if logged > 20 {
		t.Fatalf("%d log lines while the relay sent %d frames of noise:\n%s", logged, sent.Load(), tail(p.log(), 20))
	}
	if after.goroutines > before.goroutines+20 {
		t.Fatalf("goroutines %d → %d under the noise", before.goroutines, after.goroutines)
	}
	t.Logf("FIGURES own-relay-noise: frames=%d log_lines=%d before=[%v] after=[%v] rss_hwm_kb=%d",
		sent.Load(), logged, before, after, procStatus(p.pid(), "VmHWM"))
}
