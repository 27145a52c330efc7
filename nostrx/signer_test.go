package nostrx

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

func TestNewSigner(t *testing.T) {
	want, err := nostr.GetPublicKey(botSK)
	if err != nil {
		t.Fatal(err)
	}
	s := mustSigner(t, botSK, 0) // a size below 1 is raised to 1
	if s.PublicKey() != want {
		t.Fatalf("PublicKey %s, want %s", s.PublicKey(), want)
	}
	for _, peer := range []string{hostPK, otherPK} {
		if _, err := s.Encrypt(peer, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.keys.Len(); n != 1 {
		t.Fatalf("cache of size 0 (raised to 1) holds %d keys", n)
	}
	up := mustSigner(t, strings.ToUpper(botSK), 3)
	if up.PublicKey() != want {
		t.Fatalf("uppercase key gives %s, want %s", up.PublicKey(), want)
	}
	// The largest valid secret key, n-1.
	mustSigner(t, "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140", 1)
	mustSigner(t, hexOf('0', 63)+"1", 1)
}

func TestNewSignerRejects(t *testing.T) {
	for name, sk := range map[string]string{
		"empty":         "",
		"one byte":      "01",
		"63 hex":        botSK[:63],
		"65 hex":        botSK + "0",
		"31 bytes":      botSK[:62],
		"33 bytes":      botSK + "00",
		"not hex":       "g" + botSK[1:],
		"nsec":          "nsec1" + botSK[:58],
		"zero":          hexOf('0', 64),
		"curve order":   "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
		"above order":   hexOf('f', 64),
		"with a prefix": "0x" + botSK[2:],
		"with spaces":   " " + botSK[1:],
	} {
		if s, err := NewSigner(sk, 4); err == nil {
			t.Errorf("%s: NewSigner(%q) accepted, public key %s", name, sk, s.PublicKey())
		}
	}
}

func TestSignVerify(t *testing.T) {
	s := mustSigner(t, hostSK, 1)
	ev := requestEvent()
	ev.PubKey = otherPK // overwritten by Sign
	if err := s.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.PubKey != hostPK || len(ev.ID) != 64 || len(ev.Sig) != 128 {
		t.Fatalf("signed %+v", ev)
	}
	if err := Verify(&ev); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestEncryptDecrypt(t *testing.T) {
	bot := mustSigner(t, botSK, 4)
	host := mustSigner(t, hostSK, 4)
	other := mustSigner(t, otherSK, 4)
	for _, msg := range []string{"x", `{"result_type":"restart"}`, strings.Repeat("é", 30000)} {
		ct, err := bot.Encrypt(hostPK, msg)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := host.Decrypt(botPK, ct); err != nil || pt != msg {
			t.Fatalf("host decrypts %.20q, %v", pt, err)
		}
		if pt, err := bot.Decrypt(hostPK, ct); err != nil || pt != msg {
			t.Fatalf("bot decrypts its own message: %.20q, %v", pt, err)
		}
		if _, err := other.Decrypt(botPK, ct); err == nil {
			t.Fatal("a third party decrypted the message")
		}
		if _, err := host.Decrypt(otherPK, ct); err == nil {
			t.Fatal("decrypted as if from the wrong peer")
		}
	}
	// Interoperates with plain go-nostr NIP-44.
	ck, err := nip44.GenerateConversationKey(botPK, hostSK)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := nip44.Encrypt("from elsewhere", ck)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := bot.Decrypt(hostPK, ct); err != nil || pt != "from elsewhere" {
		t.Fatalf("decrypt go-nostr ciphertext: %q, %v", pt, err)
	}
}

func TestEncryptErrors(t *testing.T) {
	bot := mustSigner(t, botSK, 4)
	if _, err := bot.Encrypt(hostPK, ""); err == nil {
		t.Error("encrypting an empty message succeeded (NIP-44 needs at least one byte)")
	}
	for _, peer := range []string{"", "zz", hexOf('f', 64), strings.Repeat("ab", 33)} {
		if _, err := bot.Encrypt(peer, "x"); err == nil {
			t.Errorf("Encrypt to %q succeeded", peer)
		}
		if _, err := bot.Decrypt(peer, strings.Repeat("A", 200)); err == nil {
			t.Errorf("Decrypt from %q succeeded", peer)
		}
	}
	for _, peer := range []string{"", "zz", hexOf('f', 64), strings.Repeat("ab", 33)} {
		if bot.keys.Contains(peer) {
			t.Fatalf("failed conversation key with %q was cached", peer)
		}
	}
	for _, ct := range []string{"", "#", "not base64", strings.Repeat("A", 200), "#" + strings.Repeat("A", 200)} {
		if _, err := bot.Decrypt(hostPK, ct); err == nil {
			t.Errorf("Decrypt(%.10q) succeeded", ct)
		}
	}
}

// A cache of two with three peers evicts, and still every peer's messages
// encrypt and decrypt correctly, in any order.
func TestConversationKeyCacheEviction(t *testing.T) {
	bot := mustSigner(t, botSK, 2)
	peers := make([]*Signer, 5)
	for i := range peers {
		peers[i] = mustSigner(t, keyFor(fmt.Sprintf("peer-%d", i)), 1)
	}
	order := []int{0, 1, 2, 0, 1, 2, 2, 1, 0, 3, 4, 0, 4, 3}
	for step, i := range order {
		p := peers[i]
		msg := fmt.Sprintf("step %d to peer %d", step, i)
		ct, err := bot.Encrypt(p.PublicKey(), msg)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := p.Decrypt(botPK, ct); err != nil || pt != msg {
			t.Fatalf("step %d: peer %d reads %q, %v", step, i, pt, err)
		}
		back, err := p.Encrypt(botPK, "re: "+msg)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := bot.Decrypt(p.PublicKey(), back); err != nil || pt != "re: "+msg {
			t.Fatalf("step %d: bot reads %q from peer %d, %v", step, pt, i, err)
		}
		if n := bot.keys.Len(); n > 2 {
			t.Fatalf("step %d: cache holds %d entries, bound 2", step, n)
		}
	}
	// The cached keys are the right ones for their peers.
	for _, pk := range bot.keys.Keys() {
		want, err := nip44.GenerateConversationKey(pk, botSK)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := bot.keys.Peek(pk); got != want {
			t.Fatalf("cache entry for %s holds the wrong key", pk[:8])
		}
	}
}

func TestSignerConcurrent(t *testing.T) {
	bot := mustSigner(t, botSK, 3)
	peers := make([]*Signer, 6)
	for i := range peers {
		peers[i] = mustSigner(t, keyFor(fmt.Sprintf("concurrent-%d", i)), 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 12; i++ {
				p := peers[(w+i)%len(peers)]
				msg := fmt.Sprintf("%d/%d", w, i)
				ct, err := bot.Encrypt(p.PublicKey(), msg)
				if err != nil {
					errs <- err
					return
				}
				if pt, err := p.Decrypt(botPK, ct); err != nil || pt != msg {
					errs <- fmt.Errorf("worker %d: %q, %v", w, pt, err)
					return
				}
				ev := nostr.Event{Kind: DefaultResponseKind, CreatedAt: ts(testNow), Content: ct}
				if err := bot.Sign(&ev); err != nil {
					errs <- err
					return
				}
				if err := Verify(&ev); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := bot.keys.Len(); n > 3 {
		t.Fatalf("cache holds %d entries, bound 3", n)
	}
}
