package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/livekit/protocol/auth"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// TestRestartInPlace: the record exists, so the same room comes back, really
// recreated in LiveKit (new SID), with the record refreshed and nothing
// published.
func TestRestartInPlace(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, admin := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, []string{admin.pk}, nil)
	before := w.createLiveRoom(id)

	for _, u := range []*user{host, admin} {
		w.cfg.Limits.RoomCooldown = 0 // documents intent: the cool-down key expires at once below
		ex := w.ask(u, coord(host.pk, id), "restart")
		res := restartResult(t, ex.Payload)
		if res.RoomID != id || res.IsNewRoom || res.OriginalRoomID != "" || res.Message != "Nest restarted" || res.Event != nil {
			t.Fatalf("result %+v", res)
		}
		if want := "ws+livekit://" + w.lk.WSURL[len("ws://"):]; !slices.Equal(res.Endpoints, []string{want}) {
			t.Fatalf("endpoints %v, want [%s]", res.Endpoints, want)
		}
		checkNaddr(t, res.Naddr, host.pk, id)
		checkToken(t, w, res.Token, id, u.pk)
		checkResponseTags(t, ex, u.pk, coord(host.pk, id))
		after := w.liveRoom(id)
		if after == nil || after.Sid == before.Sid {
			t.Fatalf("LiveKit room not recreated: before %s after %v", before.Sid, after)
		}
		before = after
		raw, rec := w.record(id)
		if rec.RestartedAt == 0 || rec.Status != "active" || rec.Host != host.pk {
			t.Fatalf("record %+v", rec)
		}
		if raw["futureField"] == nil {
			t.Fatalf("unknown field of the Nests API server lost: %v", raw)
		}
		if ttl := w.rdb.TTL(context.Background(), "nest:"+id).Val(); ttl < 23*time.Hour {
			t.Fatalf("record TTL not reset: %v", ttl)
		}
		var meta map[string]any
		if err := json.Unmarshal([]byte(after.Metadata), &meta); err != nil || meta["nestId"] != id || meta["host"] != host.pk || meta["restartedAt"] == nil {
			t.Fatalf("room metadata %q", after.Metadata)
		}
		// let the next requester in without waiting out the cool-down
		w.rdb.Del(context.Background(), "nestbot:{"+id+"}:last")
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}}); len(evs) != 0 {
		t.Fatalf("restart in place published %d room events", len(evs))
	}
}

