// Package flood is a hostile relay and the junk it pushes at a bot: the
// fault suite (e2e, build tag faults) and nestbench both use it to measure
// how the bot holds up when a relay forwards anything at any rate.
package flood

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// Relay is a hostile or broken relay: it speaks just enough NIP-01 (REQ,
// EVENT, EOSE, CLOSE, AUTH, OK) to push arbitrary events, valid or not, into
// a subscriber, and it checks nothing. Stored events are never served back:
// look-ups get an empty EOSE.
type Relay struct {
	URL string

	// OnBotREQ runs, in the connection's reader, for every REQ that asks
	// for restart requests (kind 4312); by default it sends EOSE. Set it
	// before the bot connects.
	OnBotREQ func(c *Conn, subID string, filters nostr.Filters)

	BotREQs   atomic.Int64 // REQs for kind 4312 seen
	REQs      atomic.Int64 // REQs of any kind seen, Silent or not
	Published atomic.Int64 // EVENTs clients sent (all answered OK)

	// OnConnect runs for every new connection before anything is read:
	// a hostile relay's greeting (MalformedFrames, HugeNotice,
	// ForgedNotice). Set it before clients connect.
	OnConnect func(c *Conn)
	// Silent makes the relay accept connections and never answer (no EOSE,
	// no OK): a relay that holds its clients.
	Silent atomic.Bool

	// Connections: accepted in all, open now, most open at once.
	Accepted, OpenNow, MostOpen atomic.Int64

	srv    *httptest.Server
	mu     sync.Mutex
	conns  []*Conn
	target atomic.Pointer[target]
}

type target struct {
	c   *Conn
	sub string
}

// Conn is one client connection to the relay.
type Conn struct {
	ws  *websocket.Conn
	ctx context.Context
}

// Send writes one raw message.
func (c *Conn) Send(b []byte) error {
	return c.ws.Write(c.ctx, websocket.MessageText, b)
}

// SendJSON writes one envelope.
func (c *Conn) SendJSON(v interface{ MarshalJSON() ([]byte, error) }) error {
	b, err := v.MarshalJSON()
	if err != nil {
		return err
	}
	return c.Send(b)
}

// SendEvent pushes ev to subscription subID, whatever ev contains.
func (c *Conn) SendEvent(subID string, ev nostr.Event) error {
	id := subID
	return c.SendJSON(nostr.EventEnvelope{SubscriptionID: &id, Event: ev})
}

// StartRelay listens on a free loopback port until Close.
func StartRelay() *Relay {
	r := &Relay{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = "ws" + strings.TrimPrefix(r.srv.URL, "http")
	return r
}

// StartRelayAt listens on addr ("127.0.0.7:0": any loopback address of
// 127.0.0.0/8 is a host of its own to the bot's per-host cap) until Close.
func StartRelayAt(addr string) (*Relay, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("flood relay: %w", err)
	}
	r := &Relay{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Listener.Close()
	r.srv.Listener = ln
	r.srv.Start()
	r.URL = "ws" + strings.TrimPrefix(r.srv.URL, "http")
	return r, nil
}

// Close drops every connection and stops listening.
func (r *Relay) Close() {
	r.mu.Lock()
	for _, c := range r.conns {
		c.ws.CloseNow()
	}
	r.mu.Unlock()
	r.srv.CloseClientConnections()
	r.srv.Close()
}

// TargetBot makes the relay answer the bot's request subscriptions with
// EOSE and remember the newest one ("nestbot-…"), for Flood.
func (r *Relay) TargetBot() {
	r.OnBotREQ = func(c *Conn, sub string, _ nostr.Filters) {
		c.SendJSON(nostr.EOSEEnvelope(sub))
		if strings.HasPrefix(sub, "nestbot-") {
			r.target.Store(&target{c, sub})
		}
	}
}

// Targeted reports whether the bot's subscription is known (see TargetBot).
func (r *Relay) Targeted() bool { return r.target.Load() != nil }

// Flood pushes junk into the bot's subscription at rate events a second,
// in 10 ms bursts, from the first event on and round again when it runs
// out, until ctx ends or, with once, the list is sent. It waits for the
// subscription (TargetBot) and returns how many events it sent and for how
// long.
func (r *Relay) Flood(ctx context.Context, junk []Event, rate int, once bool) (sent int64, took time.Duration) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	per := max(rate/100, 1)
	start := time.Now()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return sent, time.Since(start)
		case <-tick.C:
		}
		tg := r.target.Load()
		if tg == nil {
			start = time.Now()
			continue
		}
		for range per {
			if next == len(junk) {
				if once {
					return sent, time.Since(start)
				}
				next = 0
			}
			msg := make([]byte, 0, len(junk[next].JSON)+40)
			msg = append(msg, `["EVENT",`...)
			msg = strconv.AppendQuote(msg, tg.sub)
			msg = append(msg, ',')
			msg = append(msg, junk[next].JSON...)
			msg = append(msg, ']')
			if err := tg.c.Send(msg); err != nil {
				break // the bot hung up; it will resubscribe
			}
			next++
			sent++
		}
	}
}

