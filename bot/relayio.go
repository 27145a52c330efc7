package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/nostrx"
)

// outbox is all relay I/O of the bot besides the listeners: publishing and
// looking up, on the bot's own relays and on relays others name (a
// request's hint, a room event's relays tag, a requester's relay lists),
// through one bounded relay.Pool (internal/relay says why not go-nostr's).
//
// Publishing counts a relay as having the event only on its OK (NIP-01;
// duplicate: included). Each relay gets its own send loop that follows the
// refusal class (relay.Class): rate-limited, error, no OK and a hang-up are
// resent after relay.Backoff (1 s doubling, capped at 60 s, with jitter);
// auth-required is answered by the pool (AUTH, then once more); pow,
// restricted, blocked and invalid are never resent to that relay. One
// relay's loop never cancels nor repeats another's, and none resends after
// its relay said OK.
type outbox struct {
	pool   *relay.Pool
	log    *slog.Logger
	policy relayPolicy
	bg     context.Context // lives as long as the service: background sends
	guard  *panicGuard
	own    map[string]bool

	refusals *prometheus.CounterVec // by relay_host (own relays' hosts, else "other") and class
	reqs     *prometheus.CounterVec // REQs sent, by relay_host (set by Service.Run; nil: not counted)

	// strangerSlots bounds look-ups on relays others name: a hint that
	// never answers holds a slot for strangerLookupTimeout at most, and
	// never a worker longer than that.
	strangerSlots chan struct{}
	// strangerWaiting counts look-ups waiting for a slot; beyond
	// strangerWaiters they skip the stranger's relay at once.
	strangerWaiting atomic.Int64
	// sendSlots bounds the send loops that outlive their Publish call.
	sendSlots chan struct{}

	warnMu sync.Mutex
	warned map[string]time.Time // relay host + class → last WARN

	ownFailSince atomic.Int64 // unix nanos of the first failed write to an own relay since the last OK from one (0: none)

	// sends records when a watched answer starts being sent (stages.go).
	sends sendMarks
}

// strangerLookupTimeout bounds one look-up on a relay named by others
// (a var for tests).
var strangerLookupTimeout = 2 * time.Second

const (
	// publishTimeout bounds one attempt to get an OK from one relay.
	publishTimeout = 5 * time.Second
	// backgroundSend bounds how long a relay keeps being tried after
	// Publish returned (room events, DM replies, identity, forwards).
	backgroundSend = 2 * time.Minute
	// afterDelivery bounds how long the other relays of an answer keep
	// being tried once one relay accepted it.
	afterDelivery = 2 * time.Minute
	// strangerLookups bounds look-ups on relays named by others
	// (strangerLookupTimeout each).
	strangerLookups = 8
	// strangerWaiters bounds the look-ups that wait for one of those
	// slots; the others skip the stranger's relay at once. Requests whose
	// hints never answer, from fresh keys, hold every slot for the whole
	// timeout: a worker that waited for a slot too was held as long, so
	// that 8 such requests a second held all 16 workers, and a newcomer's
	// request behind 180 of them was answered after 23 s. Now at most
	// strangerLookups + strangerWaiters workers are in look-ups on
	// strangers' relays, whatever the rate of such requests.
	strangerWaiters = 2
	// strangerSends bounds the attempts on one relay named by others (a
	// hint, a room's or requester's relay): the bot's own relays carry the
	// delivery guarantee.
	strangerSends = 3
	// maxSendLoops bounds send loops running in the background.
	maxSendLoops = 1024
	// refusalWarnEvery is how often one relay and refusal class is logged
	// at WARN; the counter counts every one.
	refusalWarnEvery = 10 * time.Minute
	// writesStale is how long no own relay may accept a write, while writes
	// are being tried, before /readyz says so.
	writesStale = 2 * time.Minute
)

func newOutbox(ctx context.Context, signer *nostrx.Signer, log *slog.Logger, policy relayPolicy, own []string, refusals *prometheus.CounterVec) *outbox {
	o := &outbox{
		log: log, policy: policy, bg: ctx, own: map[string]bool{},
		strangerSlots: make(chan struct{}, strangerLookups),
		sendSlots:     make(chan struct{}, maxSendLoops),
		warned:        map[string]time.Time{},
	}
	for _, u := range own {
		o.own[nostr.NormalizeURL(u)] = true
	}
	o.pool = relay.NewPool(relay.Options{
		Trusted: own, AllowPrivate: policy.allowPrivate, Signer: signer, Log: log,
		MaxConns: 32, MaxPerHost: 4, IdleTimeout: time.Minute, MaxMessage: maxMessage,
		OnREQ: func(u string) {
			if o.reqs != nil {
				o.reqs.WithLabelValues(o.hostLabel(u)).Inc()
			}
		},
	})
	o.refusals = refusals
	if o.refusals == nil { // tests without a service
		o.refusals = ops.NewMetrics(ops.Gauges{}).Refusals
	}
	return o
}