// TestRestartInPlaceCutOff: a restart in place cut off between LiveKit's
// new room and the commit (the bot died; its mark says which room it had
// deleted) is completed by the next restart without recreating the room a
// second time: same SID, record refreshed, cool-down set, mark gone. A mark
// naming the room LiveKit still has means the cut-off came before the new
// room existed: then the room is recreated.
func TestRestartInPlaceCutOff(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	ctx := context.Background()
	host := newUser(t)
	mark := func(id, oldSID string) {
		if err := w.rdb.Set(ctx, rooms.DefaultKeys.Recreating(id), "sid:"+oldSID, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}

	done := uuid.NewString() // the cut-off restart had made its new room
	w.nestsRecord(done, host.pk, nil, nil)
	_, recBefore := w.record(done)
	made := w.createLiveRoom(done)
	mark(done, "RM_deleted_before_the_cut")
	res := restartResult(t, w.ask(host, coord(host.pk, done), "restart").Payload)
	if res.RoomID != done || res.Message != "Nest restarted" {
		t.Fatalf("result %+v", res)
	}
	if now := w.liveRoom(done); now == nil || now.Sid != made.Sid {
		t.Fatalf("LiveKit room recreated again: %s → %v", made.Sid, now)
	}
	if _, rec := w.record(done); rec.RestartedAt == recBefore.RestartedAt {
		t.Fatal("record not refreshed")
	}
	if w.rdb.Exists(ctx, rooms.DefaultKeys.Recreating(done)).Val() != 0 || w.rdb.Exists(ctx, rooms.DefaultKeys.Cooldown(done)).Val() != 1 {
		t.Fatal("mark kept or cool-down not set")
	}

	early := uuid.NewString() // cut off before its new room existed
	w.nestsRecord(early, host.pk, nil, nil)
	old := w.createLiveRoom(early)
	mark(early, old.Sid)
	restartResult(t, w.ask(host, coord(host.pk, early), "restart").Payload)
	if now := w.liveRoom(early); now == nil || now.Sid == old.Sid {
		t.Fatalf("LiveKit room not recreated: %s → %v", old.Sid, now)
	}

	// The marks this bot writes once LiveKit's clock is calibrated hold
	// the delete's time on LiveKit's clock: a room created at or after it
	// is the cut-off restart's new room, one created before is not.
	atMark := func(id string, ms int64) {
		if err := w.rdb.Set(ctx, rooms.DefaultKeys.Recreating(id), "at:"+strconv.FormatInt(ms, 10), time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	doneAt := uuid.NewString()
	w.nestsRecord(doneAt, host.pk, nil, nil)
	madeAt := w.createLiveRoom(doneAt)
	atMark(doneAt, madeAt.CreationTimeMs)
	if res := restartResult(t, w.ask(host, coord(host.pk, doneAt), "restart").Payload); res.RoomID != doneAt {
		t.Fatalf("result %+v", res)
	}
	if now := w.liveRoom(doneAt); now == nil || now.Sid != madeAt.Sid {
		t.Fatalf("LiveKit room made after the mark's time recreated again: %s → %v", madeAt.Sid, now)
	}
	earlyAt := uuid.NewString()
	w.nestsRecord(earlyAt, host.pk, nil, nil)
	oldAt := w.createLiveRoom(earlyAt)
	atMark(earlyAt, oldAt.CreationTimeMs+1)
	restartResult(t, w.ask(host, coord(host.pk, earlyAt), "restart").Payload)
	if now := w.liveRoom(earlyAt); now == nil || now.Sid == oldAt.Sid {
		t.Fatalf("LiveKit room created before the mark's time not recreated: %s → %v", oldAt.Sid, now)
	}
	for _, id := range []string{doneAt, earlyAt} {
		if w.rdb.Exists(ctx, rooms.DefaultKeys.Recreating(id)).Val() != 0 {
			t.Fatalf("mark of %s kept", id)
		}
	}
}

// TestRecreateUnderNewID: the record is gone; an admin of the original room
// gets a new room, the host stays admin, and the replacement 30312 is on
// the relay with every tag the contract names.
func TestRecreateUnderNewID(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, admin, speaker := newUser(t), newUser(t), newUser(t)
	oldID := uuid.NewString()
	orig := w.publishRoom(host, oldID, nostr.Tags{
		{"p", admin.pk, "", "moderator"}, {"p", speaker.pk, "", "SPEAKER"},
		{"relays", w.relays[0].URL, "wss://relay.example.com"},
	})

	ex := w.ask(admin, coord(host.pk, oldID), "restart")
	res := restartResult(t, ex.Payload)
	if res.RoomID == oldID || !res.IsNewRoom || res.OriginalRoomID != oldID || res.Message != "Nest recreated with new room ID" {
		t.Fatalf("result %+v", res)
	}
	if _, err := uuid.Parse(res.RoomID); err != nil {
		t.Fatalf("new room ID %q is not a UUID", res.RoomID)
	}
	newRoom := coord(w.botPub(), res.RoomID)
	checkNaddr(t, res.Naddr, w.botPub(), res.RoomID)
	checkToken(t, w, res.Token, res.RoomID, admin.pk)
	checkResponseTags(t, ex, admin.pk, newRoom)
	if w.liveRoom(res.RoomID) == nil {
		t.Fatal("no LiveKit room under the new ID")
	}
	_, rec := w.record(res.RoomID)
	if rec == nil || rec.Host != admin.pk || !rec.IsRecreated || rec.OriginalRoomID != oldID {
		t.Fatalf("record %+v", rec)
	}
	if !slices.Contains(rec.Admins, host.pk) || !slices.Contains(rec.Admins, admin.pk) || slices.Contains(rec.Admins, speaker.pk) {
		t.Fatalf("admins %v: want host and requester, not the speaker", rec.Admins)
	}
	if !slices.Contains(rec.Speakers, speaker.pk) {
		t.Fatalf("speakers %v lack the speaker", rec.Speakers)
	}
	if !slices.Equal(rec.Relays, []string{w.relays[0].URL, "wss://relay.example.com"}) {
		t.Fatalf("relays %v: want the original event's", rec.Relays)
	}

	evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}, Tags: nostr.TagMap{"d": {res.RoomID}}})
	if len(evs) != 1 {
		t.Fatalf("want the replacement 30312 on the relay, got %d", len(evs))
	}
	ev := evs[0]
	if res.Event == nil || res.Event.ID != ev.ID {
		t.Fatalf("the answer's event %v is not the one on the relay %s", res.Event, ev.ID)
	}
	if err := nostrx.Verify(ev); err != nil {
		t.Fatal(err)
	}
	tag := func(k string) nostr.Tag { return ev.Tags.Find(k) }
	for k, want := range map[string]string{
		"d": res.RoomID, "room": "Morning Nest", "title": "Morning Nest", "summary": "coffee talk", "image": "https://example.com/nest.png",
		"t": "coffee", "color": "#ff8800", "status": "live", // the original's word (issue 12) "service": w.cfg.Nests.ServiceURL, "streaming": res.Endpoints[0],
		"a": "30312:" + host.pk + ":" + oldID,
	} {
		if got := tag(k); len(got) < 2 || got[1] != want {
			t.Errorf("tag %s = %v, want %q", k, got, want)
		}
	}
	if starts, _ := strconv.ParseInt(tag("starts")[1], 10, 64); starts < orig.CreatedAt.Time().Unix() {
		t.Errorf("starts %d", starts)
	}
	if got := tag("relays"); !slices.Equal(got[1:], rec.Relays) {
		t.Errorf("relays tag %v", got)
	}
	if len(tag("alt")) < 2 {
		t.Error("no alt tag")
	}
	roles := map[string]string{}
	for p := range ev.Tags.FindAll("p") {
		if _, dup := roles[p[1]]; dup {
			t.Errorf("two p tags for %s", p[1])
		}
		roles[p[1]] = p[3]
	}
	if roles[admin.pk] != "Host" || roles[host.pk] != "Admin" || roles[speaker.pk] != "Speaker" || len(roles) != 3 {
		t.Errorf("p roles %v", roles)
	}

	// A later request for the old room leads to the replacement: no third room.
	w.rdb.Del(context.Background(), "nestbot:{"+res.RoomID+"}:last")
	again := restartResult(t, w.ask(host, coord(host.pk, oldID), "restart").Payload)
	if again.RoomID != res.RoomID || !again.IsNewRoom || again.OriginalRoomID != oldID {
		t.Fatalf("second request for the old room: %+v", again)
	}
	checkNaddr(t, again.Naddr, w.botPub(), res.RoomID)
	if again.Event == nil || again.Event.CreatedAt <= ev.CreatedAt || again.Event.Tags.Find("status")[1] != "live" {
		t.Fatalf("republished event %v must be newer than %d", again.Event, ev.CreatedAt)
	}
	if n := len(w.allLiveRooms()); n != 1 {
		t.Fatalf("%d LiveKit rooms, want 1", n)
	}
}

