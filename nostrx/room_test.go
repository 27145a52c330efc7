package nostrx

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

var (
	adminPK   = mustPublic(keyFor("admin"))
	speakerPK = mustPublic(keyFor("speaker"))
)

// roomEvent is a 30312 by the host with the given tags after its d tag.
func roomEvent(t testing.TB, tags ...nostr.Tag) nostr.Event {
	t.Helper()
	all := append(nostr.Tags{{"d", testRoom.D}}, tags...)
	return signed(t, hostSK, nostr.Event{Kind: KindRoom, CreatedAt: ts(testNow), Tags: all})
}

func TestParseRoomEventNestsVocabulary(t *testing.T) {
	ev := roomEvent(t,
		nostr.Tag{"room", "Friday Nest"},
		nostr.Tag{"summary", "weekly chat"},
		nostr.Tag{"image", "https://img.example/1.png"},
		nostr.Tag{"status", "open"},
		nostr.Tag{"service", "https://nests.example.com/api/v1/nests"},
		nostr.Tag{"streaming", "wss+livekit://lk.example.com"},
		nostr.Tag{"t", "nostr"},
		nostr.Tag{"t", "audio"},
		nostr.Tag{"starts", "1760000000"},
		nostr.Tag{"p", hostPK, "", "Host"},
		nostr.Tag{"p", adminPK, "", "Admin"},
		nostr.Tag{"p", speakerPK, "wss://r.example", "Speaker"},
	)
	r, err := ParseRoomEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Event != &ev || r.Room.String() != testRoomStr || r.Room.Relays != nil {
		t.Fatalf("room %+v", r.Room)
	}
	if r.Title != "Friday Nest" || r.Summary != "weekly chat" || r.Image != "https://img.example/1.png" || r.Status != StatusOpen ||
		r.Service != "https://nests.example.com/api/v1/nests" || r.Color != "" {
		t.Fatalf("fields %+v", r)
	}
	if !slices.Equal(r.Streaming, []string{"wss+livekit://lk.example.com"}) || !slices.Equal(r.Topics, []string{"nostr", "audio"}) || r.Relays != nil {
		t.Fatalf("lists %+v", r)
	}
	want := map[string]Role{hostPK: RoleHost, adminPK: RoleAdmin, speakerPK: RoleSpeaker}
	if !maps.Equal(r.Roles, want) {
		t.Fatalf("roles %v, want %v", r.Roles, want)
	}
}

func TestParseRoomEventLiveKitVocabulary(t *testing.T) {
	ev := roomEvent(t,
		nostr.Tag{"title", "Old Nest"},
		nostr.Tag{"status", "live"},
		nostr.Tag{"auth", "https://nostrnests.com/api/v1/nests"},
		nostr.Tag{"endpoint", "wss+livekit://old.example.com"},
		nostr.Tag{"streaming", "wss+livekit://old.example.com"},
		nostr.Tag{"relays", "wss://a.example", "https://not-a-relay.example", "wss://b.example", "wss://a.example"},
		nostr.Tag{"color", "gradient-3"},
		nostr.Tag{"p", adminPK, "", "moderator"},
		nostr.Tag{"p", otherPK, "", "OWNER"},
	)
	r, err := ParseRoomEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Title != "Old Nest" || r.Status != StatusOpen || r.Service != "https://nostrnests.com/api/v1/nests" || r.Color != "gradient-3" {
		t.Fatalf("fields %+v", r)
	}
	if !slices.Equal(r.Streaming, []string{"wss+livekit://old.example.com"}) {
		t.Fatalf("streaming %v (endpoint and streaming are one list, deduplicated)", r.Streaming)
	}
	if !slices.Equal(r.Relays, []string{"wss://a.example", "wss://b.example"}) {
		t.Fatalf("relays %v", r.Relays)
	}
	if r.Roles[adminPK] != RoleAdmin || r.Roles[otherPK] != RoleHost {
		t.Fatalf("roles %v", r.Roles)
	}
	if hosts := hostsOf(r); !slices.Equal(hosts, []string{hostPK, otherPK}) {
		t.Fatalf("hosts %v", hosts)
	}
}

