package rooms_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
	"github.com/nestbot/nestbot/rooms/memstore"
)

// Engine's decisions, table-driven against the in-memory State, LiveKit
// and relays of rooms/memstore: every case runs in milliseconds and with
// no process. The same paths run against real Redis, LiveKit and relays in
// engine_test.go, cluster_test.go and the e2e suite; memstore's
// conformance with RedisStore is checked in conformance_test.go.

var (
	botKey      = testKey("bot")
	hostKey     = testKey("host")
	adminKey    = testKey("admin")
	speakerKey  = testKey("speaker")
	strangerKey = testKey("stranger")
	epoch       = time.Unix(1_760_000_000, 0)
)

type key struct{ sk, pk string }

func testKey(label string) key {
	h := sha256.Sum256([]byte("nestbot engine table " + label))
	sk := hex.EncodeToString(h[:])
	s, err := nostrx.NewSigner(sk, 1)
	if err != nil {
		panic(err)
	}
	return key{sk, s.PublicKey()}
}

const cooldown = time.Minute

// world is one Engine over in-memory dependencies.
type world struct {
	clock  *memstore.Clock
	state  *memstore.Store
	lk     *memstore.LiveKit
	relays *memstore.Relays
	engine *rooms.Engine
}

func newWorld(t *testing.T) *world {
	t.Helper()
	bot, err := nostrx.NewSigner(botKey.sk, 16)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{clock: memstore.NewClock(epoch), lk: memstore.NewLiveKit(), relays: memstore.NewRelays()}
	w.state = memstore.New(time.Hour, w.clock.Now)
	w.engine = &rooms.Engine{
		State: w.state, LiveKit: w.lk, Events: w.relays, Signer: bot,
		Tokens: rooms.Tokens{APIKey: "key", APISecret: "a-secret-of-at-least-32-characters!!", TTL: time.Minute},
		Set: rooms.Settings{
			Relays: []string{"wss://relay.example.com"}, ServiceURL: "https://nests.example.com",
			Endpoint: "wss+livekit://lk.example.com", Cooldown: cooldown,
			// Tiny budgets: a dependency that is down is given up on at once.
			DependencyBudget: time.Millisecond, LookupTimeout: time.Second,
		},
		Now: w.clock.Now,
	}
	return w
}

func coord(author key, d string) nostrx.Coordinate {
	return nostrx.Coordinate{Kind: nostrx.KindRoom, Author: author.pk, D: d}
}

func restartOf(requester key, room nostrx.Coordinate) nostrx.Request {
	return nostrx.Request{ID: "req-" + requester.pk[:8] + "-" + room.D, Requester: requester.pk, Action: nostrx.ActionRestart, Room: room}
}

