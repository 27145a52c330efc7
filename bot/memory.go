package bot

import (
	"context"
	"runtime/debug"
	"time"
)

// startupSettle bounds how long releaseStartupMemory waits for every relay
// to be subscribed before it releases anyway.
const startupSettle = 30 * time.Second

// releaseStartupMemory gives start-up's garbage back once the bot is up:
// when every relay's subscription is live (or startupSettle passed), one
// GC and every free heap page returned to the OS (debug.FreeOSMemory;
// issue 15: idle RSS), which Go's scavenger would otherwise return over
// minutes. It runs once, as one of Run's tasks.
//
// The executable's pages that package initialisation touched (about 26
// MB, mostly github.com/livekit/protocol's descriptors) are left alone:
// dropping them with madvise lowers the RSS figure but not the memory a
// cgroup is charged, since they stay in the page cache, and they are
// clean pages the kernel reclaims under pressure anyway.
func (s *Service) releaseStartupMemory(ctx context.Context) {
	deadline := time.Now().Add(startupSettle)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.RelaysConnected() < len(s.listeners) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	debug.FreeOSMemory()
}

// idleTrimAfter is how long the workers must have taken no job before
// releaseWhenIdle gives the heap's free pages back; idleTrimEvery is the
// least time between two such releases, so that sparse traffic (one
// request every idleTrimAfter and a bit) costs at most one extra GC a
// minute.
const (
	idleTrimAfter = 5 * time.Second
	idleTrimEvery = time.Minute
)

// releaseWhenIdle returns the heap's free pages to the operating system
// once a burst of requests is over (debug.FreeOSMemory: one full GC, then
// every free page). Go keeps the pages of a heap that grew under load
// for minutes (its scavenger returns them slowly) and a GC's heap goal
// is twice the live heap, so without it the RSS after a burst stays near
// the burst's peak (issue 15: RSS after 10,000 restarts). Idle means no
// job taken during one whole tick of idleTrimAfter; after a release the
// next waits for a job and idleTrimEvery.
func (s *Service) releaseWhenIdle(ctx context.Context) {
	tick := time.NewTicker(idleTrimAfter)
	defer tick.Stop()
	t := idleTrim{last: s.jobsTaken.Load()}
	t.released = t.last
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if t.due(now, s.jobsTaken.Load()) {
				debug.FreeOSMemory()
			}
		}
	}
}

// idleTrim decides, one tick at a time, when releaseWhenIdle releases.
type idleTrim struct {
	last     uint64    // jobs taken at the previous tick
	released uint64    // jobs taken at the last release
	at       time.Time // the last release
}

// due reports whether to release now, given the jobs taken so far: none
// since the previous tick, some since the last release, and idleTrimEvery
// since it.
func (t *idleTrim) due(now time.Time, jobs uint64) bool {
	ok := jobs == t.last && jobs != t.released && (t.at.IsZero() || now.Sub(t.at) >= idleTrimEvery)
	if ok {
		t.released, t.at = jobs, now
	}
	t.last = jobs
	return ok
}
