package e2e

import (
	"context"
	"testing"

	"github.com/google/uuid"
)

// TestRestartRedisRoundTrips: on a single Redis, a restart in place takes
// its room lock with its claim (no LockView pipeline of its own) and ends
// with one transaction for its writes and its answer, and one more after
// the relay's OK ("delivered" with the answer's removal): the bot's own
// round-trip counter (nestbot_redis_roundtrips_total) says so, and the
// restart's writes and answer are all there.
func TestRestartRedisRoundTrips(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	ctx := context.Background()
	counts := func() map[string]float64 {
		t.Helper()
		mfs, err := w.svc.Metrics().Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "nestbot_redis_roundtrips_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "cmd" {
						out[l.GetValue()] = m.GetCounter().GetValue()
					}
				}
			}
		}
		return out
	}
	restart := func() (string, map[string]float64) {
		t.Helper()
		host := newUser(t)
		id := uuid.NewString()
		w.nestsRecord(id, host.pk, nil, nil)
		w.createLiveRoom(id)
		before := counts()
		ex := w.ask(host, coord(host.pk, id), "restart")
		if res := restartResult(t, ex.Payload); res.RoomID != id || res.Message != "Nest restarted" {
			t.Fatalf("result %+v", res)
		}
		// Delivered: the claim says "done" once the relay's OK was noted.
		claim := "nestbot:{" + ex.Request.ID + "}:claim"
		waitFor(t, "the claim marked delivered", func() bool { return w.rdb.Get(ctx, claim).Val() == "done" })
		after := counts()
		d := map[string]float64{}
		for k, v := range after {
			if v != before[k] {
				d[k] = v - before[k]
			}
		}
		return id, d
	}
	restart() // warm: scripts loaded, connections open
	id, d := restart()
	if d["pipeline:set"] != 0 {
		t.Fatalf("restart made its own LockView (%v): the lock should come with the claim", d)
	}
	if d["multi:set"] != 2 || d["multi:hsetnx"] != 0 || d["pipeline:del"] != 0 {
		t.Fatalf("restart's transactions %v, want two multi:set (writes with the answer; delivered with the removal)", d)
	}
	if d["evalsha"] < 1 {
		t.Fatalf("restart's scripts %v, want the claim's", d)
	}
	_, rec := w.record(id)
	if rec.RestartedAt == 0 || rec.Status != "active" {
		t.Fatalf("record %+v", rec)
	}
	if n := w.rdb.Exists(ctx, "nestbot:{"+id+"}:lock", "nestbot:{"+id+"}:recreating").Val(); n != 0 {
		t.Fatalf("%d of the lock and the recreation mark left after the restart", n)
	}
	if w.rdb.Exists(ctx, "nestbot:{"+id+"}:last").Val() != 1 {
		t.Fatal("no cool-down after the restart")
	}
	if n := w.rdb.ZCard(ctx, "nestbot:answers").Val(); n != 0 {
		t.Fatalf("%d answers still pending after delivery", n)
	}
}
