package nostrx

import (
	"encoding/json"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// Fuzz targets for everything that reads untrusted input. Seed corpora live
// in testdata/fuzz/<FuzzName>/ and are regenerated (deterministically: keys,
// clock and BIP-340 nonces are all fixed) with
//
//	go test -run TestWriteFuzzSeeds ./nostrx/ -write-seeds
//
// Crashers the fuzzer finds are added there by hand, under crash-* names.

var writeSeeds = flag.Bool("write-seeds", false, "rewrite the generated seeds under testdata/fuzz")

// FuzzParseRequest feeds raw event JSON through the bot's whole intake.
func FuzzParseRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev nostr.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return
		}
		if err := Screen(&ev, DefaultRequestKind, botPK); err == nil {
			if ev.Kind != DefaultRequestKind || !isLowerHex64(ev.ID) || !isLowerHex64(ev.PubKey) || !addressedTo(&ev, botPK) {
				t.Fatalf("Screen passed %+v", ev)
			}
		} else if !errors.Is(err, ErrWrongKind) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotAddressed) {
			t.Fatalf("Screen: unexpected error %v", err)
		}
		if err := CheckFresh(&ev, testNow, testMaxAge); err == nil {
			if at := ev.CreatedAt.Time(); at.Before(testNow.Add(-testMaxAge)) || at.After(testNow.Add(MaxFutureSkew)) {
				t.Fatalf("CheckFresh passed created_at %d", ev.CreatedAt)
			}
		}
		if err := Verify(&ev); err == nil && !ev.CheckID() {
			t.Fatalf("Verify passed a bad id")
		}
		req, err := ParseRequest(&ev)
		if req.ID != ev.ID || req.Requester != ev.PubKey || req.CreatedAt != ev.CreatedAt {
			t.Fatalf("identity not carried: %+v", req)
		}
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ParseRequest error %v is not a *RequestError", err)
			}
			switch re.Code {
			case CodeBadRequest:
			case CodeNotImplemented:
				checkRoom(t, req.Room)
				if req.Action == ActionRestart || req.Action == ActionStatus {
					t.Fatalf("NOT_IMPLEMENTED for action %q", req.Action)
				}
			default:
				t.Fatalf("ParseRequest code %s", re.Code)
			}
			return
		}
		checkRoom(t, req.Room)
		if req.Action != ActionRestart && req.Action != ActionStatus {
			t.Fatalf("accepted action %q", req.Action)
		}
		if len(ev.Content) > MaxReasonBytes || req.Reason != ev.Content {
			t.Fatalf("accepted content of %d bytes", len(ev.Content))
		}
		var as []string
		for _, tag := range ev.Tags {
			if len(tag) > 0 && tag[0] == "a" {
				as = append(as, strings.Join(tag[1:min(2, len(tag))], ""))
			}
		}
		if len(as) != 1 || as[0] != req.Room.String() {
			t.Fatalf("a tags %q, room %s", as, req.Room)
		}
		if req.RelayHint != "" && !ValidRelayURL(req.RelayHint) {
			t.Fatalf("relay hint %q", req.RelayHint)
		}
	})
}

