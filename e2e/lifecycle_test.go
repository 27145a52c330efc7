package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// The lifecycle of rooms the bot recreated: republished while occupied,
// closed when LiveKit drops them (webhook or reconcile), closed with a
// successor when replaced. Intervals are short here; nothing below depends
// on how long a step takes, only on what the relay ends up holding.

// recreated has host publish a room, lose it, and ask the bot for it: the
// bot recreates it under a new ID and publishes its own 30312, in the
// original's words (status live, later ended).
func (w *world) recreated(host *user) (string, *nostr.Event) {
	w.t.Helper()
	old := uuid.NewString()
	w.publishRoom(host, old, nil)
	res := restartResult(w.t, w.ask(host, coord(host.pk, old), "restart").Payload)
	if !res.IsNewRoom || res.Event == nil {
		w.t.Fatalf("no recreation: %+v", res)
	}
	return res.RoomID, res.Event
}

// latestRoom returns the newest 30312 of the bot at d on the first relay.
func (w *world) latestRoom(d string) *nostr.Event {
	w.t.Helper()
	var best *nostr.Event
	for _, ev := range query(w.t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}, Tags: nostr.TagMap{"d": {d}}}) {
		if best == nil || ev.CreatedAt > best.CreatedAt {
			best = ev
		}
	}
	return best
}

func status(ev *nostr.Event) string {
	if ev == nil {
		return ""
	}
	if t := ev.Tags.Find("status"); len(t) >= 2 {
		return t[1]
	}
	return ""
}

// sameTagsBut checks that b has a's tags except those named in skip.
func sameTagsBut(t *testing.T, a, b *nostr.Event, skip ...string) {
	t.Helper()
	keep := func(ev *nostr.Event) nostr.Tags {
		var out nostr.Tags
		for _, tag := range ev.Tags {
			if !slices.Contains(skip, tag[0]) {
				out = append(out, tag)
			}
		}
		return out
	}
	ka, kb := keep(a), keep(b)
	if !slices.EqualFunc(ka, kb, func(x, y nostr.Tag) bool { return slices.Equal(x, y) }) {
		t.Fatalf("tags changed beyond %v:\n before %v\n after  %v", skip, ka, kb)
	}
}

func (w *world) owned(d string) bool {
	return w.rdb.SIsMember(context.Background(), "nestbot:owned", d).Val()
}

func (w *world) deleteLiveRoom(name string) {
	w.t.Helper()
	if _, err := w.rooms.DeleteRoom(context.Background(), &livekit.DeleteRoomRequest{Room: name}); err != nil {
		w.t.Fatal(err)
	}
}

// TestLifecycleCloseByReconcile: LiveKit drops a room the bot recreated; with
// no webhook, the periodic reconcile publishes it closed, newer, with every
// other tag kept. Two replicas share the work and publish it once.
func TestLifecycleCloseByReconcile(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Lifecycle.ReconcileInterval = 100 * time.Millisecond
	w.cfg.HTTP.WebhookPath = ""
	a := w.run(false)
	b := w.run(false) // a replica on the same Redis; w.ask goes through either
	a.waitRelays(t, 1)
	b.waitRelays(t, 1)

	host := newUser(t)
	id, open := w.recreated(host)
	waitFor(t, "the new room indexed", func() bool { return w.owned(id) })
	if got := w.latestRoom(id); got == nil || got.ID != open.ID {
		t.Fatalf("an open, empty room was touched: %v", got)
	}

	w.deleteLiveRoom(id)
	var closed *nostr.Event
	waitFor(t, "the room published closed", func() bool { closed = w.latestRoom(id); return status(closed) == "ended" })
	if err := nostrx.Verify(closed); err != nil {
		t.Fatal(err)
	}
	if closed.CreatedAt <= open.CreatedAt {
		t.Fatalf("closed created_at %d not above %d", closed.CreatedAt, open.CreatedAt)
	}
	sameTagsBut(t, open, closed, "status", "alt")
	for a := range closed.Tags.FindAll("a") {
		if len(a) > 3 && a[3] == "successor" {
			t.Fatalf("a room that just ended has a successor tag %v", a)
		}
	}
	waitFor(t, "the closed room leaves the index", func() bool { return !w.owned(id) })
	last, err := w.rdb.Get(context.Background(), "nestbot:{"+id+"}:event").Result()
	if err != nil || !strings.Contains(last, `"id":"`+closed.ID+`"`) {
		t.Fatalf("the saved last event is not the closed one: %v", err)
	}
	// Let both replicas pass again: still exactly one close between them.
	for _, r := range []*running{a, b} {
		n := metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "reconcile", "outcome": "ok"})
		waitFor(t, "another reconcile", func() bool {
			return metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "reconcile", "outcome": "ok"}) >= n+2
		})
	}
	closes := metric(t, a.svc, "nestbot_room_lifecycle_total", map[string]string{"action": "close_gone"}) +
		metric(t, b.svc, "nestbot_room_lifecycle_total", map[string]string{"action": "close_gone"})
	if closes != 1 {
		t.Fatalf("%v close events between two replicas, want 1", closes)
	}
	if got := w.latestRoom(id); got.ID != closed.ID {
		t.Fatalf("the closed room was published again: %v", got)
	}
}

