package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// conn is one WebSocket to one relay, shared by the pool's callers: one
// reader goroutine dispatches OKs to the publishes waiting for them and
// events to their subscriptions. It ends for good when the socket does;
// the pool then dials a new one when asked.
type conn struct {
	url      string
	host     string
	stranger bool
	pool     *Pool
	ws       *websocket.Conn

	mu        sync.Mutex
	refs      int
	idle      *time.Timer
	oks       map[string][]chan Message // event id → publishes waiting for its OK
	subs      map[string]*Sub
	seq       int
	challenge string
	authed    chan struct{} // closed once an AUTH of ours got OK true
	authing   *authTry      // the AUTH in flight, nil when none
	gotChal   chan struct{} // closed when the first challenge arrives

	done chan struct{} // closed when the reader ends
	err  error         // why, once done is closed

	// closing are subscriptions closed on our side whose CLOSE waits for
	// the connection's next frame (writeRaw), or closeTimer (closeDelay)
	// at the latest; c.mu guards both.
	closing    []string
	closeTimer *time.Timer
}

// closeDelay bounds how long a finished subscription's CLOSE waits to go
// out right before the connection's next frame. A relay handles two
// frames that arrive together in one wake-up, and a wake-up is most of
// what a small message costs it: against khatru, a relay-list look-up's
// CLOSE sent with the answer's EVENT instead of on its own saved 0.3–0.9
// ms of the relay's CPU per look-up (docs/performance.md, "Relays"). A
// restart's look-up ends a millisecond or two before its answer is sent
// to the same relays.
var closeDelay = 50 * time.Millisecond // a var for tests

func newConn(p *Pool, url, host string, stranger bool, ws *websocket.Conn) *conn {
	return &conn{
		url: url, host: host, stranger: stranger, pool: p, ws: ws,
		oks: make(map[string][]chan Message), subs: make(map[string]*Sub),
		authed: make(chan struct{}), gotChal: make(chan struct{}), done: make(chan struct{}),
	}
}

// read is the connection's only reader. Nothing it calls can panic on what
// the relay sends (Parse never does), and it recovers anyway: a bug here
// must cost one connection, not the process.
func (c *conn) read() {
	var err error
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("relay reader panic: %v", r)
			c.pool.log.Error("relay reader panic", "relay", c.url, "panic", fmt.Sprint(r))
		}
		c.ws.CloseNow()
		c.mu.Lock()
		c.err = err
		subs := c.subs
		c.subs = map[string]*Sub{}
		c.mu.Unlock()
		close(c.done)
		for _, s := range subs {
			s.end("connection closed")
		}
		c.pool.gone(c)
	}()
	ctx := context.Background()
	for {
		typ, data, rerr := c.ws.Read(ctx)
		if rerr != nil {
			err = fmt.Errorf("connection lost: %w", rerr)
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		m, perr := Parse(data)
		if perr != nil {
			c.pool.log.Debug("relay sent a malformed message", "relay", c.url, "err", Excerpt(perr.Error(), 200), "message", Excerpt(string(data), 200))
			continue
		}
		c.dispatch(m)
	}
}

func (c *conn) dispatch(m Message) {
	switch m.Label {
	case "EVENT":
		c.mu.Lock()
		s := c.subs[m.SubID]
		c.mu.Unlock()
		if s != nil {
			s.deliver(m.Event)
		}
	case "EOSE":
		c.mu.Lock()
		s := c.subs[m.SubID]
		c.mu.Unlock()
		if s != nil {
			s.eose()
		}
	case "CLOSED":
		c.pool.log.Debug("relay CLOSED", "relay", c.url, "sub", Excerpt(m.SubID, 64), "reason", Excerpt(m.Reason, 200))
		c.mu.Lock()
		s := c.subs[m.SubID]
		retry := s != nil && !s.authTried && c.pool.opt.Signer != nil && strings.HasPrefix(m.Reason, "auth-required:")
		if s != nil {
			s.authTried = true
		}
		if !retry {
			delete(c.subs, m.SubID)
		}
		c.mu.Unlock()
		if retry {
			// NIP-42: authenticate, then ask once more, off the reader.
			go c.reauth(s, m.Reason)
		} else if s != nil {
			s.end(m.Reason)
		}
	case "OK":
		c.pool.log.Debug("relay OK", "relay", c.url, "event", Excerpt(m.EventID, 64), "ok", m.OK, "reason", Excerpt(m.Reason, 200))
		c.mu.Lock()
		waiters := c.oks[m.EventID]
		delete(c.oks, m.EventID)
		c.mu.Unlock()
		for _, w := range waiters {
			w <- m // buffered 1, registered once
		}
	case "NOTICE":
		c.pool.log.Debug("relay NOTICE", "relay", c.url, "notice", Excerpt(m.Reason, 200))
	case "AUTH":
		c.mu.Lock()
		first := c.challenge == ""
		c.challenge = m.Challenge
		c.mu.Unlock()
		if first {
			close(c.gotChal)
		}
	}
}

