package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// listener owns one relay: its connection, its subscription and its
// reconnect state. Relays never wait on each other, and a hostile relay
// mostly burns its own goroutine, because screening and signature checks run
// here rather than in a shared stage.
//
// go-nostr's SimplePool resubscribes with since=now after a drop and gives up
// for good after a CLOSED; a listener instead resubscribes from the newest
// request it saw (minus a slack, bounded by max_request_age), answers AUTH,
// and keeps trying with capped, jittered backoff.
type listener struct {
	url        string
	svc        *Service
	newest     atomic.Int64 // created_at of the newest verified request seen here
	saved      atomic.Int64 // newest as last written to the checkpoint
	connected  atomic.Bool
	reconnects atomic.Int64
}

// resubscribeSlack covers requests that reach a relay late or from a client
// with a slow clock.
const resubscribeSlack = 60 * time.Second

const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

func (l *listener) run(ctx context.Context) {
	backoff := minBackoff
	for ctx.Err() == nil {
		started := time.Now()
		err := l.session(ctx)
		l.connected.Store(false)
		l.svc.metrics.connected.WithLabelValues(l.url).Set(0)
		l.saveCheckpoint(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > maxBackoff {
			backoff = minBackoff
		}
		l.reconnects.Add(1)
		l.svc.metrics.reconnects.WithLabelValues(l.url).Inc()
		wait := backoff/2 + rand.N(backoff/2+1)
		l.svc.log.Warn("relay subscription ended", "relay", l.url, "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// since is where a (re)subscription starts: never further back than
// max_request_age, never later than the newest request seen minus a slack.
func (l *listener) since(now time.Time) nostr.Timestamp {
	floor := now.Add(-l.svc.cfg.Nostr.MaxRequestAge).Unix()
	if n := l.newest.Load(); n != 0 {
		floor = max(floor, n-int64(resubscribeSlack/time.Second))
	}
	return nostr.Timestamp(floor)
}

func (l *listener) session(ctx context.Context) error {
	relay := nostr.NewRelay(ctx, l.url, nostr.WithNoticeHandler(func(n string) {
		l.svc.log.Debug("relay notice", "relay", l.url, "notice", truncate(n, 200))
	}))
	relay.AssumeValid = true // we verify ourselves, after cheaper checks
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := relay.Connect(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer relay.Close()

	authed := false
	for {
		now := time.Now()
		since := l.since(now)
		filters := append(nostr.Filters{{
			Kinds: []int{l.svc.cfg.Nostr.RequestKind},
			Tags:  nostr.TagMap{"p": []string{l.svc.signer.PublicKey()}},
			Since: &since,
		}}, l.svc.dmFilters(now)...)
		sub, err := relay.Subscribe(ctx, filters, nostr.WithCheckDuplicate(func(id, _ string) bool {
			return l.svc.seen.Contains(id)
		}))
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		l.connected.Store(true)
		l.svc.metrics.connected.WithLabelValues(l.url).Set(1)
		l.svc.log.Info("subscribed", "relay", l.url, "since", int64(since))
		reason, err := l.consume(ctx, relay, sub)
		if err != nil || ctx.Err() != nil {
			return err
		}
		if strings.HasPrefix(reason, "auth-required:") && !authed {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := relay.Auth(actx, l.svc.signer.Sign)
			cancel()
			if err != nil {
				return fmt.Errorf("auth: %w", err)
			}
			authed = true
			continue
		}
		return fmt.Errorf("CLOSED: %s", reason)
	}
}

// consume reads one subscription until the relay closes it (returning the
// reason) or the connection drops (returning an error).
func (l *listener) consume(ctx context.Context, relay *nostr.Relay, sub *nostr.Subscription) (string, error) {
	checkpoint := time.NewTicker(5 * time.Second)
	defer checkpoint.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", nil
		case <-relay.Context().Done():
			return "", errors.New("connection lost")
		case reason := <-sub.ClosedReason:
			return reason, nil
		case <-sub.EndOfStoredEvents:
		case <-checkpoint.C:
			l.saveCheckpoint(ctx)
		case ev, ok := <-sub.Events:
			if !ok {
				if ctx.Err() != nil {
					return "", nil
				}
				return "", errors.New("subscription ended")
			}
			if ev.Kind != l.svc.cfg.Nostr.RequestKind {
				l.svc.intakeDM(ctx, ev, l.url)
				continue
			}
			if l.svc.intake(ctx, ev, l.url) {
				for {
					cur := l.newest.Load()
					if int64(ev.CreatedAt) <= cur || l.newest.CompareAndSwap(cur, int64(ev.CreatedAt)) {
						break
					}
				}
			}
		}
	}
}

func (l *listener) checkpointKey() string { return l.svc.cfg.Redis.BotPrefix + "checkpoint:" + l.url }

// loadCheckpoint resumes from the newest request a previous run saw here,
// so a restarted bot catches up with what was sent while it was down.
func (l *listener) loadCheckpoint(ctx context.Context) {
	v, err := l.svc.store.Client().Get(ctx, l.checkpointKey()).Result()
	if err != nil {
		return
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		l.newest.Store(n)
		l.saved.Store(n)
	}
}

func (l *listener) saveCheckpoint(ctx context.Context) {
	n := l.newest.Load()
	if n == 0 || n == l.saved.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := l.svc.store.Client().Set(ctx, l.checkpointKey(), n, 2*l.svc.cfg.Nostr.MaxRequestAge+resubscribeSlack).Err(); err == nil {
		l.saved.Store(n)
	}
}
