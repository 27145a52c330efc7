package heal

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Fast checks of the healer's screening, bounds and hand-off with fakes;
// the real stack is in e2e/heal_test.go.

type fakeStore struct {
	mu      sync.Mutex
	records map[string]*rooms.Record
	lasts   map[string]*nostr.Event
	reads   int
}

func (f *fakeStore) Record(_ context.Context, id string) (*rooms.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.records[id], nil
}

func (f *fakeStore) LastEvent(_ context.Context, d string) (*nostr.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.lasts[d], nil
}

func (f *fakeStore) CountHeal(context.Context, time.Time) (int64, error) { return 1, nil }

type fakeLiveKit map[string]*rooms.LiveRoom

func (f fakeLiveKit) List(_ context.Context, names []string) ([]*rooms.LiveRoom, error) {
	var out []*rooms.LiveRoom
	for _, n := range names {
		if r := f[n]; r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

type fakeEngine struct {
	calls  map[string]rooms.HealOptions
	result func(c nostrx.Coordinate) *rooms.Healed
}

func (f *fakeEngine) Heal(_ context.Context, c nostrx.Coordinate, opt rooms.HealOptions) (*rooms.Healed, error) {
	f.calls[c.D] = opt
	return f.result(c), nil
}

type key struct {
	sk, pk string
}

func newKey(t *testing.T) key {
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return key{sk, pk}
}

func presenceEvent(t *testing.T, k key, a string, at time.Time) *nostr.Event {
	ev := &nostr.Event{Kind: KindPresence, CreatedAt: nostr.Timestamp(at.Unix()), Tags: nostr.Tags{{"a", a, "wss://r.example", "root"}}}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func newHealer(bot string, st *fakeStore) *Healer {
	h := &Healer{Bot: bot, Store: st, Set: Settings{PresenceTTL: 5 * time.Minute, MinPresent: 1, MaxPerMinute: 10, Interval: time.Second, MaxRooms: 4, DependencyTimeout: time.Second}}
	h.Register(prometheus.NewRegistry())
	return h
}

var anyFilter = nostr.Filters{{Kinds: []int{KindPresence}}}

func TestTakeScreensPresence(t *testing.T) {
	now := time.Now()
	bot, host, other, p1, p2 := newKey(t), newKey(t), newKey(t), newKey(t), newKey(t)
	st := &fakeStore{
		records: map[string]*rooms.Record{"ours": {ID: "ours", Host: host.pk}, "botroom": {ID: "botroom", Host: host.pk}},
		lasts:   map[string]*nostr.Event{"botroom": {PubKey: bot.pk}},
	}
	h := newHealer(bot.pk, st)
	ctx := context.Background()
	ours := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host.pk, D: "ours"}
	stranger := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: other.pk, D: "ours"} // same d, another author
	botRoom := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot.pk, D: "botroom"}

	bad := presenceEvent(t, p2, ours.String(), now)
	bad.Sig = presenceEvent(t, p2, ours.String(), now.Add(-time.Second)).Sig
	for _, ev := range []*nostr.Event{
		presenceEvent(t, p1, ours.String(), now.Add(-10*time.Minute)), // stale
		presenceEvent(t, p1, ours.String(), now.Add(5*time.Minute)),   // from the future
		presenceEvent(t, p1, stranger.String(), now),                  // another author's coordinate
		presenceEvent(t, p1, "30311:"+host.pk+":ours", now),           // not a room
		presenceEvent(t, p1, "30312:"+host.pk+":"+"bad d!", now),      // unreadable coordinate
		bad, // signature of another event
	} {
		h.take(ctx, ev, anyFilter)
	}
	if n := h.Present(ours); n != 0 {
		t.Fatalf("junk counted as presence: %d", n)
	}
	if n := h.Present(stranger); n != 0 {
		t.Fatalf("a stranger's coordinate counted: %d", n)
	}
	h.take(ctx, presenceEvent(t, p1, ours.String(), now), anyFilter)
	h.take(ctx, presenceEvent(t, p1, ours.String(), now), anyFilter) // the same pubkey again
	h.take(ctx, presenceEvent(t, p2, ours.String(), now.Add(-time.Minute)), anyFilter)
	h.take(ctx, presenceEvent(t, p1, botRoom.String(), now), anyFilter)
	if n := h.Present(ours); n != 2 {
		t.Fatalf("present in our room: %d, want 2", n)
	}
	if n := h.Present(botRoom); n != 1 {
		t.Fatalf("present in the bot's room: %d, want 1", n)
	}
	// "ours" is cached: later events of the same room do not read Redis.
	reads := st.reads
	for range 20 {
		h.take(ctx, presenceEvent(t, p1, stranger.String(), now), anyFilter)
	}
	if st.reads != reads {
		t.Fatalf("%d Redis reads for a room already looked up", st.reads-reads)
	}
}

