package nostrx

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// Signer holds the bot's key and does every operation that needs it: signing
// events and NIP-44 encryption. The curve arithmetic is go-nostr's and
// btcec's; Signer adds two things they leave to the caller:
//   - the key is checked and parsed once (go-nostr's Event.Sign takes any
//     hex, even "" or "01", and signs with whatever scalar that makes);
//   - NIP-44 conversation keys are cached per peer in a bounded LRU, because
//     the ECDH behind one costs about 40 times the encryption itself and a
//     requester usually comes back, while a flood of distinct peers must cost
//     memory in proportion to the bound, not the flood.
type Signer struct {
	public    string
	secretHex string            // as nip44.GenerateConversationKey takes it
	secret    *btcec.PrivateKey // parsed once, for signing (signer_*.go)
	keys      *lru.Cache[string, [32]byte]
}

// NewSigner checks the hex secret key (64 hex digits, 0 < key < n, the
// rule of DecodeSecretKey, which also reads nsec1…) and
// derives its public key. cacheSize bounds the conversation-key cache
// (entries; a size below 1 is raised to 1).
func NewSigner(secretHex string, cacheSize int) (*Signer, error) {
	secretHex = strings.ToLower(secretHex)
	if err := checkSecretHex(secretHex); err != nil {
		return nil, err
	}
	b, err := hex.DecodeString(secretHex)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	sk, pk := btcec.PrivKeyFromBytes(b)
	clear(b)
	cacheSize = max(cacheSize, 1)
	keys, err := lru.New[string, [32]byte](cacheSize)
	if err != nil {
		return nil, fmt.Errorf("conversation key cache: %w", err)
	}
	return &Signer{
		public:    hex.EncodeToString(pk.SerializeCompressed()[1:]),
		secretHex: secretHex,
		secret:    sk,
		keys:      keys,
	}, nil
}

// PublicKey is the hex public key events are signed with.
func (s *Signer) PublicKey() string { return s.public }

// Sign sets the event's pubkey, id and BIP-340 signature (NIP-01).
func (s *Signer) Sign(ev *nostr.Event) error {
	if ev.Tags == nil {
		ev.Tags = make(nostr.Tags, 0) // as go-nostr's Sign: serialized as []
	}
	if err := s.sign(ev); err != nil {
		return fmt.Errorf("sign kind %d: %w", ev.Kind, err)
	}
	return nil
}

// Encrypt encrypts plaintext to peer with NIP-44 v2.
func (s *Signer) Encrypt(peer, plaintext string) (string, error) {
	ck, err := s.conversationKey(peer)
	if err != nil {
		return "", err
	}
	ct, err := nip44.Encrypt(plaintext, ck)
	if err != nil {
		return "", fmt.Errorf("nip44 encrypt: %w", err)
	}
	return ct, nil
}

// Decrypt decrypts a NIP-44 v2 payload from peer.
func (s *Signer) Decrypt(peer, ciphertext string) (string, error) {
	ck, err := s.conversationKey(peer)
	if err != nil {
		return "", err
	}
	pt, err := nip44.Decrypt(ciphertext, ck)
	if err != nil {
		return "", fmt.Errorf("nip44 decrypt: %w", err)
	}
	return pt, nil
}

// conversationKey is NIP-44's conversation key with peer, from the cache or
// derived by go-nostr (which rejects a peer that is not a point on the
// curve). Failed derivations are not cached.
func (s *Signer) conversationKey(peer string) ([32]byte, error) {
	if ck, ok := s.keys.Get(peer); ok {
		return ck, nil
	}
	if !isLowerHex64(peer) {
		return [32]byte{}, fmt.Errorf("nip44 conversation key with %s: peer is not 64 lowercase hex digits", truncate(peer, 64))
	}
	ck, err := nip44.GenerateConversationKey(peer, s.secretHex)
	if err != nil {
		return ck, fmt.Errorf("nip44 conversation key with %s: %w", peer, err)
	}
	s.keys.Add(peer, ck)
	return ck, nil
}
