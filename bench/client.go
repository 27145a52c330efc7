package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// prepared is one request with everything the client needs computed before
// the clock starts: a host key of its own, the signed request and the NIP-44
// conversation key with the bot.
type prepared struct {
	sk, pk string
	room   nostrx.Coordinate
	req    nostr.Event
	ck     [32]byte
}

// newPrepared makes a fresh host and signs its restart request for room d.
func newPrepared(bot, d string) (*prepared, error) {
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return nil, err
	}
	p := &prepared{sk: sk, pk: pk, room: nostrx.Coordinate{Kind: nostrx.KindRoom, Author: pk, D: d}}
	return p, p.sign(bot)
}

func (p *prepared) sign(bot string) error {
	p.req = nostrx.NewRequest(nostrx.DefaultRequestKind, bot, p.room, nostrx.ActionRestart, "", "", nostr.Now(), 0)
	if err := p.req.Sign(p.sk); err != nil {
		return err
	}
	ck, err := nip44.GenerateConversationKey(bot, p.sk)
	if err != nil {
		return err
	}
	p.ck = ck
	return nil
}

func newRoomID() string { return uuid.NewString() }

// outcome is what one exchange produced. latency runs from just before the
// request is published to just after the answer is decrypted and decoded.
type outcome struct {
	p       *prepared
	latency time.Duration
	resp    *nostr.Event
	payload nostrx.Payload
	err     error // "publish", "timeout", "decrypt" …: the exchange failed
}

// conn is one requester connection to the relay. Signature checks of
// incoming events are off (AssumeValid): the client checks the answer
// itself after the clock stops, so that its own crypto is not timed.
type conn struct {
	relay *nostr.Relay
	bot   string
}

func dial(ctx context.Context, url, bot string) (*conn, error) {
	r := nostr.NewRelay(context.Background(), url)
	r.AssumeValid = true
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Connect(cctx); err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return &conn{relay: r, bot: bot}, nil
}

func (c *conn) close() { c.relay.Close() }

// errKind names the ways an exchange can fail, for the error counts.
type errKind string

const (
	errSubscribe errKind = "subscribe"
	errPublish   errKind = "publish"
	errTimeout   errKind = "timeout"
	errClosed    errKind = "closed"
	errDecrypt   errKind = "decrypt"
	errVerify    errKind = "bad_response"
	errUnexpect  errKind = "unexpected_result"
)

type exchangeError struct {
	kind errKind
	err  error
}

func (e *exchangeError) Error() string { return string(e.kind) + ": " + e.err.Error() }

// do runs one exchange: subscribe for the answer (and wait for EOSE), start
// the clock, publish, wait for the answer, decrypt it, stop the clock.
func (c *conn) do(ctx context.Context, p *prepared, timeout time.Duration) outcome {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	o := outcome{p: p}
	sub, err := c.relay.Subscribe(ctx, nostr.Filters{{
		Kinds: []int{nostrx.DefaultResponseKind}, Authors: []string{c.bot},
		Tags: nostr.TagMap{"e": []string{p.req.ID}, "p": []string{p.pk}},
	}})
	if err != nil {
		o.err = &exchangeError{errSubscribe, err}
		return o
	}
	defer sub.Unsub()
	select {
	case <-sub.EndOfStoredEvents:
	case <-ctx.Done():
		o.err = &exchangeError{errSubscribe, errors.New("no EOSE")}
		return o
	}

	start := time.Now()
	if err := c.relay.Publish(ctx, p.req); err != nil {
		o.err = &exchangeError{errPublish, err}
		return o
	}
	select {
	case ev, ok := <-sub.Events:
		if !ok || ev == nil {
			o.err = &exchangeError{errClosed, errors.New("subscription closed before the answer")}
			return o
		}
		pt, err := nip44.Decrypt(ev.Content, p.ck)
		if err != nil {
			o.err = &exchangeError{errDecrypt, err}
			return o
		}
		if err := json.Unmarshal([]byte(pt), &o.payload); err != nil {
			o.err = &exchangeError{errDecrypt, err}
			return o
		}
		o.latency = time.Since(start)
		o.resp = ev
	case <-ctx.Done():
		o.err = &exchangeError{errTimeout, fmt.Errorf("no answer within %s", timeout)}
	}
	return o
}

