package bot

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
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
	empty := &rooms.LiveRoom{Name: "r"}
	busy := &rooms.LiveRoom{Name: "r", Participants: 3}

	cases := []struct {
		name      string
		last      *nostr.Event
		live      *rooms.LiveRoom
		successor string
		want      lifecycleAction
	}{
		{"no event", nil, busy, "", actForget},
		{"someone else's event", foreign, busy, "", actForget},
		{"already closed", closed, nil, "", actForget},
		{"ended counts as closed", ended, nil, "x", actForget},
		{"replaced, live", open(0), busy, "r2", actCloseReplaced},
		{"replaced, gone", open(0), nil, "r2", actCloseReplaced},
		{"successor is itself", open(0), empty, "r", actKeep},
		{"gone", open(0), nil, "", actCloseGone},
		{"gone, old event", open(5 * hour), nil, "", actCloseGone},
		{"empty room, old event", open(2 * hour), empty, "", actKeep},
		{"occupied, fresh event", open(59 * time.Minute), busy, "", actKeep},
		{"occupied, due", open(hour), busy, "", actRepublish},
		{"occupied, overdue", open(7 * hour), busy, "", actRepublish},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := decideLifecycle(bot, c.last, c.live, c.successor, now, hour); got != c.want {
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
	got := successorsByTag(bot, lasts)
	if len(got) != 1 || got["r1"] != "r3" {
		t.Fatalf("successors %v, want r1 → r3 only (human predecessors, closed and self-naming rooms do not count)", got)
	}
}

func TestLifecycleWebhookHints(t *testing.T) {
	s := &Service{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	lc := newLifecycle(s, nil, ops.NewMetrics(ops.Gauges{}))
	for _, ev := range []*livekit.WebhookEvent{
		{Event: "room_finished", Room: &livekit.Room{Name: "a"}},
		{Event: "track_published", Room: &livekit.Room{Name: "b"}},
		{Event: "room_started", Room: &livekit.Room{Name: "c"}},
		{Event: "participant_joined", Room: &livekit.Room{Name: "d"}},
		{Event: "room_finished"},
	} {
		lc.webhook(ev)
	}
	var got []string
	for len(lc.hints) > 0 {
		got = append(got, <-lc.hints)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "c" || got[2] != "d" {
		t.Fatalf("hints %v", got)
	}
	// A full buffer drops rather than blocks LiveKit.
	for range lifecycleHintBuffer + 10 {
		lc.webhook(&livekit.WebhookEvent{Event: "room_finished", Room: &livekit.Room{Name: "x"}})
	}
	if len(lc.hints) != lifecycleHintBuffer {
		t.Fatalf("%d hints buffered", len(lc.hints))
	}
}

// hexPub is the i-th of a fixed set of test pubkeys: the same i gives the
// same key in every call and run.
func hexPub(i int) string {
	pk, err := nostr.GetPublicKey(fmt.Sprintf("%064x", i+1))
	if err != nil {
		panic(err)
	}
	return pk
}
