package rooms

// Micro-benchmarks of the restart path's own CPU work in rooms (go test
// -run '^$' -bench . -benchmem ./rooms/). docs/performance.md has figures.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// BenchmarkTokensMint is the LiveKit token every restart answer carries.
func BenchmarkTokensMint(b *testing.B) {
	tok := Tokens{APIKey: "devkey", APISecret: "a-secret-of-at-least-32-characters!!", TTL: 10 * time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.Mint("3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b", hexKey(1), nostrx.RoleHost); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordRoundTrip reads and writes back a Nests record with an
// unknown field, as a restart in place does.
func BenchmarkRecordRoundTrip(b *testing.B) {
	in := []byte(`{"id":"3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b","host":"` + hexKey(1) + `","speakers":["` + hexKey(1) + `"],"admins":["` + hexKey(1) + `"],"relays":["wss://relay.example.com"],"hls_stream":false,"createdAt":1760000000000,"status":"active","theme":{"dark":true}}`)
	b.ReportAllocs()
	for b.Loop() {
		var rec Record
		if err := json.Unmarshal(in, &rec); err != nil {
			b.Fatal(err)
		}
		rec.RestartedAt = 1760000001000
		if _, err := json.Marshal(&rec); err != nil {
			b.Fatal(err)
		}
		_ = roomMetadata(&rec)
	}
}

// BenchmarkRedisRestartPath is the Redis side of one restart in place
// against a real Redis (internal/stack), the old steps against the
// batched ones: "steps" is the claim with its count (ClaimCounted),
// LockView, Commit and AddAnswered, four round trips; "batched" is
// ClaimLocked and CommitAnswered, two. ns/op is their wall time on
// loopback, allocs/op the client's work.
func BenchmarkRedisRestartPath(b *testing.B) {
	if testing.Short() {
		b.Skip("needs redis-server (devstack/install.sh)")
	}
	srv := stack.StartRedis(b)
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { rdb.Close() })
	s := NewRedisStore(rdb, "nest:", "nestbot:", time.Hour)
	ctx := context.Background()
	c := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hexKey(1), D: "3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b"}
	rec := &Record{ID: c.D, Host: hexKey(1), Speakers: []string{hexKey(1)}, Admins: []string{hexKey(1)}, Relays: []string{"wss://relay.example.com"}, Status: StatusActive, CreatedAt: 1760000000000}
	if err := s.PutRecord(ctx, rec); err != nil {
		b.Fatal(err)
	}
	resp := `{"id":"` + hexKey(3) + `","pubkey":"` + hexKey(2) + `","kind":4313,"content":"` + strings.Repeat("A", 600) + `","sig":"` + hexKey(4) + hexKey(4) + `"}`
	answer := func(id string) PendingAnswer {
		return PendingAnswer{ID: id, Event: resp, Relays: []string{"ws://127.0.0.1:7001", "ws://127.0.0.1:7002"}, Deadline: time.Now().Add(time.Minute)}
	}
	w := Writes{Record: rec, Restarted: c.D, Cooldown: time.Millisecond}
	i := 0 // request ids stay new across runs
	b.Run("steps", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i++
			id := fmt.Sprintf("steps-%d", i)
			if _, _, err := s.ClaimCounted(ctx, id, "owner1", time.Minute, time.Minute, true, hexKey(5), time.Now()); err != nil {
				b.Fatal(err)
			}
			lk, _, err := s.LockView(ctx, c, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Commit(ctx, w, lk); err != nil {
				b.Fatal(err)
			}
			if _, _, err := s.AddAnswered(ctx, answer(id), "r:"+resp, time.Minute, "owner1", time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batched", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			i++
			id := fmt.Sprintf("batched-%d", i)
			_, _, pre, err := s.ClaimLocked(ctx, id, "owner1", time.Minute, time.Minute, true, hexKey(5), time.Now(), 1<<30, c, time.Minute)
			if err != nil || pre == nil {
				b.Fatal(pre, err)
			}
			cl := &CommitLater{}
			cl.Prefetched(pre)
			lk, _, _ := cl.usePrefetched(c)
			if !cl.take(w, lk) {
				b.Fatal("not taken")
			}
			if _, _, err := s.CommitAnswered(ctx, cl, answer(id), "r:"+resp, time.Minute, "owner1", time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
