package rooms

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// cutLiveKit is a real LiveKit whose Recreate stops after the old room is
// deleted and the mark written, as if the bot died before the new room
// existed.
type cutLiveKit struct{ *LiveKitRooms }

var errCut = errors.New("cut off")

func (c cutLiveKit) Recreate(ctx context.Context, name, metadata string, gone func(Replaced)) (*LiveRoom, error) {
	l := *c.LiveKitRooms // the same client and clock, its own hook
	marked := make(chan struct{})
	l.afterDelete = func() {
		<-marked
		panic(errCut)
	}
	return l.Recreate(ctx, name, metadata, func(p Replaced) {
		gone(p)
		close(marked)
	})
}

// hostSigner is enough of a Signer for a restart in place of a room whose
// event the bot did not publish.
type hostSigner struct{}

func (hostSigner) PublicKey() string          { return hexKey(99) }
func (hostSigner) Sign(ev *nostr.Event) error { return errors.New("not used") }

// TestRestartInPlaceMarksItsRecreation: the engine marks what tells the
// new LiveKit room from the deleted one, and a restart that finds the room
// gone under its mark creates it (once) and clears the mark; both before
// LiveKit's clock is calibrated (three calls, the mark names the old SID)
// and after (two calls, the mark holds the delete's time on LiveKit's
// clock).
func TestRestartInPlaceMarksItsRecreation(t *testing.T) {
	s, _ := pipelineStore(t)
	lk := stack.StartLiveKit(t)
	rooms := NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute})
	ctx := ctxFor(t)
	host := hexKey(1)
	engine := func(l LiveKit) *Engine {
		return &Engine{State: s, LiveKit: l, Signer: hostSigner{}, Tokens: Tokens{APIKey: lk.APIKey, APISecret: lk.APISecret, TTL: time.Minute},
			Set: Settings{Cooldown: time.Minute, DependencyBudget: time.Second, LookupTimeout: time.Second}}
	}
	for _, calibrated := range []bool{false, true} {
		id := "room-m"
		if calibrated {
			id = "room-c"
			if _, err := rooms.Recreate(ctx, "calibrate", "{}", nil); err != nil {
				t.Fatal(err)
			}
			if _, ok := rooms.clock.upper(rooms.clock.now()); !ok {
				t.Fatal("not calibrated after a recreation")
			}
		}
		if err := s.PutRecord(ctx, &Record{ID: id, Host: host, Status: StatusActive}); err != nil {
			t.Fatal(err)
		}
		old, err := rooms.Ensure(ctx, id, "{}")
		if err != nil {
			t.Fatal(err)
		}
		req := nostrx.Request{ID: "req-" + id, Requester: host, Action: nostrx.ActionRestart,
			Room: nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: id}}

		func() {
			defer func() {
				if r := recover(); r != errCut {
					t.Fatalf("recover %v", r)
				}
			}()
			engine(cutLiveKit{rooms}).Restart(ctx, req)
		}()
		// The old room is gone; calibrated, the mark holds a time after
		// its creation, not calibrated, it names the old room.
		mark, marked, err := s.Recreating(ctx, id)
		cur, _ := rooms.Find(ctx, id)
		p := ParseMark(mark)
		switch {
		case !marked || err != nil:
			t.Fatalf("%s: no mark after the cut: %v", id, err)
		case calibrated && (p.After == 0 || cur != nil || p.IsNew(old) || old.CreatedMs >= p.After):
			t.Fatalf("%s: mark %q after the cut; old room %+v, LiveKit has %+v", id, mark, old, cur)
		case !calibrated && (mark != old.SID || cur != nil || p.IsNew(old)):
			t.Fatalf("%s: mark %q after the cut; old room %s, LiveKit has %+v", id, mark, old.SID, cur)
		}

		res, err := engine(rooms).Restart(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		now, _ := rooms.Find(ctx, id)
		if now == nil || now.SID != res.SID || res.SID == old.SID || res.SID == mark || !p.IsNew(now) {
			t.Fatalf("%s: after the resumed restart LiveKit has %+v, result SID %s", id, now, res.SID)
		}
		if _, marked, _ := s.Recreating(ctx, id); marked {
			t.Fatalf("%s: mark kept after the commit", id)
		}
	}
}
