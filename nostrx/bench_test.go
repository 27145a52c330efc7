package nostrx

// Micro-benchmarks of the bot's hot path (go test -run x -bench . -benchmem
// ./nostrx/). docs/performance.md has the figures; nestbench measures the
// whole bot end to end.

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

func signedRequest(b *testing.B) nostr.Event {
	b.Helper()
	ev := requestEvent()
	if err := ev.Sign(hostSK); err != nil {
		b.Fatal(err)
	}
	return ev
}

// BenchmarkIntake is what the bot does with a request before it claims it:
// Screen, CheckFresh, Verify (id and BIP-340 signature) and ParseRequest.
func BenchmarkIntake(b *testing.B) {
	ev := signedRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := Screen(&ev, DefaultRequestKind, botPK); err != nil {
			b.Fatal(err)
		}
		if err := CheckFresh(&ev, testNow, testMaxAge); err != nil {
			b.Fatal(err)
		}
		if err := Verify(&ev); err != nil {
			b.Fatal(err)
		}
		if _, err := ParseRequest(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is the signature check alone (most of Intake).
func BenchmarkVerify(b *testing.B) {
	ev := signedRequest(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSpec() RoomSpec {
	return RoomSpec{
		D: "8e3c0a52-1111-4222-8333-944455556666", Title: "Friday Nest", Summary: "weekly chat",
		Topics: []string{"nostr", "audio"}, Status: StatusOpen, Service: "https://nests.example.com/api/v1/nests",
		Streaming: "wss+livekit://livekit.example.com", Starts: testNow.Unix(),
		Relays: []string{"wss://relay.example.com", "wss://nos.lol"}, Host: hostPK,
		Admins: []string{hostPK, otherPK}, Speakers: []string{hostPK, otherPK}, Replaces: &testRoom,
	}
}

// BenchmarkRoomEvent is the replacement 30312 of a recreation: build and sign.
func BenchmarkRoomEvent(b *testing.B) {
	s := mustSigner(b, botSK, 16)
	spec := benchSpec()
	b.ReportAllocs()
	for b.Loop() {
		ev := BuildRoomEvent(spec, ts(testNow))
		if err := s.Sign(&ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign is Signer.Sign alone, on a response-sized event, against
// go-nostr's Event.Sign with the hex secret (which derives the public key
// again on every call).
func BenchmarkSign(b *testing.B) {
	ev := nostr.Event{Kind: DefaultResponseKind, CreatedAt: ts(testNow), Content: strings.Repeat("A", 900),
		Tags: nostr.Tags{{"p", hostPK}, {"e", keyFor("request")}, {"a", testRoomStr}, {"expiration", "1760000600"}, {"encryption", EncryptionNIP44}}}
	b.Run("signer", func(b *testing.B) {
		s := mustSigner(b, botSK, 16)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Sign(&ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-nostr", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ev.Sign(botSK); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchPayload(b *testing.B) Payload {
	p, err := ResultPayload(ActionRestart, RestartResult{
		RoomID: testRoom.D, Endpoints: []string{"wss+livekit://livekit.example.com"},
		Token:   "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + string(make([]byte, 400)),
		Message: "Nest restarted", Naddr: testRoom.Naddr("wss://relay.example.com"),
	})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkResponse is BuildResponse: payload JSON, NIP-44 encryption and
// signing. cached-key is a requester the bot answered before; new-peer
// derives the conversation key (an ECDH) every time.
func BenchmarkResponse(b *testing.B) {
	p := benchPayload(b)
	spec := ResponseSpec{Kind: DefaultResponseKind, Requester: hostPK, RequestID: keyFor("request"),
		Room: testRoom, CreatedAt: ts(testNow), TTL: 600e9}
	b.Run("cached-key", func(b *testing.B) {
		s := mustSigner(b, botSK, 16)
		if _, err := BuildResponse(s, spec, p); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := BuildResponse(s, spec, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-peer", func(b *testing.B) {
		s := mustSigner(b, botSK, 1)
		peers := []string{hostPK, otherPK}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			spec := spec
			spec.Requester = peers[i%2] // the one-entry cache always misses
			i++
			if _, err := BuildResponse(s, spec, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConversationKey is the ECDH behind a NIP-44 key: Signer with
// its cache emptied each time against go-nostr's
// nip44.GenerateConversationKey, which it calls.
func BenchmarkConversationKey(b *testing.B) {
	b.Run("signer", func(b *testing.B) {
		s := mustSigner(b, botSK, 1)
		b.ReportAllocs()
		for b.Loop() {
			s.keys.Purge()
			if _, err := s.conversationKey(hostPK); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-nostr", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := nip44.GenerateConversationKey(hostPK, botSK); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseRoomEvent reads a stranger's 30312 (the look-up of a room
// whose record is gone): a typical one, and one listing 1,000 participants.
func BenchmarkParseRoomEvent(b *testing.B) {
	for _, n := range []int{10, 1000} {
		ev := BuildRoomEvent(benchSpec(), ts(testNow))
		for i := range n {
			ev.Tags = append(ev.Tags, nostr.Tag{"p", hexKey(i + 10), "", "Speaker"})
		}
		ev.PubKey = hostPK
		b.Run(strconv.Itoa(n)+"p", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseRoomEvent(&ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
