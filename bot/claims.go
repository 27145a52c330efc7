package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"
)

// claims makes each request ID processed exactly once across bot restarts
// and replicas. A claim key moves through three states:
//
//	w:<instance>   being worked on by a live instance (lease)
//	r:<response>   answered; the signed response is kept so a crash before
//	               it reached a relay republishes the very same event
//	done           the response reached a relay
//
// An instance proves it is alive with a heartbeat key; a claim held by a
// dead instance is taken over, so a request cut off by a crash is finished.
type claims struct {
	rdb      redis.UniversalClient
	prefix   string // "nestbot:"
	instance string
	lease    time.Duration // how long a working claim lives without its owner
	ttl      time.Duration // how long an answered claim is remembered
}

const heartbeatTTL = 10 * time.Second

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *claims) key(id string) string     { return c.prefix + "claim:" + id }
func (c *claims) alive(inst string) string { return c.prefix + "alive:" + inst }

// heartbeat keeps this instance marked alive until ctx ends.
func (c *claims) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatTTL / 3)
	defer t.Stop()
	for {
		_ = c.rdb.Set(ctx, c.alive(c.instance), 1, heartbeatTTL).Err()
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = c.rdb.Del(dctx, c.alive(c.instance)).Err()
			cancel()
			return
		case <-t.C:
		}
	}
}

// claimOutcome says what a claim attempt found.
type claimOutcome int

const (
	claimAcquired claimOutcome = iota // ours to work on
	claimBusy                         // a live instance is working on it
	claimDone                         // answered and delivered
	claimAnswered                     // answered, maybe not delivered: republish stored
	claimGone                         // takeOver found no claim: not ours to start
)

// takeOverScript claims a request that nobody holds (unless ARGV[4] is
// "0"), that we already hold, or that a dead instance holds, atomically.
var takeOverScript = redis.NewScript(`
local v = redis.call("get", KEYS[1])
if not v then
  if ARGV[4] == "0" then
    return "gone"
  end
  redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])
  return "acquired"
end
if v == ARGV[1] then
  redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])
  return "acquired"
end
if string.sub(v, 1, 2) == "w:" then
  if redis.call("exists", ARGV[3] .. string.sub(v, 3)) == 0 then
    redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])
    return "acquired"
  end
  return "busy"
end
return v`)

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

func (c *claims) run(ctx context.Context, id string, fresh bool) (claimOutcome, *nostr.Event, error) {
	allowNew := "0"
	if fresh {
		allowNew = "1"
	}
	res, err := takeOverScript.Run(ctx, c.rdb, []string{c.key(id)}, "w:"+c.instance, c.lease.Milliseconds(), c.prefix+"alive:", allowNew).Text()
	if err != nil {
		return 0, nil, fmt.Errorf("claim %s: %w", id, err)
	}
	switch {
	case res == "acquired":
		return claimAcquired, nil, nil
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

// answered stores the signed response before it is published.
func (c *claims) answered(ctx context.Context, id string, resp *nostr.Event) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	if err := c.rdb.Set(ctx, c.key(id), "r:"+string(b), c.ttl).Err(); err != nil {
		return fmt.Errorf("store response of %s: %w", id, err)
	}
	return nil
}

// delivered marks the response as accepted by a relay.
func (c *claims) delivered(ctx context.Context, id string) error {
	if err := c.rdb.Set(ctx, c.key(id), "done", c.ttl).Err(); err != nil {
		return fmt.Errorf("mark %s delivered: %w", id, err)
	}
	return nil
}

// release drops a claim we hold but could not work on (shutdown before
// start), so that another instance may take it at once.
func (c *claims) release(ctx context.Context, id string) {
	v, err := c.rdb.Get(ctx, c.key(id)).Result()
	if err == nil && v == "w:"+c.instance {
		_ = c.rdb.Del(ctx, c.key(id)).Err()
	} else if err != nil && !errors.Is(err, redis.Nil) {
		return
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
