package nostrx

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/nbd-wtf/go-nostr/nip19"
)

// rawNaddr builds a naddr from hand-made TLV entries, so tests can produce
// encodings nip19.EncodeEntity never would.
func rawNaddr(t testing.TB, hrp string, entries ...[]byte) string {
	t.Helper()
	var data []byte
	for _, e := range entries {
		data = append(data, e...)
	}
	bits, err := bech32.ConvertBits(data, 8, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := bech32.Encode(hrp, bits)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tlv(typ byte, v []byte) []byte { return append([]byte{typ, byte(len(v))}, v...) }

func kindTLV(kind uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, kind)
	return tlv(3, b)
}

func authorTLV(t testing.TB, pk string) []byte {
	b, err := hex.DecodeString(pk)
	if err != nil {
		t.Fatal(err)
	}
	return tlv(2, b)
}

func TestValidD(t *testing.T) {
	tests := []struct {
		d    string
		want bool
	}{
		{"3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b", true},
		{"a", true},
		{"A.b_c-9", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"", false},
		{"a b", false},
		{"a/b", false},
		{"a:b", false},
		{"a#b", false},
		{"a?b", false},
		{"é", false},
		{"a\n", false},
		{"\x00", false},
	}
	for _, tt := range tests {
		if got := ValidD(tt.d); got != tt.want {
			t.Errorf("ValidD(%q) = %v, want %v", tt.d, got, tt.want)
		}
	}
}

func TestParseCoordinate(t *testing.T) {
	tests := []struct {
		in   string
		want *Coordinate
	}{
		{testRoomStr, &testRoom},
		{"30312:" + hostPK + ":" + strings.Repeat("z", 128), &Coordinate{Kind: KindRoom, Author: hostPK, D: strings.Repeat("z", 128)}},
		{"30312:" + hostPK + ":" + strings.Repeat("z", 129), nil},
		{"30311:" + hostPK + ":x", nil},
		{"030312:" + hostPK + ":x", nil},
		{"+30312:" + hostPK + ":x", nil},
		{" 30312:" + hostPK + ":x", nil},
		{"30312:" + strings.ToUpper(hostPK) + ":x", nil},
		{"30312:" + hostPK[:63] + ":x", nil},
		{"30312:" + hostPK + "0:x", nil},
		{"30312:" + hostPK, nil},
		{"30312:" + hostPK + ":", nil},
		{"30312:" + hostPK + ":x:y", nil},
		{"30312::x", nil},
		{"30312", nil},
		{"", nil},
		{"99999999999999999999:" + hostPK + ":x", nil},
	}
	for _, tt := range tests {
		got, err := ParseCoordinate(tt.in)
		if tt.want == nil {
			var ae *AddressError
			if !errors.As(err, &ae) {
				t.Errorf("ParseCoordinate(%q) = %v, %v; want an *AddressError", tt.in, got, err)
			} else if ae.Input != tt.in {
				t.Errorf("AddressError.Input = %q, want %q", ae.Input, tt.in)
			}
			continue
		}
		if err != nil || got.Kind != tt.want.Kind || got.Author != tt.want.Author || got.D != tt.want.D {
			t.Errorf("ParseCoordinate(%q) = %+v, %v; want %+v", tt.in, got, err, *tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
}

func TestParseRoomAddress(t *testing.T) {
	relay := "wss://relay.example.com"
	naddr := testRoom.Naddr(relay)
	bare := testRoom.Naddr()
	tests := []struct {
		name   string
		in     string
		ok     bool
		relays []string
	}{
		{"coordinate", testRoomStr, true, nil},
		{"coordinate with spaces around", "  " + testRoomStr + "\n", true, nil},
		{"naddr", naddr, true, []string{relay}},
		{"naddr without relays", bare, true, nil},
		{"nostr: naddr", "nostr:" + naddr, true, []string{relay}},
		{"NOSTR: prefix", "NOSTR:" + naddr, true, []string{relay}},
		{"Nostr: prefix", "Nostr:" + naddr, true, []string{relay}},
		{"uppercase naddr", strings.ToUpper(naddr), true, []string{relay}},
		{"nostr: uppercase naddr", "nostr:" + strings.ToUpper(naddr), true, []string{relay}},
		{"https link with naddr in path", "https://nostrnests.com/" + naddr, true, []string{relay}},
		{"https link with naddr deeper in path", "https://example.com/room/" + naddr + "/join", true, []string{relay}},
		{"https link with nostr:naddr in path", "https://njump.me/nostr:" + naddr, true, []string{relay}},
		{"https link with naddr and a query", "https://nostrnests.com/" + naddr + "?ref=x", true, []string{relay}},
		{"https link with naddr in fragment", "https://app.example.com/#/" + naddr, true, []string{relay}},
		{"http link", "http://localhost:3000/" + bare, true, nil},
		{"uppercase scheme", "HTTPS://nostrnests.com/" + naddr, true, []string{relay}},

		{"empty", "", false, nil},
		{"blank", "   ", false, nil},
		{"garbage", "hello world", false, nil},
		{"npub", Npub(hostPK), false, nil},
		{"nostr: npub", "nostr:" + Npub(hostPK), false, nil},
		{"nostr: coordinate", "nostr:" + testRoomStr, false, nil},
		{"naddr with bad checksum", naddr[:len(naddr)-1] + flip(naddr[len(naddr)-1]), false, nil},
		{"naddr truncated", naddr[:40], false, nil},
		{"link without naddr", "https://nostrnests.com/rooms/abc", false, nil},
		{"link with npub", "https://njump.me/" + Npub(hostPK), false, nil},
		{"ftp link", "ftp://example.com/" + naddr, false, nil},
		{"naddr in a query only", "https://example.com/?a=" + naddr, false, nil},
		{"coordinate of another kind", "30311:" + hostPK + ":x", false, nil},
		{"coordinate with uppercase author", "30312:" + strings.ToUpper(hostPK) + ":x", false, nil},
		// Lowercasing some non-ASCII letters changes their byte length; the
		// link parser once sliced by that length and panicked.
		{"link with naddr1 and non-ASCII letters", "https://x.com/naddr1" + strings.Repeat("Ⱥ", 13), false, nil},
		{"link with invalid UTF-8 after naddr1 (fuzzer crasher)", "http:#nAddr1\x89", false, nil},
		{"link with naddr1 and shrinking letters", "https://x.com/naddr1" + strings.Repeat("İ", 8), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoomAddress(tt.in)
			if !tt.ok {
				var ae *AddressError
				if !errors.As(err, &ae) {
					t.Fatalf("got %+v, %v; want an *AddressError", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRoomAddress: %v", err)
			}
			if got.Kind != KindRoom || got.Author != hostPK || got.D != testRoom.D {
				t.Fatalf("got %+v, want %+v", got, testRoom)
			}
			if !slices.Equal(got.Relays, tt.relays) {
				t.Fatalf("relays %v, want %v", got.Relays, tt.relays)
			}
		})
	}
}

func flip(c byte) string {
	if c == 'q' {
		return "p"
	}
	return "q"
}

func TestParseRoomAddressNaddrContents(t *testing.T) {
	d := tlv(0, []byte(testRoom.D))
	author := authorTLV(t, hostPK)
	tests := []struct {
		name   string
		naddr  string
		ok     bool
		relays []string
	}{
		{"hand-built", rawNaddr(t, "naddr", d, author, kindTLV(KindRoom)), true, nil},
		{"entries in another order", rawNaddr(t, "naddr", kindTLV(KindRoom), author, d), true, nil},
		{"unknown TLV type ignored", rawNaddr(t, "naddr", d, tlv(9, []byte("?")), author, kindTLV(KindRoom)), true, nil},
		{"only websocket relays kept", rawNaddr(t, "naddr", d, tlv(1, []byte("wss://a.example")), tlv(1, []byte("https://b.example")),
			tlv(1, []byte("not a url")), tlv(1, []byte("ws://c.example:7777")), author, kindTLV(KindRoom)),
			true, []string{"wss://a.example", "ws://c.example:7777"}},
		{"kind 30311", rawNaddr(t, "naddr", d, author, kindTLV(30311)), false, nil},
		{"kind 30023", testRoom.withKind(30023).Naddr(), false, nil},
		{"no kind", rawNaddr(t, "naddr", d, author), false, nil},
		{"no author", rawNaddr(t, "naddr", d, kindTLV(KindRoom)), false, nil},
		{"no d", rawNaddr(t, "naddr", author, kindTLV(KindRoom)), false, nil},
		{"empty d", rawNaddr(t, "naddr", tlv(0, nil), author, kindTLV(KindRoom)), false, nil},
		{"d with a space", rawNaddr(t, "naddr", tlv(0, []byte("my room")), author, kindTLV(KindRoom)), false, nil},
		{"d of 129", rawNaddr(t, "naddr", tlv(0, []byte(strings.Repeat("d", 129))), author, kindTLV(KindRoom)), false, nil},
		{"author of 31 bytes", rawNaddr(t, "naddr", d, tlv(2, make([]byte, 31)), kindTLV(KindRoom)), false, nil},
		// nip19.Decode reads 4 bytes from the kind entry without checking its
		// length and panics; ParseRoomAddress must turn that into an error.
		{"kind entry of 2 bytes", rawNaddr(t, "naddr", d, author, tlv(3, []byte{0x76, 0x48})), false, nil},
		{"kind entry of 0 bytes", rawNaddr(t, "naddr", d, author, tlv(3, nil)), false, nil},
		{"nprofile", rawNaddr(t, "nprofile", append([]byte{0}, authorTLV(t, hostPK)[1:]...)), false, nil},
		{"nevent", rawNaddr(t, "nevent", tlv(0, make([]byte, 32))), false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, in := range []string{tt.naddr, "nostr:" + tt.naddr, "NOSTR:" + tt.naddr, "https://nostrnests.com/" + tt.naddr} {
				got, err := ParseRoomAddress(in)
				if !tt.ok {
					var ae *AddressError
					if !errors.As(err, &ae) {
						t.Fatalf("%s: got %+v, %v; want an *AddressError", in, got, err)
					}
					if ae.Input != in {
						t.Fatalf("AddressError.Input = %q, want %q", ae.Input, in)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", in, err)
				}
				if got.Author != hostPK || got.D != testRoom.D || got.Kind != KindRoom || !slices.Equal(got.Relays, tt.relays) {
					t.Fatalf("%s: got %+v", in, got)
				}
			}
		})
	}
}

// A naddr whose kind entry is 2 bytes instead of 4 panics inside go-nostr's
// nip19.Decode (v0.52.3); ParseRoomAddress must answer it with an
// *AddressError instead. The test states both halves, so an upgrade that
// fixes go-nostr shows up here and the recover in parseNaddr can then go.
func TestShortKindNaddr(t *testing.T) {
	s := rawNaddr(t, "naddr", tlv(0, []byte("x")), authorTLV(t, hostPK), tlv(3, []byte{1, 2}))
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		_, _, _ = nip19.Decode(s)
		return false
	}()
	if !panicked {
		t.Error("go-nostr's nip19.Decode no longer panics on a short kind entry: the recover in parseNaddr can go")
	}
	var ae *AddressError
	if _, err := ParseRoomAddress(s); !errors.As(err, &ae) {
		t.Fatalf("ParseRoomAddress(short kind) = %v, want an *AddressError", err)
	}
}

func (c Coordinate) withKind(k int) Coordinate { c.Kind = k; return c }

func TestNaddrRoundTrip(t *testing.T) {
	relays := []string{"wss://relay.example.com", "ws://127.0.0.1:7777"}
	for _, c := range []Coordinate{
		testRoom,
		{Kind: KindRoom, Author: otherPK, D: strings.Repeat("Z", 128)},
		{Kind: KindRoom, Author: botPK, D: "a"},
	} {
		s := c.Naddr(relays...)
		if !strings.HasPrefix(s, "naddr1") {
			t.Fatalf("Naddr = %q", s)
		}
		got, err := ParseRoomAddress(s)
		if err != nil {
			t.Fatalf("ParseRoomAddress(Naddr(%v)): %v", c, err)
		}
		if got.String() != c.String() || !slices.Equal(got.Relays, relays) {
			t.Fatalf("round trip %+v, want %+v with %v", got, c, relays)
		}
	}
	if s := (Coordinate{Kind: KindRoom, Author: "not hex", D: "x"}).Naddr(); s != "" {
		t.Fatalf("Naddr of a bad author = %q, want empty", s)
	}
}

// A relay hint longer than a TLV entry can hold is left out rather than
// corrupting the naddr.
func TestNaddrSkipsOverlongRelay(t *testing.T) {
	long := "wss://" + strings.Repeat("r", 300) + ".example"
	if !ValidRelayURL(long) {
		t.Fatal("test relay should be a valid relay URL")
	}
	s := testRoom.Naddr(long, "wss://ok.example")
	got, err := ParseRoomAddress(s)
	if err != nil {
		t.Fatalf("naddr with an overlong hint: %v", err)
	}
	if got.String() != testRoomStr || !slices.Equal(got.Relays, []string{"wss://ok.example"}) {
		t.Fatalf("got %+v", got)
	}
}

func TestValidRelayURL(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"wss://relay.damus.io", true},
		{"ws://127.0.0.1:7777", true},
		{"wss://relay.example.com/path", true},
		{"wss://[::1]:7777", true},
		{"https://relay.example.com", false},
		{"http://relay.example.com", false},
		{"relay.example.com", false},
		{"wss://", false},
		{"wss://:7777", false},
		{"wss:relay.example.com", false},
		{"", false},
		{"wss://" + strings.Repeat("a", 506), true}, // 512 characters
		{"wss://" + strings.Repeat("a", 507), false},
		{"wss://bad host", false},
	}
	for _, tt := range tests {
		if got := ValidRelayURL(tt.in); got != tt.want {
			t.Errorf("ValidRelayURL(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodePubkey(t *testing.T) {
	npub := Npub(hostPK)
	nsec, _ := nip19.EncodePrivateKey(hostSK)
	tests := []struct {
		in, want string
	}{
		{hostPK, hostPK},
		{strings.ToUpper(hostPK), hostPK},
		{"  " + hostPK + " ", hostPK},
		{npub, hostPK},
		{"nostr:" + npub, hostPK},
		{npub[:len(npub)-1] + flip(npub[len(npub)-1]), ""},
		{nsec, ""},
		{hostPK[:63], ""},
		{"", ""},
		{testRoom.Naddr(), ""},
		{hexKey(5), ""},       // 64 hex, but x = 5 is not on secp256k1
		{Npub(hexKey(5)), ""}, // the same as an npub
		{hexKey(1), "0000000000000000000000000000000000000000000000000000000000000001"}, // x = 1 is
	}
	for _, tt := range tests {
		got, err := DecodePubkey(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("DecodePubkey(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("DecodePubkey(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNpub(t *testing.T) {
	n := Npub(hostPK)
	if !strings.HasPrefix(n, "npub1") {
		t.Fatalf("Npub = %q", n)
	}
	if back, err := DecodePubkey(n); err != nil || back != hostPK {
		t.Fatalf("round trip %q, %v", back, err)
	}
	if got := Npub("nonsense"); got != "nonsense" {
		t.Fatalf("Npub(invalid) = %q", got)
	}
}

func TestAddressErrorMessage(t *testing.T) {
	long := strings.Repeat("q", 200)
	_, err := ParseRoomAddress(long)
	var ae *AddressError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v", err)
	}
	if ae.Input != long {
		t.Fatalf("Input not kept in full")
	}
	if msg := err.Error(); strings.Contains(msg, strings.Repeat("q", 81)) || !strings.Contains(msg, strings.Repeat("q", 80)+"…") {
		t.Fatalf("message not truncated: %q", msg)
	}
}
