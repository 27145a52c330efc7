package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The bot's counters are read from its /metrics text, and a batch's calls
// per restart are their increase divided by the restarts; CPU per process
// likewise, with the relays, others and stack sums.
func TestCountersPerRestart(t *testing.T) {
	page := func(create, del, list, get, lockview, reqs float64) string {
		return fmt.Sprintf(`# TYPE nestbot_livekit_calls_total counter
nestbot_livekit_calls_total{method="CreateRoom"} %g
nestbot_livekit_calls_total{method="DeleteRoom"} %g
nestbot_livekit_calls_total{method="ListRooms"} %g
# TYPE nestbot_redis_roundtrips_total counter
nestbot_redis_roundtrips_total{cmd="get"} %g
nestbot_redis_roundtrips_total{cmd="pipeline:set"} %g
# TYPE nestbot_relay_reqs_total counter
nestbot_relay_reqs_total{relay_host="127.0.0.1:1"} %g
nestbot_relay_reqs_total{relay_host="127.0.0.1:2"} %g
`, create, del, list, get, lockview, reqs, reqs)
	}
	body := page(1, 1, 1, 5, 1, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	ctx := context.Background()
	c0, err := scrape(ctx, srv.URL)
	if err != nil || !c0.ok {
		t.Fatalf("scrape: %+v %v", c0, err)
	}
	body = page(1+12, 1+12, 1+10, 5+20, 1+10, 2+10)
	c1, err := scrape(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	u := since(map[string]time.Duration{"nestbot": 0, "livekit": time.Second, "relay1": 0, "relay2": 0},
		map[string]time.Duration{"nestbot": 50 * time.Millisecond, "livekit": time.Second + 30*time.Millisecond, "relay1": 10 * time.Millisecond, "relay2": 10 * time.Millisecond}, c0, c1)
	calls := u.perRestart(10)
	if calls == nil || calls.LiveKit != 3.4 || calls.LiveKitByMethod["ListRooms"] != 1 || calls.RedisRoundTrips != 3 ||
		calls.RedisByCommand["pipeline:set"] != 1 || calls.RelayREQs != 2 {
		t.Fatalf("per restart: %+v", calls)
	}
	procs := &procSet{}
	for _, n := range []string{"nestbot", "livekit", "relay1", "relay2"} {
		procs.set(n, 1)
	}
	cpu := procs.perRestart(u, 10)
	if cpu["nestbot"] != 5 || cpu["livekit"] != 3 || cpu["relays"] != 2 || cpu["others"] != 5 || cpu["stack"] != 10 {
		t.Fatalf("CPU per restart: %v", cpu)
	}

	// A bot without the counters (an older build) gives no calls.
	body = "# TYPE go_goroutines gauge\ngo_goroutines 7\n"
	old, err := scrape(ctx, srv.URL)
	if err != nil || old.ok {
		t.Fatalf("older bot: %+v %v", old, err)
	}
	if since(nil, nil, old, old).perRestart(10) != nil {
		t.Fatal("calls reported for a bot without counters")
	}

	r := &Run{Deps: Deps{RedisPing: [2]float64{0.1, 0}, LKDelete: [2]float64{1.2, 0}, LKCreate: [2]float64{1.7, 0}},
		RelayHop: Latency{P50: 0.5}, InPlace: Latency{P50: 7}, Recreate: Latency{P50: 8}}
	f := floorOf(r)
	if f.Ms != 4 || f.InPlace != 1.75 || f.Recreate != 2 {
		t.Fatalf("floor %+v", f)
	}
}

// The bot's steps are read from nestbot_request_stage_seconds: a batch's
// mean per step is the increase of its sum over the increase of its count.
func TestStageMeans(t *testing.T) {
	page := func(n, queue, work float64) string {
		return fmt.Sprintf(`# TYPE nestbot_request_stage_seconds histogram
nestbot_request_stage_seconds_bucket{stage="queue",le="+Inf"} %g
nestbot_request_stage_seconds_sum{stage="queue"} %g
nestbot_request_stage_seconds_count{stage="queue"} %g
nestbot_request_stage_seconds_bucket{stage="work",le="+Inf"} %g
nestbot_request_stage_seconds_sum{stage="work"} %g
nestbot_request_stage_seconds_count{stage="work"} %g
`, n, queue, n, n, work, n)
	}
	body := page(4, 0.002, 0.04)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) }))
	defer srv.Close()
	c0, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body = page(14, 0.002+0.005, 0.04+0.06)
	c1, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	m := since(nil, nil, c0, c1).stageMeans()
	if len(m) != 2 || m["queue"] < 0.4999 || m["queue"] > 0.5001 || m["work"] < 5.999 || m["work"] > 6.001 {
		t.Fatalf("stage means %v, want queue 0.5 ms and work 6 ms", m)
	}
	if since(nil, nil, c1, c1).stageMeans() != nil {
		t.Fatal("stage means for a batch with no requests")
	}
}

// The relays' CPU per restart splits into the requester's own (the relay
// hop's CPU on relay1 less that relay's idle CPU over the hop), the
// relays' idle CPU over the batch, and the rest, the bot's.
func TestSplitRelays(t *testing.T) {
	r := &Run{
		Idle:     map[string]float64{"relay1": 10, "relay2": 10, "nestbot": 5}, // ms per s
		RelayHop: Latency{N: 100, OK: 100, Seconds: 0.1, CPU: map[string]float64{"relay1": 0.51}},
		InPlace:  Latency{N: 100, Seconds: 1, CPU: map[string]float64{"relays": 3}},
	}
	r.splitRelays()
	c := r.InPlace.CPU
	near := func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
	// client: 0.51 − 10 ms/s × 0.1 s / 100 hops = 0.5; idle: 20 ms/s × 1 s / 100 = 0.2
	if !near(c["relays_client"], 0.5) || !near(c["relays_idle"], 0.2) || !near(c["relays_bot"], 2.3) {
		t.Fatalf("split %v, want client 0.5, idle 0.2, bot 2.3", c)
	}
}
