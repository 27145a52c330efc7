package rooms

import (
	"context"
	"errors"
	"time"

	iretry "github.com/nestbot/nestbot/internal/retry"
)

// ErrUnavailable marks an error from Redis or LiveKit that may pass: the
// dependency did not answer or failed on its side. Engine retries such
// errors within its dependency budget and then answers UNAVAILABLE.
var ErrUnavailable = errors.New("dependency unavailable")

// retry runs fn until it succeeds, fails with an error that is not
// ErrUnavailable, or budget is spent, waiting as retry.Dependency says; it
// tries a last time when the budget ends. The last error is returned.
func retry[T any](ctx context.Context, budget time.Duration, fn func(context.Context) (T, error)) (T, error) {
	return iretry.Do(ctx, iretry.Dependency, budget, func(err error) bool { return errors.Is(err, ErrUnavailable) }, fn)
}