// TestRecreateWithoutEventByAuthor: no record and no event: the
// coordinate's author may still recreate the room.
func TestRecreateWithoutEventByAuthor(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host := newUser(t)
	res := restartResult(t, w.ask(host, coord(host.pk, "lost-room.1"), "restart").Payload)
	if !res.IsNewRoom || res.OriginalRoomID != "lost-room.1" {
		t.Fatalf("%+v", res)
	}
	if res.Event == nil || res.Event.Tags.Find("title")[1] != nostrx.DefaultRoomTitle {
		t.Fatalf("event %v", res.Event)
	}
}

// TestRefusals: non-hosts get UNAUTHORIZED and nothing changes anywhere:
// same SID, no record, no event, no new LiveKit room.
func TestRefusals(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, speaker, stranger := newUser(t), newUser(t), newUser(t)
	live := uuid.NewString()
	w.nestsRecord(live, host.pk, nil, []string{speaker.pk})
	before := w.createLiveRoom(live)
	_, recBefore := w.record(live)

	gone := uuid.NewString()
	w.publishRoom(host, gone, nostr.Tags{{"p", speaker.pk, "", "Speaker"}})

	cases := []struct {
		name string
		who  *user
		room nostrx.Coordinate
	}{
		{"speaker of a live room", speaker, coord(host.pk, live)},
		{"stranger naming himself author of a live room's ID", stranger, coord(stranger.pk, live)},
		{"speaker of a gone room", speaker, coord(host.pk, gone)},
		{"stranger on someone else's gone room", stranger, coord(host.pk, gone)},
		{"stranger on a coordinate with no event", stranger, coord(host.pk, uuid.NewString())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ex := w.ask(c.who, c.room, "restart")
			wantError(t, ex.Payload, nostrx.CodeUnauthorized)
			checkResponseTags(t, ex, c.who.pk, c.room)
		})
	}
	if after := w.liveRoom(live); after == nil || after.Sid != before.Sid {
		t.Fatalf("live room changed: %s → %v", before.Sid, after)
	}
	if _, rec := w.record(live); rec.RestartedAt != recBefore.RestartedAt {
		t.Fatal("record touched by a refused request")
	}
	if n := len(w.allLiveRooms()); n != 1 {
		t.Fatalf("%d LiveKit rooms after refusals, want 1", n)
	}
	if keys := w.rdb.Keys(context.Background(), "nest:*").Val(); len(keys) != 1 {
		t.Fatalf("records %v", keys)
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}}); len(evs) != 0 {
		t.Fatalf("refusals published %d room events", len(evs))
	}

	t.Run("malformed and reserved", func(t *testing.T) {
		ex := w.ask(host, coord(host.pk, live), "kick")
		wantError(t, ex.Payload, nostrx.CodeNotImplemented)
		bad := nostr.Event{Kind: nostrx.DefaultRequestKind, CreatedAt: nostr.Now(),
			Tags: nostr.Tags{{"a", "30312:" + host.pk + ":bad d!"}, {"p", w.botPub()}, {"action", "restart"}}}
		host.signer.Sign(&bad)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ex2, err := w.client(host).SendEvent(ctx, bad)
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, ex2.Payload, nostrx.CodeBadRequest)
	})
}

