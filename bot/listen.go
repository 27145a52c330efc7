package bot

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/relay"
	"github.com/nestbot/nestbot/internal/retry"
)

// listener owns one relay: its connection, its subscription, its reconnect
// state and its verification stage. Relays never wait on each other, and a
// hostile relay burns only its own goroutines and bounded buffers.
//
// It speaks NIP-01 itself (frames parsed by internal/relay.Parse, which
// cannot panic) instead of using go-nostr's Relay, whose read loop
// starts a goroutine per incoming event and so has no bound on memory when
// a relay sends faster than events are verified. Here one goroutine reads
// the socket and does the cheap checks (structure, addressed to the bot,
// already seen, fresh), then hands each event to a bounded buffer without
// ever blocking; a second goroutine verifies, known hosts and admins first.
// When the buffers are full an unverified event is dropped and remembered
// by its created_at; once the backlog is gone the listener asks the relay
// again for what it dropped (catch-up), so a flood delays a request on that
// relay instead of losing it.
//
// go-nostr's SimplePool resubscribes with since=now after a drop and gives up
// for good after a CLOSED; a listener resubscribes from the newest request it
// saw (minus a slack, bounded by max_request_age), answers NIP-42 AUTH, and
// keeps trying with capped, jittered backoff.
type listener struct {
	url        string
	svc        *Service
	newest     atomic.Int64 // created_at of the newest verified request seen here
	saved      atomic.Int64 // newest as last written to the checkpoint
	lost       atomic.Int64 // oldest created_at dropped unverified and not yet caught up (0: none)
	overflow   atomic.Int64 // events dropped unverified because the buffers were full
	overflowAt atomic.Int64 // unix nanoseconds of the last such drop
	connected  atomic.Bool
	reconnects atomic.Int64

	prio   chan inbound // signer already known as a host or admin: verified first
	normal chan inbound // everything else
}

// inbound is an event read from the relay, waiting to be verified.
type inbound struct {
	ev *nostr.Event
	at time.Time // when it was read: the start of its latency
}

// Buffers between a relay's reader and its verifier. About 1 KB per event.
const (
	prioBuffer   = 256
	normalBuffer = 2048
)

// resubscribeSlack covers requests that reach a relay late or from a client
// with a slow clock.
const resubscribeSlack = 60 * time.Second

const (
	// healthySession is how long a subscription must have been live for the
	// backoff (retry.Reconnect) to start again from its first wait.
	healthySession = 5 * time.Second

	connectTimeout   = 10 * time.Second
	writeTimeout     = 5 * time.Second
	pingEvery        = 30 * time.Second
	pingTimeout      = 10 * time.Second
	subscribeTimeout = 20 * time.Second // REQ (or AUTH) to EOSE
	checkpointEvery  = 5 * time.Second
	// maxMessage bounds one websocket message from a relay; a request is a
	// few kilobytes at most.
	maxMessage = 1 << 20
)

func newListener(url string, s *Service) *listener {
	return &listener{url: url, svc: s, prio: make(chan inbound, prioBuffer), normal: make(chan inbound, normalBuffer)}
}

func (l *listener) run(ctx context.Context) {
	var verifier sync.WaitGroup
	verifier.Add(1)
	go func() {
		defer verifier.Done()
		l.verify(ctx)
	}()
	defer verifier.Wait()

	backoff := retry.Reconnect.Backoff()
	for ctx.Err() == nil {
		live, err := l.session(ctx)
		l.connected.Store(false)
		l.svc.metrics.Connected.WithLabelValues(l.url).Set(0)
		l.saveCheckpoint(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return
		}
		if live > healthySession {
			backoff.Reset()
		}
		l.reconnects.Add(1)
		l.svc.metrics.Reconnects.WithLabelValues(l.url).Inc()
		wait := backoff.NextBackOff()
		l.svc.log.Warn("relay subscription ended", "relay", l.url, "err", err, "retry_in", wait.Round(time.Millisecond))
		if !retry.Sleep(ctx, wait) {
			return
		}
	}
}

// since is where a (re)subscription starts: never further back than
// max_request_age, never later than the newest request seen minus a slack,
// nor than the oldest request dropped unverified.
func (l *listener) since(now time.Time) nostr.Timestamp {
	floor := now.Add(-l.svc.cfg.Nostr.MaxRequestAge).Unix()
	from := floor
	if n := l.newest.Load(); n != 0 {
		from = max(floor, n-int64(resubscribeSlack/time.Second))
	}
	if lost := l.lost.Load(); lost != 0 {
		from = max(floor, min(from, lost))
	}
	return nostr.Timestamp(from)
}

