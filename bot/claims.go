package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/retry"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// claims makes each request ID processed exactly once across bot restarts
// and replicas. A claim (one Redis key per request, rooms.Keys.Claim)
// moves through three states:
//
//	w:<instance>:<lease end>  being worked on by a live instance
//	r:<response>              answered; the signed response is kept so a crash
//	                          before it reached a relay republishes the very same event
//	done                      the response reached a relay
//
// An instance proves it is alive by renewing the lease inside each claim
// it holds (heartbeat); a claim whose lease ended belongs to a dead
// instance and is taken over, so a request cut off by a crash is finished.
// The storage and its scripts are rooms.RedisStore's (rooms/claims.go).
type claims struct {
	store    *rooms.RedisStore
	instance string
	lease    time.Duration // how long a working claim lives without its owner
	ttl      time.Duration // how long an answered claim is remembered
	step     time.Duration // how long one write may be retried (limits.dependency_timeout)
	// renewEvery is how often the heartbeat renews held claims; a claim's
	// lease is three times that (heartbeatTTL by default).
	renewEvery time.Duration

	mu   sync.Mutex
	held map[string]bool // claims this instance works on, to renew
}

const heartbeatTTL = 10 * time.Second

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ownerLease is how long a held claim stays ours without a renewal.
func (c *claims) ownerLease() time.Duration {
	if c.renewEvery > 0 {
		return 3 * c.renewEvery
	}
	return heartbeatTTL
}

func (c *claims) hold(id string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[string]bool{}
	}
	if on {
		c.held[id] = true
	} else {
		delete(c.held, id)
	}
}

// heartbeat renews the lease of every claim this instance holds until ctx
// ends; then the claims still held are left to expire and be taken over.
func (c *claims) heartbeat(ctx context.Context) {
	t := time.NewTicker(c.ownerLease() / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		ids := make([]string, 0, len(c.held))
		for id := range c.held {
			ids = append(ids, id)
		}
		c.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, c.ownerLease()/3)
		held, _ := c.store.RenewClaims(rctx, ids, c.instance, c.ownerLease())
		cancel()
		for i, ok := range held {
			if !ok {
				c.hold(ids[i], false) // answered, or taken over: no longer ours
			}
		}
	}
}

// claimOutcome says what a claim attempt found.
type claimOutcome int

const (
	claimAcquired claimOutcome = iota // ours to work on
	// claimTaken: ours to work on, and claimed before (by this instance,
	// or by a dead one whose claim we took over). The request was counted
	// against its requester's rate when it was first claimed; it is the
	// same request and is not counted again.
	claimTaken
	claimBusy     // a live instance is working on it
	claimDone     // answered and delivered
	claimAnswered // answered, maybe not delivered: republish stored
	claimGone     // takeOver found no claim: not ours to start
)

// acquire claims request id. With claimAnswered it returns the stored response.
// A claim we already hold (a retry after a lost reply) is acquired again.
func (c *claims) acquire(ctx context.Context, id string) (claimOutcome, *nostr.Event, error) {
	return c.run(ctx, id, true)
}

// takeOver is acquire for a request another instance held: it takes the
// claim only from a dead owner, and reports claimGone when there is no claim
// at all, because then Redis lost it (a restart without persistence) and
// the request may already have been answered.
func (c *claims) takeOver(ctx context.Context, id string) (claimOutcome, *nostr.Event, error) {
	return c.run(ctx, id, false)
}

// acquireCounted is acquire (fresh) or takeOver that, when it acquires
// the claim, also counts the request in pubkey's rate window in the same
// round trip (rooms.RedisStore.ClaimCounted, issue 15). count is the
// window's count so far, this request included; 0 when it was not counted
// (not acquired, or a cluster): then the caller counts with rateAllow.
func (c *claims) acquireCounted(ctx context.Context, id string, fresh bool, pubkey string, now time.Time) (claimOutcome, *nostr.Event, int64, error) {
	res, count, err := c.store.ClaimCounted(ctx, id, c.instance, c.lease, c.ownerLease(), fresh, pubkey, now)
	if err != nil {
		return 0, nil, 0, err
	}
	state, stored, err := c.outcome(id, res)
	return state, stored, count, err
}

// acquireLocked is acquireCounted that, on a single server, also takes
// the lock of the room a restart request names and reads it, in the same
// script, when the claim is ours and the count within limit
// (rooms.RedisStore.ClaimLocked); pre is then handed to the restart.
func (c *claims) acquireLocked(ctx context.Context, id string, fresh bool, pubkey string, now time.Time, limit int, room nostrx.Coordinate, ttl time.Duration) (claimOutcome, *nostr.Event, int64, *rooms.LockedView, error) {
	res, count, pre, err := c.store.ClaimLocked(ctx, id, c.instance, c.lease, c.ownerLease(), fresh, pubkey, now, limit, room, ttl)
	if err != nil {
		return 0, nil, 0, nil, err
	}
	state, stored, err := c.outcome(id, res)
	if err != nil || (state != claimAcquired && state != claimTaken) {
		pre.Unlock() // not ours: never taken by the script, but be sure
		pre = nil
	}
	return state, stored, count, pre, err
}

