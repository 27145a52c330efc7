package rooms

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

func TestSpecFromEventRoundTrip(t *testing.T) {
	orig := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(9), D: "old-room"}
	succ := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(8), D: "new-room"}
	specs := map[string]nostrx.RoomSpec{
		"full": {
			D: "room-1", Title: "Friday Nest", Summary: "weekly", Image: "https://x.example/i.png", Color: "#123456",
			Topics: []string{"nostr", "audio"}, Status: nostrx.StatusOpen, Service: "https://nests.example/api/v1/nests",
			Streaming: "wss+livekit://lk.example", Starts: 1760000000, Relays: []string{"wss://a.example", "wss://b.example"},
			Host: hexKey(1), Admins: []string{hexKey(2), hexKey(3)}, Speakers: []string{hexKey(4)}, Replaces: &orig,
		},
		"minimal, default title": {D: "room-2", Starts: 5, Host: hexKey(1)},
		"closed with successor":  {D: "room-3", Title: "T", Status: nostrx.StatusClosed, Starts: 7, Host: hexKey(1), Replaces: &orig, Successor: &succ},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			ev := nostrx.BuildRoomEvent(spec, 100)
			got, err := SpecFromEvent(&ev)
			if err != nil {
				t.Fatal(err)
			}
			again := nostrx.BuildRoomEvent(got, 100)
			if !reflect.DeepEqual(again.Tags, ev.Tags) {
				t.Fatalf("tags changed on the round trip:\n got  %v\n want %v", again.Tags, ev.Tags)
			}
		})
	}
}

func TestSpecFromEventClose(t *testing.T) {
	orig := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(9), D: "old-room"}
	open := nostrx.BuildRoomEvent(nostrx.RoomSpec{D: "r", Title: "Nest", Starts: 3, Host: hexKey(1), Replaces: &orig}, 10)
	spec, err := SpecFromEvent(&open)
	if err != nil {
		t.Fatal(err)
	}
	succ := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(2), D: "next"}
	spec.Status, spec.Successor = nostrx.StatusClosed, &succ
	closed := nostrx.BuildRoomEvent(spec, 11)
	if st := closed.Tags.Find("status"); st[1] != "closed" {
		t.Fatalf("status %v", st)
	}
	var as []nostr.Tag
	for a := range closed.Tags.FindAll("a") {
		as = append(as, a)
	}
	if len(as) != 2 || as[0][1] != orig.String() || len(as[0]) != 2 ||
		!slices.Equal(as[1], nostr.Tag{"a", succ.String(), "", "successor"}) {
		t.Fatalf("a tags %v", as)
	}
	if alt := closed.Tags.Find("alt"); alt[1] != "Closed audio room: Nest" {
		t.Fatalf("alt %v", alt)
	}
}

func TestSpecFromEventRejects(t *testing.T) {
	for _, ev := range []nostr.Event{
		{Kind: 1, Tags: nostr.Tags{{"d", "x"}}},
		{Kind: nostrx.KindRoom},
	} {
		if _, err := SpecFromEvent(&ev); err == nil {
			t.Errorf("%v: no error", ev)
		}
	}
}

func TestNextCreatedAtExported(t *testing.T) {
	now := time.Unix(1000, 0)
	if NextCreatedAt(now, &nostr.Event{CreatedAt: 1000}) != 1001 || NextCreatedAt(now, nil) != 1000 {
		t.Fatal("NextCreatedAt differs from the engine's rule")
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f:`); got != `a\*b\?c\[d\]e\\f:` {
		t.Fatalf("globEscape = %q", got)
	}
}

// TestOwnedIndex runs the index and batch reads against a real Redis.
func TestOwnedIndex(t *testing.T) {
	r := stack.StartRedis(t)
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := NewRedisStore(rdb, "nest:", "nb*:", time.Hour) // a prefix with a glob character

	if err := s.AddOwned(ctx, "a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddOwned(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveOwned(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	owned, err := s.Owned(ctx)
	slices.Sort(owned)
	if err != nil || !slices.Equal(owned, []string{"a", "c"}) {
		t.Fatalf("Owned = %v, %v", owned, err)
	}

	ev := nostrx.BuildRoomEvent(nostrx.RoomSpec{D: "a", Starts: 1, Host: hexKey(1)}, 42)
	if err := s.SaveEvent(ctx, &ev); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, "nb*:event:broken", "{not json", 0)
	rdb.Set(ctx, "nbx:event:other-prefix", "{}", 0) // must not match the escaped prefix
	got, err := s.LastEvents(ctx, []string{"a", "c", "broken"})
	if err != nil || len(got) != 1 || got["a"] == nil || got["a"].CreatedAt != 42 {
		t.Fatalf("LastEvents = %v, %v", got, err)
	}
	if got, err := s.LastEvents(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("LastEvents(nil) = %v, %v", got, err)
	}

	rooms, err := s.EventRooms(ctx)
	slices.Sort(rooms)
	if err != nil || !slices.Equal(rooms, []string{"a", "broken"}) {
		t.Fatalf("EventRooms = %v, %v", rooms, err)
	}

	bot := hexKey(7)
	ca := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot, D: "a"}
	cc := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot, D: "c"}
	if err := s.SetReplacement(ctx, ca, "a2", time.Hour); err != nil {
		t.Fatal(err)
	}
	repl, err := s.Replacements(ctx, []nostrx.Coordinate{ca, cc})
	if err != nil || !reflect.DeepEqual(repl, map[string]string{"a": "a2"}) {
		t.Fatalf("Replacements = %v, %v", repl, err)
	}

	r.Kill()
	if _, err := s.Owned(ctx); err == nil {
		t.Fatal("Owned answered with Redis down")
	}
	if _, err := s.LastEvents(ctx, []string{"a"}); err == nil {
		t.Fatal("LastEvents answered with Redis down")
	}
}
