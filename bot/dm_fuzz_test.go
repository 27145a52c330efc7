package bot

import (
	"bytes"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/nestbot/nestbot/internal/config"
)

// Fuzz targets over DM screening: what a stranger's kind 4 or kind 1059
// turns into before any command is parsed. They call the screening
// functions directly, without the panic guard of the verifier, so that a
// panic anywhere below (go-nostr's nip04 and nip44, JSON decoding of the
// seal and the rumor, id and signature checks) fails the target. Seeds are
// in testdata/fuzz/<target>, including the inputs that crashed the bot
// (issue 9); make fuzz runs every target (devstack/fuzz-smoke.sh).

// Fixed keys, so that the checked-in seeds mean the same on every run.
const (
	fuzzBotKey    = "7f0c1cf2a5e2b5d3f9a2c1d0e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9"
	fuzzSenderKey = "3b2a19080f0e0d0c0b0a09080706050403020100fffefdfcfbfaf9f8f7f6f5f4"
	fuzzWrapKey   = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
)

// fuzzService is a Service that is never run, with the fixed bot key.
func fuzzService(f *testing.F) *Service {
	f.Helper()
	f.Setenv("NESTBOT_NOSTR_SECRET_KEY", fuzzBotKey)
	f.Setenv("NESTBOT_REDIS_URL", "redis://127.0.0.1:1/0")
	cfg, err := config.Load("")
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	return s
}

func pubOf(tb testing.TB, sk string) string {
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

// FuzzScreenNIP04: content is a kind 4's content, signed by a fixed sender
// to the bot. Screening never panics, and queues a command exactly when
// the content is a NIP-04 payload that opens with the shared key.
func FuzzScreenNIP04(f *testing.F) {
	s := fuzzService(f)
	bot := s.PublicKey()
	sender := pubOf(f, fuzzSenderKey)
	key, err := nip04.ComputeSharedSecret(bot, fuzzSenderKey)
	if err != nil {
		f.Fatal(err)
	}
	real, err := nip04.Encrypt("status 30312:"+sender+":room", key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add("AAAA?iv=AAAA")
	f.Add("AAAA?iv=AAAAAAAAAAAAAAAAAAAAAA==")
	f.Fuzz(func(t *testing.T, content string) {
		ev := nostr.Event{Kind: nostr.KindEncryptedDirectMessage, CreatedAt: nostr.Now(),
			Tags: nostr.Tags{{"p", bot}}, Content: content}
		if err := ev.Sign(fuzzSenderKey); err != nil {
			t.Fatal(err)
		}
		defer s.seen.forget(ev.ID)
		cmd := s.screenNIP04(&ev, time.Now())
		_, openErr := openNIP04(content, key)
		switch {
		case cmd == nil && openErr == nil:
			t.Fatalf("a payload that opens was not queued: %q", content)
		case cmd != nil && openErr != nil:
			t.Fatalf("queued although it does not open (%v): %q", openErr, content)
		case cmd != nil && (cmd.sender != sender || cmd.id != ev.ID || cmd.proto != protoNIP04):
			t.Fatalf("command %+v", cmd)
		}
	})
}

// FuzzScreenWrap: payload is one layer of a NIP-17 message to the bot,
// the others built correctly around it. layer%3 == 0: the gift wrap's
// content as is; 1: the seal's JSON, encrypted into a wrap; 2: the rumor's
// JSON, sealed by the fixed sender and wrapped ("$NOW" in it becomes the
// current time, so that seeds can be fresh). Screening never panics, and
// only a rumor the sender sealed can give a command, in the sender's name.
func FuzzScreenWrap(f *testing.F) {
	s := fuzzService(f)
	bot := s.PublicKey()
	sender := pubOf(f, fuzzSenderKey)
	toBot, err := nip44.GenerateConversationKey(bot, fuzzWrapKey)
	if err != nil {
		f.Fatal(err)
	}
	sealKey, err := nip44.GenerateConversationKey(bot, fuzzSenderKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(2), []byte(`{"kind":14,"pubkey":"`+sender+`","created_at":$NOW,"tags":[["p","`+bot+`"]],"content":"help"}`))
	f.Add(uint8(1), []byte(`{"kind":13,"pubkey":"`+sender+`","content":"x","sig":"`+string(bytes.Repeat([]byte("0"), 128))+`"}`))
	f.Add(uint8(0), []byte("AAAA"))
	f.Fuzz(func(t *testing.T, layer uint8, payload []byte) {
		now := time.Now()
		content := string(payload)
		switch layer % 3 {
		case 2:
			rumor := bytes.ReplaceAll(payload, []byte("$NOW"), strconv.AppendInt(nil, now.Unix(), 10))
			if len(rumor) == 0 || len(rumor) > 32000 {
				return // beyond what NIP-44 carries once sealed
			}
			ct, err := nip44.Encrypt(string(rumor), sealKey)
			if err != nil {
				t.Fatal(err)
			}
			seal := nostr.Event{Kind: nostr.KindSeal, CreatedAt: nostr.Now(), Content: ct}
			if err := seal.Sign(fuzzSenderKey); err != nil {
				t.Fatal(err)
			}
			b, err := seal.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			payload = b
			fallthrough
		case 1:
			if len(payload) == 0 || len(payload) > 65535 {
				return
			}
			ct, err := nip44.Encrypt(string(payload), toBot)
			if err != nil {
				t.Fatal(err)
			}
			content = ct
		}
		wrap := nostr.Event{Kind: nostr.KindGiftWrap, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", bot}}, Content: content}
		if err := wrap.Sign(fuzzWrapKey); err != nil {
			t.Fatal(err)
		}
		defer s.seen.forget(wrap.ID)
		cmd := s.screenWrap(&wrap, now)
		if cmd == nil {
			return
		}
		defer s.seen.forget(cmd.id)
		if layer%3 != 2 || cmd.sender != sender || cmd.proto != protoNIP17 || cmd.wrapID != wrap.ID {
			t.Fatalf("layer %d gave command %+v", layer%3, cmd)
		}
	})
}
