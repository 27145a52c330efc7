package nostrx

import (
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// BIP-340's own test vectors with a secret key (test-vectors.csv, rows 0-3):
// the public key, and a signature by Signer that go-nostr verifies. (The
// vectors' signatures themselves fix the auxiliary randomness, which Signer,
// like go-nostr, draws fresh.)
func TestSignerBIP340Vectors(t *testing.T) {
	for i, v := range []struct{ sk, pk string }{
		{"0000000000000000000000000000000000000000000000000000000000000003", "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9"},
		{"B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF", "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659"},
		{"C90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B14E5C9", "DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8"},
		{"0B432B2677937381AEF05BB02A66ECD012773062CF3FA2549E44F58ED2401710", "25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517"},
	} {
		s := mustSigner(t, v.sk, 1)
		if s.PublicKey() != strings.ToLower(v.pk) {
			t.Fatalf("vector %d: public key %s, want %s", i, s.PublicKey(), v.pk)
		}
		ev := nostr.Event{Kind: 1, CreatedAt: 1_760_000_000, Content: v.pk}
		if err := s.Sign(&ev); err != nil {
			t.Fatal(err)
		}
		if ok, err := ev.CheckSignature(); !ok || err != nil {
			t.Fatalf("vector %d: go-nostr rejects the signature: %v", i, err)
		}
	}
}

// Signer's keys and signatures are go-nostr's: the same public key, and
// signatures that go-nostr (btcec, or libsecp256k1 under that tag) verifies,
// for keys whose point has an even and an odd y.
func TestSignerMatchesGoNostr(t *testing.T) {
	for i := range 64 {
		sk := keyFor("schnorr " + string(rune('a'+i%26)) + string(rune('0'+i/26)))
		want, _ := nostr.GetPublicKey(sk)
		s := mustSigner(t, sk, 1)
		if s.PublicKey() != want {
			t.Fatalf("key %d: public key %s, want %s", i, s.PublicKey(), want)
		}
		ev := nostr.Event{Kind: 1, CreatedAt: 1_760_000_000 + nostr.Timestamp(i), Content: strings.Repeat("x", i)}
		if err := s.Sign(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Tags == nil || !ev.CheckID() {
			t.Fatalf("key %d: id %s does not match the event", i, ev.ID)
		}
		if ok, err := ev.CheckSignature(); !ok || err != nil {
			t.Fatalf("key %d: go-nostr rejects the signature: %v", i, err)
		}
		tampered := ev
		tampered.Content += "!"
		if ok, _ := tampered.CheckSignature(); ok {
			t.Fatalf("key %d: signature verifies for other content", i)
		}
	}
}

// Signing one event twice gives the same id and two valid signatures (equal
// under btcec, whose nonces are deterministic as RFC 6979 with BIP-340's
// tags; different under libsecp256k1, which draws auxiliary randomness).
func TestSignTwice(t *testing.T) {
	s := mustSigner(t, botSK, 1)
	a, b := requestEvent(), requestEvent()
	if err := s.Sign(&a); err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(&b); err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID {
		t.Fatalf("ids %s %s", a.ID, b.ID)
	}
	for _, ev := range []*nostr.Event{&a, &b} {
		if err := Verify(ev); err != nil {
			t.Fatal(err)
		}
	}
}

// conversationKey is nip44.GenerateConversationKey, for valid and invalid peers.
func TestConversationKeyMatchesNIP44(t *testing.T) {
	s := mustSigner(t, botSK, 1)
	for i := range 64 {
		peer := mustPublic(keyFor("peer " + string(rune('a'+i%26)) + string(rune('0'+i/26))))
		want, err := nip44.GenerateConversationKey(peer, botSK)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.conversationKey(peer)
		if err != nil || got != want {
			t.Fatalf("peer %s: key %x (%v), want %x", peer, got, err, want)
		}
	}
	for _, peer := range []string{
		"",
		hostPK[:63],
		hostPK + "00",
		"zz" + hostPK[2:],
		hexOf('f', 64), // x >= p
		"0000000000000000000000000000000000000000000000000000000000000005", // x³+7 is not a square
		"eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34", // BIP-340: not on the curve
	} {
		_, wantErr := nip44.GenerateConversationKey(peer, botSK)
		if _, err := s.conversationKey(peer); err == nil || wantErr == nil {
			t.Errorf("peer %q: conversationKey err %v, nip44 err %v; want both to fail", peer, err, wantErr)
		}
	}
}
