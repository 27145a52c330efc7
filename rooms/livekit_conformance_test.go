package rooms_test

import (
	"context"
	"testing"
	"time"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/rooms"
	"github.com/nestbot/nestbot/rooms/memstore"
)

// liveKitSteps are what the engine relies on from a LiveKit: Ensure makes
// a room once and then returns it untouched; Find returns it with its
// creation time; Recreate tells, through gone, before it returns, what
// tells its new room from the old one, which the old room does not pass
// and the new one (made in two calls) does; Delete removes it, twice is
// fine. Once calibrated (after the first recreation), gone tells a time.
func liveKitSteps(t *testing.T, lk rooms.LiveKit, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := lk.Ensure(ctx, name, `{"a":1}`)
	if err != nil || first.SID == "" || first.CreatedMs == 0 {
		t.Fatalf("Ensure: %+v %v", first, err)
	}
	again, err := lk.Ensure(ctx, name, `{"a":1}`)
	if err != nil || again.SID != first.SID || again.CreatedMs != first.CreatedMs {
		t.Fatalf("Ensure of an existing room: %+v %v, want %+v", again, err, first)
	}
	found, err := lk.Find(ctx, name)
	if err != nil || found == nil || found.SID != first.SID || found.CreatedMs != first.CreatedMs || found.Metadata != `{"a":1}` {
		t.Fatalf("Find: %+v %v", found, err)
	}
	old := first
	for i := range 3 {
		var told []rooms.Replaced
		r, err := lk.Recreate(ctx, name, `{"a":2}`, func(p rooms.Replaced) { told = append(told, p) })
		if err != nil || r.SID == old.SID {
			t.Fatalf("Recreate %d: %+v %v (old %s)", i, r, err, old.SID)
		}
		if len(told) != 1 || told[0].IsNew(old) {
			t.Fatalf("Recreate %d told %+v; old room %+v passes or gone not called once", i, told, old)
		}
		if i > 0 && told[0].After == 0 {
			t.Fatalf("Recreate %d (calibrated) told %+v for new room %+v", i, told, r)
		}
		now, err := lk.Find(ctx, name)
		if err != nil || now == nil || now.SID != r.SID || now.Metadata != `{"a":2}` {
			t.Fatalf("after Recreate %d: %+v %v", i, now, err)
		}
		old = r
	}
	if err := lk.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := lk.Delete(ctx, name); err != nil {
		t.Fatalf("Delete of a deleted room: %v", err)
	}
	if r, err := lk.Find(ctx, name); err != nil || r != nil {
		t.Fatalf("Find after Delete: %+v %v", r, err)
	}
}

// TestLiveKitDoubleConforms: memstore's LiveKit and the real one (v1.13.5
// through LiveKitRooms) pass the same steps.
func TestLiveKitDoubleConforms(t *testing.T) {
	t.Run("memstore", func(t *testing.T) { liveKitSteps(t, memstore.NewLiveKit(), "conform") })
	t.Run("livekit", func(t *testing.T) {
		lk := stack.StartLiveKit(t)
		l := rooms.NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, rooms.RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute})
		liveKitSteps(t, l, "conform")
	})
}