// TestNewRoomBudget: once this minute's budget of recreations under a new
// ID is spent (here by other replicas: the shared counter is set), an
// authorized recreation is refused RATE_LIMITED and creates nothing; a
// restart in place is not counted; with budget left the same room is
// recreated.
func TestNewRoomBudget(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.NewRoomsPerMinute = 1
	w.start()
	ctx := context.Background()
	spend := func(n int) { // the current minute and its neighbours, so a minute boundary cannot free the budget
		now := time.Now().Unix() / 60
		for m := now - 1; m <= now+2; m++ {
			key := w.cfg.Redis.BotPrefix + "newrooms:" + strconv.FormatInt(m, 10)
			if err := w.rdb.Set(ctx, key, n, 5*time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	spend(1)

	host, other := newUser(t), newUser(t)
	gone := uuid.NewString()
	w.publishRoom(host, gone, nil)
	ex := w.ask(host, coord(host.pk, gone), "restart")
	wantError(t, ex.Payload, nostrx.CodeRateLimited)
	if !strings.Contains(ex.Payload.Error.Message, "at most 1 rooms per minute") {
		t.Fatalf("message %q", ex.Payload.Error.Message)
	}
	if n := len(w.allLiveRooms()); n != 0 {
		t.Fatalf("%d LiveKit rooms after a refused recreation", n)
	}
	if keys := w.rdb.Keys(ctx, "nest:*").Val(); len(keys) != 0 {
		t.Fatalf("records %v", keys)
	}
	if keys := w.rdb.Keys(ctx, w.cfg.Redis.BotPrefix+"{*}:pending:*").Val(); len(keys) != 0 {
		t.Fatalf("a new ID was chosen: %v", keys)
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}}); len(evs) != 0 {
		t.Fatalf("a refused recreation published %d room events", len(evs))
	}

	// A record present means a restart in place: not a new room, not counted.
	live := uuid.NewString()
	w.nestsRecord(live, other.pk, nil, nil)
	if res := restartResult(t, w.ask(other, coord(other.pk, live), "restart").Payload); res.RoomID != live || res.IsNewRoom {
		t.Fatalf("in place: %+v", res)
	}

	spend(0)
	// A new request (other content: the same one would get the stored answer).
	ctx2, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	again, err := w.client(host).Send(ctx2, coord(host.pk, gone), "restart", "", "again")
	if err != nil {
		t.Fatal(err)
	}
	res := restartResult(t, again.Payload)
	if !res.IsNewRoom || res.OriginalRoomID != gone || w.liveRoom(res.RoomID) == nil {
		t.Fatalf("with budget left: %+v", res)
	}
}

// TestExactlyOnce: one request published twice to one relay and once to a
// second is answered once; stale and expired requests are never answered.
func TestExactlyOnce(t *testing.T) {
	w := newWorld(t, 2)
	w.cfg.Limits.RoomCooldown = time.Millisecond // a second processing would recreate again
	w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)

	stale := nostrx.NewRequest(nostrx.DefaultRequestKind, w.botPub(), coord(host.pk, id), "restart", "", "",
		nostr.Timestamp(time.Now().Add(-w.cfg.Nostr.MaxRequestAge-time.Minute).Unix()), 0)
	host.signer.Sign(&stale)
	expired := nostrx.NewRequest(nostrx.DefaultRequestKind, w.botPub(), coord(host.pk, id), "restart", "", "",
		nostr.Now()-5, nostr.Now()-1)
	host.signer.Sign(&expired)
	w.publish(stale)
	w.publish(expired)

	req := nostrx.NewRequest(nostrx.DefaultRequestKind, w.botPub(), coord(host.pk, id), "restart", "", "", nostr.Now(), 0)
	host.signer.Sign(&req)
	var wg sync.WaitGroup
	for _, r := range w.relays {
		wg.Add(1)
		go func() { defer wg.Done(); w.publishTo(r.URL, req) }()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := w.client(host).SendEvent(ctx, req) // the third delivery; also waits for the answer
	if err != nil {
		t.Fatal(err)
	}
	restartResult(t, ex.Payload)
	// Once the answer is out, any second processing would already be queued
	// behind it; restart the bot to be sure nothing was left pending, then count.
	w.stop()
	w.start()
	waitFor(t, "claim marked delivered", func() bool {
		return w.rdb.Get(context.Background(), "nestbot:{"+req.ID+"}:claim").Val() == "done"
	})
	ids := map[string]bool{}
	for _, r := range w.relays {
		for _, ev := range query(t, r.URL, nostr.Filter{Kinds: []int{nostrx.DefaultResponseKind}, Authors: []string{w.botPub()}}) {
			ids[ev.ID] = true
			if e := ev.Tags.Find("e"); e[1] != req.ID {
				t.Fatalf("response to %s: stale or expired request answered", e[1])
			}
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want exactly one response, got %d", len(ids))
	}
}

// TestConcurrentRestartsRecreateOnce: the host and an admin ask at the same
// moment for a room whose record is gone; one new room comes of it.
func TestConcurrentRestartsRecreateOnce(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, admin := newUser(t), newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nostr.Tags{{"p", admin.pk, "", "Admin"}})

	results := make([]nostrx.RestartResult, 2)
	var wg sync.WaitGroup
	for i, u := range []*user{host, admin} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ex, err := w.client(u).Send(ctx, coord(host.pk, oldID), "restart", "", "")
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = restartResult(t, ex.Payload)
		}()
	}
	wg.Wait()
	if results[0].RoomID == "" || results[0].RoomID != results[1].RoomID {
		t.Fatalf("two answers name different rooms: %q %q", results[0].RoomID, results[1].RoomID)
	}
	if n := len(w.allLiveRooms()); n != 1 {
		t.Fatalf("%d LiveKit rooms, want 1", n)
	}
	if keys := w.rdb.Keys(context.Background(), "nest:*").Val(); len(keys) != 1 {
		t.Fatalf("records %v", keys)
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}}); len(evs) != 1 {
		t.Fatalf("%d replacement events, want 1", len(evs))
	}
	cooled := results[0]
	if cooled.Message != "Nest was restarted moments ago; rejoin with this token" {
		cooled = results[1]
	}
	if cooled.Message != "Nest was restarted moments ago; rejoin with this token" || cooled.Token == "" || !cooled.IsNewRoom {
		t.Fatalf("the second request should get the cool-down answer: %+v / %+v", results[0].Message, results[1].Message)
	}
}