// TestLifecycleCloseByWebhook: with reconcile out of the way, LiveKit's
// room_finished webhook closes the room. A stale room_finished for a room
// that is live again (restarted in place) changes nothing.
func TestLifecycleCloseByWebhook(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Lifecycle.ReconcileInterval = time.Hour // only the start-up pass
	r := w.run(true)
	r.waitRelays(t, 1)
	waitFor(t, "the start-up reconcile", func() bool {
		return metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "reconcile"}) >= 1
	})

	host := newUser(t)
	id, open := w.recreated(host)
	room := w.liveRoom(id)

	// A stale room_finished: the room is still there.
	w.notifyLiveKit(r.base, &livekit.WebhookEvent{Event: webhook.EventRoomFinished, Id: "EV_stale", CreatedAt: time.Now().Unix(), Room: room})
	waitFor(t, "the stale webhook checked", func() bool {
		return metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "webhook", "outcome": "ok"}) == 1
	})
	if got := w.latestRoom(id); got.ID != open.ID {
		t.Fatalf("a room LiveKit still has was touched by a stale webhook: %v", got)
	}

	w.deleteLiveRoom(id)
	w.notifyLiveKit(r.base, &livekit.WebhookEvent{Event: webhook.EventRoomFinished, Id: "EV_end", CreatedAt: time.Now().Unix(), Room: room})
	var closed *nostr.Event
	waitFor(t, "the room published closed", func() bool { closed = w.latestRoom(id); return status(closed) == "ended" })
	if closed.CreatedAt <= open.CreatedAt {
		t.Fatalf("closed created_at %d not above %d", closed.CreatedAt, open.CreatedAt)
	}
	sameTagsBut(t, open, closed, "status", "alt")
	if n := metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "reconcile"}); n != 1 {
		t.Fatalf("%v reconciles: the close must have come from the webhook", n)
	}
}

// TestLifecycleRepublishOccupied: a recreated room nobody is in is left
// alone; once a participant joins over WebRTC, the bot republishes its event
// with a newer created_at and the same tags.
func TestLifecycleRepublishOccupied(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Lifecycle.ReconcileInterval = 100 * time.Millisecond
	w.cfg.Lifecycle.RepublishInterval = time.Second // created_at counts seconds
	r := w.run(false)
	r.waitRelays(t, 1)

	host := newUser(t)
	id, open := w.recreated(host)
	waitFor(t, "the new room indexed", func() bool { return w.owned(id) })
	// Empty for several passes and past the interval: never republished.
	n := metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "reconcile", "outcome": "ok"})
	waitFor(t, "passes over an empty room", func() bool {
		return metric(t, r.svc, "nestbot_lifecycle_checks_total", map[string]string{"trigger": "reconcile", "outcome": "ok"}) >= n+3 &&
			time.Now().Unix() > int64(open.CreatedAt)+1
	})
	if got := w.latestRoom(id); got.ID != open.ID {
		t.Fatalf("an empty room was republished: %v", got)
	}

	listener, err := lksdk.ConnectToRoom(w.lk.WSURL, lksdk.ConnectInfo{
		APIKey: w.lk.APIKey, APISecret: w.lk.APISecret, RoomName: id, ParticipantIdentity: newUser(t).pk,
	}, nil, lksdk.WithConnectTimeout(15*time.Second), lksdk.WithDisableRegionDiscovery())
	if err != nil {
		t.Fatalf("join %s: %v", id, err)
	}
	defer listener.Disconnect()
	waitFor(t, "LiveKit counts the participant", func() bool { r := w.liveRoom(id); return r != nil && r.NumParticipants == 1 })

	var again *nostr.Event
	waitFor(t, "the occupied room republished", func() bool { again = w.latestRoom(id); return again.ID != open.ID })
	if err := nostrx.Verify(again); err != nil {
		t.Fatal(err)
	}
	if again.CreatedAt <= open.CreatedAt || status(again) != "live" {
		t.Fatalf("republished created_at %d (was %d), status %q", again.CreatedAt, open.CreatedAt, status(again))
	}
	sameTagsBut(t, open, again)
	waitFor(t, "republish counted", func() bool {
		return metric(t, r.svc, "nestbot_room_lifecycle_total", map[string]string{"action": "republish"}) >= 1
	})
	if !w.owned(id) {
		t.Fatal("a live room left the index")
	}
}