func (r *Relay) serve(w http.ResponseWriter, req *http.Request) {
	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	c := &Conn{ws: ws, ctx: ctx}
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
	defer ws.CloseNow()
	r.Accepted.Add(1)
	open := r.OpenNow.Add(1)
	defer r.OpenNow.Add(-1)
	for {
		most := r.MostOpen.Load()
		if open <= most || r.MostOpen.CompareAndSwap(most, open) {
			break
		}
	}
	if r.OnConnect != nil {
		r.OnConnect(c)
	}
	parser := nostr.NewMessageParser()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		env, err := parser.ParseMessage(string(data))
		if err != nil {
			continue
		}
		if _, ok := env.(*nostr.ReqEnvelope); ok {
			r.REQs.Add(1)
		}
		if r.Silent.Load() {
			continue
		}
		switch env := env.(type) {
		case *nostr.ReqEnvelope:
			if slices.ContainsFunc(env.Filters, func(fl nostr.Filter) bool { return slices.Contains(fl.Kinds, 4312) }) {
				r.BotREQs.Add(1)
				if r.OnBotREQ != nil {
					r.OnBotREQ(c, env.SubscriptionID, env.Filters)
					continue
				}
			}
			c.SendJSON(nostr.EOSEEnvelope(env.SubscriptionID))
		case *nostr.EventEnvelope:
			r.Published.Add(1)
			c.SendJSON(nostr.OKEnvelope{EventID: env.Event.ID, OK: true})
		case *nostr.AuthEnvelope:
			c.SendJSON(nostr.OKEnvelope{EventID: env.Event.ID, OK: true})
		}
	}
}

// MalformedFrames are relay messages that are not valid NIP-01: cut
// short, wrong types, unknown labels. `["EVENT","x` crashed go-nostr's
// Relay reader (extractSubID slices out of range).
var MalformedFrames = []string{
	`["EVENT","x`, `["EVENT"`, `["OK"`, `["OK","x"]`, `["EOSE"]`, `["CLOSED"`, `["AUTH"]`, `["NOTICE"]`,
	`["EVENT","x",{"id":1}]`, `["EVENT",{},[]]`, `[]`, `{}`, `null`, `["EVENT","nestbot-1",{"kind":1e999}]`,
	"\xff\xfe", `["WHAT","x"]`,
}

// HugeNotice is a NOTICE of about n bytes.
func HugeNotice(n int) []byte {
	b := make([]byte, 0, n+16)
	b = append(b, `["NOTICE","`...)
	for range n {
		b = append(b, 'A')
	}
	return append(b, `"]`...)
}

// ForgedNotice is a NOTICE whose text starts a new line that looks like one
// of the bot's own log lines (line, e.g. "time=… level=INFO msg=request").
func ForgedNotice(line string) []byte {
	b, _ := nostr.NoticeEnvelope("relay says hi\n" + line).MarshalJSON()
	return b
}
