//go:build faults

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/flood"
	"github.com/nestbot/nestbot/nostrx"
)

// The hostile soak (issue 9): mixed hostile traffic with real requests in
// between, for soakDuration (NESTBOT_SOAK=10m for the long run). The bot is
// `nestbot run` as a process. It must never exit, answer every real request
// exactly once, and keep open file descriptors, goroutines, RSS and Redis
// keys under the bounds below.

// Input classes. Each runs in its own loop; see TestFaultHostileSoak.
const (
	classJunk           = "junk"             // flood.Junk into the bot's subscription on the hostile relay
	classPoisonDMs      = "poisoned_dms"     // flood.PoisonDMs, pushed by the hostile relay and stored on the honest one
	classListenerFrames = "malformed_frames" // broken frames in the bot's own subscription (its listener)
	classSilentHints    = "silent_relays"    // requests whose hint is a relay that accepts TCP and never answers
	classOversized      = "oversized_rooms"  // ~200 KB room events (1,000 p tags), then status and restart of them
	classDialedFrames   = "dialed_malformed_frames"
	classDistinctHints  = "distinct_hints"
)

// soakAwaitingRelayClient are the classes that crashed or exhausted the
// bot through go-nostr's Relay and SimplePool, which the outbox uses to
// publish and look up on relays strangers name (issue 9, items 2, 3 and 5):
//
//   - dialed_malformed_frames: a relay the bot dials (a hint) answering
//     `["EVENT","x` panics go-nostr's reader goroutine (extractSubID), which
//     the bot cannot recover: the process exits within seconds;
//   - distinct_hints: every distinct hint keeps a socket open in the pool;
//   - silent_relays: every look-up and publish to a hint that never answers
//     waits its turn on the pool's per-relay lock, and each turn is a 15 s
//     connection attempt that ignores the context, so goroutines pile up
//     linearly (about 4 a second at this soak's rate; 60 s stay under the
//     bound, 10 minutes do not).
//
// They were written, and off, until the project's own relay client
// (internal/relay) replaced go-nostr's for all relay I/O; with it they
// pass, so the list is empty. A class that must wait for a fix goes here
// with the reason. NESTBOT_SOAK_CLASSES=all runs every class anyway.
var soakAwaitingRelayClient = []string{}

// Bounds the soak asserts. Idle, the bot has about 30 descriptors and 60
// goroutines, and 35-40 MB resident.
const (
	soakMaxFDs        = 256
	soakMaxGoroutines = 600
	soakMaxRSSKB      = 400 << 10 // 400 MB
	soakJunkRate      = 500       // events a second into the subscription
	soakRealEvery     = 300 * time.Millisecond
)

func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("NESTBOT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("NESTBOT_SOAK=%q: %v", v, err)
		}
		return d
	}
	return 60 * time.Second
}

func soakEnabled(class string) bool {
	return os.Getenv("NESTBOT_SOAK_CLASSES") == "all" || !slices.Contains(soakAwaitingRelayClient, class)
}

// malformedFrames are pushed as the event of an EVENT frame: each makes the
// frame unparsable or the event invalid.
var malformedFrames = []string{
	`"x`, `{`, `{]`, `null`, `[]`, `1e999999`, `{"id":1}`, `{"tags":[[1]]}`, `{"kind":"4312"}`,
	`{"tags":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`,
	`{"content":"` + strings.Repeat("\\u0000", 10000) + `"}`,
}

