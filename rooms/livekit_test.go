package rooms

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nestbot/nestbot/internal/stack"
)

// Recreate on a real LiveKit: a room that exists comes back with a new SID
// every time (the look-up runs alongside the first delete), a missing room
// is created, and the API token is reused across calls.
func TestRecreateChangesSID(t *testing.T) {
	lk := stack.StartLiveKit(t)
	var mu sync.Mutex
	calls := map[string]int{}
	l := NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute}).
		OnCall(func(m string) { mu.Lock(); calls[m]++; mu.Unlock() })
	took := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := calls
		calls = map[string]int{}
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var gone []string
	r, err := l.Recreate(ctx, "missing-room", `{"n":0}`, func(old string) { gone = append(gone, old) })
	if err != nil || r == nil || r.SID == "" {
		t.Fatalf("recreate a missing room: %+v %v", r, err)
	}
	if len(gone) != 1 || gone[0] != "" {
		t.Fatalf("gone called with %q for a room that did not exist", gone)
	}
	prev, err := l.Ensure(ctx, "live-room", `{"n":0}`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{prev.SID: true}
	for i := range 20 {
		gone = nil
		took()
		r, err := l.Recreate(ctx, "live-room", `{"n":1}`, func(old string) { gone = append(gone, old) })
		if err != nil {
			t.Fatalf("recreate %d: %v", i, err)
		}
		// One look-up, then as many creates as deletes: 3 calls, 5 when
		// the look-up came after the delete (a stand-in is replaced),
		// never a look-up after the delete to learn the SID.
		if c := took(); c["ListRooms"] != 1 || c["DeleteRoom"] != c["CreateRoom"] || c["DeleteRoom"] < 1 || c["DeleteRoom"] > 1+maxSIDRetries || len(c) != 3 {
			t.Fatalf("recreate %d made LiveKit calls %v", i, c)
		}
		// The SID of the room deleted (rarely a stand-in the look-up missed),
		// once, before the new room was made.
		if len(gone) != 1 || gone[0] == "" || gone[0] == r.SID {
			t.Fatalf("recreate %d: gone called with %q, new SID %s", i, gone, r.SID)
		}
		if seen[r.SID] {
			t.Fatalf("recreate %d came back with an earlier SID %s", i, r.SID)
		}
		seen[r.SID] = true
		found, err := l.Find(ctx, "live-room")
		if err != nil || found == nil || found.SID != r.SID || found.Metadata != `{"n":1}` {
			t.Fatalf("after recreate %d LiveKit has %+v (%v), want SID %s", i, found, err, r.SID)
		}
	}
	tok := l.client.token
	if _, err := l.Find(ctx, "live-room"); err != nil || l.client.token != tok {
		t.Fatalf("token not reused: %v", err)
	}

	// List asks only for the names given, in batches, and never for all.
	got, err := l.List(ctx, []string{"live-room", "no-such-room"})
	if err != nil || len(got) != 1 || got[0].Name != "live-room" || !seen[got[0].SID] {
		t.Fatalf("List(live-room, no-such-room) = %+v, %v", got, err)
	}
	if got, err := l.List(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("List(nil) = %+v, %v; want nothing, not every room", got, err)
	}
	many := make([]string, 0, listBatch+2)
	for i := range listBatch + 1 {
		many = append(many, fmt.Sprintf("absent-%d", i))
	}
	many = append(many, "missing-room") // in the second batch
	if got, err := l.List(ctx, many); err != nil || len(got) != 1 || got[0].Name != "missing-room" {
		t.Fatalf("List over two batches = %+v, %v", got, err)
	}
}
