package nostrx

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// EncryptionNIP44 is the value of a response's "encryption" tag.
const EncryptionNIP44 = "nip44_v2"

// Payload is the decrypted content of a response, shaped after NIP-47: a
// result type and either a result or an error, never both.
type Payload struct {
	ResultType string          `json:"result_type"`
	Error      *PayloadError   `json:"error,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// PayloadError is the error half of a Payload.
type PayloadError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// RestartResult is the result of a restart: what a client needs to rejoin.
// Token is a LiveKit JWT and so only ever travels encrypted.
type RestartResult struct {
	RoomID         string       `json:"roomId"`
	Endpoints      []string     `json:"endpoints"`
	Token          string       `json:"token"`
	Message        string       `json:"message"`
	IsNewRoom      bool         `json:"isNewRoom"`
	OriginalRoomID string       `json:"originalRoomId,omitempty"`
	Naddr          string       `json:"naddr"`
	Event          *nostr.Event `json:"event,omitempty"`
	// Template is the replacement as an unsigned event for the requester
	// to sign and publish (adoption, docs/protocol.md); new ID only.
	Template *EventTemplate `json:"template,omitempty"`
}

// EventTemplate is an unsigned event: what a client signs (nostr-tools'
// finalizeEvent takes exactly these fields).
type EventTemplate struct {
	Kind      int             `json:"kind"`
	CreatedAt nostr.Timestamp `json:"created_at"`
	Tags      nostr.Tags      `json:"tags"`
	Content   string          `json:"content"`
}

// MaxPayloadBytes is NIP-44 v2's largest plaintext: a response payload
// above it cannot be encrypted.
const MaxPayloadBytes = 65535

// StatusResult is the result of a status request.
type StatusResult struct {
	RoomID       string `json:"roomId"`
	Live         bool   `json:"live"`
	Participants int    `json:"participants"`
	Record       bool   `json:"record"`
	RestartedAt  int64  `json:"restartedAt,omitempty"`
	Naddr        string `json:"naddr"`
}

// ResultPayload wraps a result of the given type. A RestartResult whose
// payload would exceed MaxPayloadBytes loses its "event" and then its
// "template" (a room listing about 740 or more participants): the naddr
// still leads to the event, and an answer that fits beats none.
func ResultPayload(resultType string, result any) (Payload, error) {
	if r, ok := result.(RestartResult); ok {
		return restartPayload(resultType, r)
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return Payload{}, fmt.Errorf("encode %s result: %w", resultType, err)
	}
	return Payload{ResultType: resultType, Result: raw}, nil
}

func restartPayload(resultType string, r RestartResult) (Payload, error) {
	for {
		raw, err := json.Marshal(r)
		if err != nil {
			return Payload{}, fmt.Errorf("encode %s result: %w", resultType, err)
		}
		p := Payload{ResultType: resultType, Result: raw}
		// The envelope adds {"result_type":"restart","result":} to raw.
		if len(raw)+len(resultType)+64 <= MaxPayloadBytes {
			return p, nil
		}
		switch {
		case r.Event != nil:
			r.Event = nil
		case r.Template != nil:
			r.Template = nil
		default:
			return p, nil // BuildResponse answers INTERNAL rather than nothing
		}
	}
}

// ErrorPayload wraps a refusal; err's code is taken from a *RequestError
// and anything else is INTERNAL with a generic message, so internal details
// never leak to a requester.
func ErrorPayload(resultType string, err error) Payload {
	return Payload{ResultType: resultType, Error: &PayloadError{Code: CodeOf(err), Message: MessageOf(err)}}
}

// ResponseSpec says to whom and about what a response is.
type ResponseSpec struct {
	Kind      int
	Requester string
	RequestID string
	Room      Coordinate // the live room, or the requested one on error
	CreatedAt nostr.Timestamp
	TTL       time.Duration
}

// BuildResponse encrypts the payload to the requester and signs the
// response event. The only cleartext is routing: p, e, a and expiration.
func BuildResponse(s *Signer, spec ResponseSpec, p Payload) (nostr.Event, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("encode response: %w", err)
	}
	if len(body) > MaxPayloadBytes {
		// Exactly one answer per request, whatever its size: one that
		// cannot be encrypted becomes INTERNAL, which always fits.
		if body, err = json.Marshal(ErrorPayload(p.ResultType, fmt.Errorf("payload of %d bytes", len(body)))); err != nil {
			return nostr.Event{}, fmt.Errorf("encode response: %w", err)
		}
	}
	content, err := s.Encrypt(spec.Requester, string(body))
	if err != nil {
		return nostr.Event{}, fmt.Errorf("encrypt response: %w", err)
	}
	tags := nostr.Tags{{"p", spec.Requester}, {"e", spec.RequestID}}
	if spec.Room.Author != "" {
		tags = append(tags, nostr.Tag{"a", spec.Room.String()})
	}
	tags = append(tags,
		nostr.Tag{"expiration", strconv.FormatInt(int64(spec.CreatedAt)+int64(spec.TTL/time.Second), 10)},
		nostr.Tag{"encryption", EncryptionNIP44},
	)
	ev := nostr.Event{Kind: spec.Kind, CreatedAt: spec.CreatedAt, Tags: tags, Content: content}
	if err := s.Sign(&ev); err != nil {
		return nostr.Event{}, err
	}
	return ev, nil
}

// OpenResponse verifies a response from bot and decrypts it: the client side
// of BuildResponse, used by nestbot restart and the tests.
func OpenResponse(s *Signer, bot string, ev *nostr.Event) (Payload, error) {
	if ev.PubKey != bot {
		return Payload{}, fmt.Errorf("response signed by %s, want the bot %s", ev.PubKey, bot)
	}
	if err := Verify(ev); err != nil {
		return Payload{}, fmt.Errorf("response %s: %w", ev.ID, err)
	}
	pt, err := s.Decrypt(bot, ev.Content)
	if err != nil {
		return Payload{}, fmt.Errorf("response %s: %w", ev.ID, err)
	}
	var p Payload
	if err := json.Unmarshal([]byte(pt), &p); err != nil {
		return Payload{}, fmt.Errorf("response %s: payload is not JSON: %w", ev.ID, err)
	}
	if string(p.Result) == "null" {
		p.Result = nil // NIP-47 style "result": null means no result
	}
	if (p.Error == nil) == (len(p.Result) == 0) {
		return Payload{}, fmt.Errorf("response %s: want exactly one of result and error", ev.ID)
	}
	return p, nil
}