func (o *outbox) close() { o.pool.Close() }

// hostLabel keeps the metric's label set bounded: strangers' hosts are "other".
func (o *outbox) hostLabel(u string) string {
	if !o.own[u] {
		return "other"
	}
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return "other"
}

// observe counts and logs one attempt's result, and tracks whether the
// bot's own relays still accept writes.
func (o *outbox) observe(ev *nostr.Event, res relay.Result) {
	if o.own[res.URL] {
		if res.OK() {
			o.ownFailSince.Store(0)
		} else {
			o.ownFailSince.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	if res.OK() {
		return
	}
	host := o.hostLabel(res.URL)
	o.refusals.WithLabelValues(host, string(res.Class)).Inc()
	attrs := []any{"relay", res.URL, "class", string(res.Class), "event", ev.ID, "kind", ev.Kind, "reason", relay.Excerpt(res.Reason, 200)}
	switch res.Class {
	case relay.RateLimited, relay.Refused, relay.AuthRequired:
		key := res.URL + " " + string(res.Class)
		now := time.Now()
		o.warnMu.Lock()
		last, seen := o.warned[key]
		if !seen || now.Sub(last) >= refusalWarnEvery {
			if len(o.warned) >= 4096 {
				clear(o.warned)
			}
			o.warned[key] = now
		}
		o.warnMu.Unlock()
		if !seen || now.Sub(last) >= refusalWarnEvery {
			o.log.Warn("relay refused the bot's event", attrs...)
			return
		}
	}
	o.log.Debug("publish attempt failed", attrs...)
}

// writesFailing is a /readyz reason when no own relay has accepted a write
// for writesStale while writes were being tried, else "".
func (o *outbox) writesFailing(now time.Time) string {
	since := o.ownFailSince.Load()
	if since != 0 && now.Sub(time.Unix(0, since)) > writesStale {
		return "no configured relay has accepted a write for " + writesStale.String()
	}
	return ""
}

// sendLoop sends ev to one relay until it says OK, refuses for good, or
// ctx ends, waiting relay.Backoff between attempts. It returns the last
// result.
func (o *outbox) sendLoop(ctx context.Context, url string, f *relay.EventFrame) relay.Result {
	ev := f.Event
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, publishTimeout)
		res := o.pool.PublishFrame(actx, url, f)
		cancel()
		if ctx.Err() != nil && !res.OK() {
			return res // cut off by the caller, not the relay's doing
		}
		o.observe(ev, res)
		if !res.Class.Retry() || (!o.own[url] && attempt >= strangerSends) {
			return res
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(relay.Backoff(attempt)):
		}
	}
}

// broadcast starts one send loop per relay, each bounded by until and
// loops (which outlives the caller), and calls done (from the loop's
// goroutine) with each loop's final result. Beyond maxSendLoops a loop to
// one of the bot's relays is bounded by the caller's ctx instead, and a
// relay named by others gets none (done at once, Unreachable): the
// pending-answer sender passes its own long-lived context as ctx, so such
// loops had no bound but the rate of answers (600 direct messages from
// fresh keys, each with a relay list of 5 silent relays, ran 4,300
// goroutines). The event is encoded once for every relay and attempt
// (relay.EventFrame).
func (o *outbox) broadcast(ctx, loops context.Context, ev *nostr.Event, relays []string, until time.Time, done func(relay.Result)) {
	o.sends.mark(ev.ID)
	f, err := relay.NewEventFrame(ev)
	if err != nil { // not an event go-nostr can encode: no relay would take it
		o.log.Error("publish: event not encodable", "event", ev.ID, "err", err)
		for _, u := range relays {
			done(relay.Result{URL: u, Class: relay.Refused, Reason: err.Error()})
		}
		return
	}
	for _, u := range relays {
		parent, slot := loops, true
		select {
		case o.sendSlots <- struct{}{}:
		default:
			if !o.own[u] {
				done(relay.Result{URL: u, Class: relay.Unreachable, Reason: "background sends to relays named by others are at their limit"})
				continue
			}
			parent, slot = ctx, false
		}
		lctx, cancel := context.WithDeadline(parent, until)
		go func() {
			defer cancel()
			if slot {
				defer func() { <-o.sendSlots }()
			}
			res := relay.Result{URL: u, Class: relay.Failed, Reason: "panic"}
			defer func() { done(res) }()
			defer o.guard.catchOwn("publish", ev.ID)
			res = o.sendLoop(lctx, u, f)
		}()
	}
}

