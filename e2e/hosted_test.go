package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Issue 12: rooms as today's clients write them. nostr-tools (interop/
// sign-event.mjs) signs and publishes every client event here: the rooms,
// and the template the host adopts.

// clientPublish signs tmpl as u with nostr-tools and publishes it to the
// world's relays.
func (w *world) clientPublish(u *user, tmpl map[string]any) nostr.Event {
	w.t.Helper()
	var out struct {
		Event nostr.Event `json:"event"`
	}
	stack.RunNode(w.t, "sign-event.mjs", map[string]any{"sk": u.sk, "template": tmpl, "relays": w.relayURLs()}, &out)
	if out.Event.PubKey != u.pk || nostrx.Verify(&out.Event) != nil {
		w.t.Fatalf("nostr-tools event %+v", out.Event)
	}
	return out.Event
}

// TestHostedElsewhereRefused (issue 12 point 1): a NestsUI-v2 room on MoQ
// and a room of another LiveKit deployment are answered NOT_FOUND, saying
// where they live, by 4312 and by DM, after authorization (a stranger
// still gets UNAUTHORIZED), and nothing is created or published.
func TestHostedElsewhereRefused(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Nests.WebURL = testWebURL
	w.start()
	host, stranger := newUser(t), newUser(t)
	moq, other := uuid.NewString(), uuid.NewString()
	now := nostr.Now()
	w.clientPublish(host, map[string]any{"kind": 30312, "created_at": now, "content": "", "tags": [][]string{
		{"d", moq}, {"title", "MoQ chat"}, {"summary", "on the new stack"}, {"image", "https://example.com/i.png"},
		{"streaming", "https://moq.nostrnests.com:4443"}, {"auth", "https://moq-auth.nostrnests.com"},
		{"starts", "1795900000"}, {"status", "live"}, {"relays", w.relays[0].URL}, {"color", "#336699"},
		{"p", host.pk, "", "host"},
	}})
	w.clientPublish(host, map[string]any{"kind": 30312, "created_at": now, "content": "", "tags": [][]string{
		{"d", other}, {"room", "Elsewhere"}, {"status", "open"}, {"service", "https://nests.other.example/api/v1/nests"},
		{"streaming", "wss+livekit://livekit.other.example"}, {"p", host.pk, "", "Host"},
	}})
	for d, where := range map[string]string{moq: "https://moq.nostrnests.com:4443", other: "https://nests.other.example"} {
		for _, action := range []string{"restart", "status"} {
			p := w.ask(host, coord(host.pk, d), action).Payload
			wantError(t, p, nostrx.CodeNotFound)
			if !strings.Contains(p.Error.Message, "hosted elsewhere ("+where+")") {
				t.Errorf("%s %s: message %q does not say where", action, d, p.Error.Message)
			}
			// The check comes after authorization: strangers learn nothing new.
			wantError(t, w.ask(stranger, coord(host.pk, d), action).Payload, nostrx.CodeUnauthorized)
		}
	}
	ex := w.sendDM(host, w.relayURLs(), "nip17", "restart "+coord(host.pk, moq).Naddr())
	if !strings.Contains(ex.Reply, "hosted elsewhere (https://moq.nostrnests.com:4443)") || strings.Contains(ex.Reply, "naddr1") {
		t.Fatalf("DM reply %q", ex.Reply)
	}
	if n := len(w.allLiveRooms()); n != 0 {
		t.Fatalf("%d LiveKit rooms created", n)
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}}); len(evs) != 0 {
		t.Fatalf("the bot published %d room events", len(evs))
	}
	if keys, _ := w.rdb.Keys(context.Background(), "nest:*").Result(); len(keys) != 0 {
		t.Fatalf("records written: %v", keys)
	}
}

// TestVocabularyKept (issue 12 point 2): the replacement of a live,
// lowercase room built by nostr-tools stays live and lowercase and keeps
// Amethyst's look-and-schedule tags.
func TestVocabularyKept(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, admin := newUser(t), newUser(t)
	d := uuid.NewString()
	look := [][]string{
		{"c", "#112233", "background"}, {"c", "#ffffff", "text"}, {"bg", "https://example.com/bg.jpg", "cover"},
		{"f", "Inter", "https://example.com/inter.woff2"}, {"starts", "1795900000"}, {"ends", "1795990000"},
		{"recording", "https://example.com/rec.mp3"},
	}
	tags := append([][]string{{"d", d}, {"title", "Lower case"}, {"status", "live"}, {"service", w.cfg.Nests.ServiceURL},
		{"p", host.pk, "", "host"}, {"p", admin.pk, "", "admin"}}, look...)
	w.clientPublish(host, map[string]any{"kind": 30312, "created_at": nostr.Now(), "content": "", "tags": tags})

	res := restartResult(t, w.ask(host, coord(host.pk, d), "restart").Payload)
	if !res.IsNewRoom || res.Event == nil {
		t.Fatalf("%+v", res)
	}
	ev := res.Event
	if got := ev.Tags.Find("status"); got[1] != "live" {
		t.Errorf("status %v", got)
	}
	for p := range ev.Tags.FindAll("p") {
		if p[3] != strings.ToLower(p[3]) {
			t.Errorf("role word %q is not lowercase", p[3])
		}
	}
	for _, want := range look {
		if ev.Tags.FindWithValue(want[0], want[1]) == nil {
			t.Errorf("tag %v dropped", want)
		}
	}
}

