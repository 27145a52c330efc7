//go:build faults

package e2e

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/flood"
	"github.com/nestbot/nestbot/nostrx"
)

// Flood parameters: the rate the hostile relay aims at, for how long, and
// the legitimate requests sent through the honest relay meanwhile.
const (
	floodRate     = 10_000 // junk events per second
	floodDuration = 10 * time.Second
	floodLegit    = 80 // legitimate requests during the flood, one per 100 ms
	baselineLegit = 20 // legitimate requests before the flood
)

// TestFaultFlood: a hostile relay pushes 10,000 junk events a second into
// the bot's subscription while hosts restart their rooms through the honest
// relay. The bot runs as its own process so that its peak RSS can be read.
// Every legitimate request is answered once, with a result; no event with a
// bad signature or a forged id is answered; latency and memory are reported.
func TestFaultFlood(t *testing.T) {
	w := newWorld(t, 1)
	fake := startFakeRelay(t)
	honest := w.relays[0].URL
	cfg := w.cfg
	cfg.Nostr.Relays = []string{honest, fake.URL}

	// Hosts and their rooms (records present: restarts in place).
	n := baselineLegit + floodLegit
	hosts := make([]*user, n)
	rooms := make([]nostrx.Coordinate, n)
	for i := range hosts {
		hosts[i] = newUser(t)
		id := uuid.NewString()
		w.nestsRecord(id, hosts[i].pk, nil, nil)
		rooms[i] = coord(hosts[i].pk, id)
	}
	genStart := time.Now()
	junk, err := flood.Junk(w.botPub(), rooms, floodRate*int(floodDuration/time.Second), uint64(time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %d junk events in %s", len(junk), time.Since(genStart).Round(time.Millisecond))

	// The hostile relay remembers the bot's subscription to flood it.
	fake.TargetBot()
	proc := w.startBotProc(cfg, "bot")
	pid := proc.pid()

	// One connection publishes, one subscription collects the answers.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, err := nostr.RelayConnect(ctx, honest)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := nostr.RelayConnect(ctx, honest)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var pks []string
	for _, h := range hosts {
		pks = append(pks, h.pk)
	}
	since := nostr.Now()
	s, err := sub.Subscribe(ctx, nostr.Filters{{Kinds: []int{nostrx.DefaultResponseKind}, Authors: []string{w.botPub()},
		Tags: nostr.TagMap{"p": pks}, Since: &since}})
	if err != nil {
		t.Fatal(err)
	}
	var amu sync.Mutex
	arrived := map[string]time.Time{}
	go func() {
		for ev := range s.Events {
			if e := ev.Tags.Find("e"); len(e) >= 2 {
				amu.Lock()
				if _, ok := arrived[e[1]]; !ok {
					arrived[e[1]] = time.Now()
				}
				amu.Unlock()
			}
		}
	}()
	sent := map[string]time.Time{}
	var legitIDs []string
	who := map[string]int{}
	send := func(i int) {
		ev := signRequest(t, w, hosts[i], rooms[i], "restart", "")
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		if err := pub.Publish(pctx, ev); err != nil {
			t.Errorf("publish: %v", err)
		}
		pcancel()
		amu.Lock()
		sent[ev.ID] = t0
		amu.Unlock()
		legitIDs = append(legitIDs, ev.ID)
		who[ev.ID] = i
	}
	latencies := func(ids []string, within time.Duration) []time.Duration {
		deadline := time.Now().Add(within)
		for {
			amu.Lock()
			done := 0
			for _, id := range ids {
				if _, ok := arrived[id]; ok {
					done++
				}
			}
			amu.Unlock()
			if done == len(ids) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		amu.Lock()
		defer amu.Unlock()
		var out []time.Duration
		for _, id := range ids {
			if at, ok := arrived[id]; ok {
				out = append(out, at.Sub(sent[id]))
			} else {
				t.Errorf("request %s never answered", id)
			}
		}
		return out
	}

	// Baseline, no flood.
	for i := range baselineLegit {
		send(i)
		time.Sleep(100 * time.Millisecond)
	}
	base := latencies(legitIDs, 20*time.Second)
	rssIdle := procStatus(pid, "VmRSS")

	// The flood.
	var floodSent atomic.Int64
	var floodNanos atomic.Int64
	var rssPeak atomic.Int64
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		n, took := fake.Flood(ctx, junk, floodRate, true)
		floodSent.Store(n)
		floodNanos.Store(int64(took))
	}()
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for {
			if v := procStatus(pid, "VmRSS"); v > rssPeak.Load() {
				rssPeak.Store(v)
			}
			select {
			case <-floodDone:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	time.Sleep(time.Second) // let the flood build up
	var floodIDs []string
	for i := baselineLegit; i < n; i++ {
		before := len(legitIDs)
		send(i)
		floodIDs = append(floodIDs, legitIDs[before:]...)
		time.Sleep(100 * time.Millisecond)
	}
	under := latencies(floodIDs, 60*time.Second)
	<-floodDone
	floodTook := time.Duration(floodNanos.Load())
	<-sampleDone
	hwm := procStatus(pid, "VmHWM")

	// Exactly once, and nothing forged answered.
	time.Sleep(2 * time.Second)
	got := responsesTo(t, []string{honest}, w.botPub(), legitIDs)
	lost, dup := exactlyOnce(t, got, legitIDs)
	for _, id := range legitIDs {
		if ev := only(got[id]); ev != nil {
			restartResult(t, open(t, w, hosts[who[id]], ev))
		}
	}
	var validIDs, invalidIDs []string
	for _, j := range junk {
		switch j.Kind {
		case flood.Valid:
			validIDs = append(validIDs, j.ID)
		case flood.BadSig, flood.ForgedID:
			invalidIDs = append(invalidIDs, j.ID)
		}
	}
	if bad := responsesTo(t, []string{honest}, w.botPub(), invalidIDs); len(bad) != 0 {
		t.Errorf("%d events with a bad signature or a forged id were answered", len(bad))
	}
	answeredJunk := len(responsesTo(t, []string{honest}, w.botPub(), validIDs))

	proc.stop()
	shed, unverified := sumLog(proc.log(), `refusals_shed=(\d+)`), sumLog(proc.log(), `unverified_dropped=(\d+)`)
	rate := float64(floodSent.Load()) / floodTook.Seconds()
	t.Logf("FIGURES flood: junk_sent=%d over %s (%.0f/s; valid-signature %d) legit_sent=%d answered=%d lost=%d duplicated=%d",
		floodSent.Load(), floodTook.Round(time.Millisecond), rate, len(validIDs), len(legitIDs), len(legitIDs)-lost, lost, dup)
	t.Logf("FIGURES flood: latency publish→answer, no flood: %s", summarize(base))
	t.Logf("FIGURES flood: latency publish→answer, under flood: %s", summarize(under))
	t.Logf("FIGURES flood: bot RSS idle=%dMB peak_sampled=%dMB VmHWM=%dMB; junk refusals answered=%d shed=%d; unverified dropped at the hostile relay=%d",
		rssIdle/1024, rssPeak.Load()/1024, hwm/1024, answeredJunk, shed, unverified)
	if hwm > 1<<20 { // 1 GB: far above anything measured; memory must stay bounded
		t.Errorf("peak RSS %d MB", hwm/1024)
	}
	if os.Getenv("NESTBOT_FLOOD_LOG") != "" {
		t.Log(proc.log())
	}
}

// sumLog adds up the first capture group of re over the log.
func sumLog(log, re string) int64 {
	var sum int64
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		sum += n
	}
	return sum
}
