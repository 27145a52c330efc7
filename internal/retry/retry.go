// Package retry is nestbot's one backoff policy: every loop that tries a
// dependency again (Redis steps, LiveKit calls, relay reconnects, resends,
// identity publishing, the ops listener's rebind, restarted background
// tasks, deferred requests) waits the way a Policy says, with the waits
// computed by github.com/cenkalti/backoff/v5's ExponentialBackOff
// (multiplier 2, capped, optionally jittered).
//
// The loops themselves stay here rather than in backoff.Retry because two of
// the bot's rules differ from it: a budgeted call tries once more exactly
// when its budget ends (the budget is spent in full, never exceeded by more
// than one attempt), and a call cut off by its context returns the
// dependency's last error, which says what failed, joined with the
// context's.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is an exponential backoff: the first wait is Initial, each next one
// twice the last, capped at Max; with Jitter j each wait is drawn from
// [w·(1−j), w·(1+j)] so that many clients never retry in step.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
	Jitter  float64 // 0 ≤ Jitter < 1
}

// The policies in use. They differ in scale only: a step of a request
// retries within its budget at Redis speed, a lost relay is dialled again
// at relay speed.
var (
	// Dependency: a Redis or LiveKit call inside a request's budget
	// (limits.dependency_timeout); a failover takes a few seconds.
	Dependency = Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.5}
	// Lock: waiting for a room's lock held by another request.
	Lock = Policy{Initial: 2 * time.Millisecond, Max: 100 * time.Millisecond}
	// Request: a verified request deferred because its claim could not be
	// taken or its restart must be finished (per attempt of the request).
	Request = Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second}
	// Reconnect: a relay subscription that ended.
	Reconnect = Policy{Initial: 250 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.5}
	// Resend: an event a relay did not accept for a reason that may pass
	// (NIP-01 gives no policy; this one stays well below relays' limits).
	// Waits are in [d, 1.5·d], d = 1 s·2^(n−1) capped at 60 s (relay.Backoff).
	Resend = Policy{Initial: 1250 * time.Millisecond, Max: 75 * time.Second, Jitter: 0.2}
	// Background: identity publishing and restarted background tasks.
	Background = Policy{Initial: time.Second, Max: time.Minute}
	// Rebind: the ops listener whose address is taken.
	Rebind = Policy{Initial: 5 * time.Second, Max: 5 * time.Second}
	// Recreate: a LiveKit room created again that came back with its old
	// SID (rooms.LiveKitRooms.Recreate; the first retry goes at once).
	Recreate = Policy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}
)

// Backoff returns a new sequence of p's waits.
func (p Policy) Backoff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{InitialInterval: p.Initial, RandomizationFactor: p.Jitter, Multiplier: 2, MaxInterval: p.Max}
	b.Reset()
	return b
}

// Wait is the wait after attempt failed attempts (1 or more) of a caller
// that keeps its own count (a deferred request carries it in its job).
func (p Policy) Wait(attempt int) time.Duration {
	b := p.Backoff()
	d := b.NextBackOff()
	for range min(max(attempt, 1), 64) - 1 {
		d = b.NextBackOff()
	}
	return d
}

// Sleep waits d, or until ctx ends; it reports whether the whole wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Do calls fn until it succeeds, returns an error retryable rejects
// (nil retryable: every error is retried), budget is spent, or ctx ends.
// With budget > 0 the last wait ends at the deadline, for one last try;
// with budget 0 only ctx bounds it. It returns fn's last result; when ctx
// ended during a wait, its error is joined to fn's.
func Do[T any](ctx context.Context, p Policy, budget time.Duration, retryable func(error) bool, fn func(context.Context) (T, error)) (T, error) {
	var deadline time.Time
	if budget > 0 {
		deadline = time.Now().Add(budget)
	}
	b := p.Backoff()
	for {
		v, err := fn(ctx)
		if err == nil || (retryable != nil && !retryable(err)) {
			return v, err
		}
		wait := b.NextBackOff()
		if !deadline.IsZero() {
			remaining := time.Until(deadline)
			if remaining <= 0 {
				return v, err
			}
			wait = min(wait, remaining)
		}
		if !Sleep(ctx, wait) {
			return v, errors.Join(err, ctx.Err())
		}
	}
}

// Until calls fn until it succeeds or ctx ends, and returns its last error
// (joined with ctx's when ctx ended first).
func Until(ctx context.Context, p Policy, fn func(context.Context) error) error {
	_, err := Do(ctx, p, 0, nil, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}