func TestParseRoomEventFields(t *testing.T) {
	tests := []struct {
		name  string
		tags  []nostr.Tag
		check func(r *RoomEvent) bool
	}{
		{"room wins over title", []nostr.Tag{{"title", "T"}, {"room", "R"}}, func(r *RoomEvent) bool { return r.Title == "R" }},
		{"first room tag wins", []nostr.Tag{{"room", "A"}, {"room", "B"}}, func(r *RoomEvent) bool { return r.Title == "A" }},
		{"no name", nil, func(r *RoomEvent) bool { return r.Title == "" }},
		{"status absent", nil, func(r *RoomEvent) bool { return r.Status == "" }},
		{"status unknown", []nostr.Tag{{"status", "paused"}}, func(r *RoomEvent) bool { return r.Status == "" }},
		{"unknown status does not hide a later known one", []nostr.Tag{{"status", "paused"}, {"status", "ended"}}, func(r *RoomEvent) bool { return r.Status == StatusClosed }},
		{"service must be http(s)", []nostr.Tag{{"service", "wss://x.example"}, {"service", "ftp://x"}}, func(r *RoomEvent) bool { return r.Service == "" }},
		{"first http service wins", []nostr.Tag{{"service", "javascript:alert(1)"}, {"service", "http://a.example"}, {"auth", "https://b.example"}}, func(r *RoomEvent) bool { return r.Service == "http://a.example" }},
		{"tags without value skipped", []nostr.Tag{{"room"}, {"p"}, {"status"}, {}}, func(r *RoomEvent) bool { return r.Title == "" && len(r.Roles) == 0 }},
		{"p with uppercase hex ignored", []nostr.Tag{{"p", strings.ToUpper(adminPK), "", "Admin"}}, func(r *RoomEvent) bool { return len(r.Roles) == 0 }},
		{"p with npub ignored", []nostr.Tag{{"p", Npub(adminPK), "", "Admin"}}, func(r *RoomEvent) bool { return len(r.Roles) == 0 }},
		{"p without role is no role", []nostr.Tag{{"p", adminPK}, {"p", speakerPK, ""}}, func(r *RoomEvent) bool { return len(r.Roles) == 0 }},
		{"p with unknown role is no role", []nostr.Tag{{"p", adminPK, "", "Listener"}}, func(r *RoomEvent) bool { return len(r.Roles) == 0 }},
		{"highest role wins, any order", []nostr.Tag{
			{"p", adminPK, "", "speaker"}, {"p", adminPK, "", "ADMIN"}, {"p", adminPK, "", "Speaker"},
			{"p", speakerPK, "", "Host"}, {"p", speakerPK, "", "speaker"},
		}, func(r *RoomEvent) bool {
			return r.Roles[adminPK] == RoleAdmin && r.Roles[speakerPK] == RoleHost && len(r.Roles) == 2
		}},
		{"relays tag filtered", []nostr.Tag{{"relays", "wss://a.example", "", "http://b", "ws://c.example"}}, func(r *RoomEvent) bool {
			return slices.Equal(r.Relays, []string{"wss://a.example", "ws://c.example"})
		}},
		{"several relays tags merged", []nostr.Tag{{"relays", "wss://a.example"}, {"relays", "wss://b.example", "wss://a.example"}}, func(r *RoomEvent) bool {
			return slices.Equal(r.Relays, []string{"wss://a.example", "wss://b.example"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := roomEvent(t, tt.tags...)
			r, err := ParseRoomEvent(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(r) {
				t.Fatalf("unexpected %+v", r)
			}
		})
	}
}

func TestNormaliseStatus(t *testing.T) {
	for in, want := range map[string]string{
		"open": StatusOpen, "live": StatusOpen, "LIVE": StatusOpen, " Open ": StatusOpen,
		"private": StatusPrivate, "closed": StatusClosed, "ended": StatusClosed, "Ended": StatusClosed,
		"planned": StatusPlanned, "": "", "paused": "",
	} {
		ev := roomEvent(t, nostr.Tag{"status", in})
		r, err := ParseRoomEvent(&ev)
		if err != nil || r.Status != want {
			t.Errorf("status %q → %q, %v; want %q", in, r.Status, err, want)
		}
	}
}

func TestParseRoomEventRejects(t *testing.T) {
	good := roomEvent(t, nostr.Tag{"room", "x"})
	tests := []struct {
		name   string
		edit   func(ev *nostr.Event)
		isKind bool
	}{
		{"kind 30311", func(ev *nostr.Event) { ev.Kind = 30311 }, true},
		{"kind 4312", func(ev *nostr.Event) { ev.Kind = DefaultRequestKind }, true},
		{"no d", func(ev *nostr.Event) { ev.Tags = ev.Tags[1:] }, false},
		{"empty d", func(ev *nostr.Event) { ev.Tags[0] = nostr.Tag{"d", ""} }, false},
		{"d without value", func(ev *nostr.Event) { ev.Tags[0] = nostr.Tag{"d"} }, false},
		{"d with forbidden characters", func(ev *nostr.Event) { ev.Tags[0] = nostr.Tag{"d", "a b"} }, false},
		{"d of 129", func(ev *nostr.Event) { ev.Tags[0] = nostr.Tag{"d", strings.Repeat("d", 129)} }, false},
		{"uppercase author", func(ev *nostr.Event) { ev.PubKey = strings.ToUpper(ev.PubKey) }, false},
		{"short author", func(ev *nostr.Event) { ev.PubKey = ev.PubKey[:10] }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := good
			ev.Tags = append(nostr.Tags{}, good.Tags...)
			tt.edit(&ev)
			r, err := ParseRoomEvent(&ev)
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			if tt.isKind != errors.Is(err, ErrWrongKind) {
				t.Fatalf("errors.Is(ErrWrongKind) = %v for %v", !tt.isKind, err)
			}
			var ae *AddressError
			if !tt.isKind && !errors.As(err, &ae) {
				t.Fatalf("want an *AddressError inside %v", err)
			}
		})
	}
	// The d of 128 characters is the longest accepted.
	ev := roomEvent(t)
	ev.Tags[0] = nostr.Tag{"d", strings.Repeat("d", 128)}
	if _, err := ParseRoomEvent(&ev); err != nil {
		t.Fatalf("d of 128: %v", err)
	}
}

func TestRoleOf(t *testing.T) {
	ev := roomEvent(t, nostr.Tag{"p", adminPK, "", "admin"}, nostr.Tag{"p", hostPK, "", "speaker"})
	r, err := ParseRoomEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	for pk, want := range map[string]Role{hostPK: RoleHost, adminPK: RoleAdmin, speakerPK: RoleNone} {
		if got := r.RoleOf(pk); got != want {
			t.Errorf("RoleOf(%s) = %v, want %v", pk[:8], got, want)
		}
	}
	if hosts := hostsOf(r); !slices.Equal(hosts, []string{hostPK}) {
		t.Fatalf("hosts %v", hosts)
	}
}

func TestRoles(t *testing.T) {
	for in, want := range map[string]Role{
		"host": RoleHost, "Host": RoleHost, "HOST": RoleHost, "owner": RoleHost, "Owner": RoleHost,
		"admin": RoleAdmin, "Admin": RoleAdmin, "moderator": RoleAdmin, "Moderator": RoleAdmin,
		"speaker": RoleSpeaker, "SPEAKER": RoleSpeaker, " speaker ": RoleSpeaker,
		"listener": RoleNone, "participant": RoleNone, "": RoleNone, "hosts": RoleNone,
	} {
		if got := ParseRole(in); got != want {
			t.Errorf("ParseRole(%q) = %v, want %v", in, got, want)
		}
	}
	for r, want := range map[Role]string{RoleHost: "Host", RoleAdmin: "Admin", RoleSpeaker: "Speaker", RoleNone: ""} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), want)
		}
	}
	if !(RoleHost > RoleAdmin && RoleAdmin > RoleSpeaker && RoleSpeaker > RoleNone) {
		t.Fatal("roles out of order")
	}
}

