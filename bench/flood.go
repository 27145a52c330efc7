package bench

import (
	"context"
	"errors"
	"time"

	"github.com/nestbot/nestbot/internal/flood"
	"github.com/nestbot/nestbot/nostrx"
)

// FloodRun is restarts in place, one at a time, while a hostile relay the
// bot subscribes to pushes junk into its subscription (internal/flood: the
// fault suite's mix of valid signatures from random keys for the same
// rooms, bad signatures, forged ids, other p, malformed and stale events).
type FloodRun struct {
	Latency
	Rate       int     `json:"junk_rate_target"`
	JunkSent   int64   `json:"junk_sent"`
	JunkPerSec float64 `json:"junk_per_second"`
	PeakRSS    float64 `json:"peak_rss_mb"`
}

// floodJunkSeconds is how many seconds of junk are built beforehand; a
// longer run sends the list round again (repeated events with a valid
// signature are then cheap duplicates for the bot, the rest is not).
const floodJunkSeconds = 10

// flood runs n restarts in place one at a time while hostile floods the
// bot at rate junk events a second. The clock and the CPU count are as in
// scenario; the bot's CPU then includes the junk it screens.
func (r *runner) flood(ctx context.Context, hostile *flood.Relay, n, rate int) (FloodRun, error) {
	fr := FloodRun{Rate: rate}
	preps, err := prepareHosts(r.bot, n)
	if err != nil {
		return fr, err
	}
	if err := r.w.setupInPlace(ctx, preps); err != nil {
		return fr, err
	}
	rooms := make([]nostrx.Coordinate, len(preps))
	for i, p := range preps {
		rooms[i] = p.room
	}
	junk, err := flood.Junk(r.bot, rooms, rate*floodJunkSeconds, uint64(time.Now().UnixNano()))
	if err != nil {
		return fr, err
	}
	for deadline := time.Now().Add(10 * time.Second); !hostile.Targeted(); {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fr, errors.New("the bot never subscribed on the hostile relay")
		}
		ctxSleep(ctx, 50*time.Millisecond)
	}

	fctx, stopFlood := context.WithCancel(ctx)
	defer stopFlood()
	flooded := make(chan struct{})
	var took time.Duration
	go func() {
		defer close(flooded)
		fr.JunkSent, took = hostile.Flood(fctx, junk, rate, false)
	}()
	peak := sampleRSS(r.pid)
	ctxSleep(ctx, time.Second) // let the flood build up
	off := r.proc.logSize()
	outs, elapsed, u, err := r.batch(ctx, preps, 1)
	stopFlood()
	<-flooded
	fr.PeakRSS = mb(peak())
	if err != nil {
		return fr, err
	}
	fr.Latency = summarize(r.bot, outs, expectInPlace, 1, elapsed, u.cpu["nestbot"])
	fr.Latency.CPU, fr.Latency.Calls, fr.Latency.LoadAvg = r.procs.perRestart(u, len(outs)), u.perRestart(len(outs)), loadAvg()
	ctxSleep(ctx, 200*time.Millisecond)
	fr.Latency.botTimes(r.proc.handleTimes(off))
	if took > 0 {
		fr.JunkPerSec = float64(fr.JunkSent) / took.Seconds()
	}
	return fr, r.w.closeRooms(ctx, preps)
}

// sampleRSS reads pid's resident set every 50 ms until the returned stop
// is called, which returns the highest reading.
func sampleRSS(pid int) (stop func() int64) {
	done := make(chan struct{})
	result := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := memStatus(pid); err == nil && rss > peak {
				peak = rss
			}
			select {
			case <-done:
				result <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}