// Publish sends ev to every usable relay and returns once one accepted it;
// the others go on with their own loops in the background for up to
// backgroundSend. It fails when every relay refused for good, or none
// accepted before ctx ended.
func (o *outbox) Publish(ctx context.Context, ev *nostr.Event, relays []string) error {
	relays = o.usable(relays)
	if len(relays) == 0 {
		return errors.New("no relays to publish to")
	}
	results := make(chan relay.Result, len(relays))
	o.broadcast(ctx, o.bg, ev, relays, time.Now().Add(backgroundSend), func(r relay.Result) { results <- r })
	var errs []error
	for range relays {
		select {
		case r := <-results:
			if r.OK() {
				return nil
			}
			errs = append(errs, fmt.Errorf("%s: %s: %s", r.URL, r.Class, relay.Excerpt(r.Reason, 200)))
		case <-ctx.Done():
			return fmt.Errorf("publish %s: no relay accepted it yet: %w", ev.ID, ctx.Err())
		}
	}
	return fmt.Errorf("publish %s: no relay accepted it: %w", ev.ID, errors.Join(errs...))
}

// query asks every relay for filter and returns the verified events, the
// bot's relays within ctx, others' within strangerLookupTimeout and the
// strangers' budget. limit bounds events per relay.
func (o *outbox) query(ctx context.Context, relays []string, filter nostr.Filter, limit int) []*nostr.Event {
	relays = o.usable(relays)
	var mu sync.Mutex
	var out []*nostr.Event
	var wg sync.WaitGroup
	for _, u := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer o.guard.catch("lookup")
			qctx := ctx
			if !o.own[u] {
				var cancel context.CancelFunc
				qctx, cancel = context.WithTimeout(ctx, strangerLookupTimeout)
				defer cancel()
				if !o.strangerSlot(qctx) {
					o.log.Debug("look-up skipped: strangers' relays budget in use", "relay", u)
					return
				}
				defer func() { <-o.strangerSlots }()
			}
			evs, err := o.pool.Query(qctx, u, nostr.Filters{filter}, limit)
			if err != nil {
				o.log.Debug("relay look-up", "relay", u, "err", relay.Excerpt(err.Error(), 300))
			}
			mu.Lock()
			out = append(out, evs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// strangerSlot takes one of the strangerLookups slots, waiting for one
// until ctx ends only when fewer than strangerWaiters look-ups wait
// already; false: none taken, skip the relay.
func (o *outbox) strangerSlot(ctx context.Context) bool {
	select {
	case o.strangerSlots <- struct{}{}:
		return true
	default:
	}
	if o.strangerWaiting.Add(1) > strangerWaiters {
		o.strangerWaiting.Add(-1)
		return false
	}
	defer o.strangerWaiting.Add(-1)
	select {
	case o.strangerSlots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Latest returns the newest 30312 at c found on relays (verified).
func (o *outbox) Latest(ctx context.Context, c nostrx.Coordinate, relays []string) (*nostr.Event, error) {
	filter := nostr.Filter{Kinds: []int{c.Kind}, Authors: []string{c.Author}, Tags: nostr.TagMap{"d": []string{c.D}}}
	var best *nostr.Event
	for _, ev := range o.query(ctx, relays, filter, 16) {
		if ev.PubKey != c.Author || ev.Kind != c.Kind || ev.Tags.GetD() != c.D {
			continue
		}
		best = newer(best, ev)
	}
	return best, nil
}

// first returns the first verified event matching filter that any of
// relays holds or receives before ctx ends, or nil.
func (o *outbox) first(ctx context.Context, relays []string, filter nostr.Filter) *nostr.Event {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := make(chan *nostr.Event, len(relays))
	for _, u := range o.usable(relays) {
		go func() {
			defer o.guard.catch("lookup")
			s, err := o.pool.Subscribe(ctx, u, nostr.Filters{filter})
			if err != nil {
				return
			}
			defer s.Close()
			for {
				select {
				case ev := <-s.Events:
					if relay.Verify(ev, nostr.Filters{filter}) {
						found <- ev
						return
					}
				case <-s.Done():
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	select {
	case ev := <-found:
		return ev
	case <-ctx.Done():
		return nil
	}
}

// usable applies the relay policy, logging what it leaves out.
func (o *outbox) usable(urls []string) []string {
	keep, refused := o.policy.usable(urls)
	if len(refused) > 0 {
		o.log.Debug("relays named by others on private addresses not used", "relays", refused)
	}
	return keep
}

func dedupe(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		n := nostr.NormalizeURL(u)
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
