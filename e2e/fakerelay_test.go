//go:build faults

package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// fakeRelay is a hostile or broken relay for tests: it speaks just enough
// NIP-01 (REQ, EVENT, EOSE, CLOSE, CLOSED, OK) to push arbitrary events,
// valid or not, into a subscriber, and it checks nothing. Stored events are
// never served back: lookups get an empty EOSE.
type fakeRelay struct {
	t   *testing.T
	srv *httptest.Server
	URL string

	// onBotREQ runs, in the connection's reader, for every REQ that asks for
	// requests (kind 4312) addressed to someone; by default it sends EOSE.
	onBotREQ func(c *fakeConn, subID string, filters nostr.Filters)

	botREQs   atomic.Int64
	published atomic.Int64 // EVENTs clients sent us
	mu        sync.Mutex
	conns     []*fakeConn
}

type fakeConn struct {
	ws  *websocket.Conn
	ctx context.Context
}

func (c *fakeConn) send(b []byte) error {
	return c.ws.Write(c.ctx, websocket.MessageText, b)
}

func (c *fakeConn) sendJSON(v interface{ MarshalJSON() ([]byte, error) }) error {
	b, err := v.MarshalJSON()
	if err != nil {
		return err
	}
	return c.send(b)
}

// sendEvent pushes ev to subscription subID, whatever ev contains.
func (c *fakeConn) sendEvent(subID string, ev nostr.Event) error {
	id := subID
	return c.sendJSON(nostr.EventEnvelope{SubscriptionID: &id, Event: ev})
}

func startFakeRelay(t *testing.T) *fakeRelay {
	t.Helper()
	f := &fakeRelay{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = "ws" + strings.TrimPrefix(f.srv.URL, "http")
	t.Cleanup(func() {
		f.mu.Lock()
		for _, c := range f.conns {
			c.ws.CloseNow()
		}
		f.mu.Unlock()
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

func (f *fakeRelay) serve(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &fakeConn{ws: ws, ctx: ctx}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	defer ws.CloseNow()
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
		switch env := env.(type) {
		case *nostr.ReqEnvelope:
			if slices.ContainsFunc(env.Filters, func(fl nostr.Filter) bool { return slices.Contains(fl.Kinds, 4312) }) {
				f.botREQs.Add(1)
				if f.onBotREQ != nil {
					f.onBotREQ(c, env.SubscriptionID, env.Filters)
					continue
				}
			}
			eose := nostr.EOSEEnvelope(env.SubscriptionID)
			c.sendJSON(eose)
		case *nostr.EventEnvelope:
			f.published.Add(1)
			c.sendJSON(nostr.OKEnvelope{EventID: env.Event.ID, OK: true})
		case *nostr.AuthEnvelope:
			c.sendJSON(nostr.OKEnvelope{EventID: env.Event.ID, OK: true})
		}
	}
}
