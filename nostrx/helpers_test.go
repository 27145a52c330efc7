package nostrx

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Fixed keys and clock, so that every test and fuzz seed is reproducible.
var (
	testNow    = time.Unix(1_760_000_000, 0)
	testMaxAge = 120 * time.Second

	botSK       = keyFor("bot")
	botPK       = mustPublic(botSK)
	hostSK      = keyFor("host")
	hostPK      = mustPublic(hostSK)
	otherSK     = keyFor("other")
	otherPK     = mustPublic(otherSK)
	testRoom    = Coordinate{Kind: KindRoom, Author: hostPK, D: "3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b"}
	testRoomStr = testRoom.String()
)

// keyFor derives a deterministic secret key from a label.
func keyFor(label string) string {
	h := sha256.Sum256([]byte("nestbot test key " + label))
	return hex.EncodeToString(h[:])
}

func mustPublic(sk string) string {
	s, err := NewSigner(sk, 4)
	if err != nil {
		panic(err)
	}
	return s.PublicKey()
}

func mustSigner(t testing.TB, sk string, size int) *Signer {
	t.Helper()
	s, err := NewSigner(sk, size)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func ts(t time.Time) nostr.Timestamp { return nostr.Timestamp(t.Unix()) }

// requestEvent is a well-formed restart request from the host to the bot at
// testNow, before signing.
func requestEvent() nostr.Event {
	return NewRequest(DefaultRequestKind, botPK, testRoom, ActionRestart, "", "", ts(testNow), 0)
}

// signed signs ev with sk and returns it.
func signed(t testing.TB, sk string, ev nostr.Event) nostr.Event {
	t.Helper()
	if err := mustSigner(t, sk, 1).Sign(&ev); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return ev
}

// withTags returns ev with its tags replaced.
func withTags(ev nostr.Event, tags ...nostr.Tag) nostr.Event {
	ev.Tags = nostr.Tags(tags)
	return ev
}

// admission runs the bot's pipeline for an incoming request: the silent
// checks in the bot's order (Screen, CheckFresh, Verify), then ParseRequest.
// silent is true when the error must not be answered.
func admission(ev *nostr.Event) (req Request, err error, silent bool) {
	if err := Screen(ev, DefaultRequestKind, botPK); err != nil {
		return Request{}, err, true
	}
	if err := CheckFresh(ev, testNow, testMaxAge); err != nil {
		return Request{}, err, true
	}
	if err := Verify(ev); err != nil {
		return Request{}, err, true
	}
	req, err = ParseRequest(ev)
	return req, err, false
}

// wantCode asserts err is a *RequestError with the given code.
func wantCode(t testing.TB, err error, code Code) {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RequestError, want code %s", err, err, code)
	}
	if re.Code != code {
		t.Fatalf("code %s (%s), want %s", re.Code, re.Reason, code)
	}
	if CodeOf(err) != code {
		t.Fatalf("CodeOf = %s, want %s", CodeOf(err), code)
	}
}

func unix(n int64) string { return strconv.FormatInt(n, 10) }

func hexOf(c byte, n int) string { return strings.Repeat(string(c), n) }

// hostsOf lists the pubkeys r gives the Host role, the author first and
// the others sorted.
func hostsOf(r *RoomEvent) []string {
	out := []string{r.Room.Author}
	for pk, role := range r.Roles {
		if role == RoleHost && pk != r.Room.Author {
			out = append(out, pk)
		}
	}
	slices.Sort(out[1:])
	return out
}
