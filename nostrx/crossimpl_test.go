package nostrx_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// TestNostrToolsRequestVerifiesInGo: a request nostr-tools signs passes every
// Go check and parses to the same room, action, hint and expiration.
func TestNostrToolsRequestVerifiesInGo(t *testing.T) {
	hostSK, botSK := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	hostPK, _ := nostr.GetPublicKey(hostSK)
	botPK, _ := nostr.GetPublicKey(botSK)
	room := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hostPK, D: "9b1f8c7e-0d3a-4c2b-8e5f-6a7b8c9d0e1f"}
	exp := time.Now().Add(time.Minute).Unix()
	var ev nostr.Event
	stack.RunNode(t, "sign-request.mjs", map[string]any{
		"sk": hostSK, "botPubkey": botPK, "coord": room.String(), "relayHint": "wss://relay.example.com",
		"reason": "audio froze", "expiration": exp,
	}, &ev)

	if err := nostrx.Screen(&ev, nostrx.DefaultRequestKind, botPK); err != nil {
		t.Fatalf("Screen: %v", err)
	}
	if err := nostrx.CheckFresh(&ev, time.Now(), 2*time.Minute); err != nil {
		t.Fatalf("CheckFresh: %v", err)
	}
	if err := nostrx.Verify(&ev); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	req, err := nostrx.ParseRequest(&ev)
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	if req.Room.String() != room.String() || req.Action != "restart" || req.RelayHint != "wss://relay.example.com" ||
		req.Reason != "audio froze" || int64(req.Expiration) != exp || req.Requester != hostPK {
		t.Fatalf("parsed %+v", req)
	}
	// The same event with one tag changed must fail verification in Go.
	ev.Tags[0][1] = nostrx.Coordinate{Kind: nostrx.KindRoom, Author: hostPK, D: "other"}.String()
	if err := nostrx.Verify(&ev); err == nil {
		t.Fatal("a tampered nostr-tools event verified")
	}
}

// TestNostrToolsNIP44ToGo: a payload nostr-tools encrypts, Go decrypts, and
// the reverse, with the conversation key cached on the Go side.
func TestNostrToolsNIP44ToGo(t *testing.T) {
	aliceSK, bobSK := nostr.GeneratePrivateKey(), nostr.GeneratePrivateKey()
	alicePK, _ := nostr.GetPublicKey(aliceSK)
	bob, err := nostrx.NewSigner(bobSK, 4)
	if err != nil {
		t.Fatal(err)
	}
	msg := `{"result_type":"restart","result":{"roomId":"ü-room","token":"x.y.z"}}`
	var enc struct{ Ciphertext string }
	stack.RunNode(t, "nip44.mjs", map[string]any{"op": "encrypt", "sk": aliceSK, "peer": bob.PublicKey(), "plaintext": msg}, &enc)
	got, err := bob.Decrypt(alicePK, enc.Ciphertext)
	if err != nil || got != msg {
		t.Fatalf("Go decrypt of nostr-tools ciphertext: %q, %v", got, err)
	}
	ct, err := bob.Encrypt(alicePK, msg)
	if err != nil {
		t.Fatal(err)
	}
	var dec struct{ Plaintext string }
	stack.RunNode(t, "nip44.mjs", map[string]any{"op": "decrypt", "sk": aliceSK, "peer": bob.PublicKey(), "ciphertext": ct}, &dec)
	if dec.Plaintext != msg {
		t.Fatalf("nostr-tools decrypt of Go ciphertext: %q", dec.Plaintext)
	}
}

// TestGoResponseOpensInNostrTools: a response Go builds verifies and
// decrypts in nostr-tools with every routing tag the contract names.
func TestGoResponseOpensInNostrTools(t *testing.T) {
	requesterSK := nostr.GeneratePrivateKey()
	requesterPK, _ := nostr.GetPublicKey(requesterSK)
	bot, err := nostrx.NewSigner(nostr.GeneratePrivateKey(), 4)
	if err != nil {
		t.Fatal(err)
	}
	room := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot.PublicKey(), D: "2c4e6a8b-1d3f-4a5b-9c7d-0e1f2a3b4c5d"}
	payload, err := nostrx.ResultPayload("restart", nostrx.RestartResult{
		RoomID: room.D, Endpoints: []string{"wss+livekit://lk.example.com"}, Token: "jwt", Message: "Nest recreated with new room ID",
		IsNewRoom: true, OriginalRoomID: "old", Naddr: room.Naddr(),
	})
	if err != nil {
		t.Fatal(err)
	}
	requestID := "a0" + string(bytes.Repeat([]byte("b"), 62))
	resp, err := nostrx.BuildResponse(bot, nostrx.ResponseSpec{Kind: nostrx.DefaultResponseKind, Requester: requesterPK,
		RequestID: requestID, Room: room, CreatedAt: nostr.Now(), TTL: 10 * time.Minute}, payload)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Valid      bool
		Problems   []string
		RequestID  string
		A          string
		Encryption string
		Expiration int64
		Payload    nostrx.Payload
	}
	stack.RunNode(t, "verify-response.mjs", map[string]any{"sk": requesterSK, "event": resp}, &out)
	if !out.Valid {
		t.Fatalf("nostr-tools rejects the Go response: %v", out.Problems)
	}
	if out.RequestID != requestID || out.A != room.String() || out.Encryption != "nip44_v2" || out.Expiration != int64(resp.CreatedAt)+600 {
		t.Fatalf("tags as nostr-tools reads them: %+v", out)
	}
	var res nostrx.RestartResult
	if err := json.Unmarshal(out.Payload.Result, &res); err != nil || res.RoomID != room.D || !res.IsNewRoom || res.OriginalRoomID != "old" {
		t.Fatalf("payload as nostr-tools decrypted it: %+v (%v)", out.Payload, err)
	}

	// A response signed by someone else is refused by nostr-tools too.
	resp.Sig = resp.Sig[:len(resp.Sig)-2] + "00"
	stack.RunNode(t, "verify-response.mjs", map[string]any{"sk": requesterSK, "event": resp}, &out)
	if out.Valid {
		t.Fatal("nostr-tools accepted a response with a broken signature")
	}
}
