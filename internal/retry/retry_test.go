package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitGrowsToCap(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, w := range want {
		if got := p.Wait(i + 1); got != w*time.Millisecond {
			t.Fatalf("Wait(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := p.Wait(1000); got != p.Max {
		t.Fatalf("Wait(1000) = %v, want the cap", got)
	}
}

func TestWaitJitterStaysInBounds(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: 0.5}
	for range 200 {
		if got := p.Wait(1); got < 50*time.Millisecond || got > 151*time.Millisecond {
			t.Fatalf("Wait(1) = %v, outside [50ms, 150ms]", got)
		}
	}
}

var errFlaky = errors.New("flaky")

func TestDoRetriesUntilSuccess(t *testing.T) {
	n := 0
	v, err := Do(context.Background(), Policy{Initial: time.Microsecond, Max: time.Microsecond}, 0, nil,
		func(context.Context) (int, error) {
			n++
			if n < 4 {
				return 0, errFlaky
			}
			return n, nil
		})
	if err != nil || v != 4 {
		t.Fatalf("Do = %d, %v; want 4, nil", v, err)
	}
}

func TestDoStopsOnNonRetryable(t *testing.T) {
	n := 0
	other := errors.New("final")
	_, err := Do(context.Background(), Policy{Initial: time.Microsecond, Max: time.Microsecond}, 0,
		func(err error) bool { return errors.Is(err, errFlaky) },
		func(context.Context) (int, error) { n++; return 0, other })
	if !errors.Is(err, other) || n != 1 {
		t.Fatalf("Do = %v after %d calls; want the final error after one call", err, n)
	}
}

func TestDoCancelledReturnsLastErrorAndCause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := Until(ctx, Policy{Initial: time.Hour, Max: time.Hour}, func(context.Context) error {
		n++
		cancel()
		return errFlaky
	})
	if !errors.Is(err, errFlaky) || !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("Until = %v after %d calls; want flaky joined with canceled after one call", err, n)
	}
}

func TestDoBudgetEndsWithOneLastTry(t *testing.T) {
	// The budget ends long before the first wait would: the wait is cut
	// to the deadline (else this test would sleep an hour), fn runs at
	// most once more, and fn's own last error comes back.
	n := 0
	_, err := Do(context.Background(), Policy{Initial: time.Hour, Max: time.Hour}, 10*time.Millisecond, nil,
		func(context.Context) (int, error) { n++; return 0, errFlaky })
	if !errors.Is(err, errFlaky) || errors.Is(err, context.DeadlineExceeded) || n < 1 || n > 2 {
		t.Fatalf("Do = %v after %d calls; want flaky after one or two calls", err, n)
	}
}
