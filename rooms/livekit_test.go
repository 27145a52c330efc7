package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/nestbot/nestbot/internal/stack"
)

// Recreate on a real LiveKit: a room that exists comes back with a new SID
// every time (the look-up runs alongside the first delete), a missing room
// is created, and the API token is reused across calls.
func TestRecreateChangesSID(t *testing.T) {
	lk := stack.StartLiveKit(t)
	l := NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	r, err := l.Recreate(ctx, "missing-room", `{"n":0}`)
	if err != nil || r == nil || r.SID == "" {
		t.Fatalf("recreate a missing room: %+v %v", r, err)
	}
	prev, err := l.Ensure(ctx, "live-room", `{"n":0}`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{prev.SID: true}
	for i := range 20 {
		r, err := l.Recreate(ctx, "live-room", `{"n":1}`)
		if err != nil {
			t.Fatalf("recreate %d: %v", i, err)
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
}