// requestFilter is the subscription for restart requests addressed to the bot.
func (l *listener) requestFilter(since nostr.Timestamp) nostr.Filter {
	return nostr.Filter{
		Kinds: []int{l.svc.cfg.Nostr.RequestKind},
		Tags:  nostr.TagMap{"p": []string{l.svc.signer.PublicKey()}},
		Since: &since,
	}
}

// session is one connection to the relay.
type session struct {
	l    *listener
	conn *websocket.Conn

	mu          sync.Mutex
	seq         int
	main        string        // id of the live subscription
	mainLost    int64         // l.lost when main was requested
	requested   time.Time     // when main was requested
	liveSince   time.Time     // when main got its EOSE (zero: not yet)
	dmFilters   nostr.Filters // direct-message filters of main, to screen other kinds
	catchup     string        // id of the catch-up subscription, "" when none
	catchupLost int64
	challenge   string // NIP-42 challenge from the relay
	authID      string // AUTH event waiting for its OK
	authed      bool
	wantAuth    bool // CLOSED auth-required came before the challenge
}

// session connects, subscribes and reads until the connection ends. It
// returns how long the subscription was live and why it ended.
func (l *listener) session(ctx context.Context) (time.Duration, error) {
	// The bot's own relays may be on private addresses (the operator named
	// them). relay.Dial sets the frame limit and turns compression off.
	conn, err := relay.Dial(ctx, l.url, relay.DialOptions{AllowPrivate: true, MaxMessage: maxMessage, Timeout: connectTimeout})
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.CloseNow()

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	s := &session{l: l, conn: conn}
	if err := s.subscribe(sctx); err != nil {
		return 0, err
	}
	var side sync.WaitGroup
	side.Add(1)
	go func() {
		defer side.Done()
		s.keepalive(sctx)
	}()
	err = s.read(sctx)
	stop()
	side.Wait()
	s.mu.Lock()
	var live time.Duration
	if !s.liveSince.IsZero() {
		live = time.Since(s.liveSince)
	}
	s.mu.Unlock()
	if ctx.Err() != nil {
		return live, nil
	}
	return live, err
}

func (s *session) write(ctx context.Context, v interface{ MarshalJSON() ([]byte, error) }) error {
	b, err := v.MarshalJSON()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// subscribe (re)opens the main subscription.
func (s *session) subscribe(ctx context.Context) error {
	now := time.Now()
	since := s.l.since(now)
	dm := s.l.svc.dmFilters(now)
	s.mu.Lock()
	s.seq++
	id := "nestbot-" + strconv.Itoa(s.seq)
	s.main, s.mainLost, s.requested, s.liveSince, s.dmFilters = id, s.l.lost.Load(), now, time.Time{}, dm
	s.mu.Unlock()
	filters := append(nostr.Filters{s.l.requestFilter(since)}, dm...)
	if err := s.write(ctx, nostr.ReqEnvelope{SubscriptionID: id, Filters: filters}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	s.l.svc.log.Debug("subscription requested", "relay", s.l.url, "since", int64(since))
	return nil
}

// read handles the relay's messages until the connection ends or the relay
// closes the subscription for good.
func (s *session) read(ctx context.Context) (err error) {
	defer s.l.svc.guard.catchErr("reader", &err) // a panic ends the session; it is retried with backoff
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("connection lost: %w", err)
		}
		if typ != websocket.MessageText {
			continue
		}
		at := time.Now()
		// internal/relay's parser: it never panics on what a relay sends
		// (fuzzed), unlike go-nostr's, which slices the raw text first.
		m, err := relay.Parse(data)
		if err != nil {
			continue
		}
		switch m.Label {
		case "EVENT":
			if s.ours(m.SubID) {
				s.accept(m.Event, at)
			}
		case "EOSE":
			if err := s.eose(ctx, m.SubID); err != nil {
				return err
			}
		case "CLOSED":
			if err := s.closed(ctx, m.SubID, m.Reason); err != nil {
				return err
			}
		case "AUTH":
			s.mu.Lock()
			s.challenge = m.Challenge
			want := s.wantAuth && s.authID == ""
			s.mu.Unlock()
			if want {
				if err := s.auth(ctx); err != nil {
					return err
				}
			}
		case "OK":
			s.l.svc.log.Debug("relay OK", "relay", s.l.url, "event", relay.Excerpt(m.EventID, 64), "ok", m.OK, "reason", relay.Excerpt(m.Reason, 200))
			s.mu.Lock()
			mine := m.EventID == s.authID && s.authID != ""
			if mine {
				s.authID = ""
				s.authed = m.OK
			}
			s.mu.Unlock()
			if !mine {
				continue
			}
			if !m.OK {
				return fmt.Errorf("auth refused: %s", relay.Excerpt(m.Reason, 200))
			}
			s.l.svc.log.Info("authenticated", "relay", s.l.url)
			if err := s.subscribe(ctx); err != nil {
				return err
			}
		case "NOTICE":
			s.l.svc.log.Debug("relay NOTICE", "relay", s.l.url, "notice", relay.Excerpt(m.Reason, 200))
		}
	}
}