// TestAdoption (issue 12 point 3): the template of a new-ID answer, signed
// and published by nostr-tools as the host, takes the room over: the bot
// closes its replacement with a pointer to the host's event, later
// requests for the original and for the replacement answer with the
// host's naddr and no event, and what the host changes afterwards (a new
// admin, a new speaker) is what the next restart in place reads.
func TestAdoption(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, newAdmin, speaker := newUser(t), newUser(t), newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil)
	res := restartResult(t, w.ask(host, coord(host.pk, oldID), "restart").Payload)
	if !res.IsNewRoom || res.Template == nil || res.Event == nil {
		t.Fatalf("no template: %+v", res)
	}
	tm := res.Template
	if tm.Kind != nostrx.KindRoom || tm.Tags.GetD() != res.RoomID || tm.Content != "" || tm.Tags.FindWithValue("p", host.pk)[3] != "Host" {
		t.Fatalf("template %+v", tm)
	}
	hostEv := w.clientPublish(host, map[string]any{"kind": tm.Kind, "created_at": tm.CreatedAt, "tags": tm.Tags, "content": tm.Content})
	hostRoom := coord(host.pk, res.RoomID)
	botRoom := coord(w.botPub(), res.RoomID)

	w.rdb.Del(context.Background(), rooms.DefaultKeys.Cooldown(res.RoomID))
	nextSecond() // a request signed in the same second as an earlier one would have its id // past the cool-down
	again := restartResult(t, w.ask(host, coord(host.pk, oldID), "restart").Payload)
	checkNaddr(t, again.Naddr, host.pk, res.RoomID)
	if again.RoomID != res.RoomID || again.Event != nil || again.Template != nil || !again.IsNewRoom {
		t.Fatalf("request for the original after adoption: %+v", again)
	}
	closed := w.latestRoom(res.RoomID)
	if status(closed) != "ended" || closed.Tags.FindWithValue("a", hostRoom.String()) == nil {
		t.Fatalf("the bot's replacement after adoption: %v", closed)
	}
	if w.owned(res.RoomID) {
		t.Fatal("the bot still looks after an adopted room")
	}
	w.rdb.Del(context.Background(), rooms.DefaultKeys.Cooldown(res.RoomID))
	nextSecond() // a request signed in the same second as an earlier one would have its id
	viaBot := restartResult(t, w.ask(host, botRoom, "restart").Payload)
	checkNaddr(t, viaBot.Naddr, host.pk, res.RoomID)
	if viaBot.Event != nil {
		t.Fatalf("event in an answer for an adopted room: %v", viaBot.Event)
	}
	st := statusResult(t, w.ask(host, coord(host.pk, oldID), "status").Payload)
	checkNaddr(t, st.Naddr, host.pk, res.RoomID)
	if !st.Record || st.RoomID != res.RoomID {
		t.Fatalf("status of the adopted room %+v", st)
	}
	if latest := w.latestRoom(res.RoomID); latest.ID != closed.ID {
		t.Fatalf("the bot published again after adoption: %v", latest)
	}

	// The host adds an admin and a speaker in a new version of their event.
	wantError(t, w.ask(newAdmin, hostRoom, "restart").Payload, nostrx.CodeUnauthorized)
	tags := append(slices2(hostEv.Tags), []string{"p", newAdmin.pk, "", "Admin"}, []string{"p", speaker.pk, "", "Speaker"})
	w.clientPublish(host, map[string]any{"kind": 30312, "created_at": hostEv.CreatedAt + 1, "tags": tags, "content": ""})
	w.rdb.Del(context.Background(), rooms.DefaultKeys.Cooldown(res.RoomID))
	nextSecond() // a request signed in the same second as an earlier one would have its id
	byAdmin := restartResult(t, w.ask(newAdmin, hostRoom, "restart").Payload)
	checkNaddr(t, byAdmin.Naddr, host.pk, res.RoomID)
	checkToken(t, w, byAdmin.Token, res.RoomID, newAdmin.pk)
	_, rec := w.record(res.RoomID)
	if rec == nil || rec.Host != host.pk || !contains(rec.Admins, newAdmin.pk) || !contains(rec.Speakers, speaker.pk) {
		t.Fatalf("record after the host's update: %+v", rec)
	}
}

func slices2(tags nostr.Tags) [][]string {
	out := make([][]string, len(tags))
	for i, t := range tags {
		out[i] = t
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestRestartCommandAdopts (issue 12 point 3): `nestbot restart` signs and
// publishes the template of a new-ID answer as the requester; with
// --no-adopt it does not.
func TestRestartCommandAdopts(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	bin := filepath.Join(t.TempDir(), "nestbot")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nestbot/nestbot/cmd/nestbot").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, noAdopt := range []bool{false, true} {
		host := newUser(t)
		oldID := uuid.NewString()
		w.publishRoom(host, oldID, nil)
		args := []string{"restart", "--bot", nostrx.Npub(w.botPub()), "--relay", w.relays[0].URL, "--timeout", "20s"}
		if noAdopt {
			args = append(args, "--no-adopt")
		}
		cmd := exec.Command(bin, append(args, coord(host.pk, oldID).String())...)
		cmd.Env = append(os.Environ(), "NESTBOT_CLIENT_KEY="+host.sk)
		cmd.Dir = t.TempDir()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("no-adopt=%v: %v: %s", noAdopt, err, stderr.String())
		}
		var p nostrx.Payload
		if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
			t.Fatalf("stdout: %v: %s", err, stdout.String())
		}
		res := restartResult(t, p)
		evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{host.pk}, Tags: nostr.TagMap{"d": {res.RoomID}}})
		if noAdopt != (len(evs) == 0) {
			t.Fatalf("no-adopt=%v: %d host events at the new ID; stderr %q", noAdopt, len(evs), stderr.String())
		}
		if !noAdopt && !strings.Contains(stderr.String(), "adopted") {
			t.Fatalf("stderr %q", stderr.String())
		}
	}
}
