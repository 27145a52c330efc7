package rooms

import (
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nestbot/nestbot/nostrx"
)

func roomEvent(t *testing.T, sk string, spec nostrx.RoomSpec, at time.Time) *nostr.Event {
	t.Helper()
	ev := nostrx.BuildRoomEvent(spec, nostr.Timestamp(at.Unix()))
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func TestDecideLifecycle(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	bot, _ := nostr.GetPublicKey(sk)
	other := nostr.GeneratePrivateKey()
	now := time.Unix(1_800_000_000, 0)
	hour := time.Hour
	open := func(age time.Duration) *nostr.Event {
		return roomEvent(t, sk, nostrx.RoomSpec{D: "r", Status: nostrx.StatusOpen, Starts: 1, Host: hexPub(1)}, now.Add(-age))
	}
	closed := roomEvent(t, sk, nostrx.RoomSpec{D: "r", Status: nostrx.StatusClosed, Starts: 1, Host: hexPub(1)}, now)
	ended := roomEvent(t, sk, nostrx.RoomSpec{D: "r", Status: "ended", Starts: 1, Host: hexPub(1)}, now)
	foreign := roomEvent(t, other, nostrx.RoomSpec{D: "r", Starts: 1, Host: hexPub(1)}, now)
	empty := &LiveRoom{Name: "r"}
	busy := &LiveRoom{Name: "r", Participants: 3}

	cases := []struct {
		name      string
		last      *nostr.Event
		live      *LiveRoom
		successor string
		want      LifecycleAction
	}{
		{"no event", nil, busy, "", ActForget},
		{"someone else's event", foreign, busy, "", ActForget},
		{"already closed", closed, nil, "", ActForget},
		{"ended counts as closed", ended, nil, "x", ActForget},
		{"replaced, live", open(0), busy, "r2", ActCloseReplaced},
		{"replaced, gone", open(0), nil, "r2", ActCloseReplaced},
		{"successor is itself", open(0), empty, "r", ActKeep},
		{"gone", open(0), nil, "", ActCloseGone},
		{"gone, old event", open(5 * hour), nil, "", ActCloseGone},
		{"empty room, old event", open(2 * hour), empty, "", ActKeep},
		{"occupied, fresh event", open(59 * time.Minute), busy, "", ActKeep},
		{"occupied, due", open(hour), busy, "", ActRepublish},
		{"occupied, overdue", open(7 * hour), busy, "", ActRepublish},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DecideLifecycle(bot, c.last, c.live, c.successor, now, hour); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestSuccessorsByTag(t *testing.T) {
	sk := nostr.GeneratePrivateKey()
	bot, _ := nostr.GetPublicKey(sk)
	human := hexPub(5)
	at := time.Unix(1_800_000_000, 0)
	c := func(author, d string) *nostrx.Coordinate {
		return &nostrx.Coordinate{Kind: nostrx.KindRoom, Author: author, D: d}
	}
	lasts := map[string]*nostr.Event{
		"r1": roomEvent(t, sk, nostrx.RoomSpec{D: "r1", Starts: 1, Host: human, Replaces: c(human, "h1")}, at),
		"r2": roomEvent(t, sk, nostrx.RoomSpec{D: "r2", Starts: 1, Host: human, Replaces: c(bot, "r1")}, at.Add(time.Second)),
		"r3": roomEvent(t, sk, nostrx.RoomSpec{D: "r3", Starts: 1, Host: human, Replaces: c(bot, "r1")}, at.Add(2*time.Second)),
		"r4": roomEvent(t, sk, nostrx.RoomSpec{D: "r4", Status: nostrx.StatusClosed, Starts: 1, Host: human, Replaces: c(bot, "r9")}, at),
		"r5": roomEvent(t, sk, nostrx.RoomSpec{D: "r5", Starts: 1, Host: human, Replaces: c(bot, "r5")}, at),
	}
	got := SuccessorsByTag(bot, lasts)
	if len(got) != 1 || got["r1"] != "r3" {
		t.Fatalf("successors %v, want r1 → r3 only (human predecessors, closed and self-naming rooms do not count)", got)
	}
}

// hexPub is the i-th of a fixed set of test pubkeys.
func hexPub(i int) string {
	pk, err := nostr.GetPublicKey(fmt.Sprintf("%064x", i+1))
	if err != nil {
		panic(err)
	}
	return pk
}