func fullSpec() RoomSpec {
	orig := testRoom
	return RoomSpec{
		D:         "8e3c0a52-1111-4222-8333-944455556666",
		Title:     "Friday Nest",
		Summary:   "weekly chat",
		Image:     "https://img.example/1.png",
		Color:     "gradient-3",
		Topics:    []string{"nostr", "audio"},
		Status:    StatusOpen,
		Service:   "https://nests.example.com/api/v1/nests",
		Streaming: "wss+livekit://lk.example.com",
		Starts:    1760000000,
		Relays:    []string{"wss://a.example", "wss://b.example"},
		Host:      hostPK,
		Admins:    []string{hostPK, adminPK},
		Speakers:  []string{hostPK, adminPK, speakerPK},
		Replaces:  &orig,
	}
}

func TestBuildRoomEventTags(t *testing.T) {
	spec := fullSpec()
	ev := BuildRoomEvent(spec, ts(testNow))
	want := nostr.Tags{
		{"d", spec.D},
		{"room", "Friday Nest"},
		{"title", "Friday Nest"},
		{"summary", "weekly chat"},
		{"image", "https://img.example/1.png"},
		{"color", "gradient-3"},
		{"t", "nostr"},
		{"t", "audio"},
		{"status", "open"},
		{"service", "https://nests.example.com/api/v1/nests"},
		{"streaming", "wss+livekit://lk.example.com"},
		{"starts", "1760000000"},
		{"relays", "wss://a.example", "wss://b.example"},
		{"p", hostPK, "", "Host"},
		{"p", adminPK, "", "Admin"},
		{"p", speakerPK, "", "Speaker"},
		{"a", testRoomStr},
		{"alt", "Audio room: Friday Nest"},
	}
	if ev.Kind != KindRoom || ev.CreatedAt != ts(testNow) || ev.Content != "" {
		t.Fatalf("event %+v", ev)
	}
	if len(ev.Tags) != len(want) {
		t.Fatalf("%d tags, want %d:\n%v", len(ev.Tags), len(want), ev.Tags)
	}
	for i := range want {
		if !slices.Equal(ev.Tags[i], want[i]) {
			t.Errorf("tag %d = %q, want %q", i, ev.Tags[i], want[i])
		}
	}
}