// malformedRelay answers every connection with a truncated EVENT frame.
func malformedRelay(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Write(r.Context(), websocket.MessageText, []byte(`["EVENT","x`))
		c.Read(r.Context()) // hold the connection until the client leaves
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// bigRoom is a room event of about 200 KB by u: a 60 KB title and
// summary (the relay takes no longer tag value) and 1,000 p tags.
func bigRoom(t *testing.T, u *user, d string) nostr.Event {
	tags := nostr.Tags{{"d", d}, {"title", strings.Repeat("T", 60_000)}, {"summary", strings.Repeat("S", 60_000)}, {"status", "live"},
		{"service", "https://nostrnests.com/api/v1/nests"}, {"streaming", "wss+livekit://x.example"}, {"p", u.pk, "", "Host"}}
	for range 1000 {
		pk, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
		tags = append(tags, nostr.Tag{"p", pk, "", "Speaker"})
	}
	ev := nostr.Event{Kind: nostrx.KindRoom, CreatedAt: nostr.Now(), Tags: tags}
	if err := u.signer.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// soakSample is one reading of the bot process.
type soakSample struct{ fds, goroutines, rssKB int64 }

func sampleProc(t *testing.T, pid int, addr string) soakSample {
	var s soakSample
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = int64(len(ents))
	}
	s.rssKB = procStatus(pid, "VmRSS")
	s.goroutines = int64(scrape(t, addr, "go_goroutines", nil))
	return s
}

// TestFaultHostileSoak: see the top of this file.
func TestFaultHostileSoak(t *testing.T) {
	dur := soakDuration(t)
	w := newWorld(t, 1)
	fake := startFakeRelay(t)
	honest := w.relays[0].URL
	cfg := w.cfg
	cfg.Nostr.Relays = []string{honest, fake.URL}
	cfg.HTTP.Listen = freeAddr(t)
	bot := w.botPub()

	// The hostile relay's list: junk, poisoned DMs and malformed frames,
	// shuffled, cycled for the whole run.
	victims := []nostrx.Coordinate{coord(newUser(t).pk, uuid.NewString())}
	junk, err := flood.Junk(bot, victims, 20_000, uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	type frame struct {
		ev    flood.Event
		class string
	}
	var frames []frame
	for _, j := range junk {
		frames = append(frames, frame{j, classJunk})
	}
	for range 60 {
		ps, err := flood.PoisonDMs(bot)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			b, _ := p.Event.MarshalJSON()
			frames = append(frames, frame{flood.Event{Kind: flood.Malformed, JSON: b, ID: p.Event.ID}, classPoisonDMs})
		}
	}
	for range 20 {
		for _, m := range malformedFrames {
			frames = append(frames, frame{flood.Event{Kind: flood.Malformed, JSON: []byte(m)}, classListenerFrames})
		}
	}
	rand.Shuffle(len(frames), func(i, k int) { frames[i], frames[k] = frames[k], frames[i] })
	list := make([]flood.Event, len(frames))
	for i, f := range frames {
		list[i] = f.ev
	}

	fake.TargetBot()
	proc := w.startBotProc(cfg, "bot")
	pid := proc.pid()
	ctx := context.Background()
	keysBefore := w.rdb.DBSize(ctx).Val()
	idle := sampleProc(t, pid, cfg.HTTP.Listen)

	runCtx, stop := context.WithTimeout(ctx, dur)
	defer stop()
	var counts sync.Map // class → *atomic.Int64
	count := func(c string, n int64) {
		v, _ := counts.LoadOrStore(c, new(atomic.Int64))
		v.(*atomic.Int64).Add(n)
	}
	var wg sync.WaitGroup
	loop := func(c string, every time.Duration, f func()) {
		if !soakEnabled(c) {
			t.Logf("soak: class %s is off (soakAwaitingRelayClient)", c)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
					f()
				}
			}
		}()
	}
	// publisher is one connection to the honest relay per loop.
	publisher := func() func(nostr.Event) bool {
		var rl *nostr.Relay
		return func(ev nostr.Event) bool {
			if rl == nil || !rl.IsConnected() {
				c, cancel := waitCtx(5 * time.Second)
				defer cancel()
				var err error
				if rl, err = nostr.RelayConnect(c, honest); err != nil {
					rl = nil
					return false
				}
				t.Cleanup(func() { rl.Close() })
			}
			c, cancel := waitCtx(10 * time.Second)
			defer cancel()
			return rl.Publish(c, ev) == nil
		}
	}

	// The hostile relay floods the subscription.
	var floodSent atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := fake.Flood(runCtx, list, soakJunkRate, false)
		floodSent.Store(n)
	}()

	// Poisoned DMs stored on the honest relay too.
	pubPoison := publisher()
	loop(classPoisonDMs, 2*time.Second, func() {
		ps, err := flood.PoisonDMs(bot)
		if err != nil {
			t.Error(err)
			return
		}
		for _, p := range ps {
			if pubPoison(p.Event) {
				count(classPoisonDMs+"_stored", 1)
			}
		}
	})

	// Requests whose hint never answers.
	holes := []string{blackHole(t), blackHole(t)}
	pubSilent := publisher()
	var silentN atomic.Int64
	loop(classSilentHints, 500*time.Millisecond, func() {
		u := newUser(t)
		hint := holes[silentN.Add(1)%2]
		if pubSilent(signRequest(t, w, u, coord(newUser(t).pk, uuid.NewString()), "restart", hint)) {
			count(classSilentHints, 1)
		}
	})

	// Oversized room events, looked up by a status and a restart.
	pubBig := publisher()
	loop(classOversized, 5*time.Second, func() {
		u := newUser(t)
		d := uuid.NewString()
		if !pubBig(bigRoom(t, u, d)) {
			count(classOversized+"_refused_by_relay", 1)
			return
		}
		for _, action := range []string{"status", "restart"} {
			if pubBig(signRequest(t, w, u, coord(u.pk, d), action, "")) {
				count(classOversized, 1)
			}
		}
	})

	// A relay the bot dials (a hint) that answers with a malformed frame.
	bad := malformedRelay(t)
	pubDialed := publisher()
	loop(classDialedFrames, time.Second, func() {
		u := newUser(t)
		if pubDialed(signRequest(t, w, u, coord(newUser(t).pk, uuid.NewString()), "restart", bad)) {
			count(classDialedFrames, 1)
		}
	})

	// Distinct hints: a new path of the hostile relay each time.
	pubHints := publisher()
	loop(classDistinctHints, 20*time.Millisecond, func() {
		u := newUser(t)
		hint := fake.URL + "/" + uuid.NewString()
		if pubHints(signRequest(t, w, u, coord(newUser(t).pk, uuid.NewString()), "restart", hint)) {
			count(classDistinctHints, 1)
		}
	})

	// Real requests: hosts restart (or ask the status of) their rooms.
	type real struct {
		u      *user
		action string
	}
	var rmu sync.Mutex
	reals := map[string]real{}
	var realIDs []string
	pubReal := publisher()
	var realN atomic.Int64
	loop("real", soakRealEvery, func() {
		host := newUser(t)
		id := uuid.NewString()
		w.nestsRecord(id, host.pk, nil, nil)
		action := "restart"
		if realN.Add(1)%3 == 0 {
			action = "status"
		}
		ev := signRequest(t, w, host, coord(host.pk, id), action, "")
		if !pubReal(ev) {
			t.Errorf("the honest relay refused a real request")
			return
		}
		rmu.Lock()
		reals[ev.ID] = real{host, action}
		realIDs = append(realIDs, ev.ID)
		rmu.Unlock()
	})

	// Readings, every 500 ms, while it runs.
	peak := idle
	var samples int
	func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-proc.done:
				t.Fatalf("the bot process exited during the soak:\n%s", tail(proc.log(), 60))
			case <-runCtx.Done():
				return
			case <-tick.C:
			}
			s := sampleProc(t, pid, cfg.HTTP.Listen)
			samples++
			peak.fds, peak.goroutines, peak.rssKB = max(peak.fds, s.fds), max(peak.goroutines, s.goroutines), max(peak.rssKB, s.rssKB)
		}
	}()
	wg.Wait()

	// Every real request answered, once, with a result.
	got := waitAnswered(t, []string{honest}, bot, realIDs, 90*time.Second)
	lost, dup := exactlyOnce(t, got, realIDs)
	for id, r := range reals {
		ev := only(got[id])
		if ev == nil {
			continue
		}
		p := open(t, w, r.u, ev)
		if p.Error != nil {
			t.Errorf("real %s %s answered %s: %s", r.action, id, p.Error.Code, p.Error.Message)
		}
	}
	proc.alive(t, "after the soak")
	end := sampleProc(t, pid, cfg.HTTP.Listen)
	hwm := procStatus(pid, "VmHWM")
	panics := scrape(t, cfg.HTTP.Listen, "nestbot_panics_total", nil)
	keysAfter := w.rdb.DBSize(ctx).Val()
	records := int64(len(realIDs))

	// Per class counts of what the hostile relay pushed.
	sent := floodSent.Load()
	for i := range sent {
		count(frames[i%int64(len(frames))].class, 1)
	}
	var byClass []string
	counts.Range(func(k, v any) bool {
		byClass = append(byClass, fmt.Sprintf("%s=%d", k, v.(*atomic.Int64).Load()))
		return true
	})
	slices.Sort(byClass)
	var off []string
	for _, c := range soakAwaitingRelayClient {
		if !soakEnabled(c) {
			off = append(off, c)
		}
	}
	// Keys the bot may add: per validly signed event addressed to it (a
	// claim, a rate counter, a recreation's record, event and notes), never
	// per junk event that fails verification.
	var valid int64
	for _, j := range junk {
		if j.Kind == flood.Valid {
			valid++
		}
	}
	loaded := func(c string) int64 {
		if v, ok := counts.Load(c); ok {
			return v.(*atomic.Int64).Load()
		}
		return 0
	}
	signed := min(valid, sent) + int64(len(realIDs)) + loaded(classSilentHints) + loaded(classOversized) +
		loaded(classPoisonDMs+"_stored") + min(loaded(classPoisonDMs), 60*int64(len(flood.PoisonNIP04)+8)) +
		loaded(classDialedFrames) + loaded(classDistinctHints)
	added := keysAfter - keysBefore - records

	t.Logf("FIGURES soak: duration=%s inputs: %s (classes off: %v)", dur, strings.Join(byClass, " "), off)
	t.Logf("FIGURES soak: crashes=0 panics_recovered=%.0f real_sent=%d answered=%d lost=%d duplicated=%d",
		panics, len(realIDs), len(realIDs)-lost, lost, dup)
	t.Logf("FIGURES soak: fds idle=%d peak=%d end=%d (bound %d); goroutines idle=%d peak=%d end=%d (bound %d); RSS idle=%dMB peak_sampled=%dMB VmHWM=%dMB (bound %dMB); samples=%d",
		idle.fds, peak.fds, end.fds, soakMaxFDs, idle.goroutines, peak.goroutines, end.goroutines, soakMaxGoroutines,
		idle.rssKB>>10, peak.rssKB>>10, hwm>>10, soakMaxRSSKB>>10, samples)
	t.Logf("FIGURES soak: redis keys before=%d after=%d (of which %d records the test wrote): the bot added %d for %d validly signed inputs at most",
		keysBefore, keysAfter, records, added, signed)

	if os.Getenv("NESTBOT_SOAK_DUMP") != "" {
		logGoroutines(t, proc)
	}
	if panics != 0 {
		t.Errorf("%.0f panics recovered: an input reached a library call unchecked (see the ERROR lines)", panics)
	}
	if peak.fds > soakMaxFDs || end.fds > soakMaxFDs {
		t.Errorf("open descriptors peaked at %d (bound %d)", peak.fds, soakMaxFDs)
	}
	if peak.goroutines > soakMaxGoroutines {
		t.Errorf("goroutines peaked at %d (bound %d)", peak.goroutines, soakMaxGoroutines)
	}
	if hwm > soakMaxRSSKB {
		t.Errorf("peak RSS %d MB (bound %d MB)", hwm>>10, soakMaxRSSKB>>10)
	}
	if added > 6*signed+100 {
		t.Errorf("the bot added %d Redis keys for at most %d validly signed inputs", added, signed)
	}
}

