package rooms

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A room lock is a lease: it is taken for lockLease and renewed by its
// holder every lockLease/3 for as long as it holds it, up to the ttl the
// caller asked for. A holder that dies (SIGKILL, lost host) therefore
// blocks its room for at most lockLease, not for the whole ttl, and the
// instance that takes over its request can finish the work at once. A
// holder that is alive but stuck still loses the lock after ttl.
var lockLease = 10 * time.Second

// renewScript extends a lock only while it still holds the holder's token.
var renewScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)

// leaseTTL is the expiry a lock is taken with for a caller's ttl.
func leaseTTL(ttl time.Duration) time.Duration { return min(ttl, lockLease) }

// renewal stops a lock's renewal.
type renewal struct {
	stop chan struct{}
	once sync.Once
}

// hold renews l until it is released, it is no longer ours, or ttl has
// passed since it was taken.
func (l *RoomLock) hold(ttl time.Duration) {
	lease := lockLease
	if ttl <= lease {
		return
	}
	r := &renewal{stop: make(chan struct{})}
	l.renew = r
	deadline := time.Now().Add(ttl)
	go func() {
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case now := <-t.C:
				if l.released.Load() || now.After(deadline) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), lease/3)
				n, err := renewScript.Run(ctx, l.store.rdb, []string{l.key}, l.token, max(min(lease, deadline.Sub(now)), time.Millisecond).Milliseconds()).Int()
				cancel()
				if err == nil && n == 0 {
					return // expired and maybe taken by someone else: not ours to extend
				}
			}
		}
	}()
}

// stopHold ends the renewal, if any.
func (l *RoomLock) stopHold() {
	if l.renew != nil {
		l.renew.once.Do(func() { close(l.renew.stop) })
	}
}