func (c *claims) run(ctx context.Context, id string, fresh bool) (claimOutcome, *nostr.Event, error) {
	res, err := c.store.Claim(ctx, id, c.instance, c.lease, c.ownerLease(), fresh)
	if err != nil {
		return 0, nil, err
	}
	return c.outcome(id, res)
}

// outcome reads the claim script's result res for request id.
func (c *claims) outcome(id, res string) (claimOutcome, *nostr.Event, error) {
	switch {
	case res == "acquired":
		c.hold(id, true)
		return claimAcquired, nil, nil
	case res == "taken":
		c.hold(id, true)
		return claimTaken, nil, nil
	case res == "busy":
		return claimBusy, nil, nil
	case res == "gone":
		return claimGone, nil, nil
	case res == "done":
		return claimDone, nil, nil
	case strings.HasPrefix(res, "r:"):
		var ev nostr.Event
		if err := json.Unmarshal([]byte(res[2:]), &ev); err != nil {
			return 0, nil, fmt.Errorf("claim %s: stored response unreadable: %w", id, err)
		}
		return claimAnswered, &ev, nil
	}
	return 0, nil, fmt.Errorf("claim %s: unknown state %q", id, truncate(res, 16))
}

// answered stores the signed response before it is published, retrying
// within ctx: a failover must not leave an answered request looking
// unanswered to the instance that would take it over.
func (c *claims) answered(ctx context.Context, id string, resp *nostr.Event) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	if err := c.retry(ctx, func(ctx context.Context) error { return c.store.SetClaim(ctx, id, "r:"+string(b), c.ttl) }); err != nil {
		return fmt.Errorf("store response of %s: %w", id, err)
	}
	c.hold(id, false)
	return nil
}

// answeredPending is answered and the pending answer's store in one round
// trip (pendingStore.addAnswered), with the restart's final writes cl
// holds (nil: none) and the release of its room lock, retrying within one
// step's budget, as Engine retries a commit; it returns the answer now
// pending (see pendingStore.add). On an error nothing of it was written,
// or all of it (a lost reply).
func (c *claims) answeredPending(ctx context.Context, p *pendingStore, cl *rooms.CommitLater, a *pendingAnswer) (*pendingAnswer, error) {
	b, err := json.Marshal(a.ev)
	if err != nil {
		return nil, err
	}
	var stored *pendingAnswer
	err = c.retry(ctx, func(ctx context.Context) error {
		var err error
		stored, err = p.addAnswered(ctx, cl, a, b, "r:"+string(b), c.ttl)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store response of %s: %w", a.id, err)
	}
	c.hold(a.id, false)
	return stored, nil
}

// delivered marks the response as accepted by a relay.
func (c *claims) delivered(ctx context.Context, id string) error {
	c.hold(id, false)
	if err := c.retry(ctx, func(ctx context.Context) error { return c.store.SetClaim(ctx, id, "done", c.ttl) }); err != nil {
		return fmt.Errorf("mark %s delivered: %w", id, err)
	}
	return nil
}

// deliveredRemoved is delivered and the pending answer's removal in one
// round trip (rooms.DeliveredAnswer), retried within one step's budget.
func (c *claims) deliveredRemoved(ctx context.Context, id string) error {
	c.hold(id, false)
	if err := c.retry(ctx, func(ctx context.Context) error { return c.store.DeliveredAnswer(ctx, id, "done", c.ttl) }); err != nil {
		return fmt.Errorf("mark %s delivered: %w", id, err)
	}
	return nil
}

// release drops a claim we hold but could not work on (shutdown before
// start), so that another instance may take it at once.
func (c *claims) release(ctx context.Context, id string) {
	c.hold(id, false)
	_ = c.store.ReleaseClaim(ctx, id, c.instance)
}

// retry is retryRedis bounded by one step's budget.
func (c *claims) retry(ctx context.Context, f func(context.Context) error) error {
	if c.step > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.step)
		defer cancel()
	}
	return retryRedis(ctx, f)
}

// retryRedis calls f until it succeeds or ctx ends (retry.Dependency): a
// Redis failover takes a few seconds, a step of a request may wait that
// long (its ctx carries dependency_timeout).
func retryRedis(ctx context.Context, f func(context.Context) error) error {
	return retry.Until(ctx, retry.Dependency, f)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