func TestBuildRoomEventMinimal(t *testing.T) {
	ev := BuildRoomEvent(RoomSpec{D: "x", Host: hostPK}, ts(testNow))
	want := nostr.Tags{
		{"d", "x"},
		{"room", DefaultRoomTitle},
		{"title", DefaultRoomTitle},
		{"status", "open"},
		{"starts", "0"},
		{"p", hostPK, "", "Host"},
		{"alt", "Audio room: Restarted Nest"},
	}
	if fmt.Sprint(ev.Tags) != fmt.Sprint(want) {
		t.Fatalf("tags\n%v\nwant\n%v", ev.Tags, want)
	}
}

func TestBuildRoomEventClosedWithSuccessor(t *testing.T) {
	next := Coordinate{Kind: KindRoom, Author: botPK, D: "next"}
	ev := BuildRoomEvent(RoomSpec{D: "x", Title: "Old", Status: StatusClosed, Host: hostPK, Successor: &next}, ts(testNow))
	if !slices.Equal(ev.Tags.Find("status"), nostr.Tag{"status", "closed"}) {
		t.Fatalf("status %v", ev.Tags.Find("status"))
	}
	if !slices.Equal(ev.Tags.Find("a"), nostr.Tag{"a", next.String(), "", "successor"}) {
		t.Fatalf("a %v", ev.Tags.Find("a"))
	}
	if !slices.Equal(ev.Tags.Find("alt"), nostr.Tag{"alt", "Closed audio room: Old"}) {
		t.Fatalf("alt %v", ev.Tags.Find("alt"))
	}
}

