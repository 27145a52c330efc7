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
// 2 s. The last error is returned.
func retry[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(budget)
	backoff := 50 * time.Millisecond
	for {
		v, err := fn(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return v, err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if time.Now().Add(wait).After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
