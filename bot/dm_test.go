package bot

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"

	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

const (
	dmHost = "0d6fe39ac0216d498381df9b2e7a5ab5d9cc84675f80a48f3e5a4d7219d3787d"
	dmD    = "3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b"
)

func TestParseDMCommand(t *testing.T) {
	room := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: dmHost, D: dmD}
	naddr := room.Naddr("wss://relay.example.com")
	coordText := room.String()
	upperCoord := "30312:" + strings.ToUpper(dmHost) + ":" + dmD

	tests := []struct {
		name, text string
		verb       dmVerb
		ok         bool // the room was read
		noRoom     bool
		relays     []string
	}{
		{"restart naddr", "restart " + naddr, verbRestart, true, false, []string{"wss://relay.example.com"}},
		{"restart nostr:naddr", "restart nostr:" + naddr, verbRestart, true, false, nil},
		{"upper case verb and prefix", "RESTART NOSTR:" + naddr, verbRestart, true, false, nil},
		{"upper case naddr", "Restart " + strings.ToUpper(naddr), verbRestart, true, false, nil},
		{"spaces, tabs and newlines", "  \n\trestart \t\n  " + naddr + "  \n", verbRestart, true, false, nil},
		{"space after nostr:", "restart nostr: " + naddr, verbRestart, true, false, nil},
		{"web link", "restart https://nostrnests.com/" + naddr, verbRestart, true, false, nil},
		{"web link with nostr:", "restart https://example.com/#nostr:" + naddr, verbRestart, true, false, nil},
		{"coordinate", "restart " + coordText, verbRestart, true, false, nil},
		{"coordinate with upper-case author", "restart " + upperCoord, verbRestart, true, false, nil},
		{"slash command", "/restart " + naddr, verbRestart, true, false, nil},
		{"verb with colon", "restart: " + naddr, verbRestart, true, false, nil},
		{"trailing dot", "restart " + naddr + ".", verbRestart, true, false, nil},
		{"angle brackets", "restart <" + naddr + ">", verbRestart, true, false, nil},
		{"quoted", "restart \"nostr:" + naddr + "\"", verbRestart, true, false, nil},
		{"words between", "restart my room " + naddr + " please", verbRestart, true, false, nil},
		{"reason after", "restart " + naddr + " audio froze", verbRestart, true, false, nil},
		{"leading mention", "nostr:npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m restart " + naddr, verbRestart, true, false, nil},
		{"leading @name", "@nestbot status " + naddr, verbStatus, true, false, nil},
		{"status", "status " + naddr, verbStatus, true, false, nil},
		{"Status coordinate", "Status " + coordText, verbStatus, true, false, nil},
		{"restart without room", "restart", verbRestart, false, true, nil},
		{"restart with only punctuation", "restart !!", verbRestart, false, true, nil},
		{"restart npub", "restart npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m", verbRestart, false, false, nil},
		{"restart other kind", "restart 30311:" + dmHost + ":" + dmD, verbRestart, false, false, nil},
		{"restart link without naddr", "restart https://nostrnests.com/", verbRestart, false, false, nil},
		{"restart broken naddr", "restart naddr1qqqq", verbRestart, false, false, nil},
		{"help", "help", verbHelp, false, false, nil},
		{"HELP!", "HELP!", verbHelp, false, false, nil},
		{"question mark", "?", verbHelp, false, false, nil},
		{"/help", " /help ", verbHelp, false, false, nil},
		{"empty", "", verbNone, false, false, nil},
		{"only spaces", " \n\t ", verbNone, false, false, nil},
		{"gibberish", "hello there, bot", verbNone, false, false, nil},
		{"naddr alone", naddr, verbNone, false, false, nil},
		{"restarted is not restart", "restarted " + naddr, verbNone, false, false, nil},
		{"verb later", "please restart " + naddr, verbNone, false, false, nil},
		{"unknown verb", "kick " + naddr, verbNone, false, false, nil},
		{"only a mention", "@nestbot", verbNone, false, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parseDMCommand(tc.text)
			if p.verb != tc.verb {
				t.Fatalf("verb %v, want %v", p.verb, tc.verb)
			}
			if p.noRoom != tc.noRoom {
				t.Fatalf("noRoom %v, want %v", p.noRoom, tc.noRoom)
			}
			if tc.verb != verbRestart && tc.verb != verbStatus {
				if p.err != nil || p.room.D != "" {
					t.Fatalf("a %v has no room: %+v", p.verb, p)
				}
				return
			}
			if !tc.ok {
				if p.err == nil || nostrx.CodeOf(p.err) != nostrx.CodeBadRequest {
					t.Fatalf("want a BAD_REQUEST, got %v (room %+v)", p.err, p.room)
				}
				if !tc.noRoom && (p.bad == "" || p.why == "") {
					t.Fatalf("want the unreadable address and why: %+v", p)
				}
				return
			}
			if p.err != nil {
				t.Fatalf("room not read: %v", p.err)
			}
			if p.room.Author != dmHost || p.room.D != dmD || p.room.Kind != nostrx.KindRoom {
				t.Fatalf("room %+v", p.room)
			}
			if tc.relays != nil && (len(p.room.Relays) != 1 || p.room.Relays[0] != tc.relays[0]) {
				t.Fatalf("relays %v, want %v", p.room.Relays, tc.relays)
			}
		})
	}
}

