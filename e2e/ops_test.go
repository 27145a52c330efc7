package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/livekit/protocol/webhook"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/testlog"
	"github.com/nestbot/nestbot/nostrx"
)

// --- helpers shared by ops_test.go and lifecycle_test.go ---------------

// running is one bot service started by (*world).run.
type running struct {
	svc  *bot.Service
	base string // http://host:port of the ops listener, "" without one
	logs *testlog.Buffer
	stop func()
}

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// run starts one bot with w.cfg, its ops listener on a free port when
// withHTTP, its debug log captured, and returns without waiting for the
// relays (w.start waits). It becomes w.svc, so w.ask and friends use it.
func (w *world) run(withHTTP bool) *running {
	w.t.Helper()
	r := &running{logs: &testlog.Buffer{}}
	w.cfg.HTTP.Listen = ""
	if withHTTP {
		w.cfg.HTTP.Listen = freeAddr(w.t)
		r.base = "http://" + w.cfg.HTTP.Listen
	}
	var out io.Writer = r.logs
	if os.Getenv("NESTBOT_TEST_LOG") != "" {
		out = io.MultiWriter(r.logs, os.Stderr)
	}
	svc, err := bot.New(w.cfg, slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		w.t.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	r.svc = svc
	r.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("Run: %v", err)
		}
	})
	w.t.Cleanup(r.stop)
	if withHTTP {
		waitFor(w.t, "ops listener up", func() bool { code, _ := httpGet(r.base + "/healthz"); return code == 200 })
	}
	w.svc = svc
	return r
}

// waitRelays waits until the bot is subscribed on every relay.
func (r *running) waitRelays(t *testing.T, n int) {
	t.Helper()
	waitFor(t, "bot subscribed on every relay", func() bool { return r.svc.RelaysConnected() == n })
}

var opsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// httpGet returns the status and body, or 0 when nothing answered.
func httpGet(url string) (int, string) {
	resp, err := opsClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func httpPost(t *testing.T, url string, body []byte, header map[string]string) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := opsClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// metric sums the samples of a counter or gauge family whose labels include
// every pair in labels, from the service's registry.
func metric(t *testing.T, svc *bot.Service, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := svc.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	sample:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue sample
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// signWebhook signs body as LiveKit's notifier does: a JWT of the API key and
// secret whose sha256 claim is the body's base64 SHA-256.
func signWebhook(t *testing.T, key, secret string, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	tok, err := auth.NewAccessToken(key, secret).SetValidFor(5 * time.Minute).
		SetSha256(base64.StdEncoding.EncodeToString(sum[:])).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// notifyLiveKit sends ev to the bot's webhook endpoint with LiveKit's own
// notifier (the code livekit-server sends webhooks with), signed with the
// stack's API key and secret.
func (w *world) notifyLiveKit(base string, ev *livekit.WebhookEvent) {
	w.t.Helper()
	webhookStatsOnce() // the notifier counts on process-wide series
	n := webhook.NewURLNotifier(webhook.URLNotifierParams{
		URL: base + w.cfg.HTTP.WebhookPath, APIKey: w.lk.APIKey, APISecret: w.lk.APISecret,
	})
	defer n.Stop(false) // drains: returns once the request was answered
	if err := n.QueueNotify(context.Background(), ev); err != nil {
		w.t.Fatal(err)
	}
}

var webhookStatsOnce = sync.OnceFunc(func() { webhook.InitWebhookStats(prometheus.Labels{}) })

// --- tests ---------------------------------------------------------------

// TestOpsEndpoints: /healthz answers while the process runs; /readyz follows
// the relays, Redis and LiveKit; /metrics exposes the service's series; and
// the log never carries a secret.
func TestOpsEndpoints(t *testing.T) {
	w := newWorld(t, 1)
	w.relays[0].Stop() // the bot starts with no relay to subscribe to
	r := w.run(true)

	if code, body := httpGet(r.base + "/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := httpGet(r.base + "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no relay subscription is live") {
		t.Fatalf("/readyz before relays connect: %d %q", code, body)
	}

	w.relays[0].Start()
	r.waitRelays(t, 1)
	waitFor(t, "/readyz 200 once the relay is up", func() bool { code, _ := httpGet(r.base + "/readyz"); return code == 200 })

	// Some traffic for the request series: a status request and its answer.
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	if p := w.ask(host, coord(host.pk, id), "status").Payload; p.Error != nil {
		t.Fatalf("status: %+v", p.Error)
	}
	// The bot counts a request, and then observes its duration, once its
	// answer is out: after the client saw it.
	requestsDone(t, r.svc, 1)
	code, body = httpGet(r.base + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{
		"nestbot_requests_total", "nestbot_request_duration_seconds_bucket", "nestbot_relay_connected",
		"nestbot_relay_reconnects_total", "nestbot_queue_depth", "nestbot_events_published_total",
		"nestbot_lifecycle_checks_total", "go_goroutines",
	} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if !strings.Contains(body, `nestbot_relay_connected{relay="`+w.relays[0].URL+`"} 1`) {
		t.Errorf("/metrics does not show the relay connected")
	}

	w.redis.Kill()
	waitFor(t, "/readyz 503 naming redis", func() bool {
		code, body := httpGet(r.base + "/readyz")
		return code == 503 && strings.Contains(body, "redis is not answering")
	})
	if code, _ := httpGet(r.base + "/healthz"); code != 200 {
		t.Fatalf("/healthz %d with Redis down: the process still runs", code)
	}
	w.redis.Start()
	waitFor(t, "/readyz 200 with Redis back", func() bool { code, _ := httpGet(r.base + "/readyz"); return code == 200 })

	w.lk.Kill()
	waitFor(t, "/readyz 503 naming livekit", func() bool {
		code, body := httpGet(r.base + "/readyz")
		return code == 503 && strings.Contains(body, "livekit is not answering")
	})
	w.lk.Start()
	waitFor(t, "/readyz 200 with LiveKit back", func() bool { code, _ := httpGet(r.base + "/readyz"); return code == 200 })

	r.stop()
	if code, _ := httpGet(r.base + "/healthz"); code != 0 {
		t.Fatalf("/healthz answered %d after shutdown", code)
	}
	checkNoSecrets(t, w, r.logs.String())
}

// checkNoSecrets fails if the log holds the bot's key (hex or nsec) or the
// LiveKit API secret.
func checkNoSecrets(t *testing.T, w *world, logs string) {
	t.Helper()
	if logs == "" {
		t.Fatal("no log captured")
	}
	nsec, _ := nip19.EncodePrivateKey(w.botKey)
	for name, secret := range map[string]string{"bot key": w.botKey, "nsec": nsec, "LiveKit API secret": w.lk.APISecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}

// TestOpsWebhookAuth: the webhook endpoint of a running bot refuses what
// LiveKit did not sign and accepts what it did.
func TestOpsWebhookAuth(t *testing.T) {
	w := newWorld(t, 1)
	r := w.run(true)
	url := r.base + w.cfg.HTTP.WebhookPath
	ev := &livekit.WebhookEvent{Event: webhook.EventRoomStarted, Id: "EV_test", CreatedAt: time.Now().Unix(),
		Room: &livekit.Room{Name: uuid.NewString(), Sid: "RM_test"}}
	body, err := protojson.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ct := "application/webhook+json"
	for name, c := range map[string]struct {
		body []byte
		auth string
		want int
	}{
		"unsigned":          {body, "", 401},
		"wrong secret":      {body, signWebhook(t, w.lk.APIKey, "not-the-secret-not-the-secret-not-the", body), 401},
		"other API key":     {body, signWebhook(t, "APIstranger", w.lk.APISecret, body), 401},
		"altered body":      {bytes.Replace(body, []byte("room_started"), []byte("room_finished"), 1), signWebhook(t, w.lk.APIKey, w.lk.APISecret, body), 401},
		"signed by LiveKit": {body, signWebhook(t, w.lk.APIKey, w.lk.APISecret, body), 200},
	} {
		h := map[string]string{"Content-Type": ct}
		if c.auth != "" {
			h["Authorization"] = c.auth
		}
		if got := httpPost(t, url, c.body, h); got != c.want {
			t.Errorf("%s: %d, want %d", name, got, c.want)
		}
	}
	if code, _ := httpGet(url); code != http.StatusMethodNotAllowed {
		t.Errorf("GET webhook: %d", code)
	}
	// And LiveKit's own notifier gets through.
	before := metric(t, r.svc, "nestbot_webhooks_total", map[string]string{"outcome": "accepted"})
	w.notifyLiveKit(r.base, ev)
	waitFor(t, "the notifier's webhook accepted", func() bool {
		return metric(t, r.svc, "nestbot_webhooks_total", map[string]string{"outcome": "accepted"}) > before
	})
	if n := metric(t, r.svc, "nestbot_webhooks_total", map[string]string{"outcome": "unauthorized"}); n != 4 {
		t.Errorf("%v unauthorized webhooks counted, want 4", n)
	}
	checkNoSecrets(t, w, r.logs.String())
}

// TestIdentity: the bot publishes its profile (bot: true), relay list and DM
// relay list once, and not again on a restart that changed nothing.
func TestIdentity(t *testing.T) {
	w := newWorld(t, 2)
	w.cfg.Profile.Picture = "https://example.com/nestbot.png"
	r := w.run(false)
	kinds := []string{"0", "10002", "10050"}
	waitFor(t, "identity published", func() bool {
		for _, k := range kinds {
			if metric(t, r.svc, "nestbot_identity_checks_total", map[string]string{"kind": k, "outcome": "published"}) != 1 {
				return false
			}
		}
		return true
	})
	// Publish returns at the first relay's OK; the others follow.
	for _, rl := range w.relays {
		waitFor(t, "identity on "+rl.URL, func() bool { return len(w.identityOn(rl.URL)) == 3 })
	}
	first := map[int]*nostr.Event{}
	for _, rl := range w.relays {
		evs := w.identityOn(rl.URL)
		for kind, ev := range evs {
			if err := nostrx.Verify(ev); err != nil {
				t.Fatal(err)
			}
			if f := first[kind]; f != nil && f.ID != ev.ID {
				t.Fatalf("relays hold different kind %d events", kind)
			}
			first[kind] = ev
		}
	}
	var prof map[string]any
	if err := json.Unmarshal([]byte(first[0].Content), &prof); err != nil {
		t.Fatal(err)
	}
	if prof["bot"] != true || prof["name"] != w.cfg.Profile.Name || prof["about"] != w.cfg.Profile.About || prof["picture"] != w.cfg.Profile.Picture {
		t.Fatalf("profile %s", first[0].Content)
	}
	var rTags, dmTags []string
	for _, tag := range first[10002].Tags {
		if len(tag) != 2 || tag[0] != "r" {
			t.Fatalf("10002 tag %v: want [r, url] (read and write)", tag)
		}
		rTags = append(rTags, tag[1])
	}
	for _, tag := range first[10050].Tags {
		if tag[0] == "relay" {
			dmTags = append(dmTags, tag[1])
		}
	}
	if !slices.Equal(rTags, w.relayURLs()) || !slices.Equal(dmTags, w.relayURLs()) {
		t.Fatalf("relay lists %v / %v, want %v", rTags, dmTags, w.relayURLs())
	}
	r.stop()

	// A second start with the same configuration publishes nothing.
	r2 := w.run(false)
	waitFor(t, "identity checked again", func() bool {
		for _, k := range kinds {
			if metric(t, r2.svc, "nestbot_identity_checks_total", map[string]string{"kind": k}) < 1 {
				return false
			}
		}
		return true
	})
	for _, k := range kinds {
		if n := metric(t, r2.svc, "nestbot_identity_checks_total", map[string]string{"kind": k, "outcome": "unchanged"}); n != 1 {
			t.Errorf("kind %s: %v unchanged checks, want 1 (republished an unchanged identity)", k, n)
		}
		if n := metric(t, r2.svc, "nestbot_events_published_total", map[string]string{"kind": k}); n != 0 {
			t.Errorf("kind %s published %v times on an unchanged start", k, n)
		}
	}
	for _, rl := range w.relays {
		for kind, ev := range w.identityOn(rl.URL) {
			if ev.ID != first[kind].ID {
				t.Errorf("kind %d replaced on %s", kind, rl.URL)
			}
		}
	}
	r2.stop()

	// A changed profile is published again, newer; the lists stay.
	w.cfg.Profile.About = "New about text"
	r3 := w.run(false)
	waitFor(t, "changed profile published", func() bool {
		return metric(t, r3.svc, "nestbot_identity_checks_total", map[string]string{"kind": "0", "outcome": "published"}) == 1 &&
			metric(t, r3.svc, "nestbot_identity_checks_total", map[string]string{"kind": "10050", "outcome": "unchanged"}) == 1 &&
			metric(t, r3.svc, "nestbot_identity_checks_total", map[string]string{"kind": "10002", "outcome": "unchanged"}) == 1
	})
	waitFor(t, "every relay holds the new profile", func() bool {
		for _, rl := range w.relays {
			p := w.identityOn(rl.URL)[0]
			if p == nil || !strings.Contains(p.Content, "New about text") || p.CreatedAt <= first[0].CreatedAt {
				return false
			}
		}
		return true
	})
}

// identityOn returns the bot's newest kind 0, 10002 and 10050 on one relay.
func (w *world) identityOn(url string) map[int]*nostr.Event {
	w.t.Helper()
	out := map[int]*nostr.Event{}
	for _, ev := range query(w.t, url, nostr.Filter{Kinds: []int{0, 10002, 10050}, Authors: []string{w.botPub()}}) {
		if cur := out[ev.Kind]; cur == nil || ev.CreatedAt > cur.CreatedAt {
			out[ev.Kind] = ev
		}
	}
	return out
}
