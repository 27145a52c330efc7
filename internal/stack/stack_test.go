package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip42"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRepoRoot(t *testing.T) {
	root := stack.RepoRoot()
	if root == "" || !filepath.IsAbs(root) {
		t.Fatalf("RepoRoot() = %q", root)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "stack", "stack.go")); err != nil {
		t.Fatalf("RepoRoot() = %q: %v", root, err)
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	r := stack.StartRedis(t)
	if !strings.HasPrefix(r.URL, "redis://127.0.0.1:") || !strings.HasSuffix(r.URL, "/0") {
		t.Fatalf("URL = %q", r.URL)
	}
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := ctxT(t, 30*time.Second)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if info := c.Info(ctx, "server").Val(); !strings.Contains(info, "redis_version:") {
		t.Fatalf("INFO server: %q", info)
	}

	pid := r.PID()
	r.Kill()
	if r.PID() != 0 {
		t.Fatalf("PID after Kill = %d", r.PID())
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered after Kill")
	}
	r.Start()
	if r.PID() == 0 || r.PID() == pid {
		t.Fatalf("PID after Start = %d (was %d)", r.PID(), pid)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
	if n := c.Exists(ctx, "k").Val(); n != 0 {
		t.Fatalf("key survived a restart of a non-persistent redis")
	}

	r.Stop()
	r.Start()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Stop+Start: %v", err)
	}
}

func TestLiveKit(t *testing.T) {
	t.Parallel()
	lk := stack.StartLiveKit(t)
	if !strings.HasPrefix(lk.URL, "http://127.0.0.1:") || lk.WSURL != "ws://"+strings.TrimPrefix(lk.URL, "http://") {
		t.Fatalf("URL = %q, WSURL = %q", lk.URL, lk.WSURL)
	}
	if lk.APIKey != "devkey" || len(lk.APISecret) < 32 {
		t.Fatalf("key %q, secret of %d characters", lk.APIKey, len(lk.APISecret))
	}
	ctx := ctxT(t, 60*time.Second)
	rs := lksdk.NewRoomServiceClient(lk.URL, lk.APIKey, lk.APISecret)
	if _, err := rs.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "stack-test"}); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	res, err := rs.ListRooms(ctx, &livekit.ListRoomsRequest{})
	if err != nil {
		t.Fatalf("ListRooms: %v", err)
	}
	if len(res.Rooms) != 1 || res.Rooms[0].Name != "stack-test" {
		t.Fatalf("ListRooms = %v", res.Rooms)
	}
	// The dev placeholder secret must not work: this is our own instance.
	bad := lksdk.NewRoomServiceClient(lk.URL, "devkey", "secret")
	if _, err := bad.ListRooms(ctx, &livekit.ListRoomsRequest{}); err == nil {
		t.Fatal("ListRooms with the dev placeholder secret succeeded")
	}

	pid := lk.PID()
	lk.Kill()
	if _, err := rs.ListRooms(ctx, &livekit.ListRoomsRequest{}); err == nil {
		t.Fatal("ListRooms answered after Kill")
	}
	lk.Start()
	if lk.PID() == 0 || lk.PID() == pid {
		t.Fatalf("PID after Start = %d (was %d)", lk.PID(), pid)
	}
	res, err = rs.ListRooms(ctx, &livekit.ListRoomsRequest{})
	if err != nil {
		t.Fatalf("ListRooms after restart: %v", err)
	}
	if len(res.Rooms) != 0 {
		t.Fatalf("rooms survived a restart of an in-memory LiveKit: %v", res.Rooms)
	}
}

// TestLiveKitParticipant joins a room over WebRTC (UDP on 127.0.0.1) and
// checks that Stop does not hang on the connected participant.
func TestLiveKitParticipant(t *testing.T) {
	t.Parallel()
	lk := stack.StartLiveKit(t)
	ctx := ctxT(t, 60*time.Second)
	room, err := lksdk.ConnectToRoom(lk.WSURL, lksdk.ConnectInfo{
		APIKey: lk.APIKey, APISecret: lk.APISecret,
		RoomName: "stack-join", ParticipantIdentity: "tester",
	}, nil, lksdk.WithConnectTimeout(15*time.Second), lksdk.WithDisableRegionDiscovery())
	if err != nil {
		t.Fatalf("ConnectToRoom: %v", err)
	}
	defer room.Disconnect()
	rs := lksdk.NewRoomServiceClient(lk.URL, lk.APIKey, lk.APISecret)
	res, err := rs.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: "stack-join"})
	if err != nil {
		t.Fatalf("ListParticipants: %v", err)
	}
	if len(res.Participants) != 1 || res.Participants[0].Identity != "tester" {
		t.Fatalf("participants = %v", res.Participants)
	}
	start := time.Now()
	lk.Stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop with a participant took %s", d)
	}
}

