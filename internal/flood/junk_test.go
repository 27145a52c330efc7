package flood

import (
	"encoding/json"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// TestJunkIsWhatItSays: every kind is in the mix, and each event is the
// kind of bad it claims to be, so the fault suite's and nestbench's floods
// test what they report.
func TestJunkIsWhatItSays(t *testing.T) {
	bot := nostr.GeneratePrivateKey()
	botPK, _ := nostr.GetPublicKey(bot)
	rooms := []nostrx.Coordinate{{Kind: nostrx.KindRoom, Author: botPK, D: "room-1"}}
	junk, err := Junk(botPK, rooms, 2000, 7)
	if err != nil {
		t.Fatal(err)
	}
	count := map[Kind]int{}
	for _, j := range junk {
		count[j.Kind]++
		var ev nostr.Event
		if err := json.Unmarshal(j.JSON, &ev); err != nil {
			t.Fatalf("%s: %v", j.JSON, err)
		}
		sigOK, _ := ev.CheckSignature()
		idOK := ev.CheckID()
		addressed := ev.Tags.FindWithValue("p", botPK) != nil
		fresh := ev.CreatedAt > nostr.Now()-600
		var ok bool
		switch j.Kind {
		case Valid:
			ok = sigOK && idOK && addressed && fresh
		case BadSig:
			ok = !sigOK && idOK
		case ForgedID:
			ok = !idOK
		case OtherP:
			ok = sigOK && idOK && !addressed
		case Malformed:
			ok = !sigOK
		case Stale:
			ok = sigOK && idOK && !fresh
		}
		if !ok {
			t.Fatalf("kind %d is not what it says: %s", j.Kind, j.JSON)
		}
		if j.ID != ev.ID {
			t.Fatalf("ID %s, event says %s", j.ID, ev.ID)
		}
	}
	for k := Valid; k <= Stale; k++ {
		if count[k] < 50 {
			t.Errorf("kind %d: %d of 2000", k, count[k])
		}
	}
	if _, err := Junk(botPK, nil, 1, 0); err == nil {
		t.Error("junk without rooms")
	}
}
