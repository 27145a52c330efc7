package ops

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/protojson"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nestbot/nestbot/internal/testlog"
)

const (
	testLKKey    = "APItestkey"
	testLKSecret = "test-livekit-secret-0123456789abcdef"
)

// signWebhook signs body the way LiveKit's notifier does: a JWT from the
// API key and secret whose sha256 claim is the body's base64 SHA-256.
func signWebhook(t *testing.T, key, secret string, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	tok, err := auth.NewAccessToken(key, secret).SetValidFor(5 * time.Minute).SetSha256(base64.StdEncoding.EncodeToString(sum[:])).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type opsFixture struct {
	handler  http.Handler
	logs     *bytes.Buffer
	mu       sync.Mutex
	received []*livekit.WebhookEvent
	relays   int
	redis    error
	livekit  error
	m        *Metrics
}

func newOpsFixture(t *testing.T) *opsFixture {
	f := &opsFixture{logs: &bytes.Buffer{}, relays: 1}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.m = NewMetrics(Gauges{})
	reg := f.m.Reg
	ready := Readiness{
		Relays: func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.relays },
		Redis:  func(context.Context) error { f.mu.Lock(); defer f.mu.Unlock(); return f.redis },
		LiveKit: func(ctx context.Context) error {
			f.mu.Lock()
			err := f.livekit
			f.mu.Unlock()
			if errors.Is(err, context.DeadlineExceeded) { // a LiveKit that hangs
				<-ctx.Done()
				return ctx.Err()
			}
			return err
		},
	}
	sink := func(ev *livekit.WebhookEvent) { f.mu.Lock(); f.received = append(f.received, ev); f.mu.Unlock() }
	f.handler = Handler(log, reg, ready, "/livekit/webhook", auth.NewSimpleKeyProvider(testLKKey, testLKSecret), sink, f.m)
	return f
}

func (f *opsFixture) do(method, path string, body []byte, header map[string]string) (int, string) {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestOpsHealthAndReady(t *testing.T) {
	f := newOpsFixture(t)
	if code, body := f.do("GET", "/healthz", nil, nil); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := f.do("GET", "/readyz", nil, nil); code != 200 {
		t.Fatalf("/readyz all up: %d %q", code, body)
	}
	cases := []struct {
		name string
		set  func()
		want string
	}{
		{"no relay", func() { f.relays = 0 }, "no relay subscription is live"},
		{"redis down", func() { f.redis = errors.New("dial tcp 10.0.0.9:6379: connect: connection refused") }, "redis is not answering"},
		{"livekit down", func() { f.livekit = errors.New("twirp error unauthenticated") }, "livekit is not answering"},
		{"livekit hangs", func() { f.livekit = context.DeadlineExceeded }, "livekit is not answering"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.mu.Lock()
			f.relays, f.redis, f.livekit = 1, nil, nil
			c.set()
			f.mu.Unlock()
			code, body := f.do("GET", "/readyz", nil, nil)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, c.want) {
				t.Fatalf("/readyz: %d %q, want 503 with %q", code, body, c.want)
			}
			if strings.Contains(body, "10.0.0.9") || strings.Count(strings.TrimSpace(body), "\n") != 0 {
				t.Fatalf("/readyz body is not a short reason: %q", body)
			}
		})
	}
}

