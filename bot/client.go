package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/nostrx"
)

// Client is the requester's side of the protocol over relays: it signs a
// request, publishes it, waits for the bot's answer and opens it. The
// `nestbot restart` command and the end-to-end tests use it; any Nostr
// client can do the same (see docs/protocol.md).
type Client struct {
	Signer       *nostrx.Signer
	Bot          string // the bot's hex pubkey
	Relays       []string
	RequestKind  int
	ResponseKind int
}

// Exchange is one request and what came back.
type Exchange struct {
	Request  nostr.Event
	Response *nostr.Event
	Payload  nostrx.Payload
}

// Send publishes a request for room and waits until the bot answers or ctx
// ends. It subscribes before publishing, so a fast answer is never missed.
func (c *Client) Send(ctx context.Context, room nostrx.Coordinate, action, relayHint, reason string) (*Exchange, error) {
	req := nostrx.NewRequest(c.RequestKind, c.Bot, room, action, relayHint, reason, nostr.Now(), 0)
	if err := c.Signer.Sign(&req); err != nil {
		return nil, err
	}
	return c.SendEvent(ctx, req)
}

// SendEvent publishes an already signed request and waits for its answer.
// It speaks to the relays through internal/relay (bounded, OK-only
// publishing, NIP-42 AUTH with the requester's key); a request counts as
// sent once one relay said OK to it.
func (c *Client) SendEvent(ctx context.Context, req nostr.Event) (*Exchange, error) {
	pool := relay.NewPool(relay.Options{Trusted: c.Relays, Signer: c.Signer, MaxPerHost: max(4, len(c.Relays))})
	defer pool.Close()
	since := req.CreatedAt - 5
	filter := nostr.Filter{
		Kinds: []int{c.ResponseKind}, Authors: []string{c.Bot},
		Tags: nostr.TagMap{"e": []string{req.ID}, "p": []string{c.Signer.PublicKey()}}, Since: &since,
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan *nostr.Event, len(c.Relays))
	var subs []*relay.Sub
	var errs []error
	for _, u := range c.Relays {
		s, err := pool.Subscribe(sctx, u, nostr.Filters{filter})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		subs = append(subs, s)
	}
	if len(subs) == 0 {
		return nil, fmt.Errorf("subscribe for the answer: %w", errors.Join(errs...))
	}
	for _, s := range subs {
		defer s.Close()
		select { // subscribed before publishing, so a fast answer is never missed
		case <-s.EOSE():
		case <-s.Done():
		case <-ctx.Done():
			return nil, fmt.Errorf("subscribe for the answer: %w", ctx.Err())
		}
		go func() {
			for {
				select {
				case ev := <-s.Events:
					if relay.Verify(ev, nostr.Filters{filter}) {
						select {
						case answers <- ev:
						case <-sctx.Done():
							return
						}
					}
				case <-s.Done():
					return
				case <-sctx.Done():
					return
				}
			}
		}()
	}
	accepted := 0
	results := make(chan relay.Result, len(c.Relays))
	for _, u := range c.Relays {
		go func() { results <- pool.Publish(ctx, u, &req) }()
	}
	errs = nil
	for range c.Relays {
		r := <-results
		if r.OK() {
			accepted++
		} else {
			errs = append(errs, fmt.Errorf("%s: %s: %s", r.URL, r.Class, relay.Excerpt(r.Reason, 200)))
		}
	}
	if accepted == 0 {
		return nil, fmt.Errorf("no relay accepted the request: %w", errors.Join(errs...))
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the answer to %s: %w", req.ID, ctx.Err())
		case ev := <-answers:
			p, err := nostrx.OpenResponse(c.Signer, c.Bot, ev)
			if err != nil {
				continue // not a valid answer from the bot: keep waiting
			}
			return &Exchange{Request: req, Response: ev, Payload: p}, nil
		}
	}
}

// DefaultClientTimeout is how long `nestbot restart` waits for an answer.
const DefaultClientTimeout = 30 * time.Second