// TestStatus answers with the room's liveness and record, same authorization.
func TestStatus(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, stranger := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)
	p := w.ask(host, coord(host.pk, id), "status").Payload
	if p.Error != nil || p.ResultType != "status" {
		t.Fatalf("%+v", p)
	}
	var st nostrx.StatusResult
	if err := json.Unmarshal(p.Result, &st); err != nil {
		t.Fatal(err)
	}
	if st.RoomID != id || !st.Live || !st.Record || st.Participants != 0 {
		t.Fatalf("%+v", st)
	}
	wantError(t, w.ask(stranger, coord(host.pk, id), "status").Payload, nostrx.CodeUnauthorized)
}

func checkNaddr(t *testing.T, naddr, author, d string) {
	t.Helper()
	prefix, v, err := nip19.Decode(naddr)
	if err != nil || prefix != "naddr" {
		t.Fatalf("naddr %q: %v", naddr, err)
	}
	ep := v.(nostr.EntityPointer)
	if ep.PublicKey != author || ep.Identifier != d || ep.Kind != nostrx.KindRoom {
		t.Fatalf("naddr points at %+v, want %s:%s", ep, author, d)
	}
}

// checkToken verifies the LiveKit token with the API secret and checks its grants.
func checkToken(t *testing.T, w *world, token, room, pubkey string) {
	t.Helper()
	v, err := auth.ParseAPIToken(token)
	if err != nil {
		t.Fatal(err)
	}
	if v.APIKey() != w.lk.APIKey {
		t.Fatalf("token key %s", v.APIKey())
	}
	_, claims, err := v.Verify(w.lk.APISecret)
	if err != nil {
		t.Fatalf("token does not verify with the API secret: %v", err)
	}
	if _, _, err := v.Verify("wrong-secret-wrong-secret-wrong-secret"); err == nil {
		t.Fatal("token verifies with a wrong secret")
	}
	g := claims.Video
	if claims.Identity != pubkey || g.Room != room || !g.RoomJoin || !g.GetCanPublish() || !g.GetCanSubscribe() || !g.RoomAdmin || !g.RoomRecord {
		t.Fatalf("claims %+v grants %+v", claims, g)
	}
	var meta map[string]string
	if err := json.Unmarshal([]byte(claims.Metadata), &meta); err != nil || meta["pubkey"] != pubkey || (meta["role"] != "host" && meta["role"] != "admin") {
		t.Fatalf("token metadata %q", claims.Metadata)
	}
	if claims.Name != "Host" && claims.Name != "Admin" {
		t.Fatalf("token name %q", claims.Name)
	}
}

