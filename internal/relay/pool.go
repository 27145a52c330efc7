// Package relay is nestbot's own NIP-01 client: bounded connections to
// relays, publishing that counts only an OK as delivered, and look-ups.
// The bot's subscription listener (bot/listen.go) dials through it too.
//
// Why not go-nostr's Relay and SimplePool (v0.52), which the bot used
// before:
//   - its reader goroutine slices raw frames before it validates them
//     (extractSubID panics on `["EVENT","x`), in a goroutine of its own
//     where the caller cannot recover, so any relay could crash the bot;
//   - the pool keeps every relay it ever dialled: 300 hints made 300
//     sockets to an attacker's host;
//   - Relay.Publish returns nil when the connection ends before an OK, so
//     a relay that hangs up counted as having accepted an answer;
//   - NOTICEs go to the standard log package, outside slog, unescaped: a
//     NOTICE with a newline forged a log line of the bot's own;
//   - frames may be 32 MiB.
//
// Here a Pool holds at most one connection per relay URL; to relays named
// by others at most MaxPerHost per host and MaxConns in all (the bot's own
// relays are outside both caps, so a stranger naming paths on the host of
// one of them cannot take its place); it closes
// connections to those as soon as their last user is done and the bot's
// own after IdleTimeout, reads at most MaxMessage bytes a frame, parses
// frames with Parse (which never panics), and logs relay messages through
// slog at debug level, quoted and cut.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Signer signs NIP-42 AUTH events.
type Signer interface {
	Sign(ev *nostr.Event) error
}

// Options configure a Pool. Zero values take the defaults given.
type Options struct {
	// Trusted are the bot's own relays (normalized by nostr.NormalizeURL):
	// they may be on private addresses, stay connected while idle for
	// IdleTimeout, and count against neither cap. Every other relay is a
	// stranger's.
	Trusted []string
	// AllowPrivate lets connections to strangers' relays reach private
	// addresses too (nostr.allow_private_relays).
	AllowPrivate bool
	MaxConns     int           // connections to strangers' relays at once (default 32)
	MaxPerHost   int           // connections to strangers' relays on one host, any port or path (default 4)
	IdleTimeout  time.Duration // a trusted relay's unused connection is closed after this (default 60 s)
	MaxMessage   int64         // bytes per frame (default 1 MiB)
	DialTimeout  time.Duration // default 10 s
	WriteTimeout time.Duration // default 5 s
	Signer       Signer        // answers AUTH challenges; nil: never authenticates
	Log          *slog.Logger  // relay messages at debug level; nil: discarded
	// OnREQ, when set, is called with the relay's URL for every REQ the
	// pool sends (a subscription, a query, a REQ sent again after AUTH),
	// so that the caller can count what it asks of relays.
	OnREQ func(url string)
}

// ErrBusy is returned when the caps leave no connection for a relay before
// the caller's context ends.
var ErrBusy = errors.New("relay connection caps reached")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("relay pool closed")

// Pool is a bounded set of relay connections; see the package comment.
type Pool struct {
	opt     Options
	log     *slog.Logger
	trusted map[string]bool

	mu      sync.Mutex
	conns   map[string]*conn
	dialing map[string]bool
	perHost map[string]int
	strange int // connections (and dials) to strangers' relays
	changed chan struct{}
	closed  bool
	maxOpen int // high-water mark of open connections, for tests
	openNow int
}

// NewPool makes a pool; it dials nothing until used.
func NewPool(o Options) *Pool {
	if o.MaxConns <= 0 {
		o.MaxConns = 32
	}
	if o.MaxPerHost <= 0 {
		o.MaxPerHost = 4
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = DefaultMaxMessage
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p := &Pool{opt: o, log: log, trusted: map[string]bool{}, conns: map[string]*conn{}, dialing: map[string]bool{},
		perHost: map[string]int{}, changed: make(chan struct{})}
	for _, u := range o.Trusted {
		p.trusted[nostr.NormalizeURL(u)] = true
	}
	return p
}

// Trusted reports whether url is one of the pool's trusted relays.
func (p *Pool) Trusted(url string) bool { return p.trusted[nostr.NormalizeURL(url)] }

// Open is the number of connections open now; MaxOpen the most at once.
func (p *Pool) Open() (now, most int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.openNow, p.maxOpen
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return strings.ToLower(u.Hostname())
}

// broadcast wakes everyone waiting for a change of the caps. p.mu is held.
func (p *Pool) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// acquire returns a live connection to url with a reference taken, dialling
// one when needed and the caps allow; it waits for room until ctx ends.
func (p *Pool) acquire(ctx context.Context, raw string) (*conn, error) {
	u := nostr.NormalizeURL(raw)
	if u == "" {
		return nil, fmt.Errorf("relay %s: not a relay URL", Excerpt(raw, 100))
	}
	host := hostOf(u)
	stranger := !p.trusted[u]
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if c := p.conns[u]; c != nil {
			c.refs++
			if c.idle != nil {
				c.idle.Stop()
				c.idle = nil
			}
			p.mu.Unlock()
			return c, nil
		}
		if !p.dialing[u] && (!stranger || (p.perHost[host] < p.opt.MaxPerHost && p.strange < p.opt.MaxConns)) {
			break
		}
		if !p.dialing[u] && p.evictIdle(host, stranger) {
			continue
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("relay %s: %w", u, ErrBusy)
		}
		p.mu.Lock()
	}
	p.dialing[u] = true
	if stranger {
		p.perHost[host]++
		p.strange++
	}
	p.mu.Unlock()

	ws, err := Dial(ctx, u, DialOptions{AllowPrivate: !stranger || p.opt.AllowPrivate, MaxMessage: p.opt.MaxMessage, Timeout: p.opt.DialTimeout})

	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.dialing, u)
	p.broadcast()
	if err == nil && p.closed {
		ws.CloseNow()
		err = ErrClosed
	}
	if err != nil {
		p.uncount(host, stranger)
		return nil, err
	}
	c := newConn(p, u, host, stranger, ws)
	c.refs = 1
	p.conns[u] = c
	p.openNow++
	p.maxOpen = max(p.maxOpen, p.openNow)
	go c.read()
	return c, nil
}

