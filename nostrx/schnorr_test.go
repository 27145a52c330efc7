package nostrx

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// BIP-340's own test vectors with a secret key (test-vectors.csv, rows 0-3).
func TestSignHashBIP340Vectors(t *testing.T) {
	for i, v := range []struct{ sk, pk, aux, msg, sig string }{
		{"0000000000000000000000000000000000000000000000000000000000000003", "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
			"0000000000000000000000000000000000000000000000000000000000000000", "0000000000000000000000000000000000000000000000000000000000000000",
			"E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0"},
		{"B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF", "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
			"0000000000000000000000000000000000000000000000000000000000000001", "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
			"6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A"},
		{"C90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B14E5C9", "DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8",
			"C87AA53824B4D7AE2EB035A2B5BBBCCC080E76CDC6D1692C4B0B62D798E6D906", "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C",
			"5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7"},
		{"0B432B2677937381AEF05BB02A66ECD012773062CF3FA2549E44F58ED2401710", "25D1DFF95105F5253C4022F628A996AD3A0D95FBF21D468A1B33F8C160D8F517",
			"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
			"7EB0509757E246F19449885651611CB965ECC1A187DD51B64FDA1EDC9637D5EC97582B9CB13DB3933705B32BA982AF5AF25FD78881EBB32771FC5922EFC66EA3"},
	} {
		s := mustSigner(t, v.sk, 1)
		if s.PublicKey() != strings.ToLower(v.pk) {
			t.Fatalf("vector %d: public key %s, want %s", i, s.PublicKey(), v.pk)
		}
		var m, aux [32]byte
		hex.Decode(m[:], []byte(v.msg))
		hex.Decode(aux[:], []byte(v.aux))
		sig, err := s.signHash(&m, &aux)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.ToUpper(hex.EncodeToString(sig[:])); got != v.sig {
			t.Fatalf("vector %d: signature\n %s, want\n %s", i, got, v.sig)
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

// Two signatures of one event differ (fresh auxiliary randomness) and both verify.
func TestSignFreshNonce(t *testing.T) {
	s := mustSigner(t, botSK, 1)
	a, b := requestEvent(), requestEvent()
	if err := s.Sign(&a); err != nil {
		t.Fatal(err)
	}
	if err := s.Sign(&b); err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.Sig == b.Sig {
		t.Fatalf("ids %s %s, sigs equal: %v", a.ID, b.ID, a.Sig == b.Sig)
	}
	if err := Verify(&b); err != nil {
		t.Fatal(err)
	}
}

// deriveKey is nip44.GenerateConversationKey, for valid and invalid peers.
func TestDeriveKeyMatchesNIP44(t *testing.T) {
	s := mustSigner(t, botSK, 1)
	for i := range 64 {
		peer := mustPublic(keyFor("peer " + string(rune('a'+i%26)) + string(rune('0'+i/26))))
		want, err := nip44.GenerateConversationKey(peer, botSK)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.deriveKey(peer)
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
		if _, err := s.deriveKey(peer); err == nil || wantErr == nil {
			t.Errorf("peer %q: deriveKey err %v, nip44 err %v; want both to fail", peer, err, wantErr)
		}
	}
}
