package nostrx

import (
	"fmt"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Default kinds. Requests reuse 4312, the Nests admin-command kind that
// relays already store and clients already send; 4313 answers them. Both are
// in the regular range, so a bot that was offline still finds them.
const (
	DefaultRequestKind  = 4312
	DefaultResponseKind = 4313
)

// Actions a request may carry. Only ActionRestart and ActionStatus do work;
// any other value is answered NOT_IMPLEMENTED so clients learn it is reserved.
const (
	ActionRestart = "restart"
	ActionStatus  = "status"
)

// MaxReasonBytes bounds the free-text reason in a request's content.
const MaxReasonBytes = 1024

// MaxFutureSkew is how far ahead of the bot's clock a request may be dated.
const MaxFutureSkew = 60 * time.Second

// Request is a restart (or status) request whose structure has been read.
// Whether it may be trusted is a separate question: see Verify.
type Request struct {
	ID         string
	Requester  string
	CreatedAt  nostr.Timestamp
	Action     string
	Room       Coordinate
	RelayHint  string
	Reason     string
	Expiration nostr.Timestamp // zero when the request carries none
}

// Screen does the cheap checks that decide whether an event is a request to
// this bot at all: kind, shape of id and pubkey, and a "p" tag naming the
// bot. They run before any hashing so that junk costs almost nothing.
func Screen(ev *nostr.Event, kind int, bot string) error {
	if ev.Kind != kind {
		return ErrWrongKind
	}
	if !isLowerHex64(ev.ID) || !isLowerHex64(ev.PubKey) || len(ev.Sig) != 128 {
		return ErrMalformed
	}
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == "p" && t[1] == bot {
			return nil
		}
	}
	return ErrNotAddressed
}

// CheckFresh rejects events dated outside [now-maxAge, now+MaxFutureSkew]
// and events whose NIP-40 expiration has passed. A malformed expiration
// counts as expired: the sender asked for a deadline we cannot read.
func CheckFresh(ev *nostr.Event, now time.Time, maxAge time.Duration) error {
	at := ev.CreatedAt.Time()
	if at.Before(now.Add(-maxAge)) {
		return ErrStale
	}
	if at.After(now.Add(MaxFutureSkew)) {
		return ErrFuture
	}
	if exp, ok, err := expiration(ev.Tags); err != nil || (ok && !exp.Time().After(now)) {
		return ErrExpired
	}
	return nil
}

// Verify checks that the id is the hash of the content and the signature is
// the author's. go-nostr's CheckSignature recomputes the hash and never
// compares it with the id field, so an event with a forged id would pass it;
// the id is checked first because the bot uses it as a key.
func Verify(ev *nostr.Event) error {
	if !ev.CheckID() {
		return ErrBadID
	}
	ok, err := ev.CheckSignature()
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// ParseRequest reads a request's tags and content. It expects an event that
// passed Screen. A request that is structurally wrong comes back with a
// *RequestError (BAD_REQUEST or NOT_IMPLEMENTED) together with what could be
// read, so that, once verified, it can be answered.
func ParseRequest(ev *nostr.Event) (Request, error) {
	req := Request{ID: ev.ID, Requester: ev.PubKey, CreatedAt: ev.CreatedAt}
	var aTags, actions int
	var aValue string
	for _, t := range ev.Tags {
		if len(t) == 0 {
			continue
		}
		switch t[0] {
		case "a":
			aTags++
			if len(t) >= 2 {
				aValue = t[1]
			}
			if len(t) >= 3 && ValidRelayURL(t[2]) {
				req.RelayHint = t[2]
			}
		case "action":
			actions++
			if len(t) >= 2 {
				req.Action = t[1]
			}
		}
	}
	if exp, ok, _ := expiration(ev.Tags); ok {
		req.Expiration = exp
	}
	switch {
	case actions != 1:
		return req, Refuse(CodeBadRequest, "want exactly one action tag, got %d", actions)
	case aTags != 1:
		return req, Refuse(CodeBadRequest, "want exactly one a tag, got %d", aTags)
	case len(ev.Content) > MaxReasonBytes:
		return req, Refuse(CodeBadRequest, "content is %d bytes, at most %d allowed", len(ev.Content), MaxReasonBytes)
	}
	room, err := ParseCoordinate(aValue)
	if err != nil {
		return req, Refuse(CodeBadRequest, "%s", err.Error())
	}
	req.Room = room
	req.Reason = ev.Content
	if req.Action == "" {
		return req, Refuse(CodeBadRequest, "the action tag has no value")
	}
	if req.Action != ActionRestart && req.Action != ActionStatus {
		return req, Refuse(CodeNotImplemented, "action %q is not supported", truncate(req.Action, 32))
	}
	return req, nil
}

func expiration(tags nostr.Tags) (nostr.Timestamp, bool, error) {
	for _, t := range tags {
		if len(t) >= 2 && t[0] == "expiration" {
			n, err := strconv.ParseInt(t[1], 10, 64)
			if err != nil || n < 0 {
				return 0, true, fmt.Errorf("expiration %q is not a unix time", truncate(t[1], 32))
			}
			return nostr.Timestamp(n), true, nil
		}
	}
	return 0, false, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// NewRequest builds an unsigned request, as a client (or nestbot restart)
// sends it; relayHint may be empty and expiration zero.
func NewRequest(kind int, bot string, room Coordinate, action, relayHint, reason string, createdAt, expiration nostr.Timestamp) nostr.Event {
	a := nostr.Tag{"a", room.String()}
	if relayHint != "" {
		a = append(a, relayHint)
	}
	tags := nostr.Tags{a, {"p", bot}, {"action", action}}
	if expiration != 0 {
		tags = append(tags, nostr.Tag{"expiration", strconv.FormatInt(int64(expiration), 10)})
	}
	return nostr.Event{Kind: kind, CreatedAt: createdAt, Tags: tags, Content: reason}
}
