package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Auto-heal (issue 14) on the real stack: nostr-tools (interop/
// sign-event.mjs) publishes the participants' kind 10312 presence, LiveKit
// loses rooms behind the bot's back, and the host reads the bot's NIP-17
// DM with nostr-tools (interop/dm.mjs) on their own DM relay. Nothing waits
// for a duration: a test waits for an outcome, and "left alone" is judged
// after the healer has provably passed over the room (see barrier).

// healWorld is a world whose bot checks rooms often, with a DM relay of
// the hosts' own that the bot does not otherwise use.
func healWorld(t *testing.T) (*world, *stack.Relay) {
	w := newWorld(t, 1)
	dmRelay := stack.StartRelay(t)
	w.cfg.Nests.WebURL = testWebURL
	w.cfg.Heal.Enabled = true
	w.cfg.Heal.Interval = 200 * time.Millisecond
	return w, dmRelay
}

// presence has nostr-tools sign u's kind 10312 naming the room at c (as
// Nests clients write it) and publish it to the bot's relays. at zero
// means now.
func (w *world) presence(u *user, c nostrx.Coordinate, at time.Time) {
	w.t.Helper()
	tmpl := map[string]any{"kind": 10312, "content": "", "tags": [][]string{{"a", c.String(), w.relays[0].URL, "root"}}}
	if !at.IsZero() {
		tmpl["created_at"] = at.Unix()
	}
	var out struct {
		Event nostr.Event `json:"event"`
	}
	stack.RunNode(w.t, "sign-event.mjs", map[string]any{"sk": u.sk, "template": tmpl, "relays": w.relayURLs()}, &out)
	if out.Event.Kind != 10312 || out.Event.PubKey != u.pk {
		w.t.Fatalf("presence %+v", out.Event)
	}
}

// liveNest makes a room as the Nests API server would: its record and its
// LiveKit room with the server's metadata.
func (w *world) liveNest(host *user) (string, *livekit.Room) {
	w.t.Helper()
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	meta, _ := json.Marshal(map[string]any{"nestId": id, "host": host.pk, "relays": w.relayURLs()})
	r, err := w.rooms.CreateRoom(context.Background(), &livekit.CreateRoomRequest{Name: id, Metadata: string(meta)})
	if err != nil {
		w.t.Fatal(err)
	}
	return id, r
}

// waitHealed waits until LiveKit has room id again under a SID other than
// old, with this deployment's metadata, and returns it.
func (w *world) waitHealed(id, old string) *livekit.Room {
	w.t.Helper()
	var r *livekit.Room
	waitFor(w.t, "room "+id+" back in LiveKit", func() bool {
		r = w.liveRoom(id)
		return r != nil && r.Sid != old && strings.Contains(r.Metadata, `"nestId":"`+id+`"`)
	})
	return r
}

// barrier proves the healer has passed over every room whose presence it
// already had: a fresh occupied room loses its LiveKit room and is healed,
// which takes a pass that starts after the deletion; a second one takes a
// pass that starts after the first one ended. Relays deliver presence in
// order, so presence published before the barrier's is in both passes.
func (w *world) barrier() {
	w.t.Helper()
	for range 2 {
		host, guest := newUser(w.t), newUser(w.t)
		id, before := w.liveNest(host)
		w.presence(guest, coord(host.pk, id), time.Time{})
		w.deleteLiveRoom(id)
		w.waitHealed(id, before.Sid)
	}
}

// hostDMs opens, with nostr-tools, every gift wrap for u on url and
// returns the rumors the bot wrote.
func (w *world) hostDMs(url string, u *user) []nostr.Event {
	w.t.Helper()
	var out []nostr.Event
	for _, ev := range query(w.t, url, nostr.Filter{Kinds: []int{1059}, Tags: nostr.TagMap{"p": {u.pk}}}) {
		var opened struct {
			Rumor      nostr.Event `json:"rumor"`
			SealPubkey string      `json:"sealPubkey"`
			WrapValid  bool        `json:"wrapValid"`
		}
		stack.RunNode(w.t, "dm.mjs", map[string]any{"op": "nip17-unwrap", "sk": u.sk, "wrap": ev}, &opened)
		if !opened.WrapValid || opened.SealPubkey != w.botPub() || opened.Rumor.PubKey != w.botPub() || opened.Rumor.Kind != 14 {
			w.t.Fatalf("a gift wrap to the host that is not the bot's DM: %+v", opened)
		}
		out = append(out, opened.Rumor)
	}
	return out
}

func heals(t *testing.T, r *running, reason, outcome string) float64 {
	t.Helper()
	return metric(t, r.svc, "nestbot_heals_total", map[string]string{"reason": reason, "outcome": outcome})
}

// TestHealRestartsMissingRoom: the LiveKit room of a recorded room is
// deleted behind the bot's back while a participant's presence is fresh:
// the bot restarts it in place (new SID, record refreshed) and the host
// reads one DM on their own DM relay naming the room. A room without fresh
// presence (its only presence is stale) and a room its host closed (status
// ended) while presence is fresh lose theirs too and are left alone.
func TestHealRestartsMissingRoom(t *testing.T) {
	w, dmRelay := healWorld(t)
	r := w.run(false)
	r.waitRelays(t, 1)
	host, quiet, closer := newUser(t), newUser(t), newUser(t)
	for _, u := range []*user{host, quiet, closer} {
		w.publishRelayLists(u, []string{dmRelay.URL}, nil)
	}
	listener := newUser(t)

	// Left alone: no fresh presence (one from ten minutes ago).
	quietID, _ := w.liveNest(quiet)
	w.presence(listener, coord(quiet.pk, quietID), time.Now().Add(-10*time.Minute))
	w.deleteLiveRoom(quietID)
	// Left alone: closed by its host, people's presence still fresh.
	closedID, _ := w.liveNest(closer)
	w.clientPublish(closer, map[string]any{"kind": 30312, "content": "", "tags": [][]string{
		{"d", closedID}, {"title", "Done for today"}, {"status", "ended"}, {"service", w.cfg.Nests.ServiceURL}, {"p", closer.pk, "", "Host"}}})
	w.presence(listener, coord(closer.pk, closedID), time.Time{})
	w.deleteLiveRoom(closedID)

	id, before := w.liveNest(host)
	_, recBefore := w.record(id)
	w.presence(listener, coord(host.pk, id), time.Time{})
	w.deleteLiveRoom(id)
	after := w.waitHealed(id, before.Sid)

	var rec *rooms.Record
	waitFor(t, "the record refreshed", func() bool { _, rec = w.record(id); return rec != nil && rec.RestartedAt != recBefore.RestartedAt })
	if rec.RestartedAt == 0 || rec.Host != host.pk || rec.Status != "active" {
		t.Fatalf("record %+v", rec)
	}
	if ttl := w.rdb.TTL(context.Background(), "nest:"+id).Val(); ttl < 23*time.Hour {
		t.Fatalf("record TTL not reset: %v", ttl)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(after.Metadata), &meta); err != nil || meta["host"] != host.pk || meta["restartedAt"] == nil {
		t.Fatalf("metadata %q", after.Metadata)
	}
	var dms []nostr.Event
	waitFor(t, "the host's DM on their DM relay", func() bool { dms = w.hostDMs(dmRelay.URL, host); return len(dms) > 0 })
	naddr, ptr := replyNaddr(t, dms[0].Content)
	if ptr.Identifier != id || ptr.PublicKey != host.pk || !strings.Contains(dms[0].Content, "restarted it in place") {
		t.Fatalf("DM %q (naddr %s)", dms[0].Content, naddr)
	}
	checkNoToken(t, dms[0].Content)
	// Counted once the DM is out (no other room is broken yet).
	waitFor(t, "the heal counted", func() bool { return heals(t, r, "livekit_missing", "healed") == 1 })

	w.barrier()
	if got := w.liveRoom(id); got == nil || got.Sid != after.Sid {
		t.Fatalf("healed room touched again: %v, healed as %s", got, after.Sid)
	}
	if dms := w.hostDMs(dmRelay.URL, host); len(dms) != 1 {
		t.Fatalf("host holds %d DMs, want 1", len(dms))
	}
	for _, left := range []struct {
		id string
		u  *user
	}{{quietID, quiet}, {closedID, closer}} {
		if r := w.liveRoom(left.id); r != nil {
			t.Errorf("room %s was brought back: %v", left.id, r)
		}
		if dms := w.hostDMs(dmRelay.URL, left.u); len(dms) != 0 {
			t.Errorf("host of %s was told: %v", left.id, dms[0].Content)
		}
	}
}

// TestHealBareRoomAfterLiveKitRestart: LiveKit restarts and loses its
// rooms; a participant rejoins with their token and LiveKit auto-creates a
// bare room without this deployment's metadata. The bot restores the
// metadata on that room (same SID) and the participant stays connected.
func TestHealBareRoomAfterLiveKitRestart(t *testing.T) {
	w, dmRelay := healWorld(t)
	r := w.run(false)
	r.waitRelays(t, 1)
	host, listener := newUser(t), newUser(t)
	w.publishRelayLists(host, []string{dmRelay.URL}, nil)
	id, _ := w.liveNest(host)

	w.lk.Stop()
	w.lk.Start()
	if w.liveRoom(id) != nil {
		t.Fatal("LiveKit kept the room across a restart")
	}
	p := join(t, w, nestsToken(t, w, id, listener.pk, "listener"))
	bare := w.liveRoom(id)
	if bare == nil || bare.Metadata != "" {
		t.Fatalf("want a bare auto-created room, got %v", bare)
	}
	w.presence(listener, coord(host.pk, id), time.Time{})

	healed := w.waitHealed(id, "")
	if healed.Sid != bare.Sid {
		t.Fatalf("the room was recreated (%s → %s) instead of getting its metadata back", bare.Sid, healed.Sid)
	}
	var dms []nostr.Event
	waitFor(t, "the host's DM", func() bool { dms = w.hostDMs(dmRelay.URL, host); return len(dms) > 0 })
	if !strings.Contains(dms[0].Content, "restored its settings") {
		t.Fatalf("DM %q", dms[0].Content)
	}
	select {
	case <-p.disconnected:
		t.Fatal("the participant was disconnected")
	default:
	}
	if st := p.room.ConnectionState(); st != lksdk.ConnectionStateConnected {
		t.Fatalf("participant connection state %v", st)
	}
	if got := w.liveRoom(id); got == nil || got.NumParticipants != 1 || got.Sid != bare.Sid {
		t.Fatalf("room after the heal %v", got)
	}
	waitFor(t, "the heal counted", func() bool { return heals(t, r, "bare_room", "healed") == 1 })
}

// TestHealThreeReplicasOnce: three replicas on one Redis notice the same
// broken room; it is restarted once and the host gets exactly one DM.
func TestHealThreeReplicasOnce(t *testing.T) {
	w, dmRelay := healWorld(t)
	reps := []*running{w.run(false), w.run(false), w.run(false)}
	for _, r := range reps {
		r.waitRelays(t, 1)
	}
	host, listener := newUser(t), newUser(t)
	w.publishRelayLists(host, []string{dmRelay.URL}, nil)
	id, before := w.liveNest(host)
	w.presence(listener, coord(host.pk, id), time.Time{})
	w.deleteLiveRoom(id)
	after := w.waitHealed(id, before.Sid)

	// Every replica passes over the room twice more after the heal.
	for _, r := range reps {
		n := metric(t, r.svc, "nestbot_heal_checks_total", map[string]string{"outcome": "ok"})
		waitFor(t, "two more passes of a replica", func() bool {
			return metric(t, r.svc, "nestbot_heal_checks_total", map[string]string{"outcome": "ok"}) >= n+2
		})
	}
	if got := w.liveRoom(id); got == nil || got.Sid != after.Sid {
		t.Fatalf("room healed more than once: %v, first heal %s", got, after.Sid)
	}
	total := 0.0
	for _, r := range reps {
		total += heals(t, r, "livekit_missing", "healed")
	}
	if total != 1 {
		t.Fatalf("heals counted by the replicas: %v, want 1", total)
	}
	var dms []nostr.Event
	waitFor(t, "the host's DM", func() bool { dms = w.hostDMs(dmRelay.URL, host); return len(dms) > 0 })
	if len(dms) != 1 {
		t.Fatalf("host holds %d DMs, want 1", len(dms))
	}
}

// TestHealRecordGone: a room the bot recreated (its own 30312, open) loses
// its record while people are in it. With heal.new_id off it is not
// recreated (counted disabled); with it on, it is recreated under a new ID
// once, with the bot's replacement event and the adoption explanation, and
// the host is told.
func TestHealRecordGone(t *testing.T) {
	w, dmRelay := healWorld(t)
	r := w.run(false)
	r.waitRelays(t, 1)
	host, listener := newUser(t), newUser(t)
	w.publishRelayLists(host, []string{dmRelay.URL}, nil)
	id, _ := w.recreated(host)
	botRoom := coord(w.botPub(), id)
	replacedKey := "nestbot:{" + id + "}:replaced:" + w.botPub()
	if err := w.rdb.Del(context.Background(), "nest:"+id).Err(); err != nil {
		t.Fatal(err)
	}
	w.presence(listener, botRoom, time.Time{})

	waitFor(t, "the gone record noticed", func() bool { return heals(t, r, "record_gone", "disabled") >= 1 })
	if v := w.rdb.Get(context.Background(), replacedKey).Val(); v != "" {
		t.Fatalf("recreated under %s with heal.new_id off", v)
	}
	if _, rec := w.record(id); rec != nil {
		t.Fatal("record rewritten with heal.new_id off")
	}
	if dms := w.hostDMs(dmRelay.URL, host); len(dms) != 0 {
		t.Fatalf("host told with heal.new_id off: %q", dms[0].Content)
	}

	r.stop()
	w.cfg.Heal.NewID = true
	r = w.run(false)
	r.waitRelays(t, 1)
	var newID string
	waitFor(t, "recreated under a new ID", func() bool { newID = w.rdb.Get(context.Background(), replacedKey).Val(); return newID != "" })
	_, rec := w.record(newID)
	if rec == nil || rec.Host != host.pk || rec.OriginalRoomID != id || !rec.IsRecreated {
		t.Fatalf("new record %+v", rec)
	}
	ev := w.latestRoom(newID)
	if ev == nil || status(ev) != "live" || ev.Tags.FindWithValue("a", botRoom.String()) == nil {
		t.Fatalf("replacement event %v", ev)
	}
	var dms []nostr.Event
	waitFor(t, "the host's DM", func() bool { dms = w.hostDMs(dmRelay.URL, host); return len(dms) > 0 })
	_, ptr := replyNaddr(t, dms[0].Content)
	if ptr.Identifier != newID || ptr.PublicKey != w.botPub() || !strings.Contains(dms[0].Content, "(d tag "+newID+")") {
		t.Fatalf("DM %q", dms[0].Content)
	}

	w.barrier()
	if v := w.rdb.Get(context.Background(), replacedKey).Val(); v != newID {
		t.Fatalf("recreated again: %s, then %s", newID, v)
	}
	if n := heals(t, r, "record_gone", "healed"); n != 1 {
		t.Fatalf("nestbot_heals_total{record_gone,healed} = %v", n)
	}
	if dms := w.hostDMs(dmRelay.URL, host); len(dms) != 1 {
		t.Fatalf("host holds %d DMs, want 1", len(dms))
	}
}

// TestHealBareRoomByWebhook: without any presence, LiveKit's
// participant_joined webhook for a bare room of a recorded room is enough:
// LiveKit counts a participant there, and the bot restores the metadata.
func TestHealBareRoomByWebhook(t *testing.T) {
	w, dmRelay := healWorld(t)
	r := w.run(true)
	r.waitRelays(t, 1)
	host, listener := newUser(t), newUser(t)
	w.publishRelayLists(host, []string{dmRelay.URL}, nil)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	p := join(t, w, nestsToken(t, w, id, listener.pk, "listener"))
	var bare *livekit.Room
	waitFor(t, "LiveKit counts the participant", func() bool { bare = w.liveRoom(id); return bare != nil && bare.NumParticipants == 1 })
	if bare.Metadata != "" {
		t.Fatalf("want a bare room, got metadata %q", bare.Metadata)
	}
	w.notifyLiveKit(r.base, &livekit.WebhookEvent{Event: webhook.EventParticipantJoined, Id: "EV_join", CreatedAt: time.Now().Unix(), Room: bare})

	healed := w.waitHealed(id, "")
	if healed.Sid != bare.Sid || healed.NumParticipants != 1 {
		t.Fatalf("room after the heal %v (was %s)", healed, bare.Sid)
	}
	select {
	case <-p.disconnected:
		t.Fatal("the participant was disconnected")
	default:
	}
	waitFor(t, "the host's DM", func() bool { return len(w.hostDMs(dmRelay.URL, host)) == 1 })
}

// TestHealAndHostRequestOnce: the host asks for a restart of a room the
// healer is restoring at the same time. The room is recreated once: either
// the heal came first and the host is answered with the healed room ("was
// restarted moments ago"), or the request came first and the healer finds
// the room healthy.
func TestHealAndHostRequestOnce(t *testing.T) {
	w, dmRelay := healWorld(t)
	w.cfg.Limits.RoomCooldown = time.Hour // a second restart would need the cool-down to end
	r := w.run(false)
	r.waitRelays(t, 1)
	host, listener := newUser(t), newUser(t)
	w.publishRelayLists(host, []string{dmRelay.URL}, nil)
	id, before := w.liveNest(host)
	w.presence(listener, coord(host.pk, id), time.Time{})
	w.deleteLiveRoom(id)
	res := restartResult(t, w.ask(host, coord(host.pk, id), "restart").Payload)
	after := w.waitHealed(id, before.Sid)
	w.barrier()

	// The barrier's rooms have hosts of their own: the host's DMs are this
	// room's heals, and the pass that would send one has ended.
	healed := len(w.hostDMs(dmRelay.URL, host))
	switch {
	case res.Message == "Nest restarted" && healed == 0:
	case res.Message == "Nest was restarted moments ago; rejoin with this token" && healed == 1:
	default:
		t.Fatalf("answer %q with %d heals: the room was restarted twice or not at all", res.Message, healed)
	}
	if got := w.liveRoom(id); got == nil || got.Sid != after.Sid {
		t.Fatalf("room restarted again: %v, first %s", got, after.Sid)
	}
	checkToken(t, w, res.Token, id, host.pk)
}
