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