// One p tag per pubkey, with its highest role, whatever lists it is in.
func TestBuildRoomEventRoleDedupe(t *testing.T) {
	ev := BuildRoomEvent(RoomSpec{
		D:        "x",
		Host:     hostPK,
		Admins:   []string{adminPK, hostPK, adminPK, ""},
		Speakers: []string{speakerPK, adminPK, hostPK, speakerPK, ""},
	}, ts(testNow))
	var ps []nostr.Tag
	for _, tag := range ev.Tags {
		if tag[0] == "p" {
			ps = append(ps, tag)
		}
	}
	want := []nostr.Tag{{"p", hostPK, "", "Host"}, {"p", adminPK, "", "Admin"}, {"p", speakerPK, "", "Speaker"}}
	if fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Fatalf("p tags %v, want %v", ps, want)
	}
}

func TestBuildParseRoundTrip(t *testing.T) {
	bot := mustSigner(t, botSK, 1)
	spec := fullSpec()
	ev := BuildRoomEvent(spec, ts(testNow))
	if err := bot.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	if err := Verify(&ev); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	r, err := ParseRoomEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Room.Author != botPK || r.Room.D != spec.D || r.Title != spec.Title || r.Summary != spec.Summary || r.Image != spec.Image ||
		r.Color != spec.Color || r.Status != StatusOpen || r.Service != spec.Service {
		t.Fatalf("parsed %+v", r)
	}
	if !slices.Equal(r.Topics, spec.Topics) || !slices.Equal(r.Relays, spec.Relays) || !slices.Equal(r.Streaming, []string{spec.Streaming}) {
		t.Fatalf("lists %+v", r)
	}
	want := map[string]Role{hostPK: RoleHost, adminPK: RoleAdmin, speakerPK: RoleSpeaker}
	if !maps.Equal(r.Roles, want) {
		t.Fatalf("roles %v, want %v", r.Roles, want)
	}
	// The bot authored it, but the human host is named and keeps the room.
	if r.RoleOf(hostPK) != RoleHost || r.RoleOf(botPK) != RoleHost || r.RoleOf(otherPK) != RoleNone {
		t.Fatal("RoleOf")
	}
	if hosts := hostsOf(r); !slices.Equal(hosts, []string{botPK, hostPK}) {
		t.Fatalf("hosts %v", hosts)
	}
	// The "a" tag leads back to the original room.
	if c, err := ParseCoordinate(ev.Tags.Find("a")[1]); err != nil || c.String() != testRoomStr {
		t.Fatalf("a tag %v: %v", ev.Tags.Find("a"), err)
	}
}