func (p *Pool) uncount(host string, stranger bool) {
	if !stranger {
		return
	}
	p.perHost[host]--
	if p.perHost[host] <= 0 {
		delete(p.perHost, host)
	}
	p.strange--
}

// evictIdle closes one unused stranger's connection that frees the cap in
// the way: on host when that host is full, else any. p.mu is held.
func (p *Pool) evictIdle(host string, stranger bool) bool {
	if !stranger {
		return false
	}
	hostFull := p.perHost[host] >= p.opt.MaxPerHost
	for _, c := range p.conns {
		if c.refs != 0 || !c.stranger || (hostFull && c.host != host) {
			continue
		}
		p.forget(c)
		c.ws.CloseNow()
		return true
	}
	return false
}

// forget takes c out of the pool and the caps. p.mu is held.
func (p *Pool) forget(c *conn) {
	if p.conns[c.url] != c {
		return
	}
	delete(p.conns, c.url)
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
	p.uncount(c.host, c.stranger)
	p.openNow--
	p.broadcast()
}

// gone is called by c's reader when the connection ended.
func (p *Pool) gone(c *conn) {
	p.mu.Lock()
	p.forget(c)
	p.mu.Unlock()
}

// release gives back a reference taken by acquire. A stranger's relay is
// closed at once when unused; a trusted one after IdleTimeout.
func (p *Pool) release(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.refs--
	if c.refs > 0 || p.conns[c.url] != c {
		return
	}
	if c.stranger {
		p.forget(c)
		c.ws.CloseNow()
		return
	}
	c.idle = time.AfterFunc(p.opt.IdleTimeout, func() {
		p.mu.Lock()
		idle := c.refs == 0 && p.conns[c.url] == c
		if idle {
			p.forget(c)
		}
		p.mu.Unlock()
		if idle {
			c.ws.CloseNow()
		}
	})
}

// Close closes every connection; later calls fail with ErrClosed.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	var all []*conn
	for _, c := range p.conns {
		all = append(all, c)
	}
	p.broadcast()
	p.mu.Unlock()
	for _, c := range all {
		c.ws.CloseNow()
	}
}

// Publish sends ev to one relay and waits, until ctx ends, for its OK: see
// Result for what each outcome means. An auth-required: refusal is
// answered by authenticating (NIP-42) and sending once more.
func (p *Pool) Publish(ctx context.Context, url string, ev *nostr.Event) Result {
	f, err := NewEventFrame(ev)
	if err != nil {
		return Result{URL: nostr.NormalizeURL(url), Class: Failed, Reason: err.Error()}
	}
	return p.PublishFrame(ctx, url, f)
}

// PublishFrame is Publish of an event already encoded (NewEventFrame):
// an event for several relays is encoded once.
func (p *Pool) PublishFrame(ctx context.Context, url string, f *EventFrame) Result {
	c, err := p.acquire(ctx, url)
	if err != nil {
		return Result{URL: nostr.NormalizeURL(url), Class: Unreachable, Reason: err.Error()}
	}
	defer p.release(c)
	return c.publish(ctx, f)
}

// Subscribe opens a subscription on one relay; the caller must Close it.
// Events come unverified: see Verify.
func (p *Pool) Subscribe(ctx context.Context, url string, filters nostr.Filters) (*Sub, error) {
	c, err := p.acquire(ctx, url)
	if err != nil {
		return nil, err
	}
	s, err := c.subscribe(ctx, filters)
	if err != nil {
		p.release(c)
		return nil, err
	}
	return s, nil
}

// Verify reports whether ev matches one of filters and carries a valid id
// and BIP-340 signature (NIP-01).
func Verify(ev *nostr.Event, filters nostr.Filters) bool {
	if ev == nil || !filters.Match(ev) || !ev.CheckID() {
		return false
	}
	ok, err := ev.CheckSignature()
	return err == nil && ok
}

// Query returns the stored events of one relay matching filters (REQ until
// EOSE), verified, at most limit of them. It returns what it has when the
// relay closes the subscription or ctx ends, with the reason as error.
func (p *Pool) Query(ctx context.Context, url string, filters nostr.Filters, limit int) ([]*nostr.Event, error) {
	s, err := p.Subscribe(ctx, url, filters)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []*nostr.Event
	take := func(ev *nostr.Event) {
		if len(out) < limit && Verify(ev, filters) {
			out = append(out, ev)
		}
	}
	for {
		select {
		case ev := <-s.Events:
			take(ev)
		case <-s.EOSE():
			for {
				select {
				case ev := <-s.Events:
					take(ev)
				default:
					return out, nil
				}
			}
		case <-s.Done():
			return out, fmt.Errorf("relay %s closed the query: %s", s.c.url, Excerpt(s.Reason(), 200))
		case <-ctx.Done():
			return out, fmt.Errorf("relay %s: no EOSE: %w", s.c.url, ctx.Err())
		}
		if len(out) >= limit {
			return out, nil
		}
	}
}
