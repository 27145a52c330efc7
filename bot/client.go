package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbd-wtf/go-nostr"

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
func (c *Client) SendEvent(ctx context.Context, req nostr.Event) (*Exchange, error) {
	pool := nostr.NewSimplePool(ctx, nostr.WithAuthHandler(func(_ context.Context, ev nostr.RelayEvent) error {
		return c.Signer.Sign(ev.Event)
	}))
	defer pool.Close("done")
	since := req.CreatedAt - 5
	filter := nostr.Filter{
		Kinds: []int{c.ResponseKind}, Authors: []string{c.Bot},
		Tags: nostr.TagMap{"e": []string{req.ID}, "p": []string{c.Signer.PublicKey()}}, Since: &since,
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	eose := make(chan struct{})
	events := pool.SubscribeManyNotifyEOSE(sctx, c.Relays, filter, eose)
	select {
	case <-eose:
	case <-ctx.Done():
		return nil, fmt.Errorf("subscribe for the answer: %w", ctx.Err())
	}
	accepted := 0
	var errs []error
	for res := range pool.PublishMany(ctx, c.Relays, req) {
		if res.Error == nil {
			accepted++
		} else {
			errs = append(errs, fmt.Errorf("%s: %w", res.RelayURL, res.Error))
		}
	}
	if accepted == 0 {
		return nil, fmt.Errorf("no relay accepted the request: %w", errors.Join(errs...))
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the answer to %s: %w", req.ID, ctx.Err())
		case re, ok := <-events:
			if !ok {
				return nil, errors.New("every relay closed the subscription")
			}
			p, err := nostrx.OpenResponse(c.Signer, c.Bot, re.Event)
			if err != nil {
				continue // not a valid answer from the bot: keep waiting
			}
			return &Exchange{Request: req, Response: re.Event, Payload: p}, nil
		}
	}
}

// DefaultClientTimeout is how long `nestbot restart` waits for an answer.
const DefaultClientTimeout = 30 * time.Second