// FuzzParseRoomEvent reads raw 30312 JSON and rebuilds what it read.
func FuzzParseRoomEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev nostr.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return
		}
		_ = Verify(&ev)
		r, err := ParseRoomEvent(&ev)
		if err != nil {
			var ae *AddressError
			if ev.Kind == KindRoom && !errors.As(err, &ae) {
				t.Fatalf("error %v: neither wrong kind nor an *AddressError", err)
			}
			if ev.Kind != KindRoom && !errors.Is(err, ErrWrongKind) {
				t.Fatalf("kind %d: error %v is not ErrWrongKind", ev.Kind, err)
			}
			return
		}
		checkRoom(t, r.Room)
		if r.Room.Author != ev.PubKey || r.Room.D != ev.Tags.GetD() || r.Event != &ev {
			t.Fatalf("room %+v from %s/%q", r.Room, ev.PubKey, ev.Tags.GetD())
		}
		for pk, role := range r.Roles {
			if !isLowerHex64(pk) || role < RoleSpeaker || role > RoleHost {
				t.Fatalf("role %v for %q", role, pk)
			}
		}
		for _, u := range r.Relays {
			if !ValidRelayURL(u) {
				t.Fatalf("relay %q", u)
			}
		}
		if r.Service != "" && !isHTTPURL(r.Service) {
			t.Fatalf("service %q", r.Service)
		}
		if !slices.Contains([]string{"", StatusOpen, StatusPrivate, StatusClosed, StatusPlanned}, r.Status) {
			t.Fatalf("status %q", r.Status)
		}
		if hosts := hostsOf(r); hosts[0] != r.Room.Author || r.RoleOf(r.Room.Author) != RoleHost {
			t.Fatalf("hosts %v", hosts)
		}

		// What was read survives being written back the way the bot does.
		spec := RoomSpec{
			D: r.Room.D, Title: r.Title, Summary: r.Summary, Image: r.Image, Color: r.Color, Topics: r.Topics,
			Status: r.Status, Service: r.Service, Relays: r.Relays, Host: r.Room.Author, Starts: int64(ev.CreatedAt),
		}
		if len(r.Streaming) > 0 {
			spec.Streaming = r.Streaming[0]
		}
		for _, pk := range slices.Sorted(maps.Keys(r.Roles)) {
			if r.Roles[pk] >= RoleAdmin {
				spec.Admins = append(spec.Admins, pk)
			} else {
				spec.Speakers = append(spec.Speakers, pk)
			}
		}
		out := BuildRoomEvent(spec, ev.CreatedAt)
		out.PubKey = ev.PubKey
		r2, err := ParseRoomEvent(&out)
		if err != nil {
			t.Fatalf("rebuilt event does not parse: %v\n%v", err, out.Tags)
		}
		wantTitle, wantStatus := r.Title, r.Status
		if wantTitle == "" {
			wantTitle = DefaultRoomTitle
		}
		if wantStatus == "" {
			wantStatus = StatusOpen
		}
		if r2.Room.String() != r.Room.String() || r2.Title != wantTitle || r2.Status != wantStatus || r2.Summary != r.Summary ||
			r2.Image != r.Image || r2.Color != r.Color || r2.Service != r.Service ||
			!slices.Equal(r2.Topics, r.Topics) || !slices.Equal(r2.Relays, r.Relays) {
			t.Fatalf("round trip changed the room:\n%+v\n%+v", r, r2)
		}
		if spec.Streaming != "" && !slices.Equal(r2.Streaming, []string{spec.Streaming}) {
			t.Fatalf("streaming %q, want %q", r2.Streaming, spec.Streaming)
		}
		for pk, role := range r.Roles {
			want := min(role, RoleAdmin)
			if pk == r.Room.Author {
				want = RoleHost
			}
			if r2.Roles[pk] != want {
				t.Fatalf("role of %s: %v, want %v", pk, r2.Roles[pk], want)
			}
		}
		if r2.Roles[r.Room.Author] != RoleHost || len(r2.Roles) > len(r.Roles)+1 {
			t.Fatalf("roles %v from %v", r2.Roles, r.Roles)
		}
	})
}

// FuzzParseRoomAddress: whatever a user types, no panic, and an accepted
// address is a valid room that re-encodes to itself.
func FuzzParseRoomAddress(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseRoomAddress(s)
		if err != nil {
			var ae *AddressError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v is not an *AddressError", err)
			}
			return
		}
		checkRoom(t, c)
		for _, r := range c.Relays {
			if !ValidRelayURL(r) {
				t.Fatalf("relay %q", r)
			}
		}
		back, err := ParseCoordinate(c.String())
		if err != nil || back.String() != c.String() {
			t.Fatalf("coordinate %s does not round trip: %v", c, err)
		}
		n := c.Naddr(c.Relays...)
		again, err := ParseRoomAddress(n)
		if err != nil || again.String() != c.String() || !slices.Equal(again.Relays, c.Relays) {
			t.Fatalf("naddr of %+v does not round trip: %+v, %v", c, again, err)
		}
	})
}

