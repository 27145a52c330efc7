package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nbd-wtf/go-nostr"
)

// Message is one relay-to-client message of NIP-01 (EVENT, OK, EOSE,
// CLOSED, NOTICE) or NIP-42 (AUTH). Only the fields of its Label are set.
type Message struct {
	Label     string       // "EVENT", "OK", "EOSE", "CLOSED", "NOTICE" or "AUTH"
	SubID     string       // EVENT, EOSE, CLOSED
	Event     *nostr.Event // EVENT: unverified, as the relay sent it
	EventID   string       // OK
	OK        bool         // OK
	Reason    string       // OK and CLOSED: the machine-readable prefixed message; NOTICE: the text
	Challenge string       // AUTH
}

// ErrMalformed is wrapped by every error of Parse.
var ErrMalformed = errors.New("malformed relay message")

// wireEvent is an event as JSON carries it, decoded by encoding/json
// (which reports bad input as errors, never panics) before it becomes a
// nostr.Event.
type wireEvent struct {
	ID        string     `json:"id"`
	PubKey    string     `json:"pubkey"`
	CreatedAt int64      `json:"created_at"`
	Kind      int        `json:"kind"`
	Tags      [][]string `json:"tags"`
	Content   string     `json:"content"`
	Sig       string     `json:"sig"`
}

// Parse reads one relay message. It never panics, whatever data holds,
// and returns an error wrapping ErrMalformed for anything that is not one
// of the messages above with the JSON types NIP-01 gives it. Unknown labels
// are errors too: the client has nothing to do with them.
//
// go-nostr's own parsers slice the raw text before they validate it (the
// Relay reader's extractSubID panics on `["EVENT","x`), so nothing a relay
// sends reaches them.
func Parse(data []byte) (Message, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(parts) == 0 {
		return Message{}, fmt.Errorf("%w: empty array", ErrMalformed)
	}
	var m Message
	if err := json.Unmarshal(parts[0], &m.Label); err != nil {
		return Message{}, fmt.Errorf("%w: label: %w", ErrMalformed, err)
	}
	str := func(i int, dst *string) error {
		if i >= len(parts) {
			return fmt.Errorf("%w: %s: element %d missing", ErrMalformed, m.Label, i)
		}
		if err := json.Unmarshal(parts[i], dst); err != nil {
			return fmt.Errorf("%w: %s: element %d: %w", ErrMalformed, m.Label, i, err)
		}
		return nil
	}
	switch m.Label {
	case "EVENT":
		if len(parts) != 3 {
			return Message{}, fmt.Errorf("%w: EVENT has %d elements", ErrMalformed, len(parts))
		}
		if err := str(1, &m.SubID); err != nil {
			return Message{}, err
		}
		var w wireEvent
		if err := json.Unmarshal(parts[2], &w); err != nil {
			return Message{}, fmt.Errorf("%w: EVENT: event: %w", ErrMalformed, err)
		}
		tags := make(nostr.Tags, 0, len(w.Tags))
		for _, t := range w.Tags {
			tags = append(tags, nostr.Tag(t))
		}
		m.Event = &nostr.Event{ID: w.ID, PubKey: w.PubKey, CreatedAt: nostr.Timestamp(w.CreatedAt), Kind: w.Kind,
			Tags: tags, Content: w.Content, Sig: w.Sig}
	case "OK":
		if len(parts) < 3 {
			return Message{}, fmt.Errorf("%w: OK has %d elements", ErrMalformed, len(parts))
		}
		if err := str(1, &m.EventID); err != nil {
			return Message{}, err
		}
		if err := json.Unmarshal(parts[2], &m.OK); err != nil {
			return Message{}, fmt.Errorf("%w: OK: status: %w", ErrMalformed, err)
		}
		if len(parts) > 3 {
			if err := str(3, &m.Reason); err != nil {
				return Message{}, err
			}
		}
	case "EOSE":
		if err := str(1, &m.SubID); err != nil {
			return Message{}, err
		}
	case "CLOSED":
		if err := str(1, &m.SubID); err != nil {
			return Message{}, err
		}
		if len(parts) > 2 {
			if err := str(2, &m.Reason); err != nil {
				return Message{}, err
			}
		}
	case "NOTICE":
		if err := str(1, &m.Reason); err != nil {
			return Message{}, err
		}
	case "AUTH":
		if err := str(1, &m.Challenge); err != nil {
			return Message{}, err
		}
	default:
		return Message{}, fmt.Errorf("%w: unknown label %s", ErrMalformed, Excerpt(m.Label, 32))
	}
	return m, nil
}

// Excerpt makes text from a relay safe for one log attribute: at most n
// bytes of it, with quotes, backslashes, control and non-ASCII characters
// escaped as in a Go string (so a newline can never start a line of its
// own in the log, whatever the handler), and "…" when it was cut.
func Excerpt(s string, n int) string {
	cut := len(s) > n
	if cut {
		s = s[:n]
	}
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	if cut {
		q += "…"
	}
	return q
}

// EventFrame is an event encoded once as the client's NIP-01 EVENT
// message, ["EVENT", <event>], so that publishing it to several relays,
// and again after a refusal, writes the same bytes instead of encoding it
// each time (issue 15: an answer goes to every relay of the bot). The
// event is encoded by go-nostr's generated encoder, not through
// encoding/json, which would re-scan the encoder's output.
type EventFrame struct {
	Event *nostr.Event
	data  []byte
}

// NewEventFrame encodes ev. The error is the encoder's (it has none for an
// event with valid UTF-8 strings).
func NewEventFrame(ev *nostr.Event) (*EventFrame, error) {
	b, err := ev.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	data := make([]byte, 0, len(b)+len(`["EVENT",]`))
	data = append(data, `["EVENT",`...)
	data = append(data, b...)
	data = append(data, ']')
	return &EventFrame{Event: ev, data: data}, nil
}

// Bytes is the encoded message; callers must not change it.
func (f *EventFrame) Bytes() []byte { return f.data }
