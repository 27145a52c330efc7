package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

func TestRecordKeepsUnknownFields(t *testing.T) {
	in := `{"id":"r1","host":"h","speakers":["h"],"admins":["h","a"],"relays":["wss://x"],"hls_stream":true,"createdAt":5,"status":"active","theme":{"dark":true},"listeners":12}`
	var rec Record
	if err := json.Unmarshal([]byte(in), &rec); err != nil {
		t.Fatal(err)
	}
	rec.RestartedAt = 9
	out, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(out, &got)
	if got["theme"] == nil || got["listeners"] != float64(12) || got["restartedAt"] != float64(9) || got["hls_stream"] != true {
		t.Fatalf("round trip lost fields: %s", out)
	}
	if _, ok := got["originalRoomId"]; ok {
		t.Fatalf("in-place record gained originalRoomId: %s", out)
	}
}

func TestRecordRoleOf(t *testing.T) {
	rec := &Record{Host: "h", Admins: []string{"h", "a"}, Speakers: []string{"h", "a", "s"}}
	for pk, want := range map[string]nostrx.Role{"h": nostrx.RoleHost, "a": nostrx.RoleAdmin, "s": nostrx.RoleSpeaker, "x": nostrx.RoleNone} {
		if got := rec.RoleOf(pk); got != want {
			t.Errorf("RoleOf(%s) = %v, want %v", pk, got, want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	host, admin, speaker, stranger := hexKey(1), hexKey(2), hexKey(3), hexKey(4)
	rec := &Record{ID: "r", Host: host, Admins: []string{host, admin}, Speakers: []string{speaker}}
	room := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: host, D: "r"}
	ev := &nostrx.RoomEvent{Room: room, Roles: map[string]nostrx.Role{admin: nostrx.RoleAdmin, speaker: nostrx.RoleSpeaker, hexKey(5): nostrx.RoleHost}}

	tests := []struct {
		name      string
		decide    func() (nostrx.Role, error)
		wantRole  nostrx.Role
		wantAllow bool
	}{
		{"record host", func() (nostrx.Role, error) { return AuthorizeByRecord(rec, host) }, nostrx.RoleHost, true},
		{"record admin", func() (nostrx.Role, error) { return AuthorizeByRecord(rec, admin) }, nostrx.RoleAdmin, true},
		{"record speaker", func() (nostrx.Role, error) { return AuthorizeByRecord(rec, speaker) }, nostrx.RoleSpeaker, false},
		{"record stranger", func() (nostrx.Role, error) { return AuthorizeByRecord(rec, stranger) }, nostrx.RoleNone, false},
		{"event author", func() (nostrx.Role, error) { return AuthorizeByEvent(room, ev, host) }, nostrx.RoleHost, true},
		{"event co-host p tag", func() (nostrx.Role, error) { return AuthorizeByEvent(room, ev, hexKey(5)) }, nostrx.RoleHost, true},
		{"event admin", func() (nostrx.Role, error) { return AuthorizeByEvent(room, ev, admin) }, nostrx.RoleAdmin, true},
		{"event speaker", func() (nostrx.Role, error) { return AuthorizeByEvent(room, ev, speaker) }, nostrx.RoleSpeaker, false},
		{"event stranger", func() (nostrx.Role, error) { return AuthorizeByEvent(room, ev, stranger) }, nostrx.RoleNone, false},
		{"no event, author", func() (nostrx.Role, error) { return AuthorizeByEvent(room, nil, host) }, nostrx.RoleHost, true},
		{"no event, stranger", func() (nostrx.Role, error) { return AuthorizeByEvent(room, nil, stranger) }, nostrx.RoleNone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role, err := tt.decide()
			if role != tt.wantRole {
				t.Errorf("role %v, want %v", role, tt.wantRole)
			}
			if tt.wantAllow != (err == nil) {
				t.Fatalf("err = %v, want allowed=%v", err, tt.wantAllow)
			}
			if err != nil && nostrx.CodeOf(err) != nostrx.CodeUnauthorized {
				t.Fatalf("code %s", nostrx.CodeOf(err))
			}
		})
	}
}

func TestTokensMint(t *testing.T) {
	tok := Tokens{APIKey: "key", APISecret: "a-secret-of-at-least-32-characters!!", TTL: 10 * time.Minute}
	for _, role := range []nostrx.Role{nostrx.RoleHost, nostrx.RoleAdmin} {
		jwt, err := tok.Mint("room-1", hexKey(1), role)
		if err != nil {
			t.Fatal(err)
		}
		v, err := auth.ParseAPIToken(jwt)
		if err != nil {
			t.Fatal(err)
		}
		_, c, err := v.Verify(tok.APISecret)
		if err != nil {
			t.Fatal(err)
		}
		g := c.Video
		if c.Identity != hexKey(1) || c.Name != role.String() || g.Room != "room-1" || !g.RoomJoin || !g.RoomAdmin || !g.RoomRecord || !g.GetCanPublish() || !g.GetCanSubscribe() {
			t.Fatalf("%s: claims %+v", role, c)
		}
		want := fmt.Sprintf(`{"pubkey":"%s","role":"%s"}`, hexKey(1), map[nostrx.Role]string{nostrx.RoleHost: "host", nostrx.RoleAdmin: "admin"}[role])
		if c.Metadata != want {
			t.Fatalf("metadata %s, want %s", c.Metadata, want)
		}
	}
}

func TestNextCreatedAt(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		last *nostr.Event
		want nostr.Timestamp
	}{
		{nil, 1000},
		{&nostr.Event{CreatedAt: 500}, 1000},
		{&nostr.Event{CreatedAt: 1000}, 1001},
		{&nostr.Event{CreatedAt: 1500}, 1501},
	}
	for _, tt := range tests {
		if got := nextCreatedAt(now, tt.last); got != tt.want {
			t.Errorf("nextCreatedAt(%v) = %d, want %d", tt.last, got, tt.want)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	calls := 0
	v, err := retry(ctx, time.Second, func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, fmt.Errorf("down: %w", ErrUnavailable)
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Fatalf("v=%d err=%v calls=%d", v, err, calls)
	}
	calls = 0
	permanent := errors.New("bad argument")
	if _, err := retry(ctx, time.Second, func(context.Context) (int, error) { calls++; return 0, permanent }); !errors.Is(err, permanent) || calls != 1 {
		t.Fatalf("a permanent error was retried: calls=%d err=%v", calls, err)
	}
	calls = 0
	if _, err := retry(ctx, 200*time.Millisecond, func(context.Context) (int, error) { calls++; return 0, ErrUnavailable }); !errors.Is(err, ErrUnavailable) || calls < 2 {
		t.Fatalf("budget: calls=%d err=%v", calls, err)
	}
}

func TestUnavailableMapsToCode(t *testing.T) {
	err := unavailable(fmt.Errorf("redis get: %w", ErrUnavailable))
	if nostrx.CodeOf(err) != nostrx.CodeUnavailable {
		t.Fatalf("code %s", nostrx.CodeOf(err))
	}
	if nostrx.CodeOf(unavailable(errors.New("x"))) != nostrx.CodeInternal {
		t.Fatal("a non-dependency error became UNAVAILABLE")
	}
}

func hexKey(i int) string { return fmt.Sprintf("%064x", i) }