// reauth answers a subscription's auth-required CLOSED: AUTH, then the
// same REQ again; when that fails the subscription ends with reason.
func (c *conn) reauth(s *Sub, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.pool.opt.WriteTimeout)
	defer cancel()
	err := c.auth(ctx)
	if err == nil {
		c.countREQ()
		var b []byte
		if b, err = reqFrame(s.id, s.filters); err == nil {
			err = c.writeRaw(ctx, b)
		}
	}
	if err != nil {
		c.mu.Lock()
		delete(c.subs, s.id)
		c.mu.Unlock()
		s.end(reason)
	}
}

func (c *conn) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeRaw(ctx, b)
}

// writeRaw sends one encoded message, after the CLOSEs waiting for it
// (see closeDelay).
func (c *conn) writeRaw(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, c.pool.opt.WriteTimeout)
	defer cancel()
	for _, id := range c.takeCloses() {
		if err := c.ws.Write(wctx, websocket.MessageText, closeFrame(id)); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := c.ws.Write(wctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// publish sends ev once and waits for its OK, the end of the connection
// or ctx. It authenticates (NIP-42) and sends once more when the relay
// answers auth-required: and the pool has a signer.
func (c *conn) publish(ctx context.Context, f *EventFrame) Result {
	res := c.publishOnce(ctx, f)
	if res.Class != AuthRequired || c.pool.opt.Signer == nil {
		return res
	}
	if err := c.auth(ctx); err != nil {
		return Result{URL: c.url, Class: AuthRequired, Reason: res.Reason + " (" + err.Error() + ")", Prefix: res.Prefix}
	}
	return c.publishOnce(ctx, f)
}

func (c *conn) publishOnce(ctx context.Context, f *EventFrame) Result {
	ev := f.Event
	ch := c.waitOK(ev.ID)
	defer c.unwaitOK(ev.ID, ch)
	if err := c.writeRaw(ctx, f.data); err != nil {
		return Result{URL: c.url, Class: Dropped, Reason: err.Error()}
	}
	select {
	case m := <-ch:
		class, prefix := classify(m.OK, m.Reason)
		return Result{URL: c.url, Class: class, Reason: m.Reason, Prefix: prefix}
	case <-c.done:
		return Result{URL: c.url, Class: Dropped, Reason: "connection closed before an OK"}
	case <-ctx.Done():
		return Result{URL: c.url, Class: NoOK, Reason: "no OK in time"}
	}
}

// auth answers the relay's NIP-42 challenge, waiting for the challenge if
// it has not come yet, and returns once the relay said OK to it. Callers
// that come while an AUTH is out wait for that one instead of sending
// their own, and nothing of an AUTH stays on the connection once it is
// answered, refused or given up on: a relay that asks for AUTH and never
// confirms it costs each caller one bounded wait, not a waiter per attempt
// for the connection's life.
func (c *conn) auth(ctx context.Context) error {
	select {
	case <-c.gotChal:
	case <-c.done:
		return errors.New("connection closed before an AUTH challenge")
	case <-ctx.Done():
		return errors.New("no AUTH challenge")
	}
	c.mu.Lock()
	select {
	case <-c.authed:
		c.mu.Unlock()
		return nil
	default:
	}
	if t := c.authing; t != nil {
		c.mu.Unlock()
		select {
		case <-t.done:
			return t.err
		case <-c.done:
			return errors.New("connection closed during AUTH")
		case <-ctx.Done():
			return errors.New("no OK to AUTH")
		}
	}
	t := &authTry{done: make(chan struct{})}
	c.authing = t
	challenge := c.challenge
	c.mu.Unlock()
	t.err = c.authOnce(ctx, challenge)
	c.mu.Lock()
	c.authing = nil
	c.mu.Unlock()
	close(t.done)
	return t.err
}

// authTry is an AUTH in flight; err is set before done is closed.
type authTry struct {
	done chan struct{}
	err  error
}

// authOnce sends one AUTH for challenge and waits for its OK.
func (c *conn) authOnce(ctx context.Context, challenge string) error {
	ev := nostr.Event{
		CreatedAt: nostr.Now(), Kind: nostr.KindClientAuthentication,
		Tags: nostr.Tags{{"relay", c.url}, {"challenge", challenge}},
	}
	if err := c.pool.opt.Signer.Sign(&ev); err != nil {
		return fmt.Errorf("sign AUTH: %w", err)
	}
	ch := c.waitOK(ev.ID)
	defer c.unwaitOK(ev.ID, ch)
	if err := c.write(ctx, []any{"AUTH", ev}); err != nil {
		return err
	}
	select {
	case m := <-ch:
		if !m.OK {
			return fmt.Errorf("AUTH refused: %s", Excerpt(m.Reason, 200))
		}
		c.mu.Lock()
		select {
		case <-c.authed:
		default:
			close(c.authed)
		}
		c.mu.Unlock()
		return nil
	case <-c.done:
		return errors.New("connection closed during AUTH")
	case <-ctx.Done():
		return errors.New("no OK to AUTH")
	}
}

// waitOK registers a waiter for the OK to event id (buffered 1: the
// reader never blocks on it); unwaitOK takes it back.
func (c *conn) waitOK(id string) chan Message {
	ch := make(chan Message, 1)
	c.mu.Lock()
	c.oks[id] = append(c.oks[id], ch)
	c.mu.Unlock()
	return ch
}

func (c *conn) unwaitOK(id string, ch chan Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.oks[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.oks, id)
	} else {
		c.oks[id] = ws
	}
}

// Sub is one subscription (REQ) on one relay. Events arrive on Events,
// unverified (Pool.Query verifies), with a bounded buffer: a relay that
// sends faster than the caller reads loses events, not memory.
type Sub struct {
	Events <-chan *nostr.Event

	c         *conn
	id        string
	events    chan *nostr.Event
	eoseCh    chan struct{}
	endCh     chan struct{}
	filters   nostr.Filters
	authTried bool // an auth-required CLOSED was answered once; c.mu guards it
	closeOnce sync.Once
	mu        sync.Mutex
	eosed     bool
	ended     bool
	reason    string
	dropped   int
}

// subBuffer bounds the events waiting in one subscription.
const subBuffer = 256

func (c *conn) subscribe(ctx context.Context, filters nostr.Filters) (*Sub, error) {
	c.mu.Lock()
	c.seq++
	id := "q" + strconv.Itoa(c.seq)
	s := &Sub{c: c, id: id, filters: filters, events: make(chan *nostr.Event, subBuffer), eoseCh: make(chan struct{}), endCh: make(chan struct{})}
	s.Events = s.events
	c.subs[id] = s
	c.mu.Unlock()
	msg, err := reqFrame(id, filters)
	if err == nil {
		c.countREQ()
		err = c.writeRaw(ctx, msg)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// countREQ reports one REQ to Options.OnREQ.
func (c *conn) countREQ() {
	if f := c.pool.opt.OnREQ; f != nil {
		f(c.url)
	}
}

// reqFrame encodes ["REQ", id, filters...] (NIP-01) with go-nostr's
// generated filter encoder, as EventFrame does events: encoding/json
// would re-scan its output.
func reqFrame(id string, filters nostr.Filters) ([]byte, error) {
	b := append([]byte(`["REQ",`), jsonString(id)...)
	for _, f := range filters {
		fb, err := f.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode filter: %w", err)
		}
		b = append(append(b, ','), fb...)
	}
	return append(b, ']'), nil
}

// closeFrame encodes ["CLOSE", id] (NIP-01).
func closeFrame(id string) []byte {
	return append(append([]byte(`["CLOSE",`), jsonString(id)...), ']')
}

// jsonString is s as a JSON string.
func jsonString(s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

func (s *Sub) deliver(ev *nostr.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	select {
	case s.events <- ev:
	default:
		s.dropped++
	}
}

func (s *Sub) eose() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.eosed {
		s.eosed = true
		close(s.eoseCh)
	}
}

func (s *Sub) end(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.ended, s.reason = true, reason
		close(s.endCh)
	}
}

// EOSE is closed when the relay has sent all stored events.
func (s *Sub) EOSE() <-chan struct{} { return s.eoseCh }

// Done is closed when the relay closed the subscription (CLOSED) or the
// connection ended; Reason then says why.
func (s *Sub) Done() <-chan struct{} { return s.endCh }

// Reason is the relay's CLOSED message, or why the connection ended.
func (s *Sub) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// Close ends the subscription and gives the connection back to the pool.
// Its events stop at once; the CLOSE (NIP-01) goes out with the
// connection's next frame, or closeDelay later at the latest (see
// closeDelay), unless the connection ends first. It is safe to call more
// than once.
func (s *Sub) Close() {
	s.closeOnce.Do(func() {
		c := s.c
		c.mu.Lock()
		_, live := c.subs[s.id]
		delete(c.subs, s.id)
		if live {
			c.closing = append(c.closing, s.id)
			if c.closeTimer == nil {
				c.closeTimer = time.AfterFunc(closeDelay, c.flushCloses)
			}
		}
		c.mu.Unlock()
		s.end("closed by client")
		c.pool.release(c)
	})
}

// takeCloses returns the CLOSEs waiting to be sent, and stops their timer.
func (c *conn) takeCloses() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := c.closing
	c.closing = nil
	if c.closeTimer != nil {
		c.closeTimer.Stop()
		c.closeTimer = nil
	}
	return ids
}

// flushCloses sends the CLOSEs no frame took along within closeDelay.
func (c *conn) flushCloses() {
	ids := c.takeCloses()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.pool.opt.WriteTimeout)
	defer cancel()
	for _, id := range ids {
		if c.ws.Write(ctx, websocket.MessageText, closeFrame(id)) != nil {
			return // the connection is gone, and the relay's subscriptions with it
		}
	}
}