// TestLifecycleClosesReplacedRoom: a room the bot recreated is itself
// recreated (the original is a live/ended room: the bot writes its words)
// (its record expired); the old one is published closed with an
// "a" tag to its successor, while its LiveKit room is still there.
func TestLifecycleClosesReplacedRoom(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Lifecycle.ReconcileInterval = 100 * time.Millisecond
	r := w.run(false)
	r.waitRelays(t, 1)

	host := newUser(t)
	first, open := w.recreated(host)
	ctx := context.Background()
	w.rdb.Del(ctx, "nest:"+first, "nestbot:{"+first+"}:last") // the record expires; no cool-down

	res := restartResult(t, w.ask(host, coord(w.botPub(), first), "restart").Payload)
	second := res.RoomID
	if second == first || !res.IsNewRoom {
		t.Fatalf("not recreated: %+v", res)
	}
	if w.liveRoom(first) == nil {
		t.Fatal("test premise: the first room's LiveKit room should still exist")
	}
	var closed *nostr.Event
	waitFor(t, "the replaced room published closed", func() bool { closed = w.latestRoom(first); return status(closed) == "ended" })
	succ := nostr.Tag{"a", coord(w.botPub(), second).String(), "", "successor"}
	found := false
	for a := range closed.Tags.FindAll("a") {
		if slices.Equal(a, succ) {
			found = true
		}
	}
	if !found {
		t.Fatalf("closed event lacks %v: %v", succ, closed.Tags)
	}
	if closed.CreatedAt <= open.CreatedAt {
		t.Fatalf("closed created_at %d not above %d", closed.CreatedAt, open.CreatedAt)
	}
	sameTagsBut(t, open, closed, "status", "alt", "a")
	// The relay has the event a moment before the bot has counted and
	// unindexed it.
	waitFor(t, "close_replaced counted", func() bool {
		return metric(t, r.svc, "nestbot_room_lifecycle_total", map[string]string{"action": "close_replaced"}) == 1
	})
	waitFor(t, "the replaced room leaves the index", func() bool { return !w.owned(first) })
	if st := status(w.latestRoom(second)); st != "live" {
		t.Fatalf("the successor is %q", st)
	}
	if !w.owned(second) {
		t.Fatal("the successor is not indexed")
	}
}

// TestLifecycleAdoption (issue 12 point 3): the host signs and publishes
// the template (nostr-tools), and nobody asks the bot anything: its
// reconcile finds the host's event, publishes its own replacement once
// more, closed and pointing at the host's, and stops looking after it.
func TestLifecycleAdoption(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Lifecycle.ReconcileInterval = 100 * time.Millisecond
	w.cfg.HTTP.WebhookPath = ""
	r := w.run(false)
	r.waitRelays(t, 1)

	host := newUser(t)
	old := uuid.NewString()
	w.publishRoom(host, old, nil)
	res := restartResult(t, w.ask(host, coord(host.pk, old), "restart").Payload)
	if res.Template == nil {
		t.Fatalf("no template: %+v", res)
	}
	waitFor(t, "the new room indexed", func() bool { return w.owned(res.RoomID) })
	tm := res.Template
	w.clientPublish(host, map[string]any{"kind": tm.Kind, "created_at": tm.CreatedAt, "tags": tm.Tags, "content": tm.Content})

	var closed *nostr.Event
	waitFor(t, "the bot's replacement closed by adoption", func() bool {
		closed = w.latestRoom(res.RoomID)
		return status(closed) == "ended"
	})
	if closed.Tags.FindWithValue("a", coord(host.pk, res.RoomID).String()) == nil || closed.ID == res.Event.ID {
		t.Fatalf("closed event %v", closed)
	}
	sameTagsBut(t, res.Event, closed, "status", "a", "alt")
	waitFor(t, "the adopted room unindexed", func() bool { return !w.owned(res.RoomID) })
}
