package nostrx

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// Signer holds the bot's key and does every operation that needs it: signing
// events and NIP-44 encryption. It caches NIP-44 conversation keys per peer,
// because the ECDH behind one costs about 40 times the encryption itself and
// a requester usually comes back.
//
// The key is parsed once: go-nostr's Event.Sign and
// nip44.GenerateConversationKey take the secret as hex and derive the
// public key again on every call (two extra base-point multiplications per
// signature, one per ECDH). Signer keeps the scalar and the x-only public
// key and signs BIP-340 itself (see signHash), which is what makes Sign
// about three times cheaper; the signatures are ordinary BIP-340 ones.
type Signer struct {
	public string
	keys   *keyCache

	d     secp256k1.ModNScalar // the secret scalar, as given (ECDH)
	signD secp256k1.ModNScalar // d, negated when d·G has an odd y (BIP-340)
	pubX  [32]byte             // x-only public key
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
	var b [32]byte
	if _, err := hex.Decode(b[:], []byte(secretHex)); err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	if cacheSize < 1 {
		cacheSize = 1
	}
	s := &Signer{keys: newKeyCache(cacheSize)}
	if s.d.SetBytes(&b) != 0 || s.d.IsZero() {
		return nil, fmt.Errorf("secret key: want 64 hex characters encoding a valid secp256k1 key")
	}
	clear(b[:])
	var p secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&s.d, &p)
	p.ToAffine()
	p.X.PutBytesUnchecked(s.pubX[:])
	s.signD.Set(&s.d)
	if p.Y.IsOdd() {
		s.signD.Negate()
	}
	s.public = hex.EncodeToString(s.pubX[:])
	return s, nil
}

const (
	zeroKey    = "0000000000000000000000000000000000000000000000000000000000000000"
	curveOrder = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
)

// PublicKey is the hex public key events are signed with.
func (s *Signer) PublicKey() string { return s.public }

// Sign sets the event's pubkey, id and signature (BIP-340 with fresh
// auxiliary randomness, as libsecp256k1 and go-nostr's libsecp256k1 build
// sign).
func (s *Signer) Sign(ev *nostr.Event) error {
	if ev.Tags == nil {
		ev.Tags = make(nostr.Tags, 0) // as go-nostr's Sign: serialized as []
	}
	ev.PubKey = s.public
	h := sha256.Sum256(ev.Serialize())
	var aux [32]byte
	if _, err := rand.Read(aux[:]); err != nil {
		return fmt.Errorf("sign kind %d: %w", ev.Kind, err)
	}
	sig, err := s.signHash(&h, &aux)
	if err != nil {
		return fmt.Errorf("sign kind %d: %w", ev.Kind, err)
	}
	ev.ID = hex.EncodeToString(h[:])
	ev.Sig = hex.EncodeToString(sig[:])
	return nil
}

// BIP-340 tagged-hash prefixes: SHA256(tag) twice.
var (
	tagAux       = sha256.Sum256([]byte("BIP0340/aux"))
	tagNonce     = sha256.Sum256([]byte("BIP0340/nonce"))
	tagChallenge = sha256.Sum256([]byte("BIP0340/challenge"))
)

func taggedHash(tag *[32]byte, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write(tag[:])
	h.Write(tag[:])
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

var errZeroNonce = errors.New("BIP-340 nonce is zero")

// signHash is BIP-340's Sign(sk, m, a) with the key already parsed:
//
//	t = bytes(d) xor hash_aux(a)
//	k' = int(hash_nonce(t || bytes(P) || m)) mod n, failing if 0
//	R = k'G; k = k' if has_even_y(R) else n - k'
//	e = int(hash_challenge(bytes(R) || bytes(P) || m)) mod n
//	sig = bytes(R) || bytes((k + e·d) mod n)
//
// with d already negated for an odd P.y. It is checked against BIP-340's
// test vectors and go-nostr's verification in signer_test.go.
func (s *Signer) signHash(m, aux *[32]byte) ([64]byte, error) {
	var sig [64]byte
	d := s.signD.Bytes()
	t := taggedHash(&tagAux, aux[:])
	for i := range t {
		t[i] ^= d[i]
	}
	clear(d[:])
	r := taggedHash(&tagNonce, t[:], s.pubX[:], m[:])
	clear(t[:])
	var k secp256k1.ModNScalar
	k.SetBytes(&r)
	clear(r[:])
	if k.IsZero() {
		return sig, errZeroNonce
	}
	var R secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&k, &R)
	R.ToAffine()
	if R.Y.IsOdd() {
		k.Negate()
	}
	R.X.PutBytesUnchecked(sig[:32])
	eh := taggedHash(&tagChallenge, sig[:32], s.pubX[:], m[:])
	var e secp256k1.ModNScalar
	e.SetBytes(&eh)
	e.Mul(&s.signD).Add(&k)
	k.Zero()
	e.PutBytesUnchecked(sig[32:])
	return sig, nil
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
	ck, err := s.deriveKey(peer)
	if err != nil {
		return ck, fmt.Errorf("nip44 conversation key with %s: %w", truncate(peer, 64), err)
	}
	s.keys.put(peer, ck)
	return ck, nil
}

var errBadPeer = errors.New("peer is not a valid x-only public key")

// deriveKey is nip44.GenerateConversationKey(peer, secret) with the secret
// already parsed: HKDF-extract(salt "nip44-v2", x(d·P)), P the even-y point
// with x = peer.
func (s *Signer) deriveKey(peer string) ([32]byte, error) {
	var ck [32]byte
	var x32 [32]byte
	if len(peer) != 64 {
		return ck, errBadPeer
	}
	if _, err := hex.Decode(x32[:], []byte(peer)); err != nil {
		return ck, errBadPeer
	}
	var p, shared secp256k1.JacobianPoint
	if p.X.SetBytes(&x32) != 0 || !secp256k1.DecompressY(&p.X, false, &p.Y) {
		return ck, errBadPeer
	}
	p.Z.SetInt(1)
	secp256k1.ScalarMultNonConst(&s.d, &p, &shared)
	shared.ToAffine()
	var x [32]byte
	shared.X.PutBytesUnchecked(x[:])
	mac := hmac.New(sha256.New, []byte("nip44-v2"))
	mac.Write(x[:])
	mac.Sum(ck[:0])
	clear(x[:])
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
