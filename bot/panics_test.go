package bot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/ops"
	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/internal/testlog"
	"github.com/nestbot/nestbot/rooms"
)

// nip04Poisons are kind 4 contents that made go-nostr's nip04.Decrypt panic
// (issue 9, item 1): an IV that is not 16 bytes, a ciphertext that is not
// whole 16-byte blocks. Each must be dropped as malformed, not decrypted.
var nip04Poisons = map[string]string{
	"iv 3 bytes":                 "AAAA?iv=AAAA",
	"iv empty":                   "AAAAAAAAAAAAAAAAAAAAAA==?iv=",
	"iv 17 bytes":                "AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAAAAAAAAAAAAAAAAAAAAA=",
	"ciphertext 3 bytes":         "AAAA?iv=AAAAAAAAAAAAAAAAAAAAAA==",
	"ciphertext 17 bytes":        "AAAAAAAAAAAAAAAAAAAAAAA=?iv=AAAAAAAAAAAAAAAAAAAAAA==",
	"ciphertext empty":           "?iv=AAAAAAAAAAAAAAAAAAAAAA==",
	"no iv":                      "AAAAAAAAAAAAAAAAAAAAAA==",
	"two ivs":                    "AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAA",
	"iv not base64":              "AAAAAAAAAAAAAAAAAAAAAA==?iv=!!!!!!!!!!!!!!!!!!!!!!!!",
	"ciphertext not base64":      "%%%%?iv=AAAAAAAAAAAAAAAAAAAAAA==",
	"url-safe base64 iv, 2 long": "AAAAAAAAAAAAAAAAAAAAAA==?iv=__8=",
}

// TestOpenNIP04Poisons: every poison is a typed error (never a panic), and
// a real NIP-04 payload still opens.
func TestOpenNIP04Poisons(t *testing.T) {
	a, b := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	bpk, _ := nostr.GetPublicKey(b)
	key, err := nip04.ComputeSharedSecret(bpk, a)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range nip04Poisons {
		t.Run(name, func(t *testing.T) {
			if _, err := openNIP04(content, key); !errors.Is(err, errNIP04Payload) {
				t.Fatalf("err %v, want errNIP04Payload", err)
			}
		})
	}
	if _, err := openNIP04(strings.Repeat("A", maxDMContent)+"?iv=AAAAAAAAAAAAAAAAAAAAAA==", key); !errors.Is(err, errNIP04Payload) {
		t.Fatalf("oversized payload: %v", err)
	}
	ct, err := nip04.Encrypt("restart x", key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := openNIP04(ct, key); err != nil || got != "restart x" {
		t.Fatalf("a real payload: %q %v", got, err)
	}
}

// TestIntakeNIP04Poisoned sends each poison as a signed kind 4 through the
// listener's DM intake: each is dropped as malformed, nothing panics, and a
// real message after them is still queued.
func TestIntakeNIP04Poisoned(t *testing.T) {
	s := testService(t)
	sk := nostr.GeneratePrivateKey()
	for name, content := range nip04Poisons {
		ev := nostr.Event{Kind: nostr.KindEncryptedDirectMessage, CreatedAt: nostr.Now(),
			Tags: nostr.Tags{{"p", s.PublicKey()}}, Content: content}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		before := dropped(t, s, "malformed")
		if intakeOne(s, ev) != nil {
			t.Fatalf("%s: queued", name)
		}
		if dropped(t, s, "malformed") != before+1 {
			t.Fatalf("%s: not dropped as malformed", name)
		}
	}
	if n := counterValue(s.guard.count.WithLabelValues("dm")); n != 0 {
		t.Fatalf("%v panics recovered: validation should have caught every poison", n)
	}
	alice := newDMSender()
	if cmd := intakeOne(s, alice.nip04(t, s.PublicKey(), "status x", time.Now())); cmd == nil || cmd.text != "status x" {
		t.Fatalf("a real message after the poisons: %+v", cmd)
	}
}

// guardFixture is a panicGuard logging into a buffer.
type guardFixture struct {
	g   *panicGuard
	log *testlog.Buffer
}

func newGuardFixture(t *testing.T, store poisonStore) *guardFixture {
	t.Helper()
	f := &guardFixture{log: &testlog.Buffer{}}
	f.g = newPanicGuard(ops.NewMetrics(ops.Gauges{}).Panics, slog.New(slog.NewTextHandler(f.log, nil)), newSeenSet(100))
	if store != nil {
		f.g.store = store
	}
	f.g.ttl, f.g.window = time.Hour, time.Hour
	f.g.pause = time.Millisecond
	return f
}

func (f *guardFixture) panics(where string) float64 {
	return counterValue(f.g.count.WithLabelValues(where))
}

// TestPanicGuardCatch: a panic in a guarded function is counted by where,
// logged at ERROR with the event id, and the event is seen; catchErr turns
// it into an error; supervise starts a panicking task again.
func TestPanicGuardCatch(t *testing.T) {
	f := newGuardFixture(t, nil)
	func() {
		defer f.g.catch("verifier", "ev1")
		var b []byte
		_ = b[int(f.panics("verifier"))] // an index out of range: a runtime panic like the library's
	}()
	if f.panics("verifier") != 1 {
		t.Fatal("panic not counted")
	}
	if !f.g.seen.Contains("ev1") {
		t.Fatal("the poisoned event is not seen")
	}
	if l := f.log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "where=verifier") || !strings.Contains(l, "ev1") {
		t.Fatalf("log %q", l)
	}

	err := func() (err error) {
		defer f.g.catchErr("reader", &err)
		panic("boom")
	}()
	if err == nil || !strings.Contains(err.Error(), "boom") || f.panics("reader") != 1 {
		t.Fatalf("catchErr: %v", err)
	}

	// A task that panics twice and then ends is run three times.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runs := 0
	f.g.supervise(ctx, "background", func(context.Context) {
		runs++
		if runs < 3 {
			panic("again")
		}
	})
	if runs != 3 || f.panics("background") != 2 {
		t.Fatalf("runs %d, panics %v", runs, f.panics("background"))
	}
}

