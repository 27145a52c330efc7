package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// TestExpiredRoomEventGrantsNothing (issue 9 item 7): a room event whose
// NIP-40 expiration has passed names a stranger as Admin. Relays serve it
// until they sweep it; the bot must treat it as no event at all, so only
// the coordinate's author may recreate the room, and nothing is created
// for the stranger.
func TestExpiredRoomEventGrantsNothing(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, x := newUser(t), newUser(t)
	oldID := uuid.NewString()
	past := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	w.publishRoom(host, oldID, nostr.Tags{{"p", x.pk, "", "Admin"}, {"expiration", past}})
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{host.pk}}); len(evs) != 1 {
		t.Skipf("the relay does not serve expired events (%d found): nothing to test here", len(evs))
	}

	wantError(t, w.ask(x, coord(host.pk, oldID), "restart").Payload, nostrx.CodeUnauthorized)
	wantError(t, w.ask(x, coord(host.pk, oldID), "status").Payload, nostrx.CodeUnauthorized)
	if n := len(w.allLiveRooms()); n != 0 {
		t.Fatalf("%d LiveKit rooms after a refused restart", n)
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}}); len(evs) != 0 {
		t.Fatalf("the bot published %d room events for a stranger", len(evs))
	}
	// The author still may: "no event found" leaves the room to its author.
	res := restartResult(t, w.ask(host, coord(host.pk, oldID), "restart").Payload)
	if !res.IsNewRoom {
		t.Fatalf("%+v", res)
	}
}
