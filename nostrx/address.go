package nostrx

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
)

// KindRoom is NIP-53's interactive room ("nest") kind.
const KindRoom = 30312

// MaxDLength bounds a room identifier; Nests uses UUIDs (36 characters).
const MaxDLength = 128

var dPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ValidD reports whether d is an identifier nestbot accepts: the character
// set Amethyst's spec allows, so every address the bot hands out is one that
// clients can route.
func ValidD(d string) bool { return dPattern.MatchString(d) }

// Coordinate addresses one kind 30312 room: its author and its d tag. Relays
// are hints, never part of the identity.
type Coordinate struct {
	Kind   int
	Author string
	D      string
	Relays []string
}

// String renders the NIP-01 form "30312:<author>:<d>" used in "a" tags.
func (c Coordinate) String() string {
	return strconv.Itoa(c.Kind) + ":" + c.Author + ":" + c.D
}

// Naddr encodes the coordinate as NIP-19 naddr with the given relay hints.
func (c Coordinate) Naddr(relays ...string) string {
	// A TLV value is at most 255 bytes; go-nostr writes the length as a
	// byte without checking, so a longer hint would corrupt the naddr.
	var hints []string
	for _, r := range relays {
		if len(r) <= 255 {
			hints = append(hints, r)
		}
	}
	s, err := nip19.EncodeEntity(c.Author, c.Kind, c.D, hints)
	if err != nil {
		// Author is validated hex for every Coordinate built by this package.
		return ""
	}
	return s
}

// AddressError says why a typed room address was not understood.
type AddressError struct {
	Input  string
	Reason string
}

func (e *AddressError) Error() string {
	in := e.Input
	if len(in) > 80 {
		in = in[:80] + "…"
	}
	return fmt.Sprintf("room address %q: %s", in, e.Reason)
}

// ParseCoordinate parses the "30312:<64-hex>:<d>" form and insists on a
// room kind, lowercase hex author and a valid d.
func ParseCoordinate(s string) (Coordinate, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Coordinate{}, &AddressError{s, "want 30312:<hex pubkey>:<d>"}
	}
	author, d, ok := strings.Cut(rest, ":")
	if !ok {
		return Coordinate{}, &AddressError{s, "want 30312:<hex pubkey>:<d>"}
	}
	k, err := strconv.Atoi(kind)
	if err != nil || strconv.Itoa(k) != kind {
		// Only the canonical decimal form: "+30312" or "030312" would name
		// the same room under a different "a" value.
		return Coordinate{}, &AddressError{s, "kind is not a number"}
	}
	return newCoordinate(s, k, author, d, nil)
}

func newCoordinate(input string, kind int, author, d string, relays []string) (Coordinate, error) {
	if kind != KindRoom {
		return Coordinate{}, &AddressError{input, fmt.Sprintf("kind %d is not a room (30312)", kind)}
	}
	if !isLowerHex64(author) {
		return Coordinate{}, &AddressError{input, "author is not a 64-character lowercase hex pubkey"}
	}
	if !ValidD(d) {
		return Coordinate{}, &AddressError{input, "d must be 1-128 characters of A-Z a-z 0-9 . _ -"}
	}
	return Coordinate{Kind: kind, Author: author, D: d, Relays: relays}, nil
}

// ParseRoomAddress accepts every way a user or client names a room:
// "30312:<hex>:<d>", "naddr1…", "nostr:naddr1…", or a web link whose path
// contains a naddr (as nostrnests.com and other apps share them).
func ParseRoomAddress(s string) (Coordinate, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Coordinate{}, &AddressError{s, "empty"}
	}
	if strings.HasPrefix(s, "30312:") || (len(s) > 0 && s[0] >= '0' && s[0] <= '9') {
		return ParseCoordinate(s)
	}
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "nostr:") {
		return parseNaddr(s, s[len("nostr:"):])
	}
	if strings.HasPrefix(lower, "naddr1") {
		return parseNaddr(s, s)
	}
	if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		for _, part := range strings.FieldsFunc(u.Path+"/"+u.Fragment, func(r rune) bool { return r == '/' || r == '#' || r == '?' }) {
			// parseNaddr lowercases anyway; slicing part by the length of
			// its lowercase form would be wrong (and could panic) when
			// lowercasing changes a non-ASCII character's byte length.
			p := strings.TrimPrefix(strings.ToLower(part), "nostr:")
			if strings.HasPrefix(p, "naddr1") {
				return parseNaddr(s, p)
			}
		}
		return Coordinate{}, &AddressError{s, "the link contains no naddr"}
	}
	return Coordinate{}, &AddressError{s, "want naddr1…, nostr:naddr1…, a link with a naddr, or 30312:<hex>:<d>"}
}

func parseNaddr(input, code string) (c Coordinate, err error) {
	// nip19.Decode indexes TLV values without checking their length (a kind
	// entry shorter than 4 bytes panics), so a hostile naddr must not be able
	// to take the bot down.
	defer func() {
		if r := recover(); r != nil {
			c, err = Coordinate{}, &AddressError{input, "malformed naddr"}
		}
	}()
	prefix, value, derr := nip19.Decode(strings.ToLower(code))
	if derr != nil {
		return Coordinate{}, &AddressError{input, "not a valid naddr: " + derr.Error()}
	}
	ep, ok := value.(nostr.EntityPointer)
	if prefix != "naddr" || !ok {
		return Coordinate{}, &AddressError{input, "not a naddr"}
	}
	var relays []string
	for _, r := range ep.Relays {
		if ValidRelayURL(r) {
			relays = append(relays, r)
		}
	}
	return newCoordinate(input, ep.Kind, ep.PublicKey, ep.Identifier, relays)
}

// ValidRelayURL reports whether s is a ws:// or wss:// URL with a host, the
// only kind of relay hint the bot will ever dial.
func ValidRelayURL(s string) bool {
	if len(s) > 512 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Hostname() != ""
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Npub renders a hex pubkey for humans and logs; invalid input comes back as is.
func Npub(hex string) string {
	s, err := nip19.EncodePublicKey(hex)
	if err != nil {
		return hex
	}
	return s
}