// TestPanicGuardHandler: a panicking handler answers 500, counts as webhook
// on the webhook path, and the server goes on serving.
func TestPanicGuardHandler(t *testing.T) {
	f := newGuardFixture(t, nil)
	h := f.g.handler("/hook", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		panic("bad body")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, path := range []string{"/hook", "/other"} {
		res, err := http.Post(srv.URL+path, "application/json", bytes.NewReader([]byte("{}")))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError {
			t.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
	if f.panics("webhook") != 1 || f.panics("http") != 1 {
		t.Fatalf("webhook %v http %v", f.panics("webhook"), f.panics("http"))
	}
	res, err := http.Get(srv.URL + "/ok")
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("after the panics: %v %v", res, err)
	}
	res.Body.Close()
}

// TestPanicGuardPoisonsInRedis: a poisoned event's claim is settled (but a
// stored answer is kept), and a new guard (a restarted bot) loads it into
// its seen set; the set stays bounded.
func TestPanicGuardPoisonsInRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (make deps)")
	}
	r := stack.StartRedis(t)
	opt, _ := redis.ParseURL(r.URL)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	store := rooms.NewRedisStore(rdb, "test:", "test:", time.Hour)
	f := newGuardFixture(t, store)
	claim := store.Keys().Claim
	rdb.Set(ctx, claim("answered"), "r:{}", time.Hour)
	rdb.Set(ctx, claim("working"), "w:someone:1", time.Hour)
	func() {
		defer f.g.catch("worker", "working", "answered", "fresh")
		panic("poison")
	}()
	for id, want := range map[string]string{"working": "done", "answered": "r:{}", "fresh": "done"} {
		if v := rdb.Get(ctx, claim(id)).Val(); v != want {
			t.Errorf("claim of %s is %q, want %q", id, v, want)
		}
	}
	restarted := newGuardFixture(t, store)
	restarted.g.load(ctx)
	for _, id := range []string{"working", "answered", "fresh"} {
		if !restarted.g.seen.Contains(id) {
			t.Errorf("%s not loaded after a restart", id)
		}
	}
	for i := range maxPoisoned + 50 {
		func() {
			defer f.g.catch("worker", "bulk"+strconv.Itoa(i))
			panic("poison")
		}()
	}
	if n := rdb.ZCard(ctx, "test:poisoned").Val(); n != maxPoisoned {
		t.Fatalf("%d poisoned ids kept, want the bound %d", n, maxPoisoned)
	}
	if ttl := rdb.TTL(ctx, "test:poisoned").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("the poisoned set expires in %s", ttl)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