// relayClient speaks NIP-01/42 over go-nostr's Connection. It does not use
// nostr.Relay: go-nostr v0.52.3's Relay has a data race between its write
// loop (r.Connection = nil) and close() (reads r.Connection) whenever a
// connection ends, by Close() or by the relay going away, which fails any
// -race test that closes one.
type relayClient struct {
	t         *testing.T
	ctx       context.Context
	url       string
	conn      *nostr.Connection
	challenge string
}

func dialRelay(t *testing.T, ctx context.Context, url string) (*relayClient, error) {
	conn, err := nostr.NewConnection(ctx, url, nil, nil)
	if err != nil {
		return nil, err
	}
	c := &relayClient{t: t, ctx: ctx, url: url, conn: conn}
	t.Cleanup(func() { conn.Close() })
	return c, nil
}

func (c *relayClient) send(env nostr.Envelope) {
	c.t.Helper()
	b, err := env.MarshalJSON()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.WriteMessage(c.ctx, b); err != nil {
		c.t.Fatalf("write %s: %v", c.url, err)
	}
}

func (c *relayClient) read() nostr.Envelope {
	c.t.Helper()
	var buf bytes.Buffer
	if err := c.conn.ReadMessage(c.ctx, &buf); err != nil {
		c.t.Fatalf("read %s: %v", c.url, err)
	}
	env, err := nostr.NewMessageParser().ParseMessage(buf.String())
	if err != nil {
		c.t.Fatalf("unparsable message from %s: %v: %s", c.url, err, buf.String())
	}
	if a, ok := env.(*nostr.AuthEnvelope); ok && a.Challenge != nil {
		c.challenge = *a.Challenge
	}
	return env
}

// publish sends ev and returns the relay's OK verdict.
func (c *relayClient) publish(ev nostr.Event) (bool, string) {
	c.t.Helper()
	c.send(&nostr.EventEnvelope{Event: ev})
	for {
		if ok, isOK := c.read().(*nostr.OKEnvelope); isOK && ok.EventID == ev.ID {
			return ok.OK, ok.Reason
		}
	}
}

func (c *relayClient) mustPublish(ev nostr.Event) {
	c.t.Helper()
	if ok, reason := c.publish(ev); !ok {
		c.t.Fatalf("publish kind %d to %s: %s", ev.Kind, c.url, reason)
	}
}

