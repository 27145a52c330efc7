package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// storeRelay is a programmable relay for inputs a real relay refuses to
// store (a 2 MB event): it serves the events the test gave it, matched by
// go-nostr's own filter logic, and checks nothing. Issue 9 asks for such a
// hostile relay; everything else in these tests uses the real relay.
type storeRelay struct {
	URL string
	// silent: never answer a REQ (a relay that makes a look-up wait out
	// nostr.lookup_timeout); each REQ is signalled on reqs.
	silent bool
	reqs   chan struct{}
	mu     sync.Mutex
	evs    []nostr.Event
}

func startStoreRelay(t *testing.T) *storeRelay {
	t.Helper()
	r := &storeRelay{reqs: make(chan struct{}, 64)}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = "ws" + strings.TrimPrefix(srv.URL, "http")
	return r
}

func (r *storeRelay) put(ev nostr.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *storeRelay) serve(w http.ResponseWriter, req *http.Request) {
	ws, err := websocket.Accept(w, req, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(8 << 20)
	ctx := req.Context()
	send := func(v interface{ MarshalJSON() ([]byte, error) }) {
		b, _ := v.MarshalJSON()
		_ = ws.Write(ctx, websocket.MessageText, b)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		switch env := nostr.ParseMessage(string(data)).(type) {
		case *nostr.ReqEnvelope:
			select {
			case r.reqs <- struct{}{}:
			default:
			}
			if r.silent {
				continue
			}
			r.mu.Lock()
			var out []nostr.Event
			for _, ev := range r.evs {
				if env.Filters.Match(&ev) {
					out = append(out, ev)
				}
			}
			r.mu.Unlock()
			for _, ev := range out {
				send(nostr.EventEnvelope{SubscriptionID: &env.SubscriptionID, Event: ev})
			}
			send(nostr.EOSEEnvelope(env.SubscriptionID))
		case *nostr.EventEnvelope:
			r.put(env.Event)
			send(nostr.OKEnvelope{EventID: env.Event.ID, OK: true})
		}
	}
}