func TestPresenceBounded(t *testing.T) {
	now := time.Now()
	var s seen
	s.at = map[string]time.Time{}
	for i := range 3 * maxPubkeysPerRoom {
		s.add(fmt.Sprintf("%064d", i), now.Add(time.Duration(i)*time.Second))
	}
	if n := s.fresh(now.Add(-time.Hour)); n != maxPubkeysPerRoom {
		t.Fatalf("%d pubkeys kept, want %d", n, maxPubkeysPerRoom)
	}
	// The newest are the ones kept.
	if _, ok := s.at[fmt.Sprintf("%064d", 3*maxPubkeysPerRoom-1)]; !ok {
		t.Fatal("the newest pubkey was dropped")
	}

	bot, host, p := newKey(t), newKey(t), newKey(t)
	st := &fakeStore{records: map[string]*rooms.Record{}}
	for i := range 10 {
		d := fmt.Sprintf("room%d", i)
		st.records[d] = &rooms.Record{ID: d, Host: host.pk}
	}
	h := newHealer(bot.pk, st) // MaxRooms 4
	for i := range 10 {
		c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host.pk, D: fmt.Sprintf("room%d", i)}
		h.take(context.Background(), presenceEvent(t, p, c.String(), now), anyFilter)
	}
	if n := h.presence.Len(); n != 4 {
		t.Fatalf("presence table holds %d rooms, want heal.max_rooms = 4", n)
	}
}

// TestTickHandsBrokenRooms: only occupied rooms that look broken reach the
// engine, with Present set; a heal is counted and told once.
func TestTickHandsBrokenRooms(t *testing.T) {
	now := time.Now()
	bot, host, p := newKey(t), newKey(t), newKey(t)
	rec := func(d string) *rooms.Record { return &rooms.Record{ID: d, Host: host.pk} }
	st := &fakeStore{records: map[string]*rooms.Record{"missing": rec("missing"), "bare": rec("bare"), "fine": rec("fine"), "empty": rec("empty")}}
	h := newHealer(bot.pk, st)
	h.LiveKit = fakeLiveKit{
		"bare":  {Name: "bare", SID: "RM_bare"},
		"fine":  {Name: "fine", SID: "RM_fine", Metadata: `{"nestId":"fine","host":"` + host.pk + `"}`},
		"empty": {Name: "empty", SID: "RM_empty"},
	}
	eng := &fakeEngine{calls: map[string]rooms.HealOptions{}, result: func(c nostrx.Coordinate) *rooms.Healed {
		return &rooms.Healed{Reason: rooms.HealLiveKitMissing, Action: rooms.HealRestarted, Host: c.Author, Room: c}
	}}
	h.Engine = eng
	told := 0
	h.Notify = func(context.Context, *rooms.Healed, int) error { told++; return nil }
	for _, d := range []string{"missing", "bare", "fine"} {
		c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host.pk, D: d}
		h.take(context.Background(), presenceEvent(t, p, c.String(), now), anyFilter)
	}
	h.tick(context.Background())
	if len(eng.calls) != 2 || !eng.calls["missing"].Present || !eng.calls["bare"].Present || eng.calls["missing"].Allow == nil {
		t.Fatalf("engine called for %v, want missing and bare with Present and a budget", eng.calls)
	}
	if told != 2 {
		t.Fatalf("told %d hosts, want 2", told)
	}
	if n := testutil.ToFloat64(h.heals.WithLabelValues(rooms.HealLiveKitMissing, "healed")); n != 2 {
		t.Fatalf("heals counted %v", n)
	}
	if n := testutil.ToFloat64(h.checks.WithLabelValues("ok")); n != 1 {
		t.Fatalf("passes counted %v", n)
	}
}

type countingStore struct {
	fakeStore
	n int64
}

func (c *countingStore) CountHeal(context.Context, time.Time) (int64, error) { c.n++; return c.n, nil }

