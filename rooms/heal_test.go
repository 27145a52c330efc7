package rooms_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Engine.Heal's decisions against rooms/memstore (engine_table_test.go's
// world); the same paths on the real stack are e2e/heal_test.go.

func TestHealTable(t *testing.T) {
	ctx := context.Background()
	present := rooms.HealOptions{Present: true}
	deny := func(context.Context) (bool, error) { return false, nil }
	tests := []struct {
		name  string
		setup func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions)
		check func(t *testing.T, w *world, before snapshot, h *rooms.Healed)
	}{
		{
			name: "missing LiveKit room, people present: restarted in place",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				w.putRecord(t, "r1")
				return coord(hostKey, "r1"), present
			},
			check: func(t *testing.T, w *world, _ snapshot, h *rooms.Healed) {
				if h.Action != rooms.HealRestarted || h.Reason != rooms.HealLiveKitMissing || h.Host != hostKey.pk || h.SID == "" {
					t.Fatalf("healed %+v", h)
				}
				live := w.lk.Rooms()["r1"]
				if live.SID != h.SID || !strings.Contains(live.Metadata, `"nestId":"r1"`) {
					t.Fatalf("LiveKit room %+v", live)
				}
				rec, _ := w.state.Record(context.Background(), "r1")
				if rec.RestartedAt != w.clock.Now().UnixMilli() {
					t.Fatalf("record not refreshed: %+v", rec)
				}
				again, err := w.engine.Heal(context.Background(), coord(hostKey, "r1"), present)
				if err != nil || again.Skip != rooms.HealSkipHealthy {
					t.Fatalf("second heal %+v %v, want healthy", again, err)
				}
			},
		},
		{
			name: "missing LiveKit room, nobody present: left alone",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				w.putRecord(t, "r2")
				return coord(hostKey, "r2"), rooms.HealOptions{}
			},
			check: func(t *testing.T, w *world, before snapshot, h *rooms.Healed) {
				if h.Skip != rooms.HealSkipEmpty || h.Action != "" {
					t.Fatalf("healed %+v", h)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "budget spent: left broken",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				w.putRecord(t, "r3")
				return coord(hostKey, "r3"), rooms.HealOptions{Present: true, Allow: deny}
			},
			check: func(t *testing.T, w *world, before snapshot, h *rooms.Healed) {
				if h.Skip != rooms.HealSkipRateLimited || h.Reason != rooms.HealLiveKitMissing {
					t.Fatalf("healed %+v", h)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "cooling down after a restart: left alone",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				w.putRecord(t, "r4")
				if _, err := w.engine.Restart(context.Background(), restartOf(hostKey, coord(hostKey, "r4"))); err != nil {
					t.Fatal(err)
				}
				if err := w.lk.Delete(context.Background(), "r4"); err != nil {
					t.Fatal(err)
				}
				return coord(hostKey, "r4"), present
			},
			check: func(t *testing.T, w *world, before snapshot, h *rooms.Healed) {
				if h.Skip != rooms.HealSkipCooldown {
					t.Fatalf("healed %+v", h)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "closed by its host: never healed",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				w.putRecord(t, "r5")
				w.publishAs(t, hostKey, nostr.Tags{{"d", "r5"}, {"status", "ended"}, {"service", "https://nests.example.com"}}, epoch)
				return coord(hostKey, "r5"), present
			},
			check: func(t *testing.T, w *world, before snapshot, h *rooms.Healed) {
				if h.Skip != rooms.HealSkipClosed {
					t.Fatalf("healed %+v", h)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "another author's coordinate under the same d: not ours",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				w.putRecord(t, "r6")
				return coord(strangerKey, "r6"), present
			},
			check: func(t *testing.T, w *world, before snapshot, h *rooms.Healed) {
				if h.Skip != rooms.HealSkipNotOurs {
					t.Fatalf("healed %+v", h)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "the bot's room lost its record, heal.new_id off: not recreated",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				id := w.recreated(t, "r7")
				w.clock.Advance(2 * time.Hour) // past the record's TTL (redis.room_ttl 1h here)
				return coord(botKey, id), present
			},
			check: func(t *testing.T, w *world, before snapshot, h *rooms.Healed) {
				if h.Skip != rooms.HealSkipNewIDOff || h.Reason != rooms.HealRecordGone || h.Host != hostKey.pk {
					t.Fatalf("healed %+v", h)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "the bot's room lost its record, heal.new_id on: recreated once",
			setup: func(t *testing.T, w *world) (nostrx.Coordinate, rooms.HealOptions) {
				id := w.recreated(t, "r8")
				w.clock.Advance(2 * time.Hour) // past the record's TTL (redis.room_ttl 1h here)
				return coord(botKey, id), rooms.HealOptions{Present: true, NewID: true}
			},
			check: func(t *testing.T, w *world, _ snapshot, h *rooms.Healed) {
				if h.Action != rooms.HealRecreated || h.Result == nil || !h.Result.IsNewRoom || h.Result.Template == nil || h.Host != hostKey.pk {
					t.Fatalf("healed %+v", h)
				}
				rec, _ := w.state.Record(context.Background(), h.Result.RoomID)
				if rec == nil || rec.Host != hostKey.pk {
					t.Fatalf("new record %+v", rec)
				}
				w.clock.Advance(cooldown * 2)
				old := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: botKey.pk, D: rec.OriginalRoomID}
				again, err := w.engine.Heal(context.Background(), old, rooms.HealOptions{Present: true, NewID: true})
				if err != nil || again.Action != "" {
					t.Fatalf("second heal %+v %v, want nothing done", again, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			c, opt := tc.setup(t, w)
			before := w.snap()
			h, err := w.engine.Heal(ctx, c, opt)
			if err != nil {
				t.Fatalf("Heal: %v", err)
			}
			tc.check(t, w, before, h)
			w.noLocks(t)
		})
	}
}
