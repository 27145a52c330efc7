package e2e

import (
	"testing"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
)

// TestKnownLaneOnlyFromRecords (issue 9, item 5): the priority lane of
// known hosts and admins is fed by Redis records and by the requests a
// record authorized, never by a room event. A stranger's room event naming
// 150 fresh keys Admin, looked up once for a status one of them asks (and
// is answered, authorized by that event), makes none of them known; a host
// whose Nests record names them is known after one request.
func TestKnownLaneOnlyFromRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack (make deps)")
	}
	w := newWorld(t, 1)
	svc := w.start()
	stranger := newUser(t)
	var admins []*user
	var tags nostr.Tags
	for range 150 {
		u := newUser(t)
		admins = append(admins, u)
		tags = append(tags, nostr.Tag{"p", u.pk, "", "Admin"})
	}
	d := uuid.NewString()
	w.publishRoom(stranger, d, tags)
	ex := w.ask(admins[0], coord(stranger.pk, d), "status")
	if ex.Payload.Error != nil {
		t.Fatalf("status by an admin the room event names: %s %s", ex.Payload.Error.Code, ex.Payload.Error.Message)
	}
	requestsDone(t, svc, 1)
	if n := metric(t, svc, "nestbot_known_pubkeys", nil); n != 0 {
		t.Fatalf("%v pubkeys known after one look-up of a room event naming 150 admins: want 0", n)
	}

	host, admin := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, []string{admin.pk}, nil)
	ex = w.ask(host, coord(host.pk, id), "status")
	if ex.Payload.Error != nil {
		t.Fatalf("status by the host of a record: %s", ex.Payload.Error.Code)
	}
	requestsDone(t, svc, 2)
	if n := metric(t, svc, "nestbot_known_pubkeys", nil); n != 2 {
		t.Fatalf("%v pubkeys known after a request on a record naming a host and an admin: want 2", n)
	}

	// A restart learns them from the record it restarted (the engine's
	// Result.Record), without reading Redis again.
	host2, admin2 := newUser(t), newUser(t)
	id2 := uuid.NewString()
	w.nestsRecord(id2, host2.pk, []string{admin2.pk}, nil)
	ex = w.ask(host2, coord(host2.pk, id2), "restart")
	if ex.Payload.Error != nil || ex.Payload.Result == nil {
		t.Fatalf("restart by the host of a record: %+v", ex.Payload.Error)
	}
	requestsDone(t, svc, 3)
	if n := metric(t, svc, "nestbot_known_pubkeys", nil); n != 4 {
		t.Fatalf("%v pubkeys known after a restart of a record naming a host and an admin: want 4", n)
	}
}