// logGoroutines makes the bot dump its goroutines (SIGQUIT ends it) and
// logs how many each creator left: NESTBOT_SOAK_DUMP=1, to find what grows.
func logGoroutines(t *testing.T, p *botProc) {
	syscall.Kill(p.pid(), syscall.SIGQUIT)
	<-p.done
	by := map[string]int{}
	inGoroutine := regexp.MustCompile(` in goroutine \d+$`)
	for _, block := range strings.Split(p.log(), "\n\ngoroutine ")[1:] {
		lines := strings.Split(block, "\n")
		state, first, creator := "", "", ""
		if i := strings.Index(lines[0], "["); i >= 0 {
			state = strings.SplitN(lines[0][i+1:], ",", 2)[0]
			state = strings.TrimSuffix(state, "]:")
		}
		for _, l := range lines[1:] {
			if l != "" && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "runtime.") && !strings.HasPrefix(l, "internal/") {
				first = l[:strings.LastIndex(l+"(", "(")]
				break
			}
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "created by ") {
				creator = inGoroutine.ReplaceAllString(strings.TrimPrefix(l, "created by "), "")
			}
		}
		by[state+" | "+first+" | from "+creator]++
	}
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range by {
		all = append(all, kv{k, n})
	}
	slices.SortFunc(all, func(a, b kv) int { return b.n - a.n })
	for _, e := range all[:min(len(all), 15)] {
		t.Logf("goroutines: %5d %s", e.n, e.k)
	}
}