func TestLiveKitEndpoint(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"wss://lk.example.com", "wss+livekit://lk.example.com"},
		{"wss://lk.example.com:7880", "wss+livekit://lk.example.com:7880"},
		{"https://lk.example.com", "wss+livekit://lk.example.com"},
		{"https://lk.example.com:443", "wss+livekit://lk.example.com:443"},
		{"ws://127.0.0.1:7880", "ws+livekit://127.0.0.1:7880"},
		{"ws://localhost", "ws+livekit://localhost"},
		{"http://127.0.0.1:7880", "ws+livekit://127.0.0.1:7880"},
		{"http://lk.example.com", "ws+livekit://lk.example.com"},
		{"WSS://lk.example.com", "wss+livekit://lk.example.com"},
		{"wss://lk.example.com/", "wss+livekit://lk.example.com"},
		{"wss://lk.example.com/rtc?x=1", "wss+livekit://lk.example.com"},
		{"http://[::1]:7880", "ws+livekit://[::1]:7880"},

		{"", ""},
		{"lk.example.com", ""},
		{"lk.example.com:7880", ""},
		{"//lk.example.com", ""},
		{"ftp://lk.example.com", ""},
		{"wss+livekit://lk.example.com", ""},
		{"file:///tmp/x", ""},
		{"http://", ""},
		{"wss://:7880", ""},
		{"https://bad host", ""},
	}
	for _, tt := range tests {
		got, err := LiveKitEndpoint(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("LiveKitEndpoint(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("LiveKitEndpoint(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if strings.Contains(got, "://http") || strings.Contains(got, "://ws") {
			t.Errorf("LiveKitEndpoint(%q) = %q nests a scheme", tt.in, got)
		}
	}
}

func TestSpecFromEventRoundTrip(t *testing.T) {
	orig := Coordinate{Kind: KindRoom, Author: hexKey(9), D: "old-room"}
	succ := Coordinate{Kind: KindRoom, Author: hexKey(8), D: "new-room"}
	specs := map[string]RoomSpec{
		"full": {
			D: "room-1", Title: "Friday Nest", Summary: "weekly", Image: "https://x.example/i.png", Color: "#123456",
			Topics: []string{"nostr", "audio"}, Status: StatusOpen, Service: "https://nests.example/api/v1/nests",
			Streaming: "wss+livekit://lk.example", Starts: 1760000000, Relays: []string{"wss://a.example", "wss://b.example"},
			Host: hexKey(1), Admins: []string{hexKey(2), hexKey(3)}, Speakers: []string{hexKey(4)}, Replaces: &orig,
		},
		"minimal, default title": {D: "room-2", Starts: 5, Host: hexKey(1)},
		"closed with successor":  {D: "room-3", Title: "T", Status: StatusClosed, Starts: 7, Host: hexKey(1), Replaces: &orig, Successor: &succ},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			ev := BuildRoomEvent(spec, 100)
			got, err := SpecFromEvent(&ev)
			if err != nil {
				t.Fatal(err)
			}
			again := BuildRoomEvent(got, 100)
			if !reflect.DeepEqual(again.Tags, ev.Tags) {
				t.Fatalf("tags changed on the round trip:\n got  %v\n want %v", again.Tags, ev.Tags)
			}
			// The same parser's exact half, on the bot's own (signed) event.
			ev.PubKey = botPK
			r, err := ParseRoomEvent(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if again := BuildRoomEvent(r.Spec(), 100); !reflect.DeepEqual(again.Tags, ev.Tags) {
				t.Fatalf("tags changed on the round trip through ParseRoomEvent:\n got  %v\n want %v", again.Tags, ev.Tags)
			}
		})
	}
}

func TestSpecFromEventClose(t *testing.T) {
	orig := Coordinate{Kind: KindRoom, Author: hexKey(9), D: "old-room"}
	open := BuildRoomEvent(RoomSpec{D: "r", Title: "Nest", Starts: 3, Host: hexKey(1), Replaces: &orig}, 10)
	spec, err := SpecFromEvent(&open)
	if err != nil {
		t.Fatal(err)
	}
	succ := Coordinate{Kind: KindRoom, Author: hexKey(2), D: "next"}
	spec.Status, spec.Successor = StatusClosed, &succ
	closed := BuildRoomEvent(spec, 11)
	if st := closed.Tags.Find("status"); st[1] != "closed" {
		t.Fatalf("status %v", st)
	}
	var as []nostr.Tag
	for a := range closed.Tags.FindAll("a") {
		as = append(as, a)
	}
	if len(as) != 2 || as[0][1] != orig.String() || len(as[0]) != 2 ||
		!slices.Equal(as[1], nostr.Tag{"a", succ.String(), "", "successor"}) {
		t.Fatalf("a tags %v", as)
	}
	if alt := closed.Tags.Find("alt"); alt[1] != "Closed audio room: Nest" {
		t.Fatalf("alt %v", alt)
	}
}

func TestSpecFromEventRejects(t *testing.T) {
	for _, ev := range []nostr.Event{
		{Kind: 1, Tags: nostr.Tags{{"d", "x"}}},
		{Kind: KindRoom},
	} {
		if _, err := SpecFromEvent(&ev); err == nil {
			t.Errorf("%v: no error", ev)
		}
	}
}

func hexKey(i int) string { return fmt.Sprintf("%064x", i) }

func TestExpired(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tt := range []struct {
		tags nostr.Tags
		want bool
	}{
		{nil, false},
		{nostr.Tags{{"expiration", "1001"}}, false},
		{nostr.Tags{{"expiration", "1000"}}, true},
		{nostr.Tags{{"expiration", "999"}}, true},
		{nostr.Tags{{"expiration", "soon"}}, true},
	} {
		if got := Expired(&nostr.Event{Tags: tt.tags}, now); got != tt.want {
			t.Errorf("Expired(%v) = %v, want %v", tt.tags, got, tt.want)
		}
	}
}