func (s *session) ours(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return id == s.main || (id == s.catchup && id != "")
}

func (s *session) eose(ctx context.Context, id string) error {
	s.mu.Lock()
	switch {
	case id == s.main && s.liveSince.IsZero():
		s.liveSince = time.Now()
		lost := s.mainLost
		s.mu.Unlock()
		if lost != 0 {
			s.l.lost.CompareAndSwap(lost, 0)
		}
		s.l.connected.Store(true)
		s.l.svc.metrics.Connected.WithLabelValues(s.l.url).Set(1)
		s.l.svc.log.Info("subscribed", "relay", s.l.url, "since", int64(s.l.since(time.Now())))
		return nil
	case id == s.catchup && id != "":
		s.catchup = ""
		lost := s.catchupLost
		s.mu.Unlock()
		s.l.lost.CompareAndSwap(lost, 0)
		s.l.svc.log.Info("caught up after overload", "relay", s.l.url)
		return s.write(ctx, nostr.CloseEnvelope(id))
	}
	s.mu.Unlock()
	return nil
}

// closed handles a CLOSED: after an auth-required refusal the listener
// authenticates and subscribes again; any other reason for the main
// subscription ends the session, so that it is retried with backoff.
func (s *session) closed(ctx context.Context, id, reason string) error {
	s.l.svc.log.Debug("relay CLOSED", "relay", s.l.url, "sub", relay.Excerpt(id, 64), "reason", relay.Excerpt(reason, 200))
	s.mu.Lock()
	if id == s.catchup && id != "" {
		s.catchup = "" // l.lost stays: the next catch-up tries again
		s.mu.Unlock()
		return nil
	}
	if id != s.main {
		s.mu.Unlock()
		return nil
	}
	if strings.HasPrefix(reason, "auth-required:") && !s.authed {
		ready := s.challenge != "" && s.authID == ""
		s.wantAuth = true
		s.mu.Unlock()
		if ready {
			return s.auth(ctx)
		}
		return nil // the challenge is on its way; read goes on
	}
	s.mu.Unlock()
	return fmt.Errorf("CLOSED: %s", relay.Excerpt(reason, 200))
}

// auth answers the relay's NIP-42 challenge with the bot's key.
func (s *session) auth(ctx context.Context) error {
	s.mu.Lock()
	ev := nostr.Event{
		CreatedAt: nostr.Now(), Kind: nostr.KindClientAuthentication,
		Tags: nostr.Tags{{"relay", s.l.url}, {"challenge", s.challenge}},
	}
	s.mu.Unlock()
	if err := s.l.svc.signer.Sign(&ev); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	s.mu.Lock()
	s.authID, s.wantAuth, s.requested = ev.ID, false, time.Now()
	s.mu.Unlock()
	if err := s.write(ctx, nostr.AuthEnvelope{Event: ev}); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// accept does the cheap checks in the reader and hands the event to the
// verifier without blocking; when the buffers are full the event is dropped
// and remembered for catch-up.
func (s *session) accept(ev *nostr.Event, at time.Time) {
	l := s.l
	svc := l.svc
	ch := l.normal
	if ev.Kind == svc.cfg.Nostr.RequestKind {
		if err := svc.screen(ev); err != nil {
			svc.drop(err)
			return
		}
		if svc.known.Has(ev.PubKey) {
			ch = l.prio
		}
	} else {
		s.mu.Lock()
		dm := slices.ContainsFunc(s.dmFilters, func(f nostr.Filter) bool { return f.MatchesIgnoringTimestampConstraints(ev) })
		s.mu.Unlock()
		if !dm {
			svc.metrics.Dropped.WithLabelValues("wrong_kind").Inc()
			return
		}
	}
	select {
	case ch <- inbound{ev: ev, at: at}:
		return
	default:
	}
	svc.metrics.Dropped.WithLabelValues("overflow").Inc()
	l.overflow.Add(1)
	l.overflowAt.Store(at.UnixNano())
	ts := int64(ev.CreatedAt)
	if ev.Kind != svc.cfg.Nostr.RequestKind {
		ts = at.Unix() // direct-message wraps carry random timestamps
	}
	for {
		cur := l.lost.Load()
		if (cur != 0 && cur <= ts) || l.lost.CompareAndSwap(cur, ts) {
			return
		}
	}
}

// keepalive pings the relay, saves the checkpoint, gives up on a
// subscription that never became live, and starts catch-ups.
func (s *session) keepalive(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastPing, lastCheckpoint := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Sub(lastCheckpoint) >= checkpointEvery {
				s.l.saveCheckpoint(ctx)
				lastCheckpoint = now
			}
			s.mu.Lock()
			stuck := s.liveSince.IsZero() && now.Sub(s.requested) > subscribeTimeout
			s.mu.Unlock()
			if stuck {
				s.l.svc.log.Warn("relay never confirmed the subscription", "relay", s.l.url)
				s.conn.CloseNow()
				return
			}
			if now.Sub(lastPing) >= pingEvery {
				pctx, cancel := context.WithTimeout(ctx, pingTimeout)
				err := s.conn.Ping(pctx)
				cancel()
				if err != nil && ctx.Err() == nil {
					s.l.svc.log.Warn("relay ping failed", "relay", s.l.url, "err", err)
					s.conn.CloseNow()
					return
				}
				lastPing = now
			}
			if err := s.maybeCatchUp(ctx); err != nil {
				s.conn.CloseNow()
				return
			}
		}
	}
}

