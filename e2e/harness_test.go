package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// world is one test's real stack: Redis, LiveKit, relays, and the bot.
type world struct {
	t      *testing.T
	redis  *stack.Redis
	lk     *stack.LiveKit
	relays []*stack.Relay
	rdb    *redis.Client
	rooms  *lksdk.RoomServiceClient
	botKey string
	cfg    config.Config
	svc    *bot.Service
	stop   func()
	// clientRelays, when set, are where requesters publish and read
	// instead of relays (a test's programmable relays).
	clientRelays []string
}

func newWorld(t *testing.T, nRelays int) *world {
	t.Helper()
	w := &world{t: t, redis: stack.StartRedis(t), lk: stack.StartLiveKit(t)}
	for range nRelays {
		w.relays = append(w.relays, stack.StartRelay(t))
	}
	opt, err := redis.ParseURL(w.redis.URL)
	if err != nil {
		t.Fatal(err)
	}
	w.rdb = redis.NewClient(opt)
	t.Cleanup(func() { w.rdb.Close() })
	w.rooms = lksdk.NewRoomServiceClient(w.lk.URL, w.lk.APIKey, w.lk.APISecret)
	w.botKey = nostr.GeneratePrivateKey()
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", w.botKey)
	cfg, err := config.Load("")
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	cfg.Nostr.Relays = w.relayURLs()
	cfg.Redis.URL = config.SecretURL(w.redis.URL)
	cfg.LiveKit.URL = w.lk.URL
	cfg.LiveKit.PublicURL = w.lk.WSURL
	cfg.LiveKit.APIKey = w.lk.APIKey
	cfg.LiveKit.APISecret = config.Secret(w.lk.APISecret)
	cfg.Limits.DependencyTimeout = 5 * time.Second
	cfg.Nostr.LookupTimeout = 2 * time.Second
	// Every relay here is on loopback, and requesters' relay lists and
	// hints name relays that are not the bot's: TestPrivateRelaysNotUsed
	// covers the default.
	cfg.Nostr.AllowPrivateRelays = true
	cfg.HTTP.Listen = "" // no ops port shared by every test's bot; ops_test.go opens its own
	w.cfg = cfg
	return w
}

func (w *world) relayURLs() []string {
	var urls []string
	for _, r := range w.relays {
		urls = append(urls, r.URL)
	}
	return urls
}

