// Package relaytest is a programmable Nostr relay for tests of publishing:
// it stores events and serves subscriptions (NIP-01) like a real relay,
// and answers each published event as a policy says (OK, a refusal, no
// answer, a hang-up, a late OK), with NIP-42 AUTH for writes when asked.
// It records every EVENT it receives, so tests can count copies and their
// spacing. The real relay of the stack (devstack/relay, khatru) stays for
// the normal paths; this one is for the policies a real relay does not
// let a test choose.
package relaytest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// Reply is how the relay answers one published event.
type Reply struct {
	OK     bool
	Reason string        // the OK message ("rate-limited: slow down", …)
	HangUp bool          // close the connection instead of answering
	Silent bool          // never answer
	Delay  time.Duration // answer this late (the test's own choice; the relay does not sleep otherwise)
}

// Accept is the answer of a relay that takes the event.
var Accept = Reply{OK: true}

// Arrival is one EVENT received.
type Arrival struct {
	ID string
	At time.Time
	Ev *nostr.Event
}

// Relay is a programmable relay on a loopback port.
type Relay struct {
	URL string

	mu        sync.Mutex
	policy    func(ev *nostr.Event, nth int) Reply
	authWrite bool
	authRead  bool
	events    []*nostr.Event
	arrivals  []Arrival
	seen      map[string]int
	subs      map[*client]map[string]nostr.Filters
	srv       *httptest.Server
	open, max int
}

type client struct {
	ws        *websocket.Conn
	ctx       context.Context
	wmu       sync.Mutex
	challenge string
	authed    bool
}

func (c *client) send(v any) {
	b, _ := json.Marshal(v)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.Write(c.ctx, websocket.MessageText, b)
}

// Start runs a relay until the test ends (t.Cleanup) or Close.
func Start(t interface{ Cleanup(func()) }) *Relay {
	r := &Relay{seen: map[string]int{}, subs: map[*client]map[string]nostr.Filters{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = "ws" + strings.TrimPrefix(r.srv.URL, "http")
	t.Cleanup(r.Close)
	return r
}

// Close stops the relay and drops every connection.
func (r *Relay) Close() {
	r.srv.CloseClientConnections()
	r.srv.Close()
}

// SetPolicy decides the answer to each EVENT for which match is true; nth
// counts the copies of that event received so far, this one included.
// Other events are stored and accepted. nil restores that for all.
func (r *Relay) SetPolicy(match func(ev *nostr.Event) bool, policy func(ev *nostr.Event, nth int) Reply) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if policy == nil {
		r.policy = nil
		return
	}
	r.policy = func(ev *nostr.Event, nth int) Reply {
		if match(ev) {
			return policy(ev, nth)
		}
		return Accept
	}
}

// RequireAuthForWrites makes the relay send a NIP-42 challenge on connect
// and refuse EVENTs with "auth-required:" until the connection has
// authenticated.
func (r *Relay) RequireAuthForWrites() {
	r.mu.Lock()
	r.authWrite = true
	r.mu.Unlock()
}

// RequireAuthForReads makes the relay send a NIP-42 challenge on connect
// and close REQs with "auth-required:" until the connection authenticated.
func (r *Relay) RequireAuthForReads() {
	r.mu.Lock()
	r.authRead = true
	r.mu.Unlock()
}

// Arrivals lists the EVENTs received with id, in order.
func (r *Relay) Arrivals(id string) []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Arrival
	for _, a := range r.arrivals {
		if a.ID == id {
			out = append(out, a)
		}
	}
	return out
}

// ArrivalsOf lists the EVENTs received that match f, in order.
func (r *Relay) ArrivalsOf(f nostr.Filter) []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Arrival
	for _, a := range r.arrivals {
		if f.Matches(a.Ev) {
			out = append(out, a)
		}
	}
	return out
}