// echo times one relay hop, the floor under each half of an exchange: an
// event the client signed beforehand goes to the relay and comes back on
// a subscription shaped like a requester's for its answer (kind, author,
// the "e" and "p" tags of ev).
func (c *conn) echo(ctx context.Context, ev nostr.Event, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	filter := nostr.Filter{Kinds: []int{ev.Kind}, Authors: []string{ev.PubKey}, Tags: nostr.TagMap{}}
	for _, t := range ev.Tags {
		if len(t) >= 2 && (t[0] == "e" || t[0] == "p") {
			filter.Tags[t[0]] = append(filter.Tags[t[0]], t[1])
		}
	}
	sub, err := c.relay.Subscribe(ctx, nostr.Filters{filter})
	if err != nil {
		return 0, err
	}
	defer sub.Unsub()
	select {
	case <-sub.EndOfStoredEvents:
	case <-ctx.Done():
		return 0, errors.New("no EOSE")
	}
	start := time.Now()
	if err := c.relay.Publish(ctx, ev); err != nil {
		return 0, err
	}
	select {
	case ev, ok := <-sub.Events:
		if !ok || ev == nil {
			return 0, errors.New("subscription closed")
		}
		return time.Since(start), nil
	case <-ctx.Done():
		return 0, errors.New("event did not come back")
	}
}

// expectation checks a decoded restart result against the scenario.
type expectation func(p *prepared, r *nostrx.RestartResult) error

func expectInPlace(p *prepared, r *nostrx.RestartResult) error {
	if r.RoomID != p.room.D || r.IsNewRoom || r.Message != rooms.MsgRestarted || r.Token == "" {
		return fmt.Errorf("want %s restarted in place, got room %s new=%v %q", p.room.D, r.RoomID, r.IsNewRoom, r.Message)
	}
	return nil
}

func expectRecreated(p *prepared, r *nostrx.RestartResult) error {
	if !r.IsNewRoom || r.OriginalRoomID != p.room.D || r.RoomID == p.room.D || r.Event == nil || r.Message != rooms.MsgRecreated {
		return fmt.Errorf("want %s recreated under a new ID, got room %s new=%v %q", p.room.D, r.RoomID, r.IsNewRoom, r.Message)
	}
	return nil
}

// check verifies an exchange after the clock stopped: the answer is the
// bot's, its id and signature hold, it answers this request, and it is
// the result the scenario expects. It returns the error kind, or "".
func check(bot string, o *outcome, want expectation) (errKind, string) {
	if o.err != nil {
		var xe *exchangeError
		if errors.As(o.err, &xe) {
			return xe.kind, xe.err.Error()
		}
		return "other", o.err.Error()
	}
	if o.resp.PubKey != bot || o.resp.Kind != nostrx.DefaultResponseKind {
		return errVerify, "answer not from the bot"
	}
	if err := nostrx.Verify(o.resp); err != nil {
		return errVerify, err.Error()
	}
	if e := o.resp.Tags.Find("e"); len(e) < 2 || e[1] != o.p.req.ID {
		return errVerify, "answer names another request"
	}
	if o.payload.Error != nil {
		return errKind("code_" + string(o.payload.Error.Code)), o.payload.Error.Message
	}
	var r nostrx.RestartResult
	if err := json.Unmarshal(o.payload.Result, &r); err != nil {
		return errVerify, err.Error()
	}
	if r.Event != nil {
		if err := nostrx.Verify(r.Event); err != nil || r.Event.PubKey != bot {
			return errVerify, "replacement room event does not verify"
		}
	}
	if err := want(o.p, &r); err != nil {
		return errUnexpect, err.Error()
	}
	return "", ""
}
