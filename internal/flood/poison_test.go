package flood

import (
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// TestPoisonDMsAreValidEvents: every poison is an authentic event addressed
// to the bot (so a bot takes it past the cheap checks to the payload), and
// each call gives new events.
func TestPoisonDMsAreValidEvents(t *testing.T) {
	bot, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	a, err := PoisonDMs(bot)
	if err != nil {
		t.Fatal(err)
	}
	b, err := PoisonDMs(bot)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(PoisonNIP04)+8 || len(a) != len(b) {
		t.Fatalf("%d and %d poisons", len(a), len(b))
	}
	names := map[string]bool{}
	for i, p := range a {
		ev := p.Event
		if ok, err := ev.CheckSignature(); !ok || err != nil || !ev.CheckID() {
			t.Fatalf("%s: not a valid event", p.Name)
		}
		if ev.Tags.FindWithValue("p", bot) == nil || (ev.Kind != 4 && ev.Kind != 1059) {
			t.Fatalf("%s: kind %d, tags %v", p.Name, ev.Kind, ev.Tags)
		}
		if names[p.Name] {
			t.Fatalf("%s twice", p.Name)
		}
		names[p.Name] = true
		if b[i].Event.ID == ev.ID {
			t.Fatalf("%s: the same event from two calls", p.Name)
		}
	}
}
