package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// outbox publishes and looks up events on arbitrary relays (the bot's own,
// rooms' relays, requesters' hints) through one go-nostr pool, answering
// NIP-42 AUTH with the bot's key when a relay asks.
type outbox struct {
	pool   *nostr.SimplePool
	signer *nostrx.Signer
	log    *slog.Logger
	policy relayPolicy
	bg     context.Context // lives as long as the service: background retries
	guard  *panicGuard
}

func newOutbox(ctx context.Context, signer *nostrx.Signer, log *slog.Logger, policy relayPolicy) *outbox {
	o := &outbox{signer: signer, log: log, policy: policy, bg: ctx}
	o.pool = nostr.NewSimplePool(ctx, nostr.WithAuthHandler(func(ctx context.Context, ev nostr.RelayEvent) error {
		return signer.Sign(ev.Event)
	}))
	return o
}

// publishTimeout bounds one attempt to get an OK from one relay.
const publishTimeout = 5 * time.Second

// publishRetries is how many more times a relay that refused or failed is
// tried in the background after the first OK came from another relay.
const publishRetries = 3

// Publish sends ev to every relay and returns as soon as one accepted it;
// the other relays keep being tried in the background. It fails only when no
// relay accepted it before ctx ended.
func (o *outbox) Publish(ctx context.Context, ev *nostr.Event, relays []string) error {
	relays = o.usable(relays)
	if len(relays) == 0 {
		return errors.New("no relays to publish to")
	}
	results := make(chan error, len(relays))
	for _, url := range relays {
		go func() {
			err := errPublishPanicked
			defer func() { results <- err }()
			defer o.guard.catchOwn("publish", ev.ID)
			err = o.publishOne(ctx, url, ev, publishRetries)
		}()
	}
	var errs []error
	for range relays {
		select {
		case err := <-results:
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		case <-ctx.Done():
			return fmt.Errorf("publish %s: %w", ev.ID, ctx.Err())
		}
	}
	return fmt.Errorf("publish %s: no relay accepted it: %w", ev.ID, errors.Join(errs...))
}

// publishOne tries one relay, retrying with backoff; background retries
// outlive ctx (bounded by the service's life and the retry count).
func (o *outbox) publishOne(ctx context.Context, url string, ev *nostr.Event, retries int) error {
	var err error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-o.bg.Done():
				return err
			case <-time.After(time.Duration(attempt*attempt) * 250 * time.Millisecond):
			}
		}
		parent := ctx
		if ctx.Err() != nil {
			parent = o.bg
		}
		pctx, cancel := context.WithTimeout(parent, publishTimeout)
		err = o.publishAttempt(pctx, url, ev)
		cancel()
		if err == nil {
			return nil
		}
		if isPermanentRefusal(err) {
			break
		}
	}
	o.log.Debug("publish failed", "relay", url, "event", ev.ID, "kind", ev.Kind, "err", err)
	return fmt.Errorf("%s: %w", url, err)
}

func (o *outbox) publishAttempt(ctx context.Context, url string, ev *nostr.Event) error {
	for res := range o.pool.PublishMany(ctx, []string{url}, *ev) {
		return res.Error
	}
	return errors.New("no result")
}

// isPermanentRefusal is a relay's considered "no" (blocked, invalid,
// duplicate): retrying the same event cannot change it.
func isPermanentRefusal(err error) bool {
	msg := err.Error()
	for _, p := range []string{"msg: blocked:", "msg: invalid:", "msg: pow:", "msg: restricted:", "msg: duplicate:"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// Latest returns the newest 30312 at c found on relays, checking each
// candidate's id (the pool checks signatures).
func (o *outbox) Latest(ctx context.Context, c nostrx.Coordinate, relays []string) (*nostr.Event, error) {
	filter := nostr.Filter{Kinds: []int{c.Kind}, Authors: []string{c.Author}, Tags: nostr.TagMap{"d": []string{c.D}}}
	var best *nostr.Event
	// Read until ctx ends rather than until the channel closes: the pool
	// closes it only once every relay answered, and its connection attempt
	// to an unresponsive relay (a request's hint) ignores ctx for 15 s.
	events := o.pool.FetchMany(ctx, o.usable(relays), filter)
	for {
		var re nostr.RelayEvent
		var ok bool
		select {
		case re, ok = <-events:
		case <-ctx.Done():
		}
		if !ok {
			return best, nil
		}
		ev := re.Event
		if ev.PubKey != c.Author || ev.Kind != c.Kind || ev.Tags.GetD() != c.D || !ev.CheckID() {
			continue
		}
		if best == nil || ev.CreatedAt > best.CreatedAt || (ev.CreatedAt == best.CreatedAt && ev.ID < best.ID) {
			best = ev
		}
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
