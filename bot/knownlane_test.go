package bot

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nestbot/nestbot/rooms"
)

// TestKnownLaneFromRecords: a record the Nests server wrote makes its host
// and admins known; one the bot recreated from a room event only its host
// (its admins came from an event anyone may publish) until the record
// authorizes one of them.
func TestKnownLaneFromRecords(t *testing.T) {
	pk := func(i int) string { return strings.Repeat(strconv.Itoa(i), 64) }
	s := intakeTestService(t, nil)
	s.known.addRecord(&rooms.Record{ID: "a", Host: pk(1), Admins: []string{pk(1), pk(2)}})
	if !s.known.Has(pk(1)) || !s.known.Has(pk(2)) {
		t.Fatal("a Nests record's host and admin are not known")
	}
	recreated := &rooms.Record{ID: "b", Host: pk(3), Admins: []string{pk(3), pk(4), pk(5)}, IsRecreated: true}
	s.known.addRecord(recreated)
	if !s.known.Has(pk(3)) || s.known.Has(pk(4)) || s.known.Has(pk(5)) {
		t.Fatal("a recreated record: want its host known and the admins copied from an event not")
	}
	if v := s.judge(recreated, pk(4)); v != verdictAuthorized || !s.known.Has(pk(4)) {
		t.Fatalf("an admin the record authorized: verdict %v, known %v", v, s.known.Has(pk(4)))
	}
	if v := s.judge(recreated, pk(6)); v != verdictRefused || s.known.Has(pk(6)) {
		t.Fatal("a requester the record refuses became known")
	}
	if s.known.Len() != 4 {
		t.Fatalf("%d known, want 4", s.known.Len())
	}
}