func checkRoom(t *testing.T, c Coordinate) {
	t.Helper()
	if c.Kind != KindRoom || !isLowerHex64(c.Author) || !ValidD(c.D) {
		t.Fatalf("invalid room accepted: %+v", c)
	}
}

func addressedTo(ev *nostr.Event, pk string) bool {
	for _, tag := range ev.Tags {
		if len(tag) >= 2 && tag[0] == "p" && tag[1] == pk {
			return true
		}
	}
	return false
}

// TestWriteFuzzSeeds regenerates the seed corpora when run with -write-seeds.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate testdata/fuzz")
	}
	now := testNow.Unix()
	sign := func(sk string, ev nostr.Event) []byte {
		ev = signed(t, sk, ev)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := func(edit func(ev *nostr.Event)) []byte {
		ev := requestEvent()
		edit(&ev)
		return sign(hostSK, ev)
	}
	forged := requestEvent()
	forged = signed(t, hostSK, forged)
	forged.Tags[2] = nostr.Tag{"action", "status"}
	forgedJSON, _ := json.Marshal(forged)

	requests := map[string][]byte{
		"restart": req(func(*nostr.Event) {}),
		"status-with-hint-reason-expiration": sign(hostSK, NewRequest(DefaultRequestKind, botPK, testRoom, ActionStatus,
			"wss://relay.example.com", "audio froze", ts(testNow), ts(testNow)+300)),
		"reserved-action":   req(func(ev *nostr.Event) { ev.Tags[2][1] = "kick" }),
		"forged-id":         forgedJSON,
		"wrong-kind":        req(func(ev *nostr.Event) { ev.Kind = 1 }),
		"not-addressed":     req(func(ev *nostr.Event) { ev.Tags[1][1] = otherPK }),
		"stale":             req(func(ev *nostr.Event) { ev.CreatedAt = nostr.Timestamp(now - 121) }),
		"expired":           req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"expiration", unix(now - 1)}) }),
		"bad-expiration":    req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{"expiration", "soon"}) }),
		"two-a-tags":        req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, ev.Tags[0]) }),
		"two-actions":       req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, ev.Tags[2]) }),
		"no-action":         req(func(ev *nostr.Event) { ev.Tags = ev.Tags[:2] }),
		"uppercase-author":  req(func(ev *nostr.Event) { ev.Tags[0][1] = "30312:" + strings.ToUpper(hostPK) + ":x" }),
		"kind-30311":        req(func(ev *nostr.Event) { ev.Tags[0][1] = "30311:" + hostPK + ":x" }),
		"d-129":             req(func(ev *nostr.Event) { ev.Tags[0][1] = "30312:" + hostPK + ":" + strings.Repeat("d", 129) }),
		"content-1025":      req(func(ev *nostr.Event) { ev.Content = strings.Repeat("r", 1025) }),
		"short-tags":        req(func(ev *nostr.Event) { ev.Tags = append(ev.Tags, nostr.Tag{}, nostr.Tag{"a"}, nostr.Tag{"action"}) }),
		"unsigned-minimal":  []byte(`{"kind":4312,"id":"","pubkey":"","created_at":1760000000,"tags":[["p","` + botPK + `"],["a","30312:` + hostPK + `:x"],["action","restart"]],"content":"","sig":""}`),
		"empty-object":      []byte(`{}`),
		"null":              []byte(`null`),
		"not-json":          []byte(`{"kind":4312,`),
		"numbers-as-string": []byte(`{"kind":"4312","created_at":"1760000000","tags":[[1,2]]}`),
	}
	writeCorpus(t, "FuzzParseRequest", requests)

	room := func(sk string, tags ...nostr.Tag) []byte {
		return sign(sk, nostr.Event{Kind: KindRoom, CreatedAt: ts(testNow), Tags: append(nostr.Tags{{"d", testRoom.D}}, tags...)})
	}
	built := BuildRoomEvent(fullSpec(), ts(testNow))
	rooms := map[string][]byte{
		"nests": room(hostSK, nostr.Tag{"room", "Friday Nest"}, nostr.Tag{"summary", "weekly"}, nostr.Tag{"status", "open"},
			nostr.Tag{"service", "https://nests.example.com/api/v1/nests"}, nostr.Tag{"streaming", "wss+livekit://lk.example.com"},
			nostr.Tag{"t", "audio"}, nostr.Tag{"starts", unix(now)}, nostr.Tag{"p", hostPK, "", "Host"}, nostr.Tag{"p", adminPK, "", "Admin"}),
		"livekit-era": room(hostSK, nostr.Tag{"title", "Old Nest"}, nostr.Tag{"status", "live"}, nostr.Tag{"auth", "https://nostrnests.com/api/v1/nests"},
			nostr.Tag{"endpoint", "wss+livekit://old.example.com"}, nostr.Tag{"relays", "wss://a.example", "https://x"}, nostr.Tag{"color", "gradient-3"},
			nostr.Tag{"p", adminPK, "", "moderator"}, nostr.Tag{"p", speakerPK, "", "OWNER"}, nostr.Tag{"p", speakerPK, "", "speaker"}),
		"bot-replacement": sign(botSK, built),
		"bad-p-tags":      room(hostSK, nostr.Tag{"p"}, nostr.Tag{"p", "ZZ", "", "Host"}, nostr.Tag{"p", strings.ToUpper(adminPK), "", "admin"}, nostr.Tag{"p", adminPK, "", "listener"}),
		"wrong-kind":      sign(hostSK, nostr.Event{Kind: 30311, CreatedAt: ts(testNow), Tags: nostr.Tags{{"d", "x"}}}),
		"no-d":            sign(hostSK, nostr.Event{Kind: KindRoom, CreatedAt: ts(testNow), Tags: nostr.Tags{{"room", "x"}}}),
		"bad-d":           sign(hostSK, nostr.Event{Kind: KindRoom, CreatedAt: ts(testNow), Tags: nostr.Tags{{"d", "a b/c"}}}),
		"unsigned":        []byte(`{"kind":30312,"pubkey":"` + hostPK + `","tags":[["d","r"],["status","ended"],["relays"],["service","ws://x"]]}`),
		"empty-object":    []byte(`{}`),
	}
	writeCorpus(t, "FuzzParseRoomEvent", rooms)

	relay := "wss://relay.example.com"
	naddr := testRoom.Naddr(relay)
	d := tlv(0, []byte(testRoom.D))
	author := authorTLV(t, hostPK)
	addresses := map[string]string{
		"coordinate":       testRoomStr,
		"naddr":            naddr,
		"nostr-naddr":      "nostr:" + naddr,
		"NOSTR-naddr":      "NOSTR:" + strings.ToUpper(naddr),
		"web-link":         "https://nostrnests.com/" + naddr,
		"web-link-nostr":   "https://njump.me/nostr:" + naddr + "?x=1",
		"web-link-frag":    "https://app.example.com/#/" + testRoom.Naddr(),
		"short-kind-tlv":   rawNaddr(t, "naddr", d, author, tlv(3, []byte{0x76, 0x48})),
		"kind-30311-naddr": rawNaddr(t, "naddr", d, author, kindTLV(30311)),
		"npub":             Npub(hostPK),
		"coordinate-upper": "30312:" + strings.ToUpper(hostPK) + ":x",
		"non-ascii-link":   "https://x.com/naddr1" + strings.Repeat("Ⱥ", 13),
		"garbage":          "hello world",
		"empty":            "",
	}
	strs := map[string][]byte{}
	for k, v := range addresses {
		strs[k] = []byte(v)
	}
	writeCorpusKind(t, "FuzzParseRoomAddress", "string", strs)
}

func writeCorpus(t *testing.T, fuzz string, seeds map[string][]byte) {
	writeCorpusKind(t, fuzz, "[]byte", seeds)
}

func writeCorpusKind(t *testing.T, fuzz, typ string, seeds map[string][]byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzz)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range seeds {
		body := "go test fuzz v1\n" + typ + "(" + strconv.Quote(string(v)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
