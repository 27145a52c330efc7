package nostrx

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

const testToken = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJl"

func respSpec(room Coordinate) ResponseSpec {
	return ResponseSpec{
		Kind: DefaultResponseKind, Requester: hostPK, RequestID: hexOf('e', 64),
		Room: room, CreatedAt: ts(testNow), TTL: 10 * time.Minute,
	}
}

// exchange builds a response from the bot and opens it as the requester.
func exchange(t *testing.T, spec ResponseSpec, p Payload) (nostr.Event, Payload) {
	t.Helper()
	bot := mustSigner(t, botSK, 8)
	ev, err := BuildResponse(bot, spec, p)
	if err != nil {
		t.Fatalf("BuildResponse: %v", err)
	}
	got, err := OpenResponse(mustSigner(t, hostSK, 8), botPK, &ev)
	if err != nil {
		t.Fatalf("OpenResponse: %v", err)
	}
	return ev, got
}

func TestBuildResponseTags(t *testing.T) {
	live := Coordinate{Kind: KindRoom, Author: botPK, D: "new-room"}
	p, err := ResultPayload(ActionRestart, RestartResult{RoomID: "new-room", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := exchange(t, respSpec(live), p)
	want := nostr.Tags{
		{"p", hostPK},
		{"e", hexOf('e', 64)},
		{"a", live.String()},
		{"expiration", unix(testNow.Unix() + 600)},
		{"encryption", "nip44_v2"},
	}
	if len(ev.Tags) != len(want) {
		t.Fatalf("tags %v, want %v", ev.Tags, want)
	}
	for i := range want {
		if !slices.Equal(ev.Tags[i], want[i]) {
			t.Errorf("tag %d = %q, want %q", i, ev.Tags[i], want[i])
		}
	}
	if ev.Kind != DefaultResponseKind || ev.PubKey != botPK || ev.CreatedAt != ts(testNow) {
		t.Fatalf("event %+v", ev)
	}
	if err := Verify(&ev); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Only routing is in clear: neither the token nor the payload shape.
	for _, leak := range []string{testToken, "roomId", "result_type", "new-room"} {
		if strings.Contains(ev.Content, leak) {
			t.Fatalf("content leaks %q", leak)
		}
	}
}

func TestBuildResponseWithoutRoom(t *testing.T) {
	p := ErrorPayload(ActionRestart, Refuse(CodeBadRequest, "want exactly one a tag, got 0"))
	ev, got := exchange(t, respSpec(Coordinate{}), p)
	if ev.Tags.Find("a") != nil {
		t.Fatalf("a tag without a room: %v", ev.Tags)
	}
	if got.Error == nil || got.Error.Code != CodeBadRequest {
		t.Fatalf("payload %+v", got)
	}
}

func TestRestartRoundTripSameID(t *testing.T) {
	res := RestartResult{
		RoomID: testRoom.D, Endpoints: []string{"wss+livekit://lk.example.com"}, Token: testToken,
		Message: "Nest restarted", Naddr: testRoom.Naddr("wss://a.example"),
	}
	p, err := ResultPayload(ActionRestart, res)
	if err != nil {
		t.Fatal(err)
	}
	_, got := exchange(t, respSpec(testRoom), p)
	if got.ResultType != "restart" || got.Error != nil {
		t.Fatalf("payload %+v", got)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(got.Result, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"roomId", "endpoints", "token", "message", "isNewRoom", "naddr"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("result lacks %q", k)
		}
	}
	for _, k := range []string{"originalRoomId", "event"} {
		if _, ok := raw[k]; ok {
			t.Errorf("same-ID result carries %q", k)
		}
	}
	var back RestartResult
	if err := json.Unmarshal(got.Result, &back); err != nil {
		t.Fatal(err)
	}
	if back.RoomID != res.RoomID || back.Token != testToken || back.IsNewRoom || !slices.Equal(back.Endpoints, res.Endpoints) || back.Naddr != res.Naddr {
		t.Fatalf("result %+v", back)
	}
}

func TestRestartRoundTripNewID(t *testing.T) {
	bot := mustSigner(t, botSK, 1)
	spec := fullSpec()
	room := BuildRoomEvent(spec, ts(testNow))
	if err := bot.Sign(&room); err != nil {
		t.Fatal(err)
	}
	live := Coordinate{Kind: KindRoom, Author: botPK, D: spec.D}
	res := RestartResult{
		RoomID: spec.D, Endpoints: []string{spec.Streaming}, Token: testToken, Message: "Nest recreated with new room ID",
		IsNewRoom: true, OriginalRoomID: testRoom.D, Naddr: live.Naddr(spec.Relays...), Event: &room,
	}
	p, err := ResultPayload(ActionRestart, res)
	if err != nil {
		t.Fatal(err)
	}
	ev, got := exchange(t, respSpec(live), p)
	if ev.Tags.Find("a")[1] != live.String() {
		t.Fatalf("a tag %v, want the live room", ev.Tags.Find("a"))
	}
	var back RestartResult
	if err := json.Unmarshal(got.Result, &back); err != nil {
		t.Fatal(err)
	}
	if !back.IsNewRoom || back.OriginalRoomID != testRoom.D || back.RoomID != spec.D {
		t.Fatalf("result %+v", back)
	}
	if back.Event == nil || back.Event.ID != room.ID {
		t.Fatalf("event %+v", back.Event)
	}
	if err := Verify(back.Event); err != nil {
		t.Fatalf("embedded event does not verify after the round trip: %v", err)
	}
	c, err := ParseRoomAddress(back.Naddr)
	if err != nil || c.String() != live.String() {
		t.Fatalf("naddr %q → %v, %v", back.Naddr, c, err)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	for _, res := range []StatusResult{
		{RoomID: testRoom.D, Live: true, Participants: 12, Record: true, RestartedAt: 1760000000123, Naddr: testRoom.Naddr()},
		{RoomID: testRoom.D, Naddr: testRoom.Naddr()},
	} {
		p, err := ResultPayload(ActionStatus, res)
		if err != nil {
			t.Fatal(err)
		}
		_, got := exchange(t, respSpec(testRoom), p)
		if got.ResultType != "status" {
			t.Fatalf("result_type %q", got.ResultType)
		}
		var raw map[string]any
		if err := json.Unmarshal(got.Result, &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"roomId", "live", "participants", "record", "naddr"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("status lacks %q", k)
			}
		}
		if _, ok := raw["restartedAt"]; ok != (res.RestartedAt != 0) {
			t.Errorf("restartedAt present = %v for %d", ok, res.RestartedAt)
		}
		var back StatusResult
		if err := json.Unmarshal(got.Result, &back); err != nil || back != res {
			t.Fatalf("status %+v, %v; want %+v", back, err, res)
		}
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, code := range []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeRateLimited, CodeNotImplemented, CodeUnavailable, CodeInternal} {
		t.Run(string(code), func(t *testing.T) {
			p := ErrorPayload(ActionRestart, errors.Join(Refuse(code, "because %s", "reasons"), errors.New("internal detail")))
			_, got := exchange(t, respSpec(testRoom), p)
			if got.ResultType != "restart" || got.Result != nil || got.Error == nil {
				t.Fatalf("payload %+v", got)
			}
			if got.Error.Code != code || got.Error.Message != "because reasons" {
				t.Fatalf("error %+v", got.Error)
			}
		})
	}
}

// Errors that are not refusals become INTERNAL with a generic message:
// nothing about Redis, LiveKit or relays reaches a requester.
func TestErrorPayloadHidesInternals(t *testing.T) {
	p := ErrorPayload(ActionStatus, errors.New("dial tcp 10.0.0.5:6379: connection refused"))
	if p.ResultType != "status" || p.Error == nil || p.Error.Code != CodeInternal || p.Error.Message != "internal error" || p.Result != nil {
		t.Fatalf("payload %+v", p)
	}
}

func TestPayloadWireShape(t *testing.T) {
	b, err := json.Marshal(ErrorPayload(ActionRestart, Refuse(CodeRateLimited, "slow down")))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"result_type":"restart","error":{"code":"RATE_LIMITED","message":"slow down"}}` {
		t.Fatalf("error payload %s", b)
	}
	p, err := ResultPayload(ActionRestart, RestartResult{RoomID: "r", Endpoints: []string{"wss+livekit://h"}, Token: "t", Message: "m", Naddr: "naddr1x"})
	if err != nil {
		t.Fatal(err)
	}
	b, err = json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"result_type":"restart","result":{"roomId":"r","endpoints":["wss+livekit://h"],"token":"t","message":"m","isNewRoom":false,"naddr":"naddr1x"}}`
	if string(b) != want {
		t.Fatalf("result payload\n%s\nwant\n%s", b, want)
	}
	if _, err := ResultPayload(ActionRestart, func() {}); err == nil {
		t.Fatal("ResultPayload of an unencodable value succeeded")
	}
}

// encryptedResponse is a response from signer sk whose content is the given
// plaintext, encrypted to the host.
func encryptedResponse(t *testing.T, sk, plaintext string) nostr.Event {
	t.Helper()
	s := mustSigner(t, sk, 2)
	ct, err := s.Encrypt(hostPK, plaintext)
	if err != nil {
		t.Fatal(err)
	}
	ev := nostr.Event{Kind: DefaultResponseKind, CreatedAt: ts(testNow), Content: ct,
		Tags: nostr.Tags{{"p", hostPK}, {"e", hexOf('e', 64)}, {"encryption", EncryptionNIP44}}}
	if err := s.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestOpenResponseRejects(t *testing.T) {
	bot := mustSigner(t, botSK, 2)
	good, err := BuildResponse(bot, respSpec(testRoom), ErrorPayload(ActionRestart, Refuse(CodeNotFound, "x")))
	if err != nil {
		t.Fatal(err)
	}
	toOther, err := BuildResponse(bot, ResponseSpec{Kind: DefaultResponseKind, Requester: otherPK, RequestID: hexOf('e', 64), CreatedAt: ts(testNow), TTL: time.Minute},
		ErrorPayload(ActionRestart, Refuse(CodeNotFound, "x")))
	if err != nil {
		t.Fatal(err)
	}
	forged := good
	forged.ID = hexOf('a', 64)
	tampered := good
	tampered.Tags = append(nostr.Tags{}, good.Tags...)
	tampered.Tags[1] = nostr.Tag{"e", hexOf('f', 64)}
	badSig := good
	badSig.Sig = toOther.Sig
	garbage := good
	garbage.Content = "not nip44 at all"
	garbage.ID = garbage.GetID()
	if err := bot.Sign(&garbage); err != nil {
		t.Fatal(err)
	}
	both, err := BuildResponse(bot, respSpec(testRoom), Payload{ResultType: "restart", Result: json.RawMessage(`{"roomId":"r"}`), Error: &PayloadError{Code: CodeInternal}})
	if err != nil {
		t.Fatal(err)
	}
	neither, err := BuildResponse(bot, respSpec(testRoom), Payload{ResultType: "restart"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		ev   nostr.Event
		is   error // sentinel the error must wrap, if any
	}{
		{"signed by someone else", encryptedResponse(t, otherSK, `{"result_type":"restart","result":{"roomId":"r"}}`), nil},
		{"forged id", forged, ErrBadID},
		{"tag changed after signing", tampered, ErrBadID},
		{"bad signature", badSig, ErrBadSignature},
		{"encrypted to someone else", toOther, nil},
		{"content not NIP-44", garbage, nil},
		{"payload not JSON", encryptedResponseFromBot(t, "hello"), nil},
		{"payload a JSON array", encryptedResponseFromBot(t, `[1,2]`), nil},
		{"both result and error", both, nil},
		{"neither result nor error", neither, nil},
		{"result null and no error", encryptedResponseFromBot(t, `{"result_type":"restart","result":null}`), nil},
		{"result null and error null", encryptedResponseFromBot(t, `{"result_type":"restart","result":null,"error":null}`), nil},
		{"result and error both objects", encryptedResponseFromBot(t, `{"result_type":"restart","result":{},"error":{"code":"INTERNAL","message":""}}`), nil},
	}
	host := mustSigner(t, hostSK, 2)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			p, err := OpenResponse(host, botPK, &ev)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
	if _, err := OpenResponse(host, botPK, &good); err != nil {
		t.Fatalf("the untouched response: %v", err)
	}
}

func encryptedResponseFromBot(t *testing.T, plaintext string) nostr.Event {
	return encryptedResponse(t, botSK, plaintext)
}

// NIP-47 writes the absent half as null; such payloads are read as the half
// that is present.
func TestOpenResponseNIP47Nulls(t *testing.T) {
	host := mustSigner(t, hostSK, 2)
	ev := encryptedResponseFromBot(t, `{"result_type":"restart","result":null,"error":{"code":"UNAUTHORIZED","message":"no"}}`)
	p, err := OpenResponse(host, botPK, &ev)
	if err != nil {
		t.Fatalf("OpenResponse: %v", err)
	}
	if p.Result != nil || p.Error == nil || p.Error.Code != CodeUnauthorized {
		t.Fatalf("payload %+v", p)
	}
	ev = encryptedResponseFromBot(t, `{"result_type":"status","error":null,"result":{"roomId":"r","live":false,"participants":0,"record":false,"naddr":""}}`)
	p, err = OpenResponse(host, botPK, &ev)
	if err != nil {
		t.Fatalf("OpenResponse: %v", err)
	}
	if p.Error != nil || len(p.Result) == 0 {
		t.Fatalf("payload %+v", p)
	}
}
