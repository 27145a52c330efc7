package rooms

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"

	"github.com/nestbot/nestbot/internal/stack"
)

// Recreate on a real LiveKit: a room that exists comes back with a new SID
// every time, a missing room is created, and the API token is reused
// across calls. The first recreation lists the old room (three calls, the
// clock is not calibrated yet); the later ones make two calls (delete,
// create), more only when the room that came back could not be told from
// the old one.
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

	var gone []Replaced
	var gmu sync.Mutex
	record := func(p Replaced) { gmu.Lock(); gone = append(gone, p); gmu.Unlock() }
	r, err := l.Recreate(ctx, "missing-room", `{"n":0}`, record)
	if err != nil || r == nil || r.SID == "" {
		t.Fatalf("recreate a missing room: %+v %v", r, err)
	}
	if len(gone) != 1 || gone[0] != (Replaced{}) {
		t.Fatalf("gone called with %+v for a room that did not exist", gone)
	}
	if c := took(); c["ListRooms"] != 1 || c["DeleteRoom"] != 1 || c["CreateRoom"] != 1 {
		t.Fatalf("uncalibrated recreation of a missing room made LiveKit calls %v", c)
	}
	prev, err := l.Ensure(ctx, "live-room", `{"n":0}`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{prev.SID: true}
	twoCalls := 0
	for i := range 20 {
		gone = nil
		took()
		r, err := l.Recreate(ctx, "live-room", `{"n":1}`, record)
		if err != nil {
			t.Fatalf("recreate %d: %v", i, err)
		}
		// Calibrated: no look-up, as many creates as deletes. Never a
		// look-up after the delete to learn the SID.
		c := took()
		if c["ListRooms"] != 0 || c["DeleteRoom"] != c["CreateRoom"] || c["DeleteRoom"] < 1 || c["DeleteRoom"] > 1+maxSIDRetries || len(c) != 2 {
			t.Fatalf("recreate %d made LiveKit calls %v", i, c)
		}
		if c["DeleteRoom"] == 1 {
			twoCalls++
		}
		// What tells the new room from the old, once: the new room is
		// new by it, the one it replaced is not.
		// (After a retry the new room may precede After: the clock's
		// bound was loose, which the retry's sample tightens.)
		if len(gone) != 1 || gone[0].After == 0 || c["DeleteRoom"] == 1 && !gone[0].IsNew(r) || gone[0].IsNew(prev) {
			t.Fatalf("recreate %d: gone called with %+v, new room %+v, old %+v", i, gone, r, prev)
		}
		if seen[r.SID] {
			t.Fatalf("recreate %d came back with an earlier SID %s", i, r.SID)
		}
		seen[r.SID] = true
		found, err := l.Find(ctx, "live-room")
		if err != nil || found == nil || found.SID != r.SID || found.Metadata != `{"n":1}` || found.CreatedMs != r.CreatedMs {
			t.Fatalf("after recreate %d LiveKit has %+v (%v), want %+v", i, found, err, r)
		}
		prev = r
	}
	t.Logf("%d of 20 recreations made two calls", twoCalls)
	if twoCalls == 0 {
		t.Fatal("no recreation made only two calls")
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

// dropDeletes answers the first DeleteRoom of each room in drop without
// passing it to LiveKit, so that the CreateRoom after it gets the old room
// back: what LiveKit does when a room it deleted is stored again behind
// the delete (rtc.Room's update worker racing its Close). It counts the
// creates that returned a room's old SID.
type dropDeletes struct {
	livekit.RoomService
	mu       sync.Mutex
	drop     map[string]bool
	old      map[string]string // room -> SID before the recreation
	handBack int
}

func (d *dropDeletes) DeleteRoom(ctx context.Context, req *livekit.DeleteRoomRequest) (*livekit.DeleteRoomResponse, error) {
	d.mu.Lock()
	skip := d.drop[req.Room]
	delete(d.drop, req.Room)
	d.mu.Unlock()
	if skip {
		return &livekit.DeleteRoomResponse{}, nil
	}
	return d.RoomService.DeleteRoom(ctx, req)
}

func (d *dropDeletes) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	r, err := d.RoomService.CreateRoom(ctx, req)
	if err == nil {
		d.mu.Lock()
		if d.old[req.Name] == r.Sid {
			d.handBack++
		}
		d.mu.Unlock()
	}
	return r, err
}

// TestRecreateCatchesHandBacks: many recreations of rooms whose old SID
// the test knows (it created them) each come back with a different SID,
// on a real LiveKit that hands the old room back to the create after
// every other room's first delete: the check (creation time once
// calibrated, SID before) caught every hand-back. Without it, half the
// recreations would answer with the old room.
func TestRecreateCatchesHandBacks(t *testing.T) {
	lk := stack.StartLiveKit(t)
	l := NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute})
	d := &dropDeletes{RoomService: l.client.svc, drop: map[string]bool{}, old: map[string]string{}}
	l.client.svc = d
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const n = 40
	olds := make([]*LiveRoom, n)
	for i := range n {
		name := fmt.Sprintf("hand-back-%d", i)
		r, err := l.Ensure(ctx, name, "{}")
		if err != nil {
			t.Fatal(err)
		}
		olds[i] = r
		d.old[name] = r.SID
		d.drop[name] = i%2 == 1 // room 0 (uncalibrated, three calls) too: see below
	}
	d.drop["hand-back-0"] = true
	for i, old := range olds {
		var got []Replaced
		var mu sync.Mutex
		r, err := l.Recreate(ctx, old.Name, "{}", func(p Replaced) { mu.Lock(); got = append(got, p); mu.Unlock() })
		if err != nil {
			t.Fatalf("recreate %s: %v", old.Name, err)
		}
		if r.SID == old.SID {
			t.Fatalf("recreate %s answered with the old room %s", old.Name, old.SID)
		}
		if len(got) != 1 || got[0].IsNew(old) {
			t.Fatalf("recreate %s: gone told %+v, which takes the old room %+v for new", old.Name, got, old)
		}
		if i > 0 && got[0].After == 0 {
			t.Fatalf("recreate %s: not calibrated by the ones before (%+v)", old.Name, got)
		}
		live, err := l.Find(ctx, old.Name)
		if err != nil || live == nil || live.SID != r.SID {
			t.Fatalf("after recreate %s LiveKit has %+v (%v), answer %s", old.Name, live, err, r.SID)
		}
	}
	if want := n/2 + 1; d.handBack != want {
		t.Fatalf("LiveKit handed the old room back %d times, want %d (one per dropped delete)", d.handBack, want)
	}
}