// checkResponseTags checks the cleartext routing of a response and that
// the content is not readable without the requester's key.
func checkResponseTags(t *testing.T, ex *bot.Exchange, requester string, room nostrx.Coordinate) {
	t.Helper()
	ev := ex.Response
	if ev.Kind != nostrx.DefaultResponseKind {
		t.Fatalf("response kind %d", ev.Kind)
	}
	want := map[string]string{"p": requester, "e": ex.Request.ID, "a": room.String(), "encryption": "nip44_v2"}
	for k, v := range want {
		if got := ev.Tags.Find(k); len(got) < 2 || got[1] != v {
			t.Errorf("response tag %s = %v, want %s", k, got, v)
		}
	}
	exp, err := strconv.ParseInt(ev.Tags.Find("expiration")[1], 10, 64)
	if err != nil || exp <= int64(ev.CreatedAt) {
		t.Errorf("expiration %v", ev.Tags.Find("expiration"))
	}
	if strings.Contains(ev.Content, "token") || strings.Contains(ev.Content, "roomId") {
		t.Error("response content is not encrypted")
	}
}

// TestRequesterRateLimit: a requester's requests are counted once each in
// its one-minute window, shared by replicas (the claim's script counts them
// on a single server, issue 15): a request within the limit is answered
// and counted exactly once, the next one over the limit is refused
// RATE_LIMITED, and another requester is not affected.
func TestRequesterRateLimit(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Limits.RestartsPerMinute = 3
	w.start()
	ctx := context.Background()
	host, other := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	// The current minute and its neighbours, so a minute boundary cannot
	// reset the window between the requests; count reads the same minutes
	// (were they taken again, a boundary between two reads would shift
	// them and miscount).
	base := time.Now().Unix() / 60
	set := func(n int) {
		for m := base - 1; m <= base+2; m++ {
			key := w.cfg.Redis.BotPrefix + "rate:" + host.pk + ":" + strconv.FormatInt(m, 10)
			if err := w.rdb.Set(ctx, key, n, 5*time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() int {
		total := 0
		for m := base - 1; m <= base+2; m++ {
			n, _ := w.rdb.Get(ctx, w.cfg.Redis.BotPrefix+"rate:"+host.pk+":"+strconv.FormatInt(m, 10)).Int()
			total += n
		}
		return total
	}
	set(1)
	before := count()
	if ex := w.ask(host, coord(host.pk, id), "status"); ex.Payload.Error != nil {
		t.Fatalf("status within the limit: %+v", ex.Payload.Error)
	}
	if got := count(); got != before+1 {
		t.Fatalf("a request counted %d times in its window, want once", got-before)
	}
	set(3)
	// Another room: the same request in the same second would be the same
	// event, answered by its first response.
	id2 := uuid.NewString()
	w.nestsRecord(id2, host.pk, nil, nil)
	ex := w.ask(host, coord(host.pk, id2), "status")
	wantError(t, ex.Payload, nostrx.CodeRateLimited)
	if !strings.Contains(ex.Payload.Error.Message, "at most 3 requests per minute") {
		t.Fatalf("message %q", ex.Payload.Error.Message)
	}
	oid := uuid.NewString()
	w.nestsRecord(oid, other.pk, nil, nil)
	if ex := w.ask(other, coord(other.pk, oid), "status"); ex.Payload.Error != nil {
		t.Fatalf("another requester: %+v", ex.Payload.Error)
	}
}