// query runs one REQ until EOSE; closed is the CLOSED reason, if any.
func (c *relayClient) query(f nostr.Filter) (evs []nostr.Event, closed string) {
	c.t.Helper()
	id := fmt.Sprintf("q%d", time.Now().UnixNano())
	c.send(&nostr.ReqEnvelope{SubscriptionID: id, Filters: nostr.Filters{f}})
	for {
		switch env := c.read().(type) {
		case *nostr.EventEnvelope:
			if env.SubscriptionID != nil && *env.SubscriptionID == id {
				evs = append(evs, env.Event)
			}
		case *nostr.EOSEEnvelope:
			if string(*env) == id {
				c.send(ptr(nostr.CloseEnvelope(id)))
				return evs, ""
			}
		case *nostr.ClosedEnvelope:
			if env.SubscriptionID == id {
				return evs, env.Reason
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// auth answers the last AUTH challenge as sk.
func (c *relayClient) auth(sk string) {
	c.t.Helper()
	if c.challenge == "" {
		c.t.Fatal("no AUTH challenge received")
	}
	pk, _ := nostr.GetPublicKey(sk)
	ev := nip42.CreateUnsignedAuthEvent(c.challenge, pk, c.url)
	if err := ev.Sign(sk); err != nil {
		c.t.Fatal(err)
	}
	c.send(&nostr.AuthEnvelope{Event: ev})
	for {
		if ok, isOK := c.read().(*nostr.OKEnvelope); isOK && ok.EventID == ev.ID {
			if !ok.OK {
				c.t.Fatalf("AUTH refused: %s", ok.Reason)
			}
			return
		}
	}
}

func signed(t *testing.T, sk string, ev nostr.Event) nostr.Event {
	t.Helper()
	if ev.CreatedAt == 0 {
		ev.CreatedAt = nostr.Now()
	}
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestRelay(t *testing.T) {
	t.Parallel()
	r := stack.StartRelay(t)
	if !strings.HasPrefix(r.URL, "ws://127.0.0.1:") {
		t.Fatalf("URL = %q", r.URL)
	}
	ctx := ctxT(t, 60*time.Second)
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)

	c, err := dialRelay(t, ctx, r.URL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	note := signed(t, sk, nostr.Event{Kind: 1, Content: "hello stack"})
	c.mustPublish(note)
	if got, closed := c.query(nostr.Filter{IDs: []string{note.ID}}); len(got) != 1 || got[0].Content != note.Content {
		t.Fatalf("query back: %v (closed %q)", got, closed)
	}
	if ok, reason := c.publish(nostr.Event{ID: note.ID, PubKey: pk, Kind: 1, CreatedAt: note.CreatedAt, Content: "forged", Sig: note.Sig}); ok {
		t.Fatalf("relay accepted an event with a wrong id/signature (%s)", reason)
	}

	// An addressable event with a UUID d tag has a coordinate longer than
	// badger's default 100-character tag index; nestrelay indexes it.
	d := uuid.NewString()
	addr := signed(t, sk, nostr.Event{Kind: 30312, Tags: nostr.Tags{{"d", d}}, Content: "v1"})
	coord := fmt.Sprintf("30312:%s:%s", pk, d)
	ref := signed(t, sk, nostr.Event{Kind: 1, Tags: nostr.Tags{{"a", coord}}, Content: "ref"})
	c.mustPublish(addr)
	c.mustPublish(ref)
	if got, closed := c.query(nostr.Filter{Tags: nostr.TagMap{"a": {coord}}}); len(got) != 1 || got[0].ID != ref.ID {
		t.Fatalf("#a query for a %d-character coordinate: %v (closed %q)", len(coord), got, closed)
	}
	// Addressable replacement keyed by d; an older version arriving late loses.
	addr2 := signed(t, sk, nostr.Event{Kind: 30312, CreatedAt: addr.CreatedAt + 1, Tags: nostr.Tags{{"d", d}}, Content: "v2"})
	c.mustPublish(addr2)
	c.publish(signed(t, sk, nostr.Event{Kind: 30312, CreatedAt: addr.CreatedAt - 1, Tags: nostr.Tags{{"d", d}}, Content: "v0"}))
	if got, closed := c.query(nostr.Filter{Kinds: []int{30312}, Authors: []string{pk}, Tags: nostr.TagMap{"d": {d}}}); len(got) != 1 || got[0].Content != "v2" {
		t.Fatalf("addressable replacement: %v (closed %q)", got, closed)
	}
	// NIP-09 deletion.
	c.mustPublish(signed(t, sk, nostr.Event{Kind: 5, Tags: nostr.Tags{{"e", ref.ID}}}))
	if got, _ := c.query(nostr.Filter{IDs: []string{ref.ID}}); len(got) != 0 {
		t.Fatalf("deleted event still served: %v", got)
	}
	c.conn.Close()

	pid := r.PID()
	r.Kill()
	if _, err := dialRelay(t, ctx, r.URL); err == nil {
		t.Fatal("connected after Kill")
	}
	r.Start()
	if r.PID() == 0 || r.PID() == pid {
		t.Fatalf("PID after Start = %d (was %d)", r.PID(), pid)
	}
	c, err = dialRelay(t, ctx, r.URL)
	if err != nil {
		t.Fatalf("connect after restart: %v", err)
	}
	if got, closed := c.query(nostr.Filter{IDs: []string{note.ID}}); len(got) != 1 {
		t.Fatalf("event lost across Kill+Start: %v (closed %q)", got, closed)
	}

	start := time.Now()
	r.Stop() // with c still connected
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if r.PID() != 0 {
		t.Fatalf("PID after Stop = %d", r.PID())
	}
}

func TestRelayAuth(t *testing.T) {
	t.Parallel()
	r := stack.StartRelay(t, stack.WithAuth())
	if !r.Auth {
		t.Fatal("Auth = false")
	}
	ctx := ctxT(t, 30*time.Second)
	sk := nostr.GeneratePrivateKey()
	c, err := dialRelay(t, ctx, r.URL)
	if err != nil {
		t.Fatal(err)
	}
	ev := signed(t, sk, nostr.Event{Kind: 1, Content: "needs auth"})
	if ok, reason := c.publish(ev); ok || !strings.HasPrefix(reason, "auth-required:") {
		t.Fatalf("publish before AUTH: ok=%v %q, want auth-required", ok, reason)
	}
	if got, closed := c.query(nostr.Filter{Kinds: []int{1}}); len(got) != 0 || !strings.HasPrefix(closed, "auth-required:") {
		t.Fatalf("query before AUTH: %v, CLOSED %q, want auth-required", got, closed)
	}
	c.auth(sk)
	c.mustPublish(ev)
	if got, closed := c.query(nostr.Filter{IDs: []string{ev.ID}}); len(got) != 1 {
		t.Fatalf("query after AUTH: %v (closed %q)", got, closed)
	}
}

func TestNodeDir(t *testing.T) {
	root := stack.RepoRoot()
	if _, err := os.Stat(filepath.Join(root, "interop", "node_modules")); err != nil {
		t.Skip("interop/node_modules not installed")
	}
	if dir := stack.NodeDir(t); dir != filepath.Join(root, "interop") {
		t.Fatalf("NodeDir = %q", dir)
	}
}