// start runs the bot with w.cfg until the test ends and waits until it is
// subscribed on every relay.
func (w *world) start() *bot.Service {
	w.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("NESTBOT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	svc, err := bot.New(w.cfg, log)
	if err != nil {
		w.t.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	w.stop = func() {
		cancel()
		if err := <-done; err != nil {
			w.t.Errorf("Run: %v", err)
		}
	}
	w.t.Cleanup(func() {
		if ctx.Err() == nil {
			w.stop()
		}
	})
	waitFor(w.t, "bot subscribed on every relay", func() bool { return svc.RelaysConnected() == len(w.relays) })
	w.svc = svc
	return svc
}

func (w *world) botPub() string {
	pk, _ := nostr.GetPublicKey(w.botKey)
	return pk
}

// user is a Nostr identity in a test.
type user struct {
	sk, pk string
	signer *nostrx.Signer
}

func newUser(t *testing.T) *user {
	sk := nostr.GeneratePrivateKey()
	s, err := nostrx.NewSigner(sk, 4)
	if err != nil {
		t.Fatal(err)
	}
	return &user{sk: sk, pk: s.PublicKey(), signer: s}
}

func (w *world) client(u *user) *bot.Client {
	relays := w.relayURLs()
	if w.clientRelays != nil {
		relays = w.clientRelays
	}
	return &bot.Client{Signer: u.signer, Bot: w.botPub(), Relays: relays,
		RequestKind: nostrx.DefaultRequestKind, ResponseKind: nostrx.DefaultResponseKind}
}

// ask sends a restart (or status) request as u and returns the exchange.
func (w *world) ask(u *user, room nostrx.Coordinate, action string) *bot.Exchange {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := w.client(u).Send(ctx, room, action, "", "test")
	if err != nil {
		w.t.Fatalf("%s %s: %v", action, room, err)
	}
	return ex
}

// restartResult decodes a successful restart payload, failing the test on an error payload.
func restartResult(t *testing.T, p nostrx.Payload) nostrx.RestartResult {
	t.Helper()
	if p.Error != nil {
		t.Fatalf("want a result, got error %s: %s", p.Error.Code, p.Error.Message)
	}
	if p.ResultType != "restart" {
		t.Fatalf("result_type %q", p.ResultType)
	}
	var r nostrx.RestartResult
	if err := json.Unmarshal(p.Result, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func wantError(t *testing.T, p nostrx.Payload, code nostrx.Code) {
	t.Helper()
	if p.Error == nil {
		t.Fatalf("want error %s, got result %s", code, p.Result)
	}
	if p.Error.Code != code {
		t.Fatalf("want error %s, got %s: %s", code, p.Error.Code, p.Error.Message)
	}
	if len(p.Result) != 0 {
		t.Fatalf("error payload also carries a result: %s", p.Result)
	}
}

// nestsRecord writes a record the way the Nests API server does (SETEX
// 86400), including a field the bot does not know.
func (w *world) nestsRecord(id, host string, admins, speakers []string) {
	w.t.Helper()
	rec := map[string]any{
		"id": id, "host": host, "speakers": append([]string{host}, speakers...), "admins": append([]string{host}, admins...),
		"relays": w.relayURLs(), "hls_stream": false, "createdAt": time.Now().Add(-time.Hour).UnixMilli(), "status": "active",
		"futureField": map[string]any{"kept": true},
	}
	b, _ := json.Marshal(rec)
	if err := w.rdb.Set(context.Background(), "nest:"+id, b, 86400*time.Second).Err(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) record(id string) (map[string]any, *rooms.Record) {
	w.t.Helper()
	b, err := w.rdb.Get(context.Background(), "nest:"+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	var raw map[string]any
	var rec rooms.Record
	if err := json.Unmarshal(b, &raw); err != nil {
		w.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		w.t.Fatal(err)
	}
	return raw, &rec
}

// liveRoom returns LiveKit's room of that name, or nil.
func (w *world) liveRoom(name string) *livekit.Room {
	w.t.Helper()
	res, err := w.rooms.ListRooms(context.Background(), &livekit.ListRoomsRequest{Names: []string{name}})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, r := range res.Rooms {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (w *world) createLiveRoom(name string) *livekit.Room {
	w.t.Helper()
	r, err := w.rooms.CreateRoom(context.Background(), &livekit.CreateRoomRequest{Name: name})
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) allLiveRooms() []*livekit.Room {
	w.t.Helper()
	res, err := w.rooms.ListRooms(context.Background(), &livekit.ListRoomsRequest{})
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Rooms
}

// publishRoom publishes a host's own 30312 to every relay: a room of this
// deployment (its service is the bot's nests.service_url).
func (w *world) publishRoom(u *user, d string, extra nostr.Tags) *nostr.Event {
	w.t.Helper()
	tags := nostr.Tags{{"d", d}, {"title", "Morning Nest"}, {"summary", "coffee talk"}, {"status", "live"},
		{"service", w.cfg.Nests.ServiceURL}, {"streaming", "wss+livekit://old.example"},
		{"t", "coffee"}, {"color", "#ff8800"}, {"image", "https://example.com/nest.png"},
		{"p", u.pk, "", "Host"}}
	tags = append(tags, extra...)
	ev := nostr.Event{Kind: nostrx.KindRoom, CreatedAt: nostr.Now(), Tags: tags}
	if err := u.signer.Sign(&ev); err != nil {
		w.t.Fatal(err)
	}
	w.publish(ev)
	return &ev
}

func (w *world) publish(ev nostr.Event) {
	w.t.Helper()
	for _, r := range w.relays {
		w.publishTo(r.URL, ev)
	}
}

func (w *world) publishTo(url string, ev nostr.Event) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rl, err := nostr.RelayConnect(ctx, url)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rl.Close()
	if err := rl.Publish(ctx, ev); err != nil {
		w.t.Fatalf("publish to %s: %v", url, err)
	}
}

// query reads events back from one relay.
func query(t *testing.T, url string, f nostr.Filter) []*nostr.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rl, err := nostr.RelayConnect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	evs, err := rl.QuerySync(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitFor polls cond until it holds. Its deadline only bounds a test that
// fails: it is far above any wait on a machine loaded past its cores (CI
// shares its two), since a test must not fail for being slow.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requestsDone waits until svc has finished n requests (4312 or DM): a
// worker observes a request's latency last, after its answer was sent
// and after it counted the request (nestbot_requests_total), learned the
// known lane and timed the stages. The client sees the answer before all
// of that, so a test reading any of it waits here first.
func requestsDone(t *testing.T, svc *bot.Service, n uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d requests finished", n), func() bool {
		fams, err := svc.Metrics().Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got uint64
		for _, f := range fams {
			if f.GetName() == "nestbot_request_duration_seconds" {
				for _, m := range f.GetMetric() {
					got += m.GetHistogram().GetSampleCount()
				}
			}
		}
		return got >= n
	})
}

func coord(author, d string) nostrx.Coordinate {
	return nostrx.Coordinate{Kind: nostrx.KindRoom, Author: author, D: d}
}
