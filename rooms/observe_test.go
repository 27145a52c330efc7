package rooms

import (
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/nostrx"
)

// CountRoundTrips sees each round trip once, named by what it was, and a
// restart's batched steps stay one round trip each on a single server:
// LockView (the lock and five reads) is one pipeline, Commit (record,
// cool-down and unlock) one transaction.
func TestCountRoundTrips(t *testing.T) {
	s, _ := pipelineStore(t)
	ctx := ctxFor(t)
	var mu sync.Mutex
	seen := map[string]int{}
	s.CountRoundTrips(func(what string) { mu.Lock(); seen[what]++; mu.Unlock() })
	took := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		c := maps.Clone(seen)
		clear(seen)
		// A new connection's handshake counts too (once per connection
		// of the pool); it is not a step of the store.
		for _, h := range []string{"hello", "client", "pipeline:client", "auth", "select"} {
			delete(c, h)
		}
		return c
	}

	// The claim and the requester's rate count: one script, counted only
	// when the claim is taken.
	now := time.Now()
	// The first run of a script on a server loads it (EVALSHA, NOSCRIPT,
	// EVAL); every later one is one EVALSHA.
	if _, _, err := s.ClaimCounted(ctx, "req-claim-warm", "owner1", time.Minute, time.Minute, true, hexKey(8), now); err != nil {
		t.Fatal(err)
	}
	took()
	for i, want := range []struct {
		res   string
		count int64
	}{{"acquired", 1}, {"acquired", 2}} {
		id := "req-claim-" + string(rune('a'+i))
		res, n, err := s.ClaimCounted(ctx, id, "owner1", time.Minute, time.Minute, true, hexKey(7), now)
		if err != nil || res != want.res || n != want.count {
			t.Fatalf("ClaimCounted %s: %q %d %v, want %q %d", id, res, n, err, want.res, want.count)
		}
		if got := took(); len(got) != 1 || got["evalsha"] != 1 {
			t.Fatalf("ClaimCounted made round trips %v, want one script", got)
		}
	}
	if res, n, err := s.ClaimCounted(ctx, "req-claim-a", "owner2", time.Minute, time.Minute, true, hexKey(7), now); err != nil || res != "busy" || n != 0 {
		t.Fatalf("ClaimCounted of a held claim: %q %d %v, want busy, not counted", res, n, err)
	}
	took()
	if ok, err := s.RateAllow(ctx, hexKey(7), now, 3); err != nil || !ok {
		t.Fatalf("RateAllow after two counted claims: %v %v, want the third of 3 allowed", ok, err)
	}
	if ok, err := s.RateAllow(ctx, hexKey(7), now, 3); err != nil || ok {
		t.Fatalf("RateAllow after two counted claims and one count: %v %v, want the fourth of 3 refused", ok, err)
	}
	if ttl, err := s.rdb.PTTL(ctx, s.keys.Rate(hexKey(7), now.Unix()/60)).Result(); err != nil || ttl <= 0 || ttl > minuteWindowTTL {
		t.Fatalf("rate window's expiry: %v %v", ttl, err)
	}
	took()

	// The claim, the count and the room's lock with its reads: one script.
	cc := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-rt-cl"}
	if _, _, pre, err := s.ClaimLocked(ctx, "req-claim-warm2", "owner1", time.Minute, time.Minute, true, hexKey(6), now, 5, cc, time.Minute); err != nil || pre == nil {
		t.Fatalf("ClaimLocked: pre %v %v", pre != nil, err)
	} else {
		pre.Unlock()
	}
	took()
	lres, ln, pre, err := s.ClaimLocked(ctx, "req-claim-l", "owner1", time.Minute, time.Minute, true, hexKey(6), now, 5, cc, time.Minute)
	if err != nil || lres != "acquired" || ln != 2 || pre == nil {
		t.Fatalf("ClaimLocked: %q %d pre %v %v, want acquired 2 with the lock", lres, ln, pre != nil, err)
	}
	if got := took(); len(got) != 1 || got["evalsha"] != 1 {
		t.Fatalf("ClaimLocked made round trips %v, want one script", got)
	}
	pre.Unlock()
	took()

	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-rt"}
	lk, _, err := s.LockView(ctx, c, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["pipeline:set"] != 1 {
		t.Fatalf("LockView made round trips %v, want one pipeline", got)
	}
	rec := &Record{ID: "room-rt", Host: hexKey(1), Status: StatusActive}
	if err := s.Commit(ctx, Writes{Record: rec, Restarted: "room-rt", Cooldown: time.Minute}, lk); err != nil {
		t.Fatal(err)
	}
	got := took()
	n := 0
	for what, k := range got {
		n += k
		if len(what) < len("multi:") || what[:len("multi:")] != "multi:" {
			t.Fatalf("Commit made round trips %v, want one transaction", got)
		}
	}
	if n != 1 {
		t.Fatalf("Commit made round trips %v, want one transaction", got)
	}
	if _, err := s.Record(ctx, "room-rt"); err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["get"] != 1 {
		t.Fatalf("Record made round trips %v, want one GET", got)
	}

	// A pending answer is stored (hash and index) in one transaction and
	// removed in one pipeline on a single server.
	a := PendingAnswer{ID: "req-rt", Event: `{"id":"x"}`, Relays: []string{"wss://r.example.com"}, Deadline: time.Now().Add(time.Minute)}
	stored, err := s.AddAnswer(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["multi:hsetnx"] != 1 {
		t.Fatalf("AddAnswer made round trips %v, want one transaction", got)
	}
	if stored == nil || stored.Event != a.Event || !stored.Deadline.Equal(time.UnixMilli(a.Deadline.UnixMilli())) || len(stored.Relays) != 1 || len(stored.Refused) != 0 {
		t.Fatalf("AddAnswer returned %+v, want the answer it stored", stored)
	}
	// Added again (a re-sighting), the answer stored first comes back, with
	// its deadline and refusals, from the same one round trip.
	if err := s.RefuseAnswer(ctx, "req-rt", "wss://r.example.com", "blocked"); err != nil {
		t.Fatal(err)
	}
	took()
	again := PendingAnswer{ID: "req-rt", Event: `{"id":"y"}`, Relays: []string{"wss://other.example.com"}, Deadline: time.Now().Add(time.Hour)}
	stored, err = s.AddAnswer(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["multi:hsetnx"] != 1 {
		t.Fatalf("AddAnswer again made round trips %v, want one transaction", got)
	}
	if stored.Event != a.Event || !stored.Deadline.Equal(time.UnixMilli(a.Deadline.UnixMilli())) || stored.Relays[0] != "wss://r.example.com" || stored.Refused["wss://r.example.com"] != "blocked" {
		t.Fatalf("AddAnswer again returned %+v, want the first answer and its refusal", stored)
	}
	if ids, err := s.rdb.ZRange(ctx, s.keys.Answers(), 0, -1).Result(); err != nil || len(ids) != 1 || ids[0] != "req-rt" {
		t.Fatalf("index after AddAnswer: %v %v", ids, err)
	}
	// The answered state of the claim and the pending answer together: one
	// transaction, with the answer read back in it.
	took()
	ans := PendingAnswer{ID: "req-rt2", Event: `{"id":"z"}`, Relays: []string{"wss://r.example.com"}, Deadline: time.Now().Add(time.Minute)}
	stored, leased, err := s.AddAnswered(ctx, ans, `r:{"id":"z"}`, time.Hour, "owner1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["multi:set"] != 1 {
		t.Fatalf("AddAnswered made round trips %v, want one transaction", got)
	}
	if !leased {
		t.Fatal("AddAnswered did not take the free sending lease")
	}
	if ok, err := s.LeaseAnswer(ctx, "req-rt2", "owner2", time.Minute); err != nil || ok {
		t.Fatalf("another owner's LeaseAnswer after AddAnswered: %v %v, want the lease held", ok, err)
	}
	// Stored again by another owner (a take-over): the lease stays the
	// first owner's, and it says so.
	if _, leased, err := s.AddAnswered(ctx, ans, `r:{"id":"z"}`, time.Hour, "owner2", time.Minute); err != nil || leased {
		t.Fatalf("AddAnswered of another owner: leased %v %v, want not leased", leased, err)
	}
	took()
	if stored == nil || stored.Event != ans.Event {
		t.Fatalf("AddAnswered returned %+v, want the answer it stored", stored)
	}
	if v, err := s.rdb.Get(ctx, s.keys.Claim("req-rt2")).Result(); err != nil || v != `r:{"id":"z"}` {
		t.Fatalf("claim after AddAnswered: %q %v", v, err)
	}
	if ttl, err := s.rdb.PTTL(ctx, s.keys.Claim("req-rt2")).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("claim's expiry after AddAnswered: %v %v", ttl, err)
	}
	if ids, err := s.rdb.ZRange(ctx, s.keys.Answers(), 0, -1).Result(); err != nil || len(ids) != 2 || ids[1] != "req-rt2" {
		t.Fatalf("index after AddAnswered: %v %v", ids, err)
	}
	// A restart's final writes and its answer (CommitLater): one
	// transaction for both, the lock's release included.
	lk2, _, err := s.LockView(ctx, nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "room-rt2"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cl := &CommitLater{}
	if !cl.take(Writes{Record: &Record{ID: "room-rt2", Host: hexKey(1), Status: StatusActive}, Restarted: "room-rt2", Cooldown: time.Minute}, lk2) {
		t.Fatal("CommitLater did not take the writes on a single server")
	}
	took()
	ans3 := PendingAnswer{ID: "req-rt3", Event: `{"id":"w"}`, Relays: []string{"wss://r.example.com"}, Deadline: time.Now().Add(time.Minute)}
	if _, _, err := s.CommitAnswered(ctx, cl, ans3, `r:{"id":"w"}`, time.Hour, "owner1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["multi:set"] != 1 {
		t.Fatalf("CommitAnswered made round trips %v, want one transaction", got)
	}
	// Delivered: the claim's "done" and the answer's removal, with its
	// lease and index entry, in one transaction.
	took()
	if err := s.DeliveredAnswer(ctx, "req-rt3", "done", time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["multi:set"] != 1 {
		t.Fatalf("DeliveredAnswer made round trips %v, want one transaction", got)
	}
	if v, err := s.rdb.Get(ctx, s.keys.Claim("req-rt3")).Result(); err != nil || v != "done" {
		t.Fatalf("claim after DeliveredAnswer: %q %v", v, err)
	}
	if n, err := s.rdb.Exists(ctx, s.keys.Answer("req-rt3"), s.keys.AnswerLease("req-rt3")).Result(); err != nil || n != 0 {
		t.Fatalf("answer and lease after DeliveredAnswer: %d left (%v)", n, err)
	}
	if _, err := s.rdb.ZScore(ctx, s.keys.Answers(), "req-rt3").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("index after DeliveredAnswer: %v, want the id gone", err)
	}
	if err := s.RemoveAnswer(ctx, "req-rt2"); err != nil {
		t.Fatal(err)
	}
	took()
	if err := s.RemoveAnswer(ctx, "req-rt"); err != nil {
		t.Fatal(err)
	}
	if got := took(); len(got) != 1 || got["pipeline:del"] != 1 {
		t.Fatalf("RemoveAnswer made round trips %v, want one pipeline", got)
	}
	if got, err := s.Answer(ctx, "req-rt"); err != nil || got != nil {
		t.Fatalf("answer after RemoveAnswer: %+v %v", got, err)
	}
	if n, err := s.rdb.ZCard(ctx, s.keys.Answers()).Result(); err != nil || n != 0 {
		t.Fatalf("index after RemoveAnswer: %d %v", n, err)
	}
}
