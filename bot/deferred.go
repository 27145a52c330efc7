package bot

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nestbot/nestbot/internal/retry"
)

// resumeLater runs a restart that failed after a public change again, with
// backoff, while its request is younger than max_request_age. The claim
// stays this instance's (its heartbeat renews it), so no other replica
// starts it meanwhile; if this instance dies, the replica that takes the
// claim over finishes it. Either way the requester gets the result, never
// a failure for a room that was already changed, as long as it can be
// finished before the request goes stale. When it cannot, it is given up
// (giveUp): answered once, UNAVAILABLE.
func (s *Service) resumeLater(j job, err error) {
	j.attempt++
	j.finishing = true
	wait := retry.Request.Wait(j.attempt)
	if time.Now().Add(wait).After(s.staleAt(j)) {
		s.giveUp(j, err)
		return
	}
	s.metrics.Retries.WithLabelValues("resume").Inc()
	s.log.Warn("restart incomplete after a public change; finishing it", "id", j.id(), "attempt", j.attempt, "err", err)
	if !s.deferred.add(j, time.Now().Add(wait)) {
		s.metrics.Dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// deferredQueue holds verified requests that could not be claimed yet:
// Redis did not answer, or another instance holds the claim and may die.
// It is bounded; a request that does not fit is forgotten, so that its
// next sighting (resubscription, another replica) processes it.
type deferredQueue struct {
	mu    sync.Mutex
	max   int
	items deferredHeap
}

type deferredJob struct {
	j   job
	due time.Time
}

type deferredHeap []deferredJob

func (h deferredHeap) Len() int { return len(h) }

func (h deferredHeap) Less(i, k int) bool { return h[i].due.Before(h[k].due) }

func (h deferredHeap) Swap(i, k int) { h[i], h[k] = h[k], h[i] }

func (h *deferredHeap) Push(x any) { *h = append(*h, x.(deferredJob)) }

func (h *deferredHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func newDeferredQueue(max int) *deferredQueue { return &deferredQueue{max: max} }

func (d *deferredQueue) add(j job, due time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.items) >= d.max {
		return false
	}
	heap.Push(&d.items, deferredJob{j: j, due: due})
	return true
}

func (d *deferredQueue) due(now time.Time) []job {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []job
	for len(d.items) > 0 && !d.items[0].due.After(now) {
		out = append(out, heap.Pop(&d.items).(deferredJob).j)
	}
	return out
}

func (d *deferredQueue) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items)
}

// giveUp queues j, a restart resumed after a public change that cannot be
// finished before its request goes stale, to be answered UNAVAILABLE
// (job.givenUp) under the claim it holds. The protocol promises every
// request one answer: past max_request_age no other replica answers it,
// and silence would leave its requester unsure whether to ask again.
// UNAVAILABLE is what is true then (a dependency kept failing; a new
// request is safe, and finishes the same room: the pending choice and the
// recreation mark lead it there), where a result could name a room that
// is not live or whose record was not written. See docs/reliability.md.
func (s *Service) giveUp(j job, err error) {
	s.log.Error("restart left incomplete: its request goes stale before it can be finished; answering UNAVAILABLE", "id", j.id(), "err", err)
	j.givenUp = true
	if !s.deferred.add(j, time.Now()) {
		s.metrics.Dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// claimRetry defers a request whose claim failed because Redis did not
// answer. It is retried with backoff while it is younger than
// max_request_age: it cannot be answered unclaimed without risking a
// second answer from another replica. A restart resumed after a public
// change (job.finishing) holds its claim already: it is given up
// (giveUp), answered, rather than dropped.
func (s *Service) claimRetry(j job, err error) {
	j.attempt++
	wait := retry.Request.Wait(j.attempt)
	if time.Now().Add(wait).After(s.staleAt(j)) && j.finishing {
		s.giveUp(j, err)
		return
	}
	if time.Now().Add(wait).After(s.staleAt(j)) {
		s.metrics.Dropped.WithLabelValues("claim_failed").Inc()
		s.forgetJob(j)
		s.log.Warn("request dropped: could not be claimed before it went stale", "id", j.id(), "err", err)
		return
	}
	s.metrics.Retries.WithLabelValues("claim").Inc()
	if j.attempt == 1 {
		s.log.Warn("claim failed; will retry", "id", j.id(), "err", err)
	}
	if !s.deferred.add(j, time.Now().Add(wait)) {
		s.metrics.Dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// watchClaim defers a request claimed by another live instance, to look
// again after that instance's heartbeat would have expired had it died:
// then the claim is taken over and the work finished. Watching stops when
// the claim is answered, or after the owner's lease.
func (s *Service) watchClaim(j job) {
	now := time.Now()
	if !j.watching {
		j.watching = true
		j.watchUntil = now.Add(s.claims.lease + heartbeatTTL)
	}
	if now.After(j.watchUntil) {
		return
	}
	wait := heartbeatTTL/2 + rand.N(heartbeatTTL/4)
	if !s.deferred.add(j, now.Add(wait)) {
		s.metrics.Dropped.WithLabelValues("deferred_full").Inc()
		s.forgetJob(j)
	}
}

// overloadReportEvery is how often an overloaded service logs a summary.
const overloadReportEvery = 5 * time.Second

// runDeferred puts deferred requests back on the queues when they are due,
// and logs a summary of shed and dropped events while overloaded. It runs
// until ctx ends.
func (s *Service) runDeferred(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	lastReport := time.Now()
	var lastShed int64
	lastOverflow := make([]int64, len(s.listeners))
	report := func() {
		if shed := s.overload.shedN.Load(); shed != lastShed {
			s.log.Warn("overloaded: refusals shed", "refusals_shed", shed-lastShed,
				"queue", len(s.queue), "priority_queue", len(s.priority))
			lastShed = shed
		}
		for i, l := range s.listeners {
			if n := l.overflow.Load(); n != lastOverflow[i] {
				s.log.Warn("overloaded: relay sends faster than it can be verified", "relay", l.url,
					"unverified_dropped", n-lastOverflow[i], "backlog", len(l.normal)+len(l.prio))
				lastOverflow[i] = n
			}
		}
	}
	defer report()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, j := range s.deferred.due(now) {
				q := s.queue
				if s.known.Has(j.requester()) {
					q = s.priority
				}
				s.enqueue(ctx, q, j)
			}
			if now.Sub(lastReport) >= overloadReportEvery {
				lastReport = now
				report()
			}
		}
	}
}
