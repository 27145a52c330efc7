package bot

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The steps of a request as nestbot_request_stage_seconds{stage} names
// them (issue 15: a reader sees where a restart's time goes). They follow
// one another, so their sum is the request's time from the relay to the
// first OK (nestbot_request_duration_seconds).
const (
	stageQueue = "queue" // read from a relay → a worker takes it (verification and dedupe included)
	stageClaim = "claim" // the claim's round trip (claimLocking: with the rate count, the room's lock and record)
	stageWork  = "work"  // admit + the engine's restart or status, as one step
	stageBuild = "build" // nostrx.BuildResponse: NIP-44 encryption and the signature
	stageStore = "store" // the answer's Redis transaction (restart's writes, claim answered, pending), until sending starts
	stageSend  = "send"  // sending starts → the first relay's OK
)

// stageTimer observes the consecutive steps of one request: each done
// observes the time since the previous step ended. A nil histogram (tests
// without metrics) observes nothing.
type stageTimer struct {
	h    *prometheus.HistogramVec
	last time.Time
}

// stages starts a request's timer at from (when its event was read).
func (s *Service) stages(from time.Time) *stageTimer {
	return &stageTimer{h: s.metrics.Stages, last: from}
}

// done ends stage now.
func (t *stageTimer) done(stage string) { t.doneAt(stage, time.Now()) }

// doneAt ends stage at at.
func (t *stageTimer) doneAt(stage string, at time.Time) {
	if t.h != nil {
		t.h.WithLabelValues(stage).Observe(at.Sub(t.last).Seconds())
	}
	t.last = at
}

// storedAndSent ends the store and send steps of an answer whose
// storeAndDeliver ran since the last step: sent is when its first
// broadcast started (zero: never here, e.g. another instance sends it;
// then neither is observed), delivered whether a relay said OK (send is
// observed only then: a timed-out wait is not a send time).
func (t *stageTimer) storedAndSent(sent time.Time, delivered bool) {
	if sent.IsZero() {
		return
	}
	t.doneAt(stageStore, sent)
	if delivered {
		t.done(stageSend)
	}
}

// sendMarks records when the outbox starts sending an event someone
// watches (watch), so that the store and send steps, which meet inside
// storeAndDeliver, can be told apart without threading a clock through
// the pending-answer code. Only watched ids are recorded; an unwatched
// broadcast costs one map look-up.
type sendMarks struct {
	m sync.Map // event id → *atomic.Int64 (unix nanos of the first broadcast; 0: none yet)
}

// watch starts watching id; the returned func stops and returns when
// sending first started (zero if it did not).
func (m *sendMarks) watch(id string) func() time.Time {
	v := new(atomic.Int64)
	m.m.Store(id, v)
	return func() time.Time {
		m.m.Delete(id)
		if n := v.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}
}

// mark records that sending id starts now, if id is watched and was not
// marked before.
func (m *sendMarks) mark(id string) {
	if v, ok := m.m.Load(id); ok {
		v.(*atomic.Int64).CompareAndSwap(0, time.Now().UnixNano())
	}
}
