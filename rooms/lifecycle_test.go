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
	rdb.Set(ctx, "nb*:{broken}:event", "{not json", 0)
	rdb.Set(ctx, "nbx:{other-prefix}:event", "{}", 0) // must not match the escaped prefix
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
	if err := s.Commit(ctx, Writes{Replaced: &ca, ReplacedBy: "a2", ReplacementTTL: time.Hour}, nil); err != nil {
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
