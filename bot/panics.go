package bot

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/internal/retry"
	"github.com/prometheus/client_golang/prometheus"
)

// Nothing a stranger sends may take the process down. Inputs are validated
// before any library call known to panic on them (nip04 payloads, see
// openNIP04); for whatever is not known yet, every goroutine that handles
// outside input defers panicGuard.catch (or catchErr), which turns a panic
// into:
//
//   - an ERROR log line naming where, the panic and the event ids involved,
//     with the stack (bounded);
//   - nestbot_panics_total{where};
//   - the events recorded as poisoned: in the seen set at once, in Redis
//     (<bot_prefix>poisoned, one sorted set by time, bounded) so that the
//     next start loads them into the seen set before it listens, and their
//     claims marked done. Relays keep the event and a restarted bot reads
//     it again within max_dm_age (max_request_age): without this one event
//     would put the bot in a loop of crashes, or here of panics.
//
// The goroutine that panicked goes on with its next input (verifier,
// worker), or is started again after a pause (supervise).

// panicWheres are the values of the where label, created at start so that
// the series exist (at 0) before anything panics.
var panicWheres = []string{
	"reader", "verifier", "dm", "worker", "relay_lists", "forward", "publish", "lookup",
	"http", "webhook", "readyz", "identity", "listener", "deferred", "heartbeat", "background",
}

// maxPoisoned bounds the poisoned set in Redis: past it the oldest entries
// go first (and such an event, seen again after a restart, panics again
// and is caught again; it never crashes the process).
const maxPoisoned = 1000

// poisonWrite bounds the Redis writes that record a poisoned event; they
// run in the goroutine that panicked.
const poisonWrite = time.Second

// maxPanicStack bounds the stack written to the log.
const maxPanicStack = 8 << 10

// panicGuard is the one place panics are recovered. Its methods must be
// deferred directly (defer g.catch(...)): recover only works there.
type panicGuard struct {
	log    *slog.Logger
	count  *prometheus.CounterVec
	seen   *seenSet
	store  poisonStore   // nil in tests without Redis
	ttl    time.Duration // of a poisoned claim
	window time.Duration // how long a poisoned id is remembered in Redis
	pause  time.Duration // before a supervised task is started again; doubles up to a minute
}

func newPanicGuard(count *prometheus.CounterVec, log *slog.Logger, seen *seenSet) *panicGuard {
	g := &panicGuard{log: log, seen: seen, pause: time.Second, count: count}
	for _, w := range panicWheres {
		g.count.WithLabelValues(w)
	}
	return g
}

// catch recovers a panic of the goroutine it is deferred in and records
// it; ids are the events being handled (empty when none is known).
func (g *panicGuard) catch(where string, ids ...string) {
	if v := recover(); v != nil {
		g.record(where, v, ids)
	}
}

// catchOwn is catch for a goroutine handling one of the bot's own events
// (a response being published): it names the event but does not poison it.
func (g *panicGuard) catchOwn(where, id string) {
	if v := recover(); v != nil {
		g.count.WithLabelValues(where).Inc()
		g.log.Error("recovered from a panic", "where", where, "own_event", id,
			"panic", truncate(fmt.Sprint(v), 500), "stack", boundedStack())
	}
}

// catchErr is catch for a function with a named error result: a panic
// becomes that error.
func (g *panicGuard) catchErr(where string, err *error, ids ...string) {
	if v := recover(); v != nil {
		g.record(where, v, ids)
		*err = fmt.Errorf("%s: recovered from a panic: %s", where, truncate(fmt.Sprint(v), 200))
	}
}

// record logs, counts and poisons.
func (g *panicGuard) record(where string, v any, ids []string) {
	if g == nil {
		panic(v) // no guard wired (a test's bare outbox): as if there were no recover
	}
	g.count.WithLabelValues(where).Inc()
	var id []string
	for _, s := range ids {
		if s != "" {
			id = append(id, s)
		}
	}
	g.log.Error("recovered from a panic", "where", where, "event", id,
		"panic", truncate(fmt.Sprint(v), 500), "stack", boundedStack())
	if len(id) > 0 {
		g.poison(id)
	}
}

func boundedStack() string {
	stack := debug.Stack()
	if len(stack) > maxPanicStack {
		stack = stack[:maxPanicStack]
	}
	return string(stack)
}

// poison records ids as done: seen here, remembered in Redis for the next
// start, and their claims settled unless an answer is stored in them.
func (g *panicGuard) poison(ids []string) {
	for _, id := range ids {
		g.seen.Add(id)
	}
	if g.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), poisonWrite)
	defer cancel()
	if err := g.store.Poison(ctx, ids, time.Now(), g.window, maxPoisoned, g.ttl); err != nil {
		g.log.Warn("could not record a poisoned event in redis; it may be handled (and caught) again after a restart",
			"event", ids, "err", err)
	}
}

// poisonStore is where poisoned events are remembered (rooms.RedisStore).
type poisonStore interface {
	Poison(ctx context.Context, ids []string, now time.Time, window time.Duration, max int, claimTTL time.Duration) error
	Poisoned(ctx context.Context, now time.Time, window time.Duration, max int) ([]string, error)
}

// load puts the ids poisoned within the window into the seen set; Run
// calls it before the listeners start.
func (g *panicGuard) load(ctx context.Context) {
	if g.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, poisonWrite)
	defer cancel()
	ids, err := g.store.Poisoned(ctx, time.Now(), g.window, maxPoisoned)
	if err != nil {
		g.log.Warn("could not read the poisoned events", "err", err)
		return
	}
	for _, id := range ids {
		g.seen.Add(id)
	}
	if len(ids) > 0 {
		g.log.Warn("events that made the bot panic before are ignored", "count", len(ids))
	}
}

// supervise runs task until ctx ends; a panic is recorded and the task
// started again after a pause, so that a bug in one task does not stop the
// bot nor spin.
func (g *panicGuard) supervise(ctx context.Context, where string, task func(context.Context)) {
	p := retry.Background
	p.Initial = g.pause
	backoff := p.Backoff()
	for ctx.Err() == nil {
		if !g.run(ctx, where, task) {
			return
		}
		if !retry.Sleep(ctx, backoff.NextBackOff()) {
			return
		}
	}
}

// run runs task once and reports whether it panicked.
func (g *panicGuard) run(ctx context.Context, where string, task func(context.Context)) (panicked bool) {
	panicked = true
	defer g.catch(where)
	task(ctx)
	return false
}

// handler recovers a panic of h: the request gets a 500 and the process
// goes on. net/http would recover it too, but silently and without the
// metric. webhookPath's panics count as "webhook", others as "http".
func (g *panicGuard) handler(webhookPath string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's own way to abort a response
			}
			where := "http"
			if webhookPath != "" && r.URL.Path == webhookPath {
				where = "webhook"
			}
			g.record(where, v, nil)
			ops.Plain(w, http.StatusInternalServerError, "internal error")
		}()
		h.ServeHTTP(w, r)
	})
}

// guardedFetchRelayLists is fetchRelayLists in the look-up goroutine of
// relayLists.get: a panic yields an incomplete, empty result (not cached).
func (s *Service) guardedFetchRelayLists(ctx context.Context, pubkeys []string) (l map[string]relayList, complete bool) {
	defer s.guard.catch("relay_lists")
	return s.fetchRelayLists(ctx, pubkeys)
}