func TestOpsMetrics(t *testing.T) {
	f := newOpsFixture(t)
	f.m.Checks.WithLabelValues("reconcile", "ok").Inc()
	code, body := f.do("GET", "/metrics", nil, nil)
	if code != 200 || !strings.Contains(body, `nestbot_lifecycle_checks_total{outcome="ok",trigger="reconcile"} 1`) {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	// Each Metrics has its own registry: two services in one process
	// never share (nor collide on) a series.
	a, b := NewMetrics(Gauges{}), NewMetrics(Gauges{})
	a.Lifecycle.WithLabelValues("republish").Inc()
	if a.Reg == b.Reg || testutil.ToFloat64(b.Lifecycle.WithLabelValues("republish")) != 0 {
		t.Fatal("two Metrics share a series")
	}
}

func TestWebhookVerification(t *testing.T) {
	f := newOpsFixture(t)
	event := &livekit.WebhookEvent{Event: "room_finished", Id: "EV_1", Room: &livekit.Room{Name: "room-1", Sid: "RM_1"}, CreatedAt: time.Now().Unix()}
	body, err := protojson.Marshal(event)
	if err != nil {
		t.Fatal(err)
	}
	good := signWebhook(t, testLKKey, testLKSecret, body)
	tampered := bytes.Replace(body, []byte("room-1"), []byte("room-2"), 1)
	notJSON := []byte("not json")

	cases := []struct {
		name   string
		method string
		body   []byte
		auth   string
		want   int
	}{
		{"unsigned", "POST", body, "", 401},
		{"garbage token", "POST", body, "not-a-jwt", 401},
		{"wrong secret", "POST", body, signWebhook(t, testLKKey, "another-secret-0123456789abcdefghij", body), 401},
		{"unknown key", "POST", body, signWebhook(t, "APIother", testLKSecret, body), 401},
		{"tampered body", "POST", tampered, good, 401},
		{"signed for another body", "POST", body, signWebhook(t, testLKKey, testLKSecret, tampered), 401},
		{"GET", "GET", nil, "", 405},
		{"signed but not an event", "POST", notJSON, signWebhook(t, testLKKey, testLKSecret, notJSON), 400},
		{"too large", "POST", bytes.Repeat([]byte("x"), maxWebhookBody+1), "", 413},
		{"signed", "POST", body, good, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"Content-Type": "application/webhook+json"}
			if c.auth != "" {
				h["Authorization"] = c.auth
			}
			code, resp := f.do(c.method, "/livekit/webhook", c.body, h)
			if code != c.want {
				t.Fatalf("%d %q, want %d", code, resp, c.want)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.received) != 1 || f.received[0].GetRoom().GetName() != "room-1" || f.received[0].Event != "room_finished" {
		t.Fatalf("sink got %v, want exactly the signed event", f.received)
	}
	logs := f.logs.String()
	if strings.Contains(logs, testLKSecret) || strings.Contains(logs, good) || strings.Contains(logs, "not-a-jwt") {
		t.Fatalf("logs carry a secret or a token:\n%s", logs)
	}
	if !strings.Contains(logs, "webhook refused") {
		t.Fatalf("refusals not logged:\n%s", logs)
	}
}

func TestWebhookDisabled(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := Handler(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, Readiness{}, "", nil, nil, NewMetrics(Gauges{}))
	req := httptest.NewRequest("POST", "/livekit/webhook", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 404 {
		t.Fatalf("disabled webhook answered %d", rec.Code)
	}
}

func TestServeOpsShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		defer close(done)
		Serve(ctx, log, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { Plain(w, 200, "ok") }))
	}()
	var resp *http.Response
	for i := 0; ; i++ {
		resp, err = http.Get("http://" + addr + "/")
		if err == nil {
			break
		}
		if i > 500 {
			t.Fatalf("listener never came up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp.Body.Close()
	cancel()
	<-done
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Fatal("listener still serving after shutdown")
	}
}

func TestServeOpsRetriesATakenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var logs testlog.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Serve(ctx, log, ln.Addr().String(), http.NotFoundHandler()) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "cannot bind"); {
		if time.Now().After(deadline) {
			t.Fatal("a taken address was not reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// Refused webhooks at any rate cost one WARN line a minute, not one each:
// anyone who reaches the port can send them as fast as it reads. The
// metric still counts every one, and every one is at DEBUG.
func TestWebhookRefusalsDoNotFloodTheLog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(testlogWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := NewMetrics(Gauges{})
	h := WebhookHandler(log, auth.NewSimpleKeyProvider(testLKKey, testLKSecret), func(*livekit.WebhookEvent) {}, m)
	const n = 500
	for i := range n {
		req := httptest.NewRequest("POST", "/livekit/webhook", strings.NewReader("{}"))
		if i%2 == 0 {
			req.Header.Set("Authorization", "not-a-jwt")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	if got := testutil.ToFloat64(m.Webhooks.WithLabelValues("unverified", "unauthorized")); got != n {
		t.Fatalf("counted %v refusals, want %d", got, n)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if lines := strings.Count(out, "webhook refused"); lines != 1 {
		t.Fatalf("%d refused webhooks made %d WARN lines, want 1:\n%.1000s", n, lines, out)
	}
}

type testlogWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l testlogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
