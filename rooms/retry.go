package rooms

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// ErrUnavailable marks an error from Redis or LiveKit that may pass: the
// dependency did not answer or failed on its side. Engine retries such
// errors within its dependency budget and then answers UNAVAILABLE.
var ErrUnavailable = errors.New("dependency unavailable")

// retry runs fn until it succeeds, fails with an error that is not
// ErrUnavailable, or budget is spent; it backs off with jitter from 50 ms to
// 2 s, and tries a last time when the budget ends. The last error is
// returned.
func retry[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(budget)
	backoff := 50 * time.Millisecond
	for {
		v, err := fn(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return v, err
		}
		// The last wait ends at the deadline, for one last try: the budget
		// is spent in full, never exceeded by more than one attempt.
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return v, err
		}
		wait := min(backoff/2+rand.N(backoff/2+1), remaining)
		select {
		case <-ctx.Done():
			return v, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
