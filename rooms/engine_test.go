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
// deleted, as if the bot died before the new room existed.
type cutLiveKit struct{ *LiveKitRooms }

var errCut = errors.New("cut off")

func (c cutLiveKit) Recreate(ctx context.Context, name, metadata string, gone func(string)) (*LiveRoom, error) {
	return c.LiveKitRooms.Recreate(ctx, name, metadata, func(old string) {
		gone(old)
		panic(errCut)
	})
}

// hostSigner is enough of a Signer for a restart in place of a room whose
// event the bot did not publish.
type hostSigner struct{}

func (hostSigner) PublicKey() string          { return hexKey(99) }
func (hostSigner) Sign(ev *nostr.Event) error { return errors.New("not used") }

// TestRestartInPlaceMarksItsRecreation: the engine marks which LiveKit room
// it deleted before it creates the new one, and a restart that finds the
// room gone under its mark creates it (once) and clears the mark.
func TestRestartInPlaceMarksItsRecreation(t *testing.T) {
	s, _ := pipelineStore(t)
	lk := stack.StartLiveKit(t)
	rooms := NewLiveKitRooms(lk.URL, lk.APIKey, lk.APISecret, RoomOptions{MaxParticipants: 10, EmptyTimeout: time.Minute, DepartureTimeout: time.Minute})
	ctx := ctxFor(t)
	host := hexKey(1)
	if err := s.PutRecord(ctx, &Record{ID: "room-m", Host: host, Status: StatusActive}); err != nil {
		t.Fatal(err)
	}
	old, err := rooms.Ensure(ctx, "room-m", "{}")
	if err != nil {
		t.Fatal(err)
	}
	engine := func(l LiveKit) *Engine {
		return &Engine{State: s, LiveKit: l, Signer: hostSigner{}, Tokens: Tokens{APIKey: lk.APIKey, APISecret: lk.APISecret, TTL: time.Minute},
			Set: Settings{Cooldown: time.Minute, DependencyBudget: time.Second, LookupTimeout: time.Second}}
	}
	req := nostrx.Request{ID: "req-1", Requester: host, Action: nostrx.ActionRestart,
		Room: nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: "room-m"}}

	func() {
		defer func() {
			if r := recover(); r != errCut {
				t.Fatalf("recover %v", r)
			}
		}()
		engine(cutLiveKit{rooms}).Restart(ctx, req)
	}()
	// Mostly the old room is gone and the mark names it; when Recreate's
	// look-up lost the race with its delete, the mark names the stand-in
	// Recreate made, still there.
	sid, marked, err := s.Recreating(ctx, "room-m")
	cur, _ := rooms.Find(ctx, "room-m")
	if !marked || err != nil || !(sid == old.SID && cur == nil || cur != nil && sid == cur.SID && sid != old.SID) {
		t.Fatalf("mark after the cut: %q %v %v; old room %s, LiveKit has %+v", sid, marked, err, old.SID, cur)
	}

	res, err := engine(rooms).Restart(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	now, _ := rooms.Find(ctx, "room-m")
	if now == nil || now.SID != res.SID || res.SID == old.SID || res.SID == sid {
		t.Fatalf("after the resumed restart LiveKit has %+v, result SID %s", now, res.SID)
	}
	if _, marked, _ := s.Recreating(ctx, "room-m"); marked {
		t.Fatal("mark kept after the commit")
	}
}