// putRecord stores the record of a room hosted by host with admin as admin
// and speaker as speaker, as the Nests API server writes it.
func (w *world) putRecord(t *testing.T, d string) {
	t.Helper()
	rec := &rooms.Record{ID: d, Host: hostKey.pk, Admins: []string{hostKey.pk, adminKey.pk},
		Speakers: []string{hostKey.pk, adminKey.pk, speakerKey.pk}, Relays: []string{"wss://relay.example.com"},
		CreatedAt: epoch.UnixMilli(), Status: rooms.StatusActive}
	if err := w.state.PutRecord(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// publishRoom publishes host's 30312 for d naming admin and speaker, with
// extra tags.
func (w *world) publishRoom(t *testing.T, d string, extra ...nostr.Tag) {
	t.Helper()
	tags := nostr.Tags{{"d", d}, {"title", "Morning"}, {"status", "live"}, {"service", "https://nests.example.com"},
		{"streaming", "wss+livekit://lk.example.com"}, {"relays", "wss://relay.example.com"},
		{"p", adminKey.pk, "", "admin"}, {"p", speakerKey.pk, "", "speaker"}}
	w.publishAs(t, hostKey, append(tags, extra...), epoch.Add(-time.Minute))
}

// publishAs publishes a 30312 with tags by author at t.
func (w *world) publishAs(t *testing.T, author key, tags nostr.Tags, at time.Time) {
	t.Helper()
	ev := nostr.Event{Kind: nostrx.KindRoom, CreatedAt: nostr.Timestamp(at.Unix()), Tags: tags}
	s, err := nostrx.NewSigner(author.sk, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	if err := w.relays.Put(&ev); err != nil {
		t.Fatal(err)
	}
}

// adopt recreates host's room d under a new ID and publishes the host's
// own event for the new room, naming only speaker: the host adopts it.
func (w *world) adopt(t *testing.T, d string) string {
	t.Helper()
	newID := w.recreated(t, d)
	w.publishAs(t, hostKey, nostr.Tags{{"d", newID}, {"title", "Mine now"}, {"status", "live"},
		{"service", "https://nests.example.com"}, {"p", speakerKey.pk, "", "speaker"}}, w.clock.Now())
	return newID
}

// snapshot is everything the dependencies hold.
type snapshot struct {
	state  map[string]string
	rooms  map[string]rooms.LiveRoom
	events int
}

func (w *world) snap() snapshot {
	return snapshot{w.state.Snapshot(), w.lk.Rooms(), w.relays.Count()}
}

func (w *world) unchanged(t *testing.T, before snapshot) {
	t.Helper()
	after := w.snap()
	if !maps.Equal(before.state, after.state) {
		t.Errorf("state changed:\nbefore %v\nafter  %v", before.state, after.state)
	}
	if !maps.Equal(before.rooms, after.rooms) {
		t.Errorf("LiveKit changed:\nbefore %v\nafter  %v", before.rooms, after.rooms)
	}
	if before.events != after.events {
		t.Errorf("relays hold %d events, were %d", after.events, before.events)
	}
}

func wantCode(t *testing.T, err error, code nostrx.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if got := nostrx.CodeOf(err); got != code {
		t.Fatalf("code %s (%v), want %s", got, err, code)
	}
}

// noLocks: every room lock was released.
func (w *world) noLocks(t *testing.T) {
	t.Helper()
	for k := range w.state.Snapshot() {
		if strings.HasSuffix(k, "}:lock") {
			t.Errorf("lock %s still held", k)
		}
	}
}

func down(string) error { return errors.New("connection refused") }

func only(ops ...string) func(string) error {
	return func(op string) error {
		for _, o := range ops {
			if o == op {
				return errors.New("connection refused")
			}
		}
		return nil
	}
}

// recreated runs a recreation of host's room d under a new ID, moves the
// clock past its cool-down, and returns the new ID.
func (w *world) recreated(t *testing.T, d string) string {
	t.Helper()
	w.publishRoom(t, d)
	res, err := w.engine.Restart(context.Background(), restartOf(hostKey, coord(hostKey, d)))
	if err != nil || !res.IsNewRoom {
		t.Fatalf("recreation: %+v %v", res, err)
	}
	w.clock.Advance(cooldown + time.Second)
	return res.RoomID
}

func TestEngineTable(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, w *world) nostrx.Request
		check func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error)
	}{
		{
			name: "restart in place: new SID, record and cool-down written, lock released",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				if _, err := w.lk.Ensure(ctx, "room-a", "{}"); err != nil {
					t.Fatal(err)
				}
				return restartOf(hostKey, coord(hostKey, "room-a"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				old := before.rooms["room-a"].SID
				now := w.lk.Rooms()["room-a"]
				if res.Message != rooms.MsgRestarted || res.RoomID != "room-a" || res.IsNewRoom || res.SID == old || now.SID != res.SID || res.Token == "" {
					t.Fatalf("result %+v; LiveKit room %+v, old SID %s", res, now, old)
				}
				rec, _ := w.state.Record(ctx, "room-a")
				if rec == nil || rec.RestartedAt != epoch.UnixMilli() || rec.Host != hostKey.pk {
					t.Fatalf("record %+v", rec)
				}
				if cooling, _ := w.state.CoolingDown(ctx, "room-a"); !cooling {
					t.Fatal("no cool-down after a restart")
				}
				if _, marked, _ := w.state.Recreating(ctx, "room-a"); marked {
					t.Fatal("recreation mark kept after the commit")
				}
				if w.relays.Count() != 0 {
					t.Fatal("a room event was published for a room the bot does not own")
				}
				w.noLocks(t)
			},
		},
		{
			name: "restart in place by an admin, LiveKit room already gone",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-b")
				return restartOf(adminKey, coord(hostKey, "room-b"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if now, ok := w.lk.Rooms()["room-b"]; !ok || now.SID != res.SID || res.Message != rooms.MsgRestarted {
					t.Fatalf("result %+v, LiveKit %+v", res, w.lk.Rooms())
				}
			},
		},
		{
			name: "new ID when the record is gone: record, replacement, event, LiveKit room",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-g")
				return restartOf(adminKey, coord(hostKey, "room-g"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				old := coord(hostKey, "room-g")
				if !res.IsNewRoom || res.RoomID == "room-g" || res.OriginalRoomID != "room-g" || res.Message != rooms.MsgRecreated || res.Template == nil {
					t.Fatalf("result %+v", res)
				}
				rec, _ := w.state.Record(ctx, res.RoomID)
				if rec == nil || rec.Host != adminKey.pk || !rec.IsRecreated || rec.OriginalRoomID != "room-g" || rec.RoleOf(hostKey.pk) != nostrx.RoleAdmin {
					t.Fatalf("new record %+v", rec)
				}
				if id, _ := w.state.Replacement(ctx, old); id != res.RoomID {
					t.Fatalf("replacement %q, want %q", id, res.RoomID)
				}
				if _, ok := w.state.Snapshot()[w.state.Keys().Pending(old)]; ok {
					t.Fatal("pending choice kept after the commit")
				}
				ev := w.relays.Event(res.Room)
				if ev == nil || res.Room.Author != w.engine.Signer.PublicKey() {
					t.Fatalf("bot's event at %s: %v", res.Room, ev)
				}
				if a := ev.Tags.Find("a"); a == nil || a[1] != old.String() {
					t.Fatalf("new event does not point at the old room: %v", ev.Tags)
				}
				if room, ok := w.lk.Rooms()[res.RoomID]; !ok || room.SID != res.SID {
					t.Fatalf("LiveKit %+v, SID %s", w.lk.Rooms(), res.SID)
				}
				w.noLocks(t)
			},
		},
		{
			name: "new ID for the coordinate's author when no event is found",
			setup: func(t *testing.T, w *world) nostrx.Request {
				return restartOf(hostKey, coord(hostKey, "room-n"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil || !res.IsNewRoom {
					t.Fatalf("%+v %v", res, err)
				}
				if rec, _ := w.state.Record(ctx, res.RoomID); rec == nil || rec.Host != hostKey.pk {
					t.Fatalf("record %+v", rec)
				}
			},
		},
		{
			name: "pending ID resumed: the same new room, not counted again",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-p")
				old := coord(hostKey, "room-p")
				// An earlier recreation chose its ID and made its LiveKit
				// room, then stopped; this minute's budget is spent.
				if _, _, err := w.state.ChoosePendingLast(ctx, old, "resumed-id", time.Hour); err != nil {
					t.Fatal(err)
				}
				if _, err := w.lk.Ensure(ctx, "resumed-id", "{}"); err != nil {
					t.Fatal(err)
				}
				w.engine.Set.NewRoomsPerMinute = 1
				if _, err := w.state.CountNewRoom(ctx, epoch); err != nil {
					t.Fatal(err)
				}
				return restartOf(hostKey, old)
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if res.RoomID != "resumed-id" || res.SID != before.rooms["resumed-id"].SID {
					t.Fatalf("resumed into %s (SID %s), want resumed-id (SID %s)", res.RoomID, res.SID, before.rooms["resumed-id"].SID)
				}
				if id, _ := w.state.Replacement(ctx, coord(hostKey, "room-p")); id != "resumed-id" {
					t.Fatalf("replacement %q", id)
				}
			},
		},
		{
			name: "replaced room: a request for the old room restarts its replacement",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.recreated(t, "room-r")
				return restartOf(hostKey, coord(hostKey, "room-r"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				newID, _ := w.state.Replacement(ctx, coord(hostKey, "room-r"))
				if newID == "" || res.RoomID != newID || !res.IsNewRoom || res.OriginalRoomID != "room-r" || res.Message != rooms.MsgRestarted {
					t.Fatalf("result %+v, replacement %q", res, newID)
				}
				if res.SID == before.rooms[newID].SID || w.lk.Rooms()[newID].SID != res.SID {
					t.Fatalf("replacement not recreated: SID %s, before %s", res.SID, before.rooms[newID].SID)
				}
				if _, ok := w.lk.Rooms()["room-r"]; ok {
					t.Fatal("a LiveKit room appeared under the old ID")
				}
				if ev := w.relays.Event(res.Room); ev == nil || ev.CreatedAt <= nostr.Timestamp(epoch.Unix()) {
					t.Fatalf("bot's event not republished: %v", ev)
				}
			},
		},
		{
			name: "cool-down: the room is not recreated again, the token is given",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-c")
				if _, err := w.engine.Restart(ctx, restartOf(hostKey, coord(hostKey, "room-c"))); err != nil {
					t.Fatal(err)
				}
				w.clock.Advance(cooldown - time.Second)
				return restartOf(adminKey, coord(hostKey, "room-c"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if res.Message != rooms.MsgCoolDown || res.SID != "" || res.Token == "" {
					t.Fatalf("result %+v", res)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "cool-down over: restarted again",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-o")
				if _, err := w.engine.Restart(ctx, restartOf(hostKey, coord(hostKey, "room-o"))); err != nil {
					t.Fatal(err)
				}
				w.clock.Advance(cooldown)
				return restartOf(hostKey, coord(hostKey, "room-o"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil || res.Message != rooms.MsgRestarted || res.SID == before.rooms["room-o"].SID {
					t.Fatalf("%+v %v", res, err)
				}
			},
		},
		{
			name: "adopted room: the bot's version is closed once, pointing at the host's",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.adopt(t, "room-ad")
				return restartOf(hostKey, coord(hostKey, "room-ad"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if err != nil {
					t.Fatal(err)
				}
				newID, _ := w.state.Replacement(ctx, coord(hostKey, "room-ad"))
				hostRoom := coord(hostKey, newID)
				if res.Room.String() != hostRoom.String() || res.RoomID != newID {
					t.Fatalf("answered for %v, want the host's %v", res.Room, hostRoom)
				}
				botEv := w.relays.Event(nostrx.Coordinate{Kind: nostrx.KindRoom, Author: w.engine.Signer.PublicKey(), D: newID})
				spec, err := nostrx.SpecFromEvent(botEv)
				if err != nil || spec.Status != nostrx.StatusClosed || spec.AdoptedBy == nil || spec.AdoptedBy.String() != hostRoom.String() {
					t.Fatalf("bot's version %v: %+v %v", botEv.Tags, spec, err)
				}
				if owned := w.state.Snapshot()[w.state.Keys().Owned()]; strings.Contains(owned, newID) {
					t.Fatalf("the bot still looks after %s: %q", newID, owned)
				}
				// The host's event now decides: its record lost the admin.
				if rec, _ := w.state.Record(ctx, newID); rec == nil || rec.RoleOf(adminKey.pk) != nostrx.RoleNone {
					t.Fatalf("record after adoption %+v", rec)
				}
			},
		},
		{
			name: "refused: an admin the host's own event dropped (adopted room)",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.adopt(t, "room-ad")
				return restartOf(adminKey, coord(hostKey, "room-ad"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: a stranger on a room with a record",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-s")
				return restartOf(strangerKey, coord(hostKey, "room-s"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: a speaker is not host or admin",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-s")
				return restartOf(speakerKey, coord(hostKey, "room-s"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: no record, no room event, and not the coordinate's author",
			setup: func(t *testing.T, w *world) nostrx.Request {
				return restartOf(adminKey, coord(hostKey, "room-x"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: the room event names the requester only as a speaker",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-e")
				return restartOf(speakerKey, coord(hostKey, "room-e"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: an expired room event proves no role (NIP-40)",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-x", nostr.Tag{"expiration", strconv.FormatInt(epoch.Unix()-1, 10)})
				return restartOf(adminKey, coord(hostKey, "room-x"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: hosted elsewhere",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.engine.Set.Hosted = []string{"https://other-nests.example.org"}
				w.publishRoom(t, "room-h")
				return restartOf(hostKey, coord(hostKey, "room-h"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeNotFound)
				if !strings.Contains(err.Error(), "hosted elsewhere") {
					t.Fatalf("message %q", err)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "refused: this minute's new-room budget is spent",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.engine.Set.NewRoomsPerMinute = 1
				if _, err := w.state.CountNewRoom(ctx, epoch); err != nil {
					t.Fatal(err)
				}
				w.publishRoom(t, "room-l")
				return restartOf(hostKey, coord(hostKey, "room-l"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeRateLimited)
				// Only the counter moved.
				after := w.snap()
				delete(after.state, w.state.Keys().NewRooms(epoch.Unix()/60))
				delete(before.state, w.state.Keys().NewRooms(epoch.Unix()/60))
				if !maps.Equal(before.state, after.state) || len(after.rooms) != 0 || after.events != before.events {
					t.Fatalf("changed: %v", after)
				}
			},
		},
		{
			name: "Redis down: UNAVAILABLE, nothing changed",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-d")
				if _, err := w.lk.Ensure(ctx, "room-d", "{}"); err != nil {
					t.Fatal(err)
				}
				w.state.Fail = down
				return restartOf(hostKey, coord(hostKey, "room-d"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnavailable)
				if !errors.Is(err, rooms.ErrUnavailable) || errors.Is(err, rooms.ErrIncomplete) {
					t.Fatalf("error %v", err)
				}
				w.state.Fail = nil
				w.unchanged(t, before)
			},
		},
		{
			name: "Redis answers the lock but not the record: UNAVAILABLE, lock released",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-d")
				w.state.Fail = only("record")
				return restartOf(hostKey, coord(hostKey, "room-d"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnavailable)
				w.unchanged(t, before)
			},
		},
		{
			name: "LiveKit down on a restart in place: UNAVAILABLE, nothing changed",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-d")
				if _, err := w.lk.Ensure(ctx, "room-d", "{}"); err != nil {
					t.Fatal(err)
				}
				w.lk.Fail = down
				return restartOf(hostKey, coord(hostKey, "room-d"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnavailable)
				if errors.Is(err, rooms.ErrIncomplete) {
					t.Fatalf("nothing public changed, yet %v", err)
				}
				w.unchanged(t, before)
			},
		},
		{
			name: "LiveKit down on a recreation: UNAVAILABLE, no record, room or event",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-d")
				w.lk.Fail = down
				return restartOf(hostKey, coord(hostKey, "room-d"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnavailable)
				after := w.snap()
				for k := range after.state {
					if strings.HasPrefix(k, "nest:") || strings.Contains(k, ":replaced:") || strings.Contains(k, ":event") {
						t.Errorf("wrote %s", k)
					}
				}
				if len(after.rooms) != 0 || after.events != before.events {
					t.Fatalf("LiveKit %v, %d events", after.rooms, after.events)
				}
				w.noLocks(t)
			},
		},
		{
			name: "LiveKit dies after deleting the room: incomplete, and the retry finishes it",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-k")
				if _, err := w.lk.Ensure(ctx, "room-k", "{}"); err != nil {
					t.Fatal(err)
				}
				w.lk.Fail = only("create")
				return restartOf(hostKey, coord(hostKey, "room-k"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if !errors.Is(err, rooms.ErrIncomplete) {
					t.Fatalf("error %v, want ErrIncomplete", err)
				}
				oldRoom := before.rooms["room-k"]
				oldSID := oldRoom.SID
				// The mark holds a time after the deleted room's creation
				// (LiveKit's clock), so that room does not pass for new.
				if mark, marked, _ := w.state.Recreating(ctx, "room-k"); !marked || !strings.HasPrefix(mark, "at:") || rooms.ParseMark(mark).IsNew(&oldRoom) {
					t.Fatalf("mark %q %v, want a time after room %+v", mark, marked, oldRoom)
				}
				if _, ok := w.lk.Rooms()["room-k"]; ok {
					t.Fatal("LiveKit still has the room")
				}
				w.lk.Fail = nil
				again, err := w.engine.Restart(ctx, restartOf(hostKey, coord(hostKey, "room-k")))
				if err != nil || again.SID == oldSID || w.lk.Rooms()["room-k"].SID != again.SID {
					t.Fatalf("retry: %+v %v", again, err)
				}
				if _, marked, _ := w.state.Recreating(ctx, "room-k"); marked {
					t.Fatal("mark kept")
				}
			},
		},
		{
			name: "relays refuse the new room's event: incomplete, and the retry finishes the same room",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-q")
				w.relays.Fail = only("publish")
				return restartOf(hostKey, coord(hostKey, "room-q"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				if !errors.Is(err, rooms.ErrIncomplete) || nostrx.CodeOf(err) != nostrx.CodeUnavailable {
					t.Fatalf("error %v (%s), want ErrIncomplete and UNAVAILABLE", err, nostrx.CodeOf(err))
				}
				old := coord(hostKey, "room-q")
				pending := w.state.Snapshot()[w.state.Keys().Pending(old)]
				if pending == "" || len(w.lk.Rooms()) != 1 {
					t.Fatalf("pending %q, LiveKit %v", pending, w.lk.Rooms())
				}
				if id, _ := w.state.Replacement(ctx, old); id != "" {
					t.Fatalf("replacement %q written before the event was published", id)
				}
				w.relays.Fail = nil
				again, err := w.engine.Restart(ctx, restartOf(hostKey, old))
				if err != nil || again.RoomID != pending || w.relays.Event(again.Room) == nil {
					t.Fatalf("retry: %+v %v (pending %s)", again, err, pending)
				}
			},
		},
		{
			name: "relays do not answer the look-up: only the author may recreate",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.publishRoom(t, "room-u")
				w.relays.Fail = only("latest")
				return restartOf(adminKey, coord(hostKey, "room-u"))
			},
			check: func(t *testing.T, w *world, before snapshot, res *rooms.Result, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
				w.unchanged(t, before)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			req := tt.setup(t, w)
			before := w.snap()
			res, err := w.engine.Restart(ctx, req)
			tt.check(t, w, before, res, err)
		})
	}
}

func statusOf(requester key, room nostrx.Coordinate) nostrx.Request {
	r := restartOf(requester, room)
	r.Action = nostrx.ActionStatus
	return r
}

func TestEngineStatusTable(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, w *world) nostrx.Request
		check func(t *testing.T, w *world, res *nostrx.StatusResult, err error)
	}{
		{
			name: "a live room with its record",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				if _, err := w.lk.Ensure(ctx, "room-a", "{}"); err != nil {
					t.Fatal(err)
				}
				return statusOf(adminKey, coord(hostKey, "room-a"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				if err != nil || !res.Live || !res.Record || res.RoomID != "room-a" {
					t.Fatalf("%+v %v", res, err)
				}
			},
		},
		{
			name: "a record without a LiveKit room",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				return statusOf(hostKey, coord(hostKey, "room-a"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				if err != nil || res.Live || !res.Record {
					t.Fatalf("%+v %v", res, err)
				}
			},
		},
		{
			name: "the replacement of a recreated room",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.recreated(t, "room-r")
				return statusOf(hostKey, coord(hostKey, "room-r"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				newID, _ := w.state.Replacement(ctx, coord(hostKey, "room-r"))
				if err != nil || res.RoomID != newID || !res.Live || !res.Record {
					t.Fatalf("%+v %v, want %s", res, err, newID)
				}
			},
		},
		{
			name: "refused to a stranger",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				return statusOf(strangerKey, coord(hostKey, "room-a"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				wantCode(t, err, nostrx.CodeUnauthorized)
			},
		},
		{
			name: "another coordinate's room under the same d says nothing of it",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				if _, err := w.lk.Ensure(ctx, "room-a", `{"host":"`+hostKey.pk+`"}`); err != nil {
					t.Fatal(err)
				}
				return statusOf(strangerKey, coord(strangerKey, "room-a"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				if err != nil || res.Live || res.Record {
					t.Fatalf("%+v %v", res, err)
				}
			},
		},
		{
			name: "LiveKit down: UNAVAILABLE",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				w.lk.Fail = down
				return statusOf(hostKey, coord(hostKey, "room-a"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				wantCode(t, err, nostrx.CodeUnavailable)
			},
		},
		{
			name: "Redis down: UNAVAILABLE",
			setup: func(t *testing.T, w *world) nostrx.Request {
				w.putRecord(t, "room-a")
				w.state.Fail = down
				return statusOf(hostKey, coord(hostKey, "room-a"))
			},
			check: func(t *testing.T, w *world, res *nostrx.StatusResult, err error) {
				wantCode(t, err, nostrx.CodeUnavailable)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			req := tt.setup(t, w)
			before := w.snap()
			res, err := w.engine.Status(ctx, req)
			tt.check(t, w, res, err)
			w.state.Fail = nil
			w.unchanged(t, before) // a status request writes nothing
		})
	}
}