// maybeCatchUp asks the relay again for what was dropped unverified, once
// the verifier has worked its backlog down.
func (s *session) maybeCatchUp(ctx context.Context) error {
	lost := s.l.lost.Load()
	if lost == 0 || len(s.l.normal) > cap(s.l.normal)/4 || len(s.l.prio) > cap(s.l.prio)/4 {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	if s.liveSince.IsZero() || s.catchup != "" {
		s.mu.Unlock()
		return nil
	}
	s.seq++
	id := "catchup-" + strconv.Itoa(s.seq)
	s.catchup, s.catchupLost = id, lost
	dm := s.dmFilters
	s.mu.Unlock()
	since := nostr.Timestamp(max(lost, now.Add(-s.l.svc.cfg.Nostr.MaxRequestAge).Unix()))
	until := nostr.Timestamp(now.Unix())
	f := s.l.requestFilter(since)
	f.Until = &until
	filters := nostr.Filters{f}
	for _, d := range dm {
		d.Until = &until
		filters = append(filters, d)
	}
	s.l.svc.log.Info("catching up after overload", "relay", s.l.url, "since", int64(since))
	return s.write(ctx, nostr.ReqEnvelope{SubscriptionID: id, Filters: filters})
}

// overflowing reports whether the relay's buffers overflowed recently: it
// sends faster than the bot verifies, and counts as overloaded.
func (l *listener) overflowing(now time.Time) bool {
	at := l.overflowAt.Load()
	return at != 0 && now.UnixNano()-at < int64(overflowMemory)
}

// overflowMemory is how long a relay counts as overloaded after its buffers
// last overflowed.
const overflowMemory = 2 * time.Second

// verify is the relay's verification stage: known hosts and admins first.
// It runs for the listener's whole life, across sessions.
func (l *listener) verify(ctx context.Context) {
	for {
		var in inbound
		known := true
		select {
		case in = <-l.prio:
		default:
			select {
			case in = <-l.prio:
			case in = <-l.normal:
				known = false
			case <-ctx.Done():
				return
			}
		}
		if in.ev.Kind != l.svc.cfg.Nostr.RequestKind {
			l.svc.intakeDM(ctx, in.ev, l.url)
			continue
		}
		if l.svc.intake(ctx, in.ev, l.url, in.at, known) {
			for {
				cur := l.newest.Load()
				if int64(in.ev.CreatedAt) <= cur || l.newest.CompareAndSwap(cur, int64(in.ev.CreatedAt)) {
					break
				}
			}
		}
	}
}

// loadCheckpoint resumes from the newest request a previous run saw here,
// so a restarted bot catches up with what was sent while it was down.
func (l *listener) loadCheckpoint(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if n, err := l.svc.store.Checkpoint(ctx, l.url); err == nil && n > 0 {
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
	if err := l.svc.store.SetCheckpoint(ctx, l.url, n, 2*l.svc.cfg.Nostr.MaxRequestAge+resubscribeSlack); err == nil {
		l.saved.Store(n)
	}
}