// TestTickBudget: heal.max_per_minute is asked right before each repair;
// a refused repair is counted rate_limited, and nobody is told.
func TestTickBudget(t *testing.T) {
	now := time.Now()
	bot, host, p := newKey(t), newKey(t), newKey(t)
	st := &countingStore{fakeStore: fakeStore{records: map[string]*rooms.Record{}}}
	for _, d := range []string{"a", "b", "c"} {
		st.records[d] = &rooms.Record{ID: d, Host: host.pk}
	}
	h := &Healer{Bot: bot.pk, Store: st, LiveKit: fakeLiveKit{},
		Set: Settings{PresenceTTL: 5 * time.Minute, MinPresent: 1, MaxPerMinute: 2, Interval: time.Second, MaxRooms: 8, DependencyTimeout: time.Second}}
	h.Register(prometheus.NewRegistry())
	h.Engine = engineFunc(func(ctx context.Context, c nostrx.Coordinate, opt rooms.HealOptions) (*rooms.Healed, error) {
		h := &rooms.Healed{Reason: rooms.HealLiveKitMissing, Host: c.Author, Room: c}
		if ok, err := opt.Allow(ctx); err != nil || !ok {
			h.Skip = rooms.HealSkipRateLimited
			return h, err
		}
		h.Action = rooms.HealRestarted
		return h, nil
	})
	told := 0
	h.Notify = func(context.Context, *rooms.Healed, int) error { told++; return nil }
	for _, d := range []string{"a", "b", "c"} {
		c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host.pk, D: d}
		h.take(context.Background(), presenceEvent(t, p, c.String(), now), anyFilter)
	}
	h.tick(context.Background())
	healed := testutil.ToFloat64(h.heals.WithLabelValues(rooms.HealLiveKitMissing, "healed"))
	limited := testutil.ToFloat64(h.heals.WithLabelValues(rooms.HealLiveKitMissing, "rate_limited"))
	if healed != 2 || limited != 1 || told != 2 {
		t.Fatalf("healed %v, rate_limited %v, told %d; want 2, 1, 2", healed, limited, told)
	}
}

type engineFunc func(ctx context.Context, c nostrx.Coordinate, opt rooms.HealOptions) (*rooms.Healed, error)

func (f engineFunc) Heal(ctx context.Context, c nostrx.Coordinate, opt rooms.HealOptions) (*rooms.Healed, error) {
	return f(ctx, c, opt)
}

// TestFinishedRoomNeedsNewPresence: a room LiveKit itself finished (room_finished
// webhook) is not healed on presence from before; presence published after
// it is someone still there, and the room is healed.
func TestFinishedRoomNeedsNewPresence(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	clock := t0
	bot, host, p := newKey(t), newKey(t), newKey(t)
	st := &fakeStore{records: map[string]*rooms.Record{"r": {ID: "r", Host: host.pk}}}
	h := newHealer(bot.pk, st)
	h.Now = func() time.Time { return clock }
	h.LiveKit = fakeLiveKit{}
	eng := &fakeEngine{calls: map[string]rooms.HealOptions{}, result: func(c nostrx.Coordinate) *rooms.Healed {
		return &rooms.Healed{Reason: rooms.HealLiveKitMissing, Action: rooms.HealRestarted, Host: c.Author, Room: c}
	}}
	h.Engine = eng
	h.Notify = func(context.Context, *rooms.Healed, int) error { return nil }
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host.pk, D: "r"}

	h.take(context.Background(), presenceEvent(t, p, c.String(), t0.Add(-time.Minute)), anyFilter)
	h.Webhook(&livekit.WebhookEvent{Event: webhook.EventRoomFinished, Room: &livekit.Room{Name: "r"}})
	h.tick(context.Background())
	if len(eng.calls) != 0 {
		t.Fatal("a room LiveKit finished was healed on presence from before")
	}
	clock = t0.Add(10 * time.Second)
	h.take(context.Background(), presenceEvent(t, p, c.String(), t0.Add(5*time.Second)), anyFilter)
	h.tick(context.Background())
	if _, ok := eng.calls["r"]; !ok {
		t.Fatal("presence after the finish did not heal the room")
	}
}

// BenchmarkTakeForeign is the cost of a presence event for another
// deployment's room once that room is known not to be ours: what a busy
// public relay's presence traffic costs the bot per event, after the
// relay client decoded it.
func BenchmarkTakeForeign(b *testing.B) {
	bot, host, p := newKey(&testing.T{}), newKey(&testing.T{}), newKey(&testing.T{})
	h := newHealer(bot.pk, &fakeStore{records: map[string]*rooms.Record{}})
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host.pk, D: "3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b"}
	ev := presenceEvent(&testing.T{}, p, c.String(), time.Now())
	h.take(context.Background(), ev, anyFilter) // looked up once, not ours
	b.ReportAllocs()
	for b.Loop() {
		h.take(context.Background(), ev, anyFilter)
	}
}
