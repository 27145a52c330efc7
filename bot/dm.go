package bot

import (
	"context"
	"crypto/aes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Direct messages: the same commands as kind 4312 requests, typed by a
// human in any Nostr app, over NIP-17 (kind 1059 gift wrap → kind 13 seal →
// kind 14 rumor) or legacy NIP-04 (kind 4). intakeDM verifies a message in
// the relay's goroutine, cheap checks first; handleDM runs it on a worker
// through the same claims, admission and work as a 4312 and answers in the
// same DM protocol, in plain words.

// dmProto is the protocol a command came in, and its answer goes out, in.
type dmProto string

const (
	protoNIP17 dmProto = "nip17"
	protoNIP04 dmProto = "nip04"
)

// dmCommand is a command that arrived by direct message (NIP-17 or NIP-04),
// verified and decrypted.
type dmCommand struct {
	proto     dmProto
	id        string // the request id: the rumor id (NIP-17) or the event id (NIP-04)
	wrapID    string // NIP-17: the gift wrap's id
	sender    string // the seal's pubkey (NIP-17) or the event's (NIP-04)
	createdAt nostr.Timestamp
	text      string
	group     bool   // NIP-17: the rumor names more recipients than the bot
	nip04Key  []byte // NIP-04: the shared secret with sender
}

// wrapBackdate is how far back NIP-59 lets a gift wrap's created_at be
// randomized; the subscription reaches that far back beyond max_dm_age.
const wrapBackdate = 2 * 24 * time.Hour

// maxDMContent bounds the content of a wrap or a kind 4 the bot decrypts.
// A typed command is a few hundred bytes; this is generous.
const maxDMContent = 64 << 10

// helpEvery is how often one sender may get the help text for a message
// that is not a command, so two bots answering each other stop at once.
const helpEvery = 10 * time.Minute

// dmFilters are the subscription filters for direct messages to the bot.
// Gift wraps are backdated by up to two days (NIP-59), so their filter
// reaches back that far beyond max_dm_age; freshness is judged on the
// rumor inside. Kind 4 carries its real created_at.
func (s *Service) dmFilters(now time.Time) nostr.Filters {
	bot := s.signer.PublicKey()
	wrapSince := nostr.Timestamp(now.Add(-wrapBackdate - s.cfg.Nostr.MaxDMAge).Unix())
	dmSince := nostr.Timestamp(now.Add(-s.cfg.Nostr.MaxDMAge).Unix())
	return nostr.Filters{
		{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": []string{bot}}, Since: &wrapSince},
		{Kinds: []int{nostr.KindEncryptedDirectMessage}, Tags: nostr.TagMap{"p": []string{bot}}, Since: &dmSince},
	}
}

// intakeDM screens and verifies a direct message in the relay's goroutine.
func (s *Service) intakeDM(ctx context.Context, ev *nostr.Event, via string) {
	defer s.guard.catch("dm", ev.ID)
	var cmd *dmCommand
	switch ev.Kind {
	case nostr.KindGiftWrap:
		cmd = s.screenWrap(ev, time.Now())
	case nostr.KindEncryptedDirectMessage:
		cmd = s.screenNIP04(ev, time.Now())
	default:
		s.metrics.Dropped.WithLabelValues("wrong_kind").Inc()
		return
	}
	if cmd == nil {
		return
	}
	select {
	case s.queue <- job{dm: cmd, via: via, received: time.Now()}:
	case <-ctx.Done():
	}
}

// screenWrap checks a gift wrap and opens it: cheap checks on the wrap,
// its id and signature, then the seal's id and signature, then the rumor.
// It returns nil for anything that is not a fresh, new, verified message
// to the bot. Only ids of verified events are recorded as seen.
func (s *Service) screenWrap(wrap *nostr.Event, now time.Time) *dmCommand {
	bot := s.signer.PublicKey()
	if err := nostrx.Screen(wrap, nostr.KindGiftWrap, bot); err != nil {
		s.drop(err)
		return nil
	}
	if s.seen.Contains(wrap.ID) {
		s.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	at := wrap.CreatedAt.Time()
	switch {
	case at.Before(now.Add(-wrapBackdate - s.cfg.Nostr.MaxDMAge)):
		s.drop(nostrx.ErrStale)
		return nil
	case at.After(now.Add(nostrx.MaxFutureSkew)):
		s.drop(nostrx.ErrFuture)
		return nil
	case len(wrap.Content) > maxDMContent:
		s.metrics.Dropped.WithLabelValues("too_large").Inc()
		return nil
	}
	if err := nostrx.Verify(wrap); err != nil {
		s.drop(err)
		return nil
	}
	// The wrap is authentic from here on: whatever is inside, its id may
	// be remembered, so a copy from another relay is not opened again.
	s.seen.Add(wrap.ID)

	// The wrap's key is random per message: its conversation key is not
	// worth caching, unlike the seal's, which belongs to a returning sender.
	ck, err := nip44.GenerateConversationKey(wrap.PubKey, s.cfg.Nostr.SecretKey.Reveal())
	if err != nil {
		s.metrics.Dropped.WithLabelValues("undecryptable").Inc()
		return nil
	}
	sealJSON, err := nip44.Decrypt(wrap.Content, ck)
	if err != nil {
		s.metrics.Dropped.WithLabelValues("undecryptable").Inc()
		return nil
	}
	var seal nostr.Event
	if err := json.Unmarshal([]byte(sealJSON), &seal); err != nil || seal.Kind != nostr.KindSeal ||
		!nostr.IsValid32ByteHex(seal.ID) || !nostr.IsValid32ByteHex(seal.PubKey) || len(seal.Sig) != 128 {
		s.drop(nostrx.ErrMalformed)
		return nil
	}
	if seal.PubKey == bot {
		s.metrics.Dropped.WithLabelValues("own_message").Inc()
		return nil
	}
	if err := nostrx.Verify(&seal); err != nil {
		s.drop(err)
		return nil
	}
	rumorJSON, err := s.signer.Decrypt(seal.PubKey, seal.Content)
	if err != nil {
		s.metrics.Dropped.WithLabelValues("undecryptable").Inc()
		return nil
	}
	var rumor nostr.Event
	if err := json.Unmarshal([]byte(rumorJSON), &rumor); err != nil || rumor.Kind != nostr.KindDirectMessage {
		s.drop(nostrx.ErrMalformed)
		return nil
	}
	// The seal's signature vouches for the rumor only when the rumor
	// claims the same author; anything else is an impersonation attempt.
	if rumor.PubKey != seal.PubKey {
		s.metrics.Dropped.WithLabelValues("sender_mismatch").Inc()
		return nil
	}
	addressed, recipients := false, 0
	for _, t := range rumor.Tags {
		if len(t) >= 2 && t[0] == "p" {
			recipients++
			addressed = addressed || t[1] == bot
		}
	}
	if !addressed {
		s.drop(nostrx.ErrNotAddressed)
		return nil
	}
	// A rumor is unsigned: its id is whatever hashes its content, never
	// the id field it came with.
	rumor.ID = rumor.GetID()
	if s.seen.Contains(rumor.ID) {
		s.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	if err := nostrx.CheckFresh(&rumor, now, s.cfg.Nostr.MaxDMAge); err != nil {
		s.drop(err)
		return nil
	}
	if !s.seen.Add(rumor.ID) {
		s.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	return &dmCommand{
		proto: protoNIP17, id: rumor.ID, wrapID: wrap.ID, sender: seal.PubKey,
		createdAt: rumor.CreatedAt, text: rumor.Content, group: recipients > 1,
	}
}

// screenNIP04 checks a kind 4 message to the bot: shape and p tag, author,
// seen, freshness, size, id and signature, then decrypts it.
func (s *Service) screenNIP04(ev *nostr.Event, now time.Time) *dmCommand {
	bot := s.signer.PublicKey()
	if err := nostrx.Screen(ev, nostr.KindEncryptedDirectMessage, bot); err != nil {
		s.drop(err)
		return nil
	}
	if ev.PubKey == bot {
		s.metrics.Dropped.WithLabelValues("own_message").Inc()
		return nil
	}
	if s.seen.Contains(ev.ID) {
		s.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	if err := nostrx.CheckFresh(ev, now, s.cfg.Nostr.MaxDMAge); err != nil {
		s.drop(err)
		return nil
	}
	if len(ev.Content) > maxDMContent {
		s.metrics.Dropped.WithLabelValues("too_large").Inc()
		return nil
	}
	if err := nostrx.Verify(ev); err != nil {
		s.drop(err)
		return nil
	}
	if !s.seen.Add(ev.ID) {
		s.metrics.Dropped.WithLabelValues("duplicate").Inc()
		return nil
	}
	key, err := nip04.ComputeSharedSecret(ev.PubKey, s.cfg.Nostr.SecretKey.Reveal())
	if err != nil {
		s.metrics.Dropped.WithLabelValues("undecryptable").Inc()
		return nil
	}
	text, err := openNIP04(ev.Content, key)
	if errors.Is(err, errNIP04Payload) {
		s.drop(nostrx.ErrMalformed)
		s.log.Debug("dropped malformed nip04 message", "id", ev.ID, "err", err)
		return nil
	}
	if err != nil {
		s.metrics.Dropped.WithLabelValues("undecryptable").Inc()
		return nil
	}
	return &dmCommand{proto: protoNIP04, id: ev.ID, sender: ev.PubKey, createdAt: ev.CreatedAt, text: text, nip04Key: key}
}

// errNIP04Payload is a kind 4 content that is not a NIP-04 payload:
// base64(ciphertext) "?iv=" base64(16-byte IV), the ciphertext whole
// 16-byte AES blocks.
var errNIP04Payload = errors.New("not a nip04 payload")

// openNIP04 decrypts a NIP-04 payload with the shared key (32 bytes),
// checking its shape first: go-nostr's nip04.Decrypt hands the IV and the
// ciphertext to crypto/cipher's CBC decrypter unchecked, and that panics on
// an IV that is not 16 bytes or a ciphertext that is not whole blocks.
// Errors wrap errNIP04Payload for a malformed payload (one-line reason),
// else they are nip04.Decrypt's.
func openNIP04(content string, key []byte) (string, error) {
	if len(content) > maxDMContent {
		return "", fmt.Errorf("%w: %d bytes, at most %d", errNIP04Payload, len(content), maxDMContent)
	}
	ct64, iv64, ok := strings.Cut(content, "?iv=")
	if !ok || strings.Contains(iv64, "?iv=") {
		return "", fmt.Errorf("%w: want exactly one ?iv=", errNIP04Payload)
	}
	iv, err := base64.StdEncoding.DecodeString(iv64)
	if err != nil || len(iv) != aes.BlockSize {
		return "", fmt.Errorf("%w: the iv is not %d bytes of base64", errNIP04Payload, aes.BlockSize)
	}
	ct, err := base64.StdEncoding.DecodeString(ct64)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return "", fmt.Errorf("%w: the ciphertext is not whole %d-byte blocks of base64", errNIP04Payload, aes.BlockSize)
	}
	if len(key) != 32 {
		return "", fmt.Errorf("nip04: a shared key is 32 bytes, got %d", len(key))
	}
	text, err := nip04.Decrypt(content, key)
	if err != nil {
		return "", fmt.Errorf("nip04: %w", err)
	}
	return text, nil
}

// handleDM answers one direct-message command on a worker: claim, parse,
// admit and work like a 4312, then exactly one reply in the same protocol.
func (s *Service) handleDM(ctx context.Context, j job) {
	cmd := j.dm
	if j.marks == nil {
		j.marks = &rooms.Marks{}
	}
	var stored *nostr.Event
	ours, counted := true, countedBefore
	if !j.givenUp { // a given-up restart holds its claim: answered, not claimed again
		stored, ours, counted = s.claimCounting(ctx, j, "")
	}
	if stored != nil && !s.deliver(ctx, cmd.id, stored, s.dmReplyRelays(cmd, s.relayListsOf(ctx, cmd.sender), j.via)) {
		s.forgetJob(j)
	}
	if !ours {
		return
	}

	parsed := parseDMCommand(cmd.text)
	// For a command, the requester's relay lists are looked up while the
	// work runs; a message that is not one seldom gets an answer at all.
	var lists chan relayList
	if parsed.verb != verbNone {
		lists = make(chan relayList, 1)
		go func() {
			var l relayList // empty after a panic: the reply goes to the bot's relays
			defer func() { lists <- l }()
			defer s.guard.catch("relay_lists", cmd.id)
			l = s.relayListsOf(ctx, cmd.sender)
		}()
	}
	text, action, outcome, room, werr := "", "", "", nostrx.Coordinate{}, error(nil)
	if j.givenUp && parsed.err == nil {
		action, outcome, room, werr = parsed.verb.action(), string(nostrx.CodeUnavailable), parsed.room, errGivenUp
		text = s.refusalText(cmd.sender, nostrx.CodeUnavailable, nostrx.MessageOf(errGivenUp), parsed)
	} else {
		// A restart taken over may carry its dead owner's public change:
		// finished as a resumed one is (see handle).
		finishing := j.finishing || (counted == countedBefore && parsed.verb == verbRestart)
		text, action, outcome, room, werr = s.dmAnswer(ctx, cmd, parsed, finishing, counted, rooms.Run{Marks: j.marks})
	}
	if text == "" {
		// Nothing to say (not a command, and the sender already got the
		// help text lately, or is not served): the claim is settled.
		if errors.Is(werr, rooms.ErrIncomplete) {
			s.resumeLater(j, werr)
			return
		}
		if werr != nil {
			s.claims.release(ctx, cmd.id)
			s.forgetJob(j)
			s.log.Warn("dm not answered", "id", cmd.id, "err", werr)
			return
		}
		if err := s.claims.delivered(ctx, cmd.id); err != nil {
			s.log.Warn("mark dm settled", "id", cmd.id, "err", err)
		}
		s.metrics.Dropped.WithLabelValues(outcome).Inc()
		return
	}
	reply, err := s.buildDMReply(cmd, text)
	if err != nil {
		s.claims.release(ctx, cmd.id)
		s.forgetJob(j)
		s.log.Error("build dm reply", "id", cmd.id, "err", err)
		return
	}
	if err := s.storeAnswer(ctx, j, &reply); err != nil {
		s.log.Warn("store dm reply", "id", cmd.id, "err", err)
	}
	var l relayList
	if lists != nil {
		l = <-lists
	} else {
		l = s.relayListsOf(ctx, cmd.sender)
	}
	delivered := s.deliver(ctx, cmd.id, &reply, s.dmReplyRelays(cmd, l, j.via))
	if !delivered && cmd.wrapID != "" {
		s.seen.forget(cmd.wrapID)
	}

	s.metrics.Requests.WithLabelValues(action, outcome).Inc()
	s.metrics.Latency.WithLabelValues(action).Observe(time.Since(j.received).Seconds())
	attrs := []any{
		"id", cmd.id, "proto", string(cmd.proto), "requester", nostrx.Npub(cmd.sender), "command", parsed.verb.String(),
		"room", room.D, "outcome", outcome, "delivered", delivered,
		"duration_ms", float64(time.Since(j.received).Microseconds()) / 1000,
	}
	if werr != nil {
		attrs = append(attrs, "err", werr.Error())
	}
	s.log.Info("dm", attrs...)
}

// dmAnswer decides the reply to one claimed command. text is "" when the
// bot stays silent; action and outcome label metrics; err is an internal
// error worth logging (with text "", a reason to leave the claim open).
// finishing: the command is a restart resumed after a public change
// (job.finishing, Service.finish). counted is the claim's (claimCounting):
// countedBefore for a command claimed before, counted against its sender's
// rate then and not again.
func (s *Service) dmAnswer(ctx context.Context, cmd *dmCommand, p dmParsed, finishing bool, counted int64, run rooms.Run) (text, action, outcome string, room nostrx.Coordinate, err error) {
	switch p.verb {
	case verbNone:
		// Not a command: the help text, at most once per sender per
		// helpEvery across replicas; never in a group chat, and never to a
		// pubkey the operator does not serve.
		if cmd.group {
			return "", "other", "not_command", room, nil
		}
		if !s.serves(cmd.sender) {
			return "", "other", "not_served", room, nil
		}
		first, err := s.store.FirstHelp(ctx, cmd.sender, helpEvery)
		if err != nil {
			// Without Redis, replicas cannot agree: stay silent rather than risk a loop.
			return "", "other", "", room, err
		}
		if !first {
			return "", "other", "help_limited", room, nil
		}
		return helpText(), "other", "help", room, nil
	case verbHelp:
		req := nostrx.Request{ID: cmd.id, Requester: cmd.sender, CreatedAt: cmd.createdAt}
		if err := s.admitCounted(ctx, req, counted); err != nil {
			code := nostrx.CodeOf(err)
			return s.refusalText(cmd.sender, code, nostrx.MessageOf(err), p), "other", string(code), room, internalErr(code, err)
		}
		return helpText(), "other", "help", room, nil
	}

	req := nostrx.Request{ID: cmd.id, Requester: cmd.sender, CreatedAt: cmd.createdAt, Action: p.verb.action(), Room: p.room}
	if len(p.room.Relays) > 0 {
		req.RelayHint = p.room.Relays[0]
	}
	var ans answer
	if finishing && p.err == nil {
		ans = s.finish(ctx, req, run)
	} else {
		ans = s.workCounted(ctx, req, p.err, counted, run)
	}
	action = req.Action
	if ans.resume {
		return "", action, ans.outcome, ans.room, ans.err // finished later: handleDM resumes it
	}
	if ans.payload.Error != nil {
		code := ans.payload.Error.Code
		return s.refusalText(cmd.sender, code, ans.payload.Error.Message, p), action, ans.outcome, ans.room, ans.err
	}
	text, err = s.resultText(ans.payload)
	if err != nil {
		return s.refusalText(cmd.sender, nostrx.CodeInternal, "", p), action, string(nostrx.CodeInternal), ans.room, err
	}
	return text, action, ans.outcome, ans.room, nil
}

func internalErr(code nostrx.Code, err error) error {
	if code == nostrx.CodeInternal || code == nostrx.CodeUnavailable {
		return err
	}
	return nil
}

// buildDMReply signs the reply in the command's protocol: a kind 14 rumor
// (p requester, e the command's rumor) gift-wrapped to the requester, or a
// kind 4 (p requester, e the command) encrypted with NIP-04.
func (s *Service) buildDMReply(cmd *dmCommand, text string) (nostr.Event, error) {
	tags := nostr.Tags{{"p", cmd.sender}, {"e", cmd.id}}
	switch cmd.proto {
	case protoNIP17:
		return s.giftWrapDM(cmd.sender, tags, text)
	case protoNIP04:
		ct, err := nip04.Encrypt(text, cmd.nip04Key)
		if err != nil {
			return nostr.Event{}, fmt.Errorf("nip04 encrypt: %w", err)
		}
		ev := nostr.Event{Kind: nostr.KindEncryptedDirectMessage, CreatedAt: nostr.Now(), Tags: tags, Content: ct}
		return ev, s.signer.Sign(&ev)
	}
	return nostr.Event{}, errors.New("unknown dm protocol")
}

// giftWrapDM is a NIP-17 direct message from the bot to to: a kind 14
// rumor with tags and text, sealed and gift-wrapped (NIP-59). Command
// replies and the auto-heal notice both go out this way.
func (s *Service) giftWrapDM(to string, tags nostr.Tags, text string) (nostr.Event, error) {
	rumor := nostr.Event{Kind: nostr.KindDirectMessage, PubKey: s.signer.PublicKey(), CreatedAt: nostr.Now(), Tags: tags, Content: text}
	rumor.ID = rumor.GetID()
	return nip59.GiftWrap(rumor, to,
		func(plaintext string) (string, error) { return s.signer.Encrypt(to, plaintext) },
		s.signer.Sign, nil)
}

// dmReplyRelays: where the requester reads DMs — their kind 10050 relays
// for NIP-17 (else their NIP-65 read relays), their NIP-65 read relays for
// NIP-04 (else their 10050) — plus the bot's relays and the one the command
// came from.
func (s *Service) dmReplyRelays(cmd *dmCommand, l relayList, via string) []string {
	inbox := l.DM
	if cmd.proto == protoNIP04 || len(inbox) == 0 {
		inbox = l.Read
		if len(inbox) == 0 {
			inbox = l.DM
		}
	}
	relays := slices.Clone(s.cfg.Nostr.Relays)
	relays = append(relays, via)
	relays = append(relays, inbox...)
	return dedupe(relays)
}
