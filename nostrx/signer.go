package nostrx

import (
	"container/list"
	"fmt"
	"strings"
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// Signer holds the bot's key and does every operation that needs it: signing
// events and NIP-44 encryption. It caches NIP-44 conversation keys per peer,
// because the ECDH behind one costs about 40 times the encryption itself and
// a requester usually comes back.
type Signer struct {
	secret string
	public string
	keys   *keyCache
}

// NewSigner checks the hex secret key and derives its public key.
// cacheSize bounds the conversation-key cache (entries, at least 1).
func NewSigner(secretHex string, cacheSize int) (*Signer, error) {
	// go-nostr's GetPublicKey takes any hex, even "" or "01", and signs
	// with whatever scalar that makes; only a real 32-byte key will do.
	secretHex = strings.ToLower(secretHex)
	if !isLowerHex64(secretHex) || secretHex == zeroKey || secretHex >= curveOrder {
		return nil, fmt.Errorf("secret key: want 64 hex characters encoding a valid secp256k1 key")
	}
	pk, err := nostr.GetPublicKey(secretHex)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if cacheSize < 1 {
		cacheSize = 1
	}
	return &Signer{secret: secretHex, public: pk, keys: newKeyCache(cacheSize)}, nil
}

const (
	zeroKey    = "0000000000000000000000000000000000000000000000000000000000000000"
	curveOrder = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
)

// PublicKey is the hex public key events are signed with.
func (s *Signer) PublicKey() string { return s.public }

// Sign sets the event's pubkey, id and signature.
func (s *Signer) Sign(ev *nostr.Event) error {
	if err := ev.Sign(s.secret); err != nil {
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

func (s *Signer) conversationKey(peer string) ([32]byte, error) {
	if ck, ok := s.keys.get(peer); ok {
		return ck, nil
	}
	ck, err := nip44.GenerateConversationKey(peer, s.secret)
	if err != nil {
		return ck, fmt.Errorf("nip44 conversation key with %s: %w", truncate(peer, 64), err)
	}
	s.keys.put(peer, ck)
	return ck, nil
}

// keyCache is a bounded LRU of conversation keys, so that a flood of
// distinct peers costs memory in proportion to the bound, not the flood.
type keyCache struct {
	mu    sync.Mutex
	max   int
	order *list.List
	items map[string]*list.Element
}

type keyEntry struct {
	peer string
	key  [32]byte
}

func newKeyCache(max int) *keyCache {
	return &keyCache{max: max, order: list.New(), items: make(map[string]*list.Element, max)}
}

func (c *keyCache) get(peer string) ([32]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[peer]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*keyEntry).key, true
	}
	return [32]byte{}, false
}

func (c *keyCache) put(peer string, key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[peer]; ok {
		el.Value.(*keyEntry).key = key
		c.order.MoveToFront(el)
		return
	}
	c.items[peer] = c.order.PushFront(&keyEntry{peer, key})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*keyEntry).peer)
	}
}