// Stored returns the stored events matching f.
func (r *Relay) Stored(f nostr.Filter) []*nostr.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*nostr.Event
	for _, ev := range r.events {
		if f.Matches(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// Conns is the number of open connections now and the most at once.
func (r *Relay) Conns() (now, most int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open, r.max
}

func (r *Relay) serve(w http.ResponseWriter, req *http.Request) {
	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	defer ws.CloseNow()
	c := &client{ws: ws, ctx: req.Context(), challenge: nostr.GeneratePrivateKey()[:16]}
	r.mu.Lock()
	r.open++
	r.max = max(r.max, r.open)
	r.subs[c] = map[string]nostr.Filters{}
	authWrite, authRead := r.authWrite, r.authRead
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.open--
		delete(r.subs, c)
		r.mu.Unlock()
	}()
	if authWrite || authRead {
		c.send([]any{"AUTH", c.challenge})
	}
	for {
		_, data, err := ws.Read(req.Context())
		if err != nil {
			return
		}
		var parts []json.RawMessage
		if json.Unmarshal(data, &parts) != nil || len(parts) < 2 {
			continue
		}
		var label string
		_ = json.Unmarshal(parts[0], &label)
		switch label {
		case "REQ":
			var id string
			_ = json.Unmarshal(parts[1], &id)
			if authRead && !c.authed {
				c.send([]any{"CLOSED", id, "auth-required: reads need NIP-42"})
				continue
			}
			var fs nostr.Filters
			for _, p := range parts[2:] {
				var f nostr.Filter
				if json.Unmarshal(p, &f) == nil {
					fs = append(fs, f)
				}
			}
			r.mu.Lock()
			r.subs[c][id] = fs
			var old []*nostr.Event
			for _, ev := range r.events {
				if fs.Match(ev) {
					old = append(old, ev)
				}
			}
			r.mu.Unlock()
			for _, ev := range old {
				c.send([]any{"EVENT", id, ev})
			}
			c.send([]any{"EOSE", id})
		case "CLOSE":
			var id string
			_ = json.Unmarshal(parts[1], &id)
			r.mu.Lock()
			delete(r.subs[c], id)
			r.mu.Unlock()
		case "AUTH":
			var ev nostr.Event
			if json.Unmarshal(parts[1], &ev) != nil {
				continue
			}
			ok, _ := ev.CheckSignature()
			tag := ev.Tags.Find("challenge")
			if ok && ev.Kind == nostr.KindClientAuthentication && len(tag) >= 2 && tag[1] == c.challenge {
				c.authed = true
				c.send([]any{"OK", ev.ID, true, ""})
			} else {
				c.send([]any{"OK", ev.ID, false, "invalid: bad auth"})
			}
		case "EVENT":
			var ev nostr.Event
			if json.Unmarshal(parts[1], &ev) != nil {
				continue
			}
			if ok, _ := ev.CheckSignature(); !ok || !ev.CheckID() {
				c.send([]any{"OK", ev.ID, false, "invalid: bad signature"})
				continue
			}
			r.mu.Lock()
			r.arrivals = append(r.arrivals, Arrival{ID: ev.ID, At: time.Now(), Ev: &ev})
			r.seen[ev.ID]++
			nth := r.seen[ev.ID]
			policy := r.policy
			r.mu.Unlock()
			if authWrite && !c.authed {
				c.send([]any{"OK", ev.ID, false, "auth-required: writes need NIP-42"})
				continue
			}
			reply := Accept
			if policy != nil {
				reply = policy(&ev, nth)
			}
			switch {
			case reply.HangUp:
				return
			case reply.Silent:
				continue
			}
			if reply.OK {
				r.store(&ev)
			}
			answer := []any{"OK", ev.ID, reply.OK, reply.Reason}
			if reply.Delay > 0 {
				go func() {
					time.Sleep(reply.Delay)
					c.send(answer)
				}()
				continue
			}
			c.send(answer)
		}
	}
}

// store keeps ev (replacing older replaceable ones, roughly) and sends it
// to live subscriptions.
func (r *Relay) store(ev *nostr.Event) {
	r.mu.Lock()
	for _, have := range r.events {
		if have.ID == ev.ID {
			r.mu.Unlock()
			return
		}
	}
	r.events = append(r.events, ev)
	type target struct {
		c  *client
		id string
	}
	var to []target
	for c, subs := range r.subs {
		for id, fs := range subs {
			if fs.Match(ev) {
				to = append(to, target{c, id})
			}
		}
	}
	r.mu.Unlock()
	for _, t := range to {
		t.c.send([]any{"EVENT", t.id, ev})
	}
}
