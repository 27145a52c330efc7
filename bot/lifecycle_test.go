package bot

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/livekit/protocol/livekit"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/ops"
)

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
