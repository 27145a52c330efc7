package flood

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// Poison is one hostile direct message to a bot: valid as an event (id and
// signature), malformed inside, in a way its DM screening must survive.
type Poison struct {
	Name  string
	Event nostr.Event
}

// PoisonNIP04 are kind 4 contents that are not NIP-04 payloads. The first
// two crashed nestbot (issue 9): go-nostr's nip04.Decrypt panics on an IV
// that is not 16 bytes and on a ciphertext that is not whole 16-byte blocks.
var PoisonNIP04 = []struct{ Name, Content string }{
	{"nip04-iv-3-bytes", "AAAA?iv=AAAA"},
	{"nip04-ciphertext-3-bytes", "AAAA?iv=AAAAAAAAAAAAAAAAAAAAAA=="},
	{"nip04-ciphertext-17-bytes", "AAAAAAAAAAAAAAAAAAAAAAA=?iv=AAAAAAAAAAAAAAAAAAAAAA=="},
	{"nip04-ciphertext-empty", "?iv=AAAAAAAAAAAAAAAAAAAAAA=="},
	{"nip04-iv-empty", "AAAAAAAAAAAAAAAAAAAAAA==?iv="},
	{"nip04-two-ivs", "AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAAAAAAAAAAAAAAAAAAAA==?iv=AAAA"},
	{"nip04-no-iv", "AAAAAAAAAAAAAAAAAAAAAA=="},
	{"nip04-60k-garbage", strings.Repeat("A", 60_000) + "?iv=AAAAAAAAAAAAAAAAAAAAAA=="},
}

// PoisonDMs builds one of each poison to bot (hex pubkey), each from fresh
// random keys so that every call gives new events: the kind 4s above, and
// NIP-17 gift wraps whose content is not NIP-44, whose seal is not an event
// (null, 5,000 levels of nesting), whose seal is signed but holds a rumor
// that is null or claims another author.
func PoisonDMs(bot string) ([]Poison, error) {
	var out []Poison
	for _, p := range PoisonNIP04 {
		ev := nostr.Event{Kind: nostr.KindEncryptedDirectMessage, CreatedAt: nostr.Now(),
			Tags: nostr.Tags{{"p", bot}}, Content: p.Content}
		if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
			return nil, err
		}
		out = append(out, Poison{p.Name, ev})
	}

	wrap := func(name, content string) error {
		ev := nostr.Event{Kind: nostr.KindGiftWrap, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", bot}}, Content: content}
		if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
			return err
		}
		out = append(out, Poison{name, ev})
		return nil
	}
	// wrapped gift-wraps seal (any text) to bot, NIP-44 from a one-time key.
	wrapped := func(name, seal string) error {
		sk := nostr.GeneratePrivateKey()
		ck, err := nip44.GenerateConversationKey(bot, sk)
		if err != nil {
			return err
		}
		ct, err := nip44.Encrypt(seal, ck)
		if err != nil {
			return err
		}
		ev := nostr.Event{Kind: nostr.KindGiftWrap, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", bot}}, Content: ct}
		if err := ev.Sign(sk); err != nil {
			return err
		}
		out = append(out, Poison{name, ev})
		return nil
	}
	// sealed seals the rumor (any text, built for the seal's pubkey) with a
	// fresh sender key, correctly, and wraps it.
	sealed := func(name string, rumor func(sender string) string) error {
		sk := nostr.GeneratePrivateKey()
		pk, _ := nostr.GetPublicKey(sk)
		ck, err := nip44.GenerateConversationKey(bot, sk)
		if err != nil {
			return err
		}
		ct, err := nip44.Encrypt(rumor(pk), ck)
		if err != nil {
			return err
		}
		seal := nostr.Event{Kind: nostr.KindSeal, CreatedAt: nostr.Now(), Content: ct}
		if err := seal.Sign(sk); err != nil {
			return err
		}
		b, err := seal.MarshalJSON()
		if err != nil {
			return err
		}
		return wrapped(name, string(b))
	}

	if err := wrap("nip17-wrap-not-nip44", base64.StdEncoding.EncodeToString([]byte("not a nip44 payload at all"))); err != nil {
		return nil, err
	}
	if err := wrap("nip17-wrap-short", "AAAA"); err != nil {
		return nil, err
	}
	if err := wrapped("nip17-seal-null", "null"); err != nil {
		return nil, err
	}
	if err := wrapped("nip17-seal-deep-nesting", strings.Repeat("[", 5000)+strings.Repeat("]", 5000)); err != nil {
		return nil, err
	}
	if err := wrapped("nip17-seal-bad-sig", fmt.Sprintf(`{"kind":13,"id":"%s","pubkey":"%s","created_at":1,"tags":[],"content":"AAAA","sig":"%s"}`,
		strings.Repeat("ab", 32), bot, strings.Repeat("0", 128))); err != nil {
		return nil, err
	}
	if err := sealed("nip17-rumor-null", func(string) string { return "null" }); err != nil {
		return nil, err
	}
	other, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	if err := sealed("nip17-rumor-other-author", func(string) string {
		return fmt.Sprintf(`{"kind":14,"pubkey":"%s","created_at":%d,"tags":[["p","%s"]],"content":"help"}`, other, nostr.Now(), bot)
	}); err != nil {
		return nil, err
	}
	if err := sealed("nip17-rumor-odd-tags", func(sender string) string {
		return fmt.Sprintf(`{"kind":14,"pubkey":"%s","created_at":%d,"tags":[["p"],["e"],[],["p","%s"]],"content":"\u0000\ud800"}`, sender, nostr.Now(), bot)
	}); err != nil {
		return nil, err
	}
	return out, nil
}
