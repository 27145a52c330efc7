package e2e

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Issue 12 point 4: real participants and real audio. A host and a
// listener join LiveKit with server-sdk-go's own client (pion WebRTC over
// loopback UDP); the host restarts the room; both are disconnected from
// the old room; the host rejoins with the answer's token, the listener with
// a listener token minted as the Nests API server mints them, and the
// listener receives the Opus packets the host publishes.
//
// The audio is Opus silence: 20 ms frames of the 3-byte packet 0xF8 0xFF
// 0xFE (RFC 6716 TOC: CELT fullband 20 ms, mono, one frame, then an empty
// frame body), which every Opus decoder plays as silence. No Opus encoder
// is available to the tests (libopus needs cgo), and the SFU forwards RTP
// whatever the frames hold, which is what is being proven.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// nestsToken mints a token as the Nests API server does (api/server.js):
// identity = pubkey, name Host|Admin|Speaker|Listener, metadata
// {"role","pubkey"}, publish for host/admin/speaker, admin and record for
// host/admin.
func nestsToken(t *testing.T, w *world, room, pubkey, role string) string {
	t.Helper()
	meta, _ := json.Marshal(map[string]string{"role": role, "pubkey": pubkey})
	g := &auth.VideoGrant{Room: room, RoomJoin: true}
	g.SetCanSubscribe(true)
	g.SetCanPublish(role != "listener")
	if role == "host" || role == "admin" {
		g.RoomAdmin, g.RoomRecord = true, true
	}
	names := map[string]string{"host": "Host", "admin": "Admin", "speaker": "Speaker", "listener": "Listener"}
	tok, err := auth.NewAccessToken(w.lk.APIKey, w.lk.APISecret).SetIdentity(pubkey).SetName(names[role]).
		SetMetadata(string(meta)).SetVideoGrant(g).SetValidFor(10 * time.Minute).ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// participant is one real LiveKit client.
type participant struct {
	room         *lksdk.Room
	disconnected chan struct{}
	packets      atomic.Int64
	heard        chan struct{} // closed after the first few audio packets
}

func join(t *testing.T, w *world, token string) *participant {
	t.Helper()
	p := &participant{disconnected: make(chan struct{}), heard: make(chan struct{})}
	var once, heardOnce atomic.Bool
	cb := &lksdk.RoomCallback{
		OnDisconnected: func() {
			if !once.Swap(true) {
				close(p.disconnected)
			}
		},
		ParticipantCallback: lksdk.ParticipantCallback{
			OnTrackSubscribed: func(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, _ *lksdk.RemoteParticipant) {
				go func() {
					for {
						if _, _, err := track.ReadRTP(); err != nil {
							return
						}
						if p.packets.Add(1) >= 10 && !heardOnce.Swap(true) {
							close(p.heard)
						}
					}
				}()
			},
		},
	}
	room, err := lksdk.ConnectToRoomWithToken(w.lk.WSURL, token, cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		t.Fatalf("join LiveKit: %v", err)
	}
	p.room = room
	t.Cleanup(room.Disconnect)
	return p
}

// speak publishes an Opus track and writes silence frames until stop.
func (p *participant) speak(t *testing.T, stop <-chan struct{}) {
	t.Helper()
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "mic", Source: livekit.TrackSource_MICROPHONE}); err != nil {
		t.Fatalf("publish track: %v", err)
	}
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = track.WriteSample(media.Sample{Data: opusSilence, Duration: 20 * time.Millisecond}, nil)
			}
		}
	}()
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("gave up waiting for: %s", what)
	}
}

func TestRealAudioAfterRestart(t *testing.T) {
	for _, mode := range []string{"in place", "new ID"} {
		t.Run(mode, func(t *testing.T) {
			w := newWorld(t, 1)
			w.start()
			host, listener := newUser(t), newUser(t)
			id := uuid.NewString()
			meta, _ := json.Marshal(map[string]any{"nestId": id, "host": host.pk, "relays": w.relayURLs(), "createdAt": time.Now().UnixMilli()})
			if _, err := w.rooms.CreateRoom(context.Background(), &livekit.CreateRoomRequest{Name: id, Metadata: string(meta)}); err != nil {
				t.Fatal(err)
			}
			if mode == "in place" {
				w.nestsRecord(id, host.pk, nil, nil)
			} else {
				w.publishRoom(host, id, nil) // the record expired; the room event is there
			}
			tokens := rooms.Tokens{APIKey: w.lk.APIKey, APISecret: w.lk.APISecret, TTL: 10 * time.Minute}
			hostTok, err := tokens.Mint(id, host.pk, nostrx.RoleHost)
			if err != nil {
				t.Fatal(err)
			}
			h := join(t, w, hostTok)
			l := join(t, w, nestsToken(t, w, id, listener.pk, "listener"))
			old := w.liveRoom(id)
			waitFor(t, "both in the old room", func() bool { r := w.liveRoom(id); return r != nil && r.NumParticipants == 2 })

			res := restartResult(t, w.ask(host, coord(host.pk, id), "restart").Payload)
			if (mode == "new ID") != res.IsNewRoom {
				t.Fatalf("%+v", res)
			}
			waitClosed(t, "the host disconnected from the old room", h.disconnected)
			waitClosed(t, "the listener disconnected from the old room", l.disconnected)
			if r := w.liveRoom(id); r != nil && r.Sid == old.Sid {
				t.Fatalf("the old room %s is still there", old.Sid)
			}

			h2 := join(t, w, res.Token)
			l2 := join(t, w, nestsToken(t, w, res.RoomID, listener.pk, "listener"))
			if r := w.liveRoom(res.RoomID); r == nil || r.Sid == old.Sid || r.Sid != h2.room.SID() {
				t.Fatalf("rejoined room %+v, old SID %s, answer's room %s", r, old.Sid, res.RoomID)
			}
			stop := make(chan struct{})
			defer close(stop)
			h2.speak(t, stop)
			waitClosed(t, "the listener hears the host", l2.heard)
			t.Logf("%s: listener received %d Opus packets in room %s (SID %s, was %s)", mode, l2.packets.Load(), res.RoomID, h2.room.SID(), old.Sid)
		})
	}
}
