package e2e

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// Direct messages from a real client: nostr-tools (interop/dm.mjs) builds
// the NIP-17 gift wraps and the NIP-04 messages, publishes them, waits for
// the bot's reply and opens it.

const testWebURL = "https://nests.test"

// dmExchange is what dm.mjs send-and-wait reports.
type dmExchange struct {
	Sent       nostr.Event  `json:"sent"`
	Reply      string       `json:"reply"`
	ReplyEvent nostr.Event  `json:"replyEvent"`
	ReplyRumor *nostr.Event `json:"replyRumor"`
}

// sendDM sends message to the bot as u over protocol ("nip17" or "nip04")
// on relays and returns the bot's reply, read back by nostr-tools.
func (w *world) sendDM(u *user, relays []string, protocol, message string) dmExchange {
	w.t.Helper()
	var out dmExchange
	stack.RunNode(w.t, "dm.mjs", map[string]any{
		"op": "send-and-wait", "sk": u.sk, "relays": relays, "recipient": w.botPub(),
		"message": message, "protocol": protocol, "timeoutMs": 20000,
	}, &out)
	checkNoToken(w.t, out.Reply)
	if out.ReplyEvent.PubKey == "" {
		w.t.Fatalf("no reply event: %+v", out)
	}
	if protocol == "nip17" {
		r := out.ReplyRumor
		if r == nil || r.PubKey != w.botPub() || r.Kind != 14 || r.Tags.FindWithValue("p", u.pk) == nil || r.Tags.Find("e") == nil {
			w.t.Fatalf("reply rumor %+v", r)
		}
		if out.ReplyEvent.Kind != 1059 || out.ReplyEvent.PubKey == w.botPub() {
			t := out.ReplyEvent
			w.t.Fatalf("reply is not a gift wrap from a random key: kind %d pubkey %s", t.Kind, t.PubKey)
		}
	} else {
		e := out.ReplyEvent
		if e.Kind != 4 || e.PubKey != w.botPub() || e.Tags.FindWithValue("p", u.pk) == nil || e.Tags.FindWithValue("e", out.Sent.ID) == nil {
			w.t.Fatalf("kind 4 reply %+v", e)
		}
	}
	nextSecond()
	return out
}

// nextSecond waits for the clock's next second. send-and-wait takes the
// first reply dated no earlier than its message, to the second, so a
// reply to an earlier message of the same second would be mistaken for it.
func nextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(now))
}

// wrapDM has nostr-tools gift-wrap message from u to the bot without
// sending it, and returns the wrap and its rumor's id.
func (w *world) wrapDM(u *user, message string) (nostr.Event, string) {
	w.t.Helper()
	var out struct {
		Wrap    nostr.Event `json:"wrap"`
		RumorID string      `json:"rumorId"`
	}
	stack.RunNode(w.t, "dm.mjs", map[string]any{"op": "nip17-wrap", "sk": u.sk, "recipient": w.botPub(), "message": message}, &out)
	return out.Wrap, out.RumorID
}

