package relay

import (
	"strings"
	"time"

	"github.com/nestbot/nestbot/internal/retry"
)

// Class is what one attempt to publish an event to one relay came to, as
// far as retrying is concerned.
type Class string

const (
	Accepted     Class = "accepted"      // ["OK", id, true, …], duplicate: included
	RateLimited  Class = "rate-limited"  // OK false "rate-limited:"
	AuthRequired Class = "auth-required" // OK false "auth-required:" even after authenticating
	Refused      Class = "refused"       // OK false "pow:", "restricted:", "blocked:", "invalid:": never resent
	Failed       Class = "error"         // OK false "error:" or an unknown prefix
	NoOK         Class = "no-ok"         // no OK before the attempt's timeout
	Dropped      Class = "dropped"       // the connection ended before an OK
	Unreachable  Class = "unreachable"   // no connection: dial failed, address not allowed, caps full
)

// Result is the outcome of one attempt to publish one event to one relay.
type Result struct {
	URL    string
	Class  Class
	Reason string // the relay's OK message, or the local error; unescaped, untruncated
	Prefix string // the machine-readable prefix of Reason ("pow", "blocked", …), "" when none
}

// OK reports whether the relay accepted the event.
func (r Result) OK() bool { return r.Class == Accepted }

// classify turns an OK message (NIP-01) into a Class.
func classify(ok bool, reason string) (Class, string) {
	prefix, _, found := strings.Cut(reason, ":")
	if !found || len(prefix) > 32 || strings.ContainsAny(prefix, " \n") {
		prefix = ""
	}
	if ok {
		return Accepted, prefix
	}
	switch prefix {
	case "duplicate":
		// A relay that already holds the event has it: delivered.
		return Accepted, prefix
	case "rate-limited":
		return RateLimited, prefix
	case "auth-required":
		return AuthRequired, prefix
	case "pow", "restricted", "blocked", "invalid":
		return Refused, prefix
	}
	return Failed, prefix
}

// Retry says whether an event that got c from a relay may be sent to that
// relay again: never after an OK, a considered refusal, or auth-required
// (Pool.Publish already authenticated and sent once more).
func (c Class) Retry() bool {
	switch c {
	case Accepted, Refused, AuthRequired:
		return false
	}
	return true
}

// Backoff policy for resending to one relay (NIP-01 gives none; this one
// keeps the bot well below what relays rate-limit): attempt n (from 1)
// waits BackoffBase·2^(n-1), capped at BackoffCap, plus up to half of that
// again as jitter so that many answers do not resend in step. Never less
// than BackoffBase.
const (
	BackoffBase = time.Second
	BackoffCap  = 60 * time.Second
)

// Backoff is the wait before resending after attempt failed attempts (1 or
// more), in [d, 1.5·d] with d = min(BackoffBase·2^(attempt-1), BackoffCap).
func Backoff(attempt int) time.Duration {
	return max(retry.Resend.Wait(attempt), BackoffBase)
}