// TestParseDMCommandBounded: a huge message is read only so far, and
// never panics on invalid UTF-8 or odd tokens.
func TestParseDMCommandBounded(t *testing.T) {
	for _, text := range []string{
		"restart " + strings.Repeat("x", 1<<20),
		"restart \xff\xfe naddr1\xff",
		"restart nostr:",
		"restart 30312:",
		"restart 30312::",
		strings.Repeat("restart ", 10000),
	} {
		p := parseDMCommand(text)
		if p.verb != verbRestart || p.err == nil {
			t.Fatalf("%.40q: %+v", text, p)
		}
	}
}

// TestDMRepliesAreNotCommands: no text the bot sends parses as a command,
// so two bots of this kind never command each other.
func TestDMRepliesAreNotCommands(t *testing.T) {
	s := testService(t)
	naddr := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: dmHost, D: dmD}.Naddr()
	texts := []string{helpText()}
	for _, msg := range []string{rooms.MsgRestarted, rooms.MsgRecreated, rooms.MsgCoolDown} {
		for _, isNew := range []bool{false, true} {
			p, _ := nostrx.ResultPayload(nostrx.ActionRestart, nostrx.RestartResult{RoomID: dmD, Token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", Message: msg, IsNewRoom: isNew, Naddr: naddr})
			text, err := s.resultText(p)
			if err != nil {
				t.Fatal(err)
			}
			texts = append(texts, text)
		}
	}
	for _, live := range []bool{false, true} {
		p, _ := nostrx.ResultPayload(nostrx.ActionStatus, nostrx.StatusResult{RoomID: dmD, Live: live, Participants: 3, Record: live, RestartedAt: 1760000000123, Naddr: naddr})
		text, err := s.resultText(p)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, text)
	}
	for _, code := range []nostrx.Code{nostrx.CodeBadRequest, nostrx.CodeUnauthorized, nostrx.CodeNotFound, nostrx.CodeRateLimited,
		nostrx.CodeNotImplemented, nostrx.CodeUnavailable, nostrx.CodeInternal} {
		for _, p := range []dmParsed{{verb: verbRestart, noRoom: true}, {verb: verbStatus, bad: "x", why: "y"}} {
			texts = append(texts, s.refusalText(dmHost, code, "a reason", p))
		}
	}
	jwt := regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.`)
	for _, text := range texts {
		if p := parseDMCommand(text); p.verb != verbNone {
			t.Errorf("reply parses as %v: %q", p.verb, text)
		}
		if jwt.MatchString(text) || strings.Contains(strings.ToLower(text), "token") {
			t.Errorf("reply mentions a token: %q", text)
		}
	}
}

func TestDMResultText(t *testing.T) {
	s := testService(t)
	s.cfg.Nests.WebURL = "https://nests.example.com/"
	room := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: dmHost, D: dmD}
	naddr := room.Naddr("wss://relay.example.com")
	p, _ := nostrx.ResultPayload(nostrx.ActionRestart, nostrx.RestartResult{RoomID: "new-id", Token: "secret-jwt", Message: rooms.MsgRecreated, IsNewRoom: true, OriginalRoomID: dmD, Naddr: naddr})
	text, err := s.resultText(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nostr:" + naddr, "https://nests.example.com/" + naddr, "recreated"} {
		if !strings.Contains(text, want) {
			t.Errorf("%q lacks %q", text, want)
		}
	}
	if strings.Contains(text, "secret-jwt") {
		t.Fatalf("token in the DM text: %q", text)
	}
	if got := s.refusalText(dmHost, nostrx.CodeRateLimited, "this bot recreates at most 60 rooms per minute", dmParsed{verb: verbRestart}); got != "Slow down: this bot recreates at most 60 rooms per minute. Try again in a minute." {
		t.Fatalf("rate-limit text %q", got)
	}
	if got := s.refusalText(dmHost, nostrx.CodeUnauthorized, "", dmParsed{verb: verbRestart}); !strings.Contains(got, "not the host or an admin") {
		t.Fatalf("refusal %q", got)
	}
	s.cfg.Nostr.DeniedPubkeys = []string{dmHost}
	if got := s.refusalText(dmHost, nostrx.CodeUnauthorized, "", dmParsed{verb: verbRestart}); !strings.Contains(got, "does not take commands from your pubkey") {
		t.Fatalf("refusal of a denied pubkey %q", got)
	}
}

// testService is a Service that is never run: intake and text rendering
// only (its Redis URL is never dialled).
func testService(t *testing.T) *Service {
	t.Helper()
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", nostr.GeneratePrivateKey())
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dmSender builds direct messages to the bot the way a client does, with
// go-nostr's nip59 (the e2e tests use nostr-tools).
type dmSender struct {
	sk, pk string
}

func newDMSender() dmSender {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	return dmSender{sk, pk}
}

func (d dmSender) rumor(to, text string, at time.Time) nostr.Event {
	r := nostr.Event{Kind: nostr.KindDirectMessage, PubKey: d.pk, CreatedAt: nostr.Timestamp(at.Unix()), Tags: nostr.Tags{{"p", to}}, Content: text}
	r.ID = r.GetID()
	return r
}

// wrap seals rumor with d's key (whatever pubkey the rumor claims) and
// gift-wraps it to recipient.
func (d dmSender) wrap(t *testing.T, rumor nostr.Event, recipient string, modifySeal func(*nostr.Event)) nostr.Event {
	t.Helper()
	ck, err := nip44.GenerateConversationKey(recipient, d.sk)
	if err != nil {
		t.Fatal(err)
	}
	w, err := nip59.GiftWrap(rumor, recipient,
		func(pt string) (string, error) { return nip44.Encrypt(pt, ck) },
		func(e *nostr.Event) error {
			if err := e.Sign(d.sk); err != nil {
				return err
			}
			if modifySeal != nil {
				modifySeal(e)
			}
			return nil
		}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (d dmSender) nip04(t *testing.T, to, text string, at time.Time) nostr.Event {
	t.Helper()
	key, err := nip04.ComputeSharedSecret(to, d.sk)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := nip04.Encrypt(text, key)
	if err != nil {
		t.Fatal(err)
	}
	ev := nostr.Event{Kind: nostr.KindEncryptedDirectMessage, CreatedAt: nostr.Timestamp(at.Unix()), Tags: nostr.Tags{{"p", to}}, Content: ct}
	if err := ev.Sign(d.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

// intakeOne runs ev through intakeDM and returns the command it queued, if any.
func intakeOne(s *Service, ev nostr.Event) *dmCommand {
	s.intakeDM(context.Background(), &ev, "ws://127.0.0.1:1")
	select {
	case j := <-s.queue:
		return j.dm
	default:
		return nil
	}
}

func dropped(t *testing.T, s *Service, reason string) float64 {
	t.Helper()
	mfs, err := s.metrics.Reg.Gather()
	if err != nil {
		t.Fatal(err)
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

// TestIntakeNIP17 checks every screening step of a gift wrap without relays.
func TestIntakeNIP17(t *testing.T) {
	s := testService(t)
	bot := s.PublicKey()
	alice := newDMSender()
	now := time.Now()

	r := alice.rumor(bot, "restart something", now)
	w := alice.wrap(t, r, bot, nil)
	cmd := intakeOne(s, w)
	if cmd == nil {
		t.Fatal("a valid wrap was not queued")
	}
	if cmd.proto != protoNIP17 || cmd.id != r.ID || cmd.wrapID != w.ID || cmd.sender != alice.pk || cmd.text != "restart something" || cmd.group {
		t.Fatalf("command %+v", cmd)
	}

	t.Run("same wrap again", func(t *testing.T) {
		if intakeOne(s, w) != nil {
			t.Fatal("a duplicate wrap was queued")
		}
	})
	t.Run("same rumor in a new wrap", func(t *testing.T) {
		if intakeOne(s, alice.wrap(t, r, bot, nil)) != nil {
			t.Fatal("a rumor seen before was queued again")
		}
	})
	t.Run("rumor pubkey differs from the seal's", func(t *testing.T) {
		victim := newDMSender()
		before := dropped(t, s, "sender_mismatch")
		if intakeOne(s, alice.wrap(t, victim.rumor(bot, "restart x", now), bot, nil)) != nil {
			t.Fatal("an impersonating rumor was queued")
		}
		if dropped(t, s, "sender_mismatch") != before+1 {
			t.Fatal("not counted as sender_mismatch")
		}
	})
	t.Run("rumor not addressed to the bot", func(t *testing.T) {
		other := newDMSender()
		if intakeOne(s, alice.wrap(t, alice.rumor(other.pk, "restart x", now), bot, nil)) != nil {
			t.Fatal("queued")
		}
	})
	t.Run("group chat", func(t *testing.T) {
		g := alice.rumor(bot, "hello all", now)
		g.Tags = append(g.Tags, nostr.Tag{"p", newDMSender().pk})
		g.ID = g.GetID()
		if c := intakeOne(s, alice.wrap(t, g, bot, nil)); c == nil || !c.group {
			t.Fatalf("group message: %+v", c)
		}
	})
	t.Run("stale rumor", func(t *testing.T) {
		if intakeOne(s, alice.wrap(t, alice.rumor(bot, "restart x", now.Add(-s.cfg.Nostr.MaxDMAge-time.Minute)), bot, nil)) != nil {
			t.Fatal("stale rumor queued")
		}
	})
	t.Run("rumor from the future", func(t *testing.T) {
		if intakeOne(s, alice.wrap(t, alice.rumor(bot, "restart x", now.Add(5*time.Minute)), bot, nil)) != nil {
			t.Fatal("future rumor queued")
		}
	})
	t.Run("wrap older than the backdating window", func(t *testing.T) {
		old := alice.wrap(t, alice.rumor(bot, "restart x", now), bot, nil)
		old.CreatedAt = nostr.Timestamp(now.Add(-wrapBackdate - s.cfg.Nostr.MaxDMAge - time.Hour).Unix())
		sk := nostr.GeneratePrivateKey() // re-sign with a fresh key: the content no longer decrypts, but it is dropped before that
		_ = old.Sign(sk)
		before := dropped(t, s, "stale")
		if intakeOne(s, old) != nil || dropped(t, s, "stale") != before+1 {
			t.Fatal("old wrap not dropped as stale")
		}
	})
	t.Run("forged wrap id", func(t *testing.T) {
		f := alice.wrap(t, alice.rumor(bot, "restart forged", now), bot, nil)
		f.ID = strings.Repeat("ab", 32)
		if intakeOne(s, f) != nil {
			t.Fatal("queued")
		}
		if s.seen.Contains(f.ID) {
			t.Fatal("an unverified id was recorded as seen")
		}
	})
	t.Run("bad seal signature", func(t *testing.T) {
		bad := alice.wrap(t, alice.rumor(bot, "restart bad seal", now), bot, func(e *nostr.Event) {
			e.Sig = strings.Repeat("0", 128)
		})
		before := dropped(t, s, "bad_signature")
		if intakeOne(s, bad) != nil || dropped(t, s, "bad_signature") != before+1 {
			t.Fatal("seal with a bad signature not dropped as bad_signature")
		}
	})
	t.Run("forged seal id", func(t *testing.T) {
		bad := alice.wrap(t, alice.rumor(bot, "restart bad seal id", now), bot, func(e *nostr.Event) {
			e.ID = strings.Repeat("cd", 32)
		})
		if intakeOne(s, bad) != nil {
			t.Fatal("seal with a forged id queued")
		}
	})
	t.Run("wrap to someone else", func(t *testing.T) {
		other := newDMSender()
		if intakeOne(s, alice.wrap(t, alice.rumor(bot, "restart x", now), other.pk, nil)) != nil {
			t.Fatal("queued")
		}
	})
	t.Run("the bot's own message", func(t *testing.T) {
		self := dmSender{sk: s.cfg.Nostr.SecretKey.Reveal(), pk: bot}
		before := dropped(t, s, "own_message")
		if intakeOne(s, self.wrap(t, self.rumor(bot, "restart x", now), bot, nil)) != nil || dropped(t, s, "own_message") != before+1 {
			t.Fatal("own message not dropped")
		}
	})
	t.Run("not a kind 14 rumor", func(t *testing.T) {
		r := alice.rumor(bot, "file", now)
		r.Kind = 15
		r.ID = r.GetID()
		if intakeOne(s, alice.wrap(t, r, bot, nil)) != nil {
			t.Fatal("queued")
		}
	})
}

func TestIntakeNIP04(t *testing.T) {
	s := testService(t)
	bot := s.PublicKey()
	alice := newDMSender()
	now := time.Now()

	ev := alice.nip04(t, bot, "status x", now)
	cmd := intakeOne(s, ev)
	if cmd == nil || cmd.proto != protoNIP04 || cmd.id != ev.ID || cmd.sender != alice.pk || cmd.text != "status x" || len(cmd.nip04Key) == 0 {
		t.Fatalf("command %+v", cmd)
	}
	if intakeOne(s, ev) != nil {
		t.Fatal("duplicate queued")
	}
	if intakeOne(s, alice.nip04(t, bot, "old", now.Add(-s.cfg.Nostr.MaxDMAge-time.Second))) != nil {
		t.Fatal("stale queued")
	}
	bad := alice.nip04(t, bot, "tampered", now)
	bad.Content = alice.nip04(t, bot, "other", now).Content
	if intakeOne(s, bad) != nil || s.seen.Contains(bad.ID) {
		t.Fatal("tampered event queued or recorded")
	}
	other := newDMSender()
	if intakeOne(s, alice.nip04(t, other.pk, "status x", now)) != nil {
		t.Fatal("a DM to someone else was queued")
	}
	self := dmSender{sk: s.cfg.Nostr.SecretKey.Reveal(), pk: bot}
	if intakeOne(s, self.nip04(t, bot, "status x", now)) != nil {
		t.Fatal("own message queued")
	}
}

// TestBuildDMReply opens each reply the way the requester's client does.
func TestBuildDMReply(t *testing.T) {
	s := testService(t)
	bot := s.PublicKey()
	alice := newDMSender()

	cmd := intakeOne(s, alice.wrap(t, alice.rumor(bot, "help", time.Now()), bot, nil))
	wrap, err := s.buildDMReply(cmd, "hi there")
	if err != nil {
		t.Fatal(err)
	}
	if wrap.Kind != nostr.KindGiftWrap || wrap.PubKey == bot || !tagsContain(wrap.Tags, "p", alice.pk) || nostrx.Verify(&wrap) != nil {
		t.Fatalf("wrap %v", wrap)
	}
	rumor, err := nip59.GiftUnwrap(wrap, func(pub, ct string) (string, error) {
		k, err := nip44.GenerateConversationKey(pub, alice.sk)
		if err != nil {
			return "", err
		}
		return nip44.Decrypt(ct, k)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rumor.PubKey != bot || rumor.Kind != nostr.KindDirectMessage || rumor.Content != "hi there" ||
		!tagsContain(rumor.Tags, "p", alice.pk) || !tagsContain(rumor.Tags, "e", cmd.id) {
		t.Fatalf("rumor %v", rumor)
	}

	cmd = intakeOne(s, alice.nip04(t, bot, "help", time.Now()))
	ev, err := s.buildDMReply(cmd, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != 4 || ev.PubKey != bot || nostrx.Verify(&ev) != nil || !tagsContain(ev.Tags, "p", alice.pk) || !tagsContain(ev.Tags, "e", cmd.id) {
		t.Fatalf("kind 4 reply %v", ev)
	}
	key, _ := nip04.ComputeSharedSecret(bot, alice.sk)
	if pt, err := nip04.Decrypt(ev.Content, key); err != nil || pt != "hello" {
		t.Fatalf("decrypt: %q %v", pt, err)
	}
}

func TestDMFilters(t *testing.T) {
	s := testService(t)
	now := time.Unix(1_760_000_000, 0)
	fs := s.dmFilters(now)
	if len(fs) != 2 {
		t.Fatalf("%d filters", len(fs))
	}
	wantWrap := now.Add(-48*time.Hour - s.cfg.Nostr.MaxDMAge).Unix()
	if fs[0].Kinds[0] != 1059 || int64(*fs[0].Since) != wantWrap || fs[0].Tags["p"][0] != s.PublicKey() {
		t.Fatalf("wrap filter %v", fs[0])
	}
	if fs[1].Kinds[0] != 4 || int64(*fs[1].Since) != now.Add(-s.cfg.Nostr.MaxDMAge).Unix() {
		t.Fatalf("kind 4 filter %v", fs[1])
	}
}

func TestDMReplyRelays(t *testing.T) {
	s := testService(t)
	s.cfg.Nostr.Relays = []string{"wss://bot.example.com"}
	l := relayList{DM: []string{"wss://dm.example.com"}, Read: []string{"wss://read.example.com"}}
	got := s.dmReplyRelays(&dmCommand{proto: protoNIP17}, l, "wss://bot.example.com")
	if strings.Join(got, " ") != "wss://bot.example.com wss://dm.example.com" {
		t.Fatalf("nip17 %v", got)
	}
	got = s.dmReplyRelays(&dmCommand{proto: protoNIP04}, l, "wss://bot.example.com")
	if strings.Join(got, " ") != "wss://bot.example.com wss://read.example.com" {
		t.Fatalf("nip04 %v", got)
	}
	got = s.dmReplyRelays(&dmCommand{proto: protoNIP17}, relayList{Read: l.Read}, "wss://via.example.com")
	if strings.Join(got, " ") != "wss://bot.example.com wss://via.example.com wss://read.example.com" {
		t.Fatalf("nip17 without 10050 %v", got)
	}
}