var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.`)

func checkNoToken(t *testing.T, text string) {
	t.Helper()
	if jwtPattern.MatchString(text) || strings.Contains(strings.ToLower(text), "token") {
		t.Fatalf("a DM reply carries a token: %q", text)
	}
}

// replyNaddr finds "nostr:naddr1…" in a reply, checks the web link next to
// it and returns the decoded room.
func replyNaddr(t *testing.T, reply string) (string, nostr.EntityPointer) {
	t.Helper()
	m := regexp.MustCompile(`nostr:(naddr1[a-z0-9]+)`).FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("reply has no nostr:naddr1…: %q", reply)
	}
	if !strings.Contains(reply, testWebURL+"/"+m[1]) {
		t.Fatalf("reply has no web link %s/<naddr>: %q", testWebURL, reply)
	}
	prefix, v, err := nip19.Decode(m[1])
	if err != nil || prefix != "naddr" {
		t.Fatalf("naddr %s: %v", m[1], err)
	}
	return m[1], v.(nostr.EntityPointer)
}

// publishRelayLists publishes u's kind 10050 (DM relays) and/or kind 10002
// (NIP-65, read relays) on the bot's relays.
func (w *world) publishRelayLists(u *user, dmRelays, readRelays []string) {
	w.t.Helper()
	if len(dmRelays) > 0 {
		ev := nostr.Event{Kind: 10050, CreatedAt: nostr.Now()}
		for _, r := range dmRelays {
			ev.Tags = append(ev.Tags, nostr.Tag{"relay", r})
		}
		if err := u.signer.Sign(&ev); err != nil {
			w.t.Fatal(err)
		}
		w.publish(ev)
	}
	if len(readRelays) > 0 {
		ev := nostr.Event{Kind: 10002, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"r", "wss://write-only.example.com", "write"}}}
		for _, r := range readRelays {
			ev.Tags = append(ev.Tags, nostr.Tag{"r", r, "read"})
		}
		if err := u.signer.Sign(&ev); err != nil {
			w.t.Fatal(err)
		}
		w.publish(ev)
	}
}

// repliesTo opens every gift wrap for u on url and returns the rumors the
// bot wrote, keyed by wrap id.
func repliesTo(t *testing.T, w *world, url string, u *user) map[string]nostr.Event {
	t.Helper()
	out := map[string]nostr.Event{}
	for _, ev := range query(t, url, nostr.Filter{Kinds: []int{1059}, Tags: nostr.TagMap{"p": {u.pk}}}) {
		rumor, err := nip59.GiftUnwrap(*ev, func(pub, ct string) (string, error) {
			ck, err := nip44.GenerateConversationKey(pub, u.sk)
			if err != nil {
				return "", err
			}
			return nip44.Decrypt(ct, ck)
		})
		if err == nil && rumor.PubKey == w.botPub() {
			out[ev.ID] = rumor
		}
	}
	return out
}

func (w *world) waitClaimDone(id string) {
	w.t.Helper()
	waitFor(w.t, "claim of "+id+" settled", func() bool {
		return w.rdb.Get(context.Background(), "nestbot:{"+id+"}:claim").Val() == "done"
	})
}

// droppedCount reads nestbot_events_dropped_total{reason} from the bot.
func (w *world) droppedCount(reason string) float64 {
	w.t.Helper()
	mfs, err := w.svc.Metrics().Gather()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "nestbot_events_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestDMRestartNIP17: the host of a room whose record is gone asks by
// NIP-17 DM; the room is recreated and the reply, a gift wrap, names the
// new room as nostr:naddr and as a web link, without a token, and lands on
// the host's kind 10050 DM relay, which the bot does not otherwise use.
func TestDMRestartNIP17(t *testing.T) {
	w := newWorld(t, 1)
	dmRelay := stack.StartRelay(t)
	w.cfg.Nests.WebURL = testWebURL
	w.start()
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil)
	w.publishRelayLists(host, []string{dmRelay.URL}, nil)

	naddr := coord(host.pk, oldID).Naddr(w.relays[0].URL)
	ex := w.sendDM(host, []string{w.relays[0].URL, dmRelay.URL}, "nip17", "  Restart   nostr:"+naddr+"  ")
	if !strings.Contains(ex.Reply, "recreated") {
		t.Fatalf("reply %q", ex.Reply)
	}
	_, ptr := replyNaddr(t, ex.Reply)
	if ptr.PublicKey != w.botPub() || ptr.Kind != nostrx.KindRoom || ptr.Identifier == oldID {
		t.Fatalf("reply names %+v, want the bot's replacement room", ptr)
	}
	// Issue 12: the reply says the bot holds the room until the host adopts it, and how.
	if !strings.Contains(ex.Reply, "For now I hold the room") || !strings.Contains(ex.Reply, "(d tag "+ptr.Identifier+")") {
		t.Fatalf("reply does not explain adoption: %q", ex.Reply)
	}
	if _, rec := w.record(ptr.Identifier); rec == nil || rec.Host != host.pk || rec.OriginalRoomID != oldID {
		t.Fatalf("record of the new room %+v", rec)
	}
	if w.liveRoom(ptr.Identifier) == nil {
		t.Fatal("no LiveKit room under the new ID")
	}
	waitFor(t, "the reply on the host's DM relay", func() bool {
		return len(query(t, dmRelay.URL, nostr.Filter{IDs: []string{ex.ReplyEvent.ID}})) == 1
	})
	// The rumor the reply answers is the one that was sent. Its claim is
	// marked done once a relay's OK reached the bot, which may come after
	// the client read the reply.
	e := ex.ReplyRumor.Tags.Find("e")
	if e == nil {
		t.Fatalf("the reply has no e tag: %v", ex.ReplyRumor.Tags)
	}
	w.waitClaimDone(e[1])

	t.Run("status by NIP-17", func(t *testing.T) {
		ex := w.sendDM(host, w.relayURLs(), "nip17", "status "+naddr)
		if !strings.Contains(ex.Reply, "Room "+ptr.Identifier+" is") {
			t.Fatalf("status reply %q", ex.Reply)
		}
		replyNaddr(t, ex.Reply)
	})
}

// TestDMRestartNIP04: a legacy NIP-04 restart of a room whose record exists
// restarts it in place; the reply is a kind 4 to the host's NIP-65 read
// relay as well.
func TestDMRestartNIP04(t *testing.T) {
	w := newWorld(t, 1)
	inbox := stack.StartRelay(t)
	w.cfg.Nests.WebURL = testWebURL
	w.start()
	host, admin := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, []string{admin.pk}, nil)
	before := w.createLiveRoom(id)
	w.publishRelayLists(admin, nil, []string{inbox.URL})

	ex := w.sendDM(admin, []string{w.relays[0].URL, inbox.URL}, "nip04", "restart 30312:"+strings.ToUpper(host.pk)+":"+id)
	if !strings.Contains(ex.Reply, "restarted") {
		t.Fatalf("reply %q", ex.Reply)
	}
	_, ptr := replyNaddr(t, ex.Reply)
	if ptr.PublicKey != host.pk || ptr.Identifier != id {
		t.Fatalf("reply names %+v, want the same room", ptr)
	}
	if after := w.liveRoom(id); after == nil || after.Sid == before.Sid {
		t.Fatal("LiveKit room not recreated")
	}
	waitFor(t, "the reply on the admin's read relay", func() bool {
		return len(query(t, inbox.URL, nostr.Filter{IDs: []string{ex.ReplyEvent.ID}})) == 1
	})

	t.Run("status by NIP-04", func(t *testing.T) {
		ex := w.sendDM(host, w.relayURLs(), "nip04", "STATUS https://nostrnests.com/"+coord(host.pk, id).Naddr())
		if !strings.Contains(ex.Reply, "Room "+id+" is live") || !strings.Contains(ex.Reply, "Last restarted") {
			t.Fatalf("status reply %q", ex.Reply)
		}
		replyNaddr(t, ex.Reply)
	})
}

// TestDMRefusals: a stranger is told plainly that they are not the room's
// host or admin, in both protocols, and nothing changes; an unreadable
// address is explained.
func TestDMRefusals(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Nests.WebURL = testWebURL
	w.start()
	host, stranger := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	before := w.createLiveRoom(id)
	naddr := coord(host.pk, id).Naddr()

	for _, proto := range []string{"nip17", "nip04"} {
		ex := w.sendDM(stranger, w.relayURLs(), proto, "restart "+naddr)
		if !strings.Contains(ex.Reply, "you are not the host or an admin of that room") || strings.Contains(ex.Reply, "naddr1") {
			t.Fatalf("%s refusal %q", proto, ex.Reply)
		}
	}
	if after := w.liveRoom(id); after == nil || after.Sid != before.Sid {
		t.Fatal("a stranger's DM touched the room")
	}
	ex := w.sendDM(host, w.relayURLs(), "nip17", "restart npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m")
	if !strings.Contains(ex.Reply, "could not read the room address") {
		t.Fatalf("bad address reply %q", ex.Reply)
	}
	ex = w.sendDM(host, w.relayURLs(), "nip04", "restart")
	if !strings.HasPrefix(ex.Reply, "Which room?") {
		t.Fatalf("no-room reply %q", ex.Reply)
	}
}

// TestDMHelpOncePerSender: a message that is not a command gets the help
// text, then nothing more from that sender for ten minutes (in either
// protocol), so two bots cannot keep answering each other; "help" itself
// is always answered.
func TestDMHelpOncePerSender(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	u := newUser(t)

	ex := w.sendDM(u, w.relayURLs(), "nip17", "hi bot, what can you do?")
	if !strings.Contains(ex.Reply, "restart <room>") || !strings.Contains(ex.Reply, "status <room>") {
		t.Fatalf("help text %q", ex.Reply)
	}
	if ttl := w.rdb.TTL(context.Background(), "nestbot:dmhelp:"+u.pk).Val(); ttl < 9*time.Minute || ttl > 10*time.Minute {
		t.Fatalf("help limit key TTL %v, want 10 minutes", ttl)
	}

	// A second message that is not a command: settled without a reply.
	wrap, rumorID := w.wrapDM(u, "thanks!")
	w.publish(wrap)
	w.waitClaimDone(rumorID)
	var nip04 nostr.Event
	stack.RunNode(t, "dm.mjs", map[string]any{"op": "nip04-encrypt", "sk": u.sk, "recipient": w.botPub(), "message": "hello?"}, &nip04)
	w.publish(nip04)
	w.waitClaimDone(nip04.ID)

	// "help" is a command and is answered.
	ex2 := w.sendDM(u, w.relayURLs(), "nip17", "HELP")
	if ex2.Reply != ex.Reply {
		t.Fatalf("help command reply %q", ex2.Reply)
	}
	for _, r := range repliesTo(t, w, w.relays[0].URL, u) {
		if r.Tags.FindWithValue("e", rumorID) != nil {
			t.Fatalf("the second non-command got a reply: %q", r.Content)
		}
	}
	if n := len(repliesTo(t, w, w.relays[0].URL, u)); n != 2 {
		t.Fatalf("%d gift-wrapped replies, want 2 (help once, then the help command)", n)
	}
	if evs := query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{4}, Authors: []string{w.botPub()}}); len(evs) != 0 {
		t.Fatalf("the NIP-04 non-command got %d replies within the 10 minutes", len(evs))
	}
}

// TestDMImpersonationIgnored: a seal signed by one key around a rumor that
// claims another author (the room's host) is dropped without an answer and
// without touching the room.
func TestDMImpersonationIgnored(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, attacker := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	before := w.createLiveRoom(id)

	rumor := nostr.Event{Kind: 14, PubKey: host.pk, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", w.botPub()}},
		Content: "restart " + coord(host.pk, id).Naddr()}
	rumor.ID = rumor.GetID()
	wrap, err := nip59.GiftWrap(rumor, w.botPub(),
		func(pt string) (string, error) { return attacker.signer.Encrypt(w.botPub(), pt) },
		attacker.signer.Sign, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.publish(wrap)
	waitFor(t, "the impersonation dropped", func() bool { return w.droppedCount("sender_mismatch") == 1 })

	if n, _ := w.rdb.Exists(context.Background(), "nestbot:{"+rumor.ID+"}:claim").Result(); n != 0 {
		t.Fatal("the impersonating rumor was claimed")
	}
	if after := w.liveRoom(id); after == nil || after.Sid != before.Sid {
		t.Fatal("the impersonating DM touched the room")
	}
	if len(repliesTo(t, w, w.relays[0].URL, attacker))+len(repliesTo(t, w, w.relays[0].URL, host)) != 0 {
		t.Fatal("the impersonating DM was answered")
	}
}

// TestDMDuplicateWrapAnsweredOnce: one restart command arrives as the same
// gift wrap on two relays and once more inside a second wrap (same rumor);
// the room is restarted once and exactly one reply is sent.
func TestDMDuplicateWrapAnsweredOnce(t *testing.T) {
	w := newWorld(t, 2)
	w.cfg.Limits.RoomCooldown = 0
	w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)

	wrap, rumorID := w.wrapDM(host, "restart "+coord(host.pk, id).Naddr())
	// The same rumor in a second wrap, as a client that sends twice would.
	rumor, err := nip59.GiftUnwrap(wrap, func(pub, ct string) (string, error) {
		ck, err := nip44.GenerateConversationKey(pub, w.botKey)
		if err != nil {
			return "", err
		}
		return nip44.Decrypt(ct, ck)
	})
	if err != nil || rumor.ID != rumorID {
		t.Fatalf("unwrap nostr-tools wrap as the bot: %v (rumor id %s, want %s)", err, rumor.ID, rumorID)
	}
	rewrap, err := nip59.GiftWrap(rumor, w.botPub(),
		func(pt string) (string, error) { return host.signer.Encrypt(w.botPub(), pt) }, host.signer.Sign, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.publish(wrap) // both relays
	w.publish(rewrap)
	w.waitClaimDone(rumorID)
	nextSecond()
	// Everything published before the marker has been screened once the
	// marker is answered: each relay's events are read in order.
	w.sendDM(host, w.relayURLs(), "nip17", "help")
	time.Sleep(300 * time.Millisecond)

	var answers []string
	for _, url := range w.relayURLs() {
		for wid, r := range repliesTo(t, w, url, host) {
			if r.Tags.FindWithValue("e", rumorID) != nil && !slices.Contains(answers, wid) {
				answers = append(answers, wid)
			}
		}
	}
	if len(answers) != 1 {
		t.Fatalf("%d distinct replies to one command, want 1", len(answers))
	}
	if _, rec := w.record(id); rec == nil || rec.RestartedAt == 0 {
		t.Fatal("room not restarted")
	}
}

// TestPrivateRelaysNotUsed: with nostr.allow_private_relays off (the
// default), relays that others name on private addresses get nothing: not
// the response (the request's hint, the requester's read relay) nor the
// replacement room event (the room's relays tag); the bot's own loopback
// relay is used as always.
func TestPrivateRelaysNotUsed(t *testing.T) {
	w := newWorld(t, 1)
	w.cfg.Nostr.AllowPrivateRelays = false
	inbox := stack.StartRelay(t) // loopback, not the bot's
	r := w.run(false)
	r.waitRelays(t, 1)
	host := newUser(t)
	w.publishRelayLists(host, nil, []string{inbox.URL})
	gone := uuid.NewString()
	w.publishRoom(host, gone, nostr.Tags{{"relays", inbox.URL}})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ex, err := w.client(host).Send(ctx, coord(host.pk, gone), "restart", inbox.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	res := restartResult(t, ex.Payload)
	if !res.IsNewRoom || res.Event == nil {
		t.Fatalf("%+v", res)
	}
	// The outbox logs what it leaves out before it publishes anything.
	waitFor(t, "the private relay left out", func() bool {
		return strings.Contains(r.logs.String(), "relays named by others on private addresses not used") &&
			strings.Contains(r.logs.String(), inbox.URL)
	})
	if got := query(t, w.relays[0].URL, nostr.Filter{IDs: []string{ex.Response.ID, res.Event.ID}}); len(got) != 2 {
		t.Fatalf("the bot's relay holds %d of the response and the room event, want 2", len(got))
	}
	if got := query(t, inbox.URL, nostr.Filter{Authors: []string{w.botPub()}}); len(got) != 0 {
		t.Fatalf("the private relay got %d events from the bot", len(got))
	}
}

// TestResponseToReadRelays: a kind 4313 answer also reaches the
// requester's NIP-65 read relays: forwarded in the background the first
// time (the list is not known yet), at once when it is cached.
func TestResponseToReadRelays(t *testing.T) {
	w := newWorld(t, 1)
	inbox := stack.StartRelay(t)
	w.start()
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.publishRelayLists(host, nil, []string{inbox.URL})

	for range 2 {
		ex := w.ask(host, coord(host.pk, id), "status")
		if ex.Payload.Error != nil {
			t.Fatalf("status: %+v", ex.Payload.Error)
		}
		waitFor(t, "the response on the read relay", func() bool {
			return len(query(t, inbox.URL, nostr.Filter{IDs: []string{ex.Response.ID}})) == 1
		})
	}
}
