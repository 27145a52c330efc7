package bot

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// dmVerb is what a direct message asks for.
type dmVerb int

const (
	verbNone    dmVerb = iota // not a command
	verbHelp                  // help
	verbRestart               // restart <room>
	verbStatus                // status <room>
)

func (v dmVerb) String() string {
	switch v {
	case verbHelp:
		return "help"
	case verbRestart:
		return "restart"
	case verbStatus:
		return "status"
	}
	return "none"
}

// action is the request action a room command maps to.
func (v dmVerb) action() string {
	if v == verbStatus {
		return nostrx.ActionStatus
	}
	return nostrx.ActionRestart
}

// dmParsed is a direct message read as a command.
type dmParsed struct {
	verb   dmVerb
	room   nostrx.Coordinate // restart and status: the room, when it could be read
	err    error             // restart and status: a BAD_REQUEST when it could not
	noRoom bool              // restart and status: no room was given at all
	bad    string            // restart and status: the address that could not be read
	why    string            // and why
}

// maxCommandText is how much of a message is read as a command; a room
// address is well under it.
const maxCommandText = 4096

// parseDMCommand reads a typed command, forgiving about case, spacing,
// slash or bang prefixes, a leading mention, "nostr:" prefixes (also with a
// space after the colon), quotes or brackets around the address, trailing
// punctuation, and words between the verb and the room:
//
//	restart <room>   status <room>   help
//
// where <room> is anything nostrx.ParseRoomAddress accepts. Anything else
// is verbNone.
func parseDMCommand(text string) dmParsed {
	if len(text) > maxCommandText {
		text = text[:maxCommandText]
	}
	fields := strings.Fields(text)
	for len(fields) > 0 && isMention(fields[0]) {
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return dmParsed{}
	}
	word := strings.ToLower(fields[0])
	if word == "?" {
		return dmParsed{verb: verbHelp}
	}
	word = strings.TrimRight(strings.TrimLeft(word, "/!"), ":,.!?")
	var p dmParsed
	switch word {
	case "help":
		return dmParsed{verb: verbHelp}
	case "restart":
		p.verb = verbRestart
	case "status":
		p.verb = verbStatus
	default:
		return dmParsed{}
	}

	var args []string
	for i := 1; i < len(fields); i++ {
		f := fields[i]
		if strings.EqualFold(f, "nostr:") && i+1 < len(fields) {
			f += fields[i+1]
			i++
		}
		if f = cleanRoomToken(f); f != "" {
			args = append(args, f)
		}
	}
	if len(args) == 0 {
		p.noRoom = true
		p.err = nostrx.Refuse(nostrx.CodeBadRequest, "no room given")
		return p
	}
	var firstErr error
	for _, a := range args {
		c, err := nostrx.ParseRoomAddress(a)
		if err == nil {
			p.room = c
			return p
		}
		if firstErr == nil {
			firstErr = err
			p.bad, p.why = a, err.Error()
			var ae *nostrx.AddressError
			if errors.As(err, &ae) {
				p.why = ae.Reason
			}
		}
	}
	p.err = nostrx.Refuse(nostrx.CodeBadRequest, "%s", firstErr.Error())
	return p
}

// isMention is a leading "@name", npub or nprofile some clients put before
// the text.
func isMention(f string) bool {
	l := strings.ToLower(f)
	if strings.HasPrefix(l, "@") {
		return true
	}
	l = strings.TrimPrefix(l, "nostr:")
	return strings.HasPrefix(l, "npub1") || strings.HasPrefix(l, "nprofile1")
}

// cleanRoomToken strips quotes, brackets and trailing punctuation a human
// may type around an address, and lowercases the author of a coordinate.
func cleanRoomToken(f string) string {
	f = strings.Trim(f, "<>()[]{}\"'`“”‘’«»")
	f = strings.TrimRight(f, ",;!?")
	if strings.HasPrefix(f, "30312:") {
		// d may end with a dot; the author is hex, which case does not change.
		if parts := strings.SplitN(f, ":", 3); len(parts) == 3 {
			f = parts[0] + ":" + strings.ToLower(parts[1]) + ":" + parts[2]
		}
		return f
	}
	return strings.TrimRight(f, ".")
}

// helpText is the answer to "help" and, now and then, to anything that is
// not a command. It starts with no command word, so a bot like this one
// that reads it does not take it for a command.
func helpText() string {
	return "I restart Nostr audio rooms (nests). Send me one of these:\n\n" +
		"restart <room> — restart a room you host or administer\n" +
		"status <room> — whether the room is live and how many are in it\n" +
		"help — this text\n\n" +
		"<room> is the room's naddr1… (with or without nostr:), a link that contains it, or 30312:<host's hex pubkey>:<d>."
}

// webLink is the room's page in the web client.
func (s *Service) webLink(naddr string) string {
	return strings.TrimRight(s.cfg.Nests.WebURL, "/") + "/" + naddr
}

func (s *Service) roomLinks(naddr string) string {
	return "nostr:" + naddr + "\n" + s.webLink(naddr)
}

// resultText puts a successful answer in plain words. A restart result's
// LiveKit token is deliberately left out: a DM is no place for it, and the
// room's address is enough to rejoin from any client.
func (s *Service) resultText(p nostrx.Payload) (string, error) {
	switch p.ResultType {
	case nostrx.ActionStatus:
		var r nostrx.StatusResult
		if err := json.Unmarshal(p.Result, &r); err != nil {
			return "", fmt.Errorf("status result: %w", err)
		}
		var b strings.Builder
		if r.Live {
			people := "people are"
			if r.Participants == 1 {
				people = "person is"
			}
			fmt.Fprintf(&b, "Room %s is live: %d %s in it.", r.RoomID, r.Participants, people)
		} else {
			fmt.Fprintf(&b, "Room %s is not running right now.", r.RoomID)
		}
		if r.Record {
			b.WriteString(" Its Nests record is there.")
		} else {
			b.WriteString(" Its Nests record is gone; restarting it recreates the room under a new ID.")
		}
		if r.RestartedAt > 0 {
			fmt.Fprintf(&b, " Last restarted %s.", time.UnixMilli(r.RestartedAt).UTC().Format("2006-01-02 15:04:05 UTC"))
		}
		b.WriteString("\n\n" + s.roomLinks(r.Naddr))
		return b.String(), nil
	default:
		var r nostrx.RestartResult
		if err := json.Unmarshal(p.Result, &r); err != nil {
			return "", fmt.Errorf("restart result: %w", err)
		}
		links := s.roomLinks(r.Naddr)
		switch {
		case r.Message == rooms.MsgCoolDown:
			return "That room was restarted moments ago, so I left it running. Rejoin it here:\n\n" + links, nil
		case r.Message == rooms.MsgRecreated:
			return "Done: the room was gone, so I recreated it under a new room ID. Its new address:\n\n" + links +
				"\n\nThe old address no longer works; share this one.\n\n" +
				"For now I hold the room: its event is signed by me, so only I can change it. To take it over, publish " +
				"the room under your own key with the same room ID (d tag " + r.RoomID + "): `nestbot restart` does it " +
				"for you, and so does a client that adopts restarted rooms. Once I see your version, I close mine with " +
				"a pointer to yours, and your version decides the room's title, speakers and admins.", nil
		case r.IsNewRoom:
			return "Done: that room had already been replaced by a new one, and I restarted the new one. Rejoin it here:\n\n" + links, nil
		default:
			return "Done: your room is restarted. Everyone can rejoin it now:\n\n" + links, nil
		}
	}
}

// refusalText puts an error code in plain words. The bot's own one-line
// reasons are for client code; a person gets a sentence per code, and the
// address problem when that is what went wrong.
func (s *Service) refusalText(sender string, code nostrx.Code, reason string, p dmParsed) string {
	switch code {
	case nostrx.CodeUnauthorized:
		if !s.serves(sender) {
			return "Sorry, this bot does not take commands from your pubkey."
		}
		what := "restart it"
		if p.verb == verbStatus {
			what = "tell you its status"
		}
		return "Sorry, you are not the host or an admin of that room, so I cannot " + what + "."
	case nostrx.CodeBadRequest:
		if p.noRoom {
			return "Which room? Send \"" + p.verb.String() + " <room>\", where <room> is the room's naddr1…, nostr:naddr1…, a link that contains it, or 30312:<host's hex pubkey>:<d>."
		}
		bad := p.bad
		if len(bad) > 80 {
			bad = bad[:80] + "…"
		}
		return fmt.Sprintf("Sorry, I could not read the room address %q: %s. Send the room's naddr1…, nostr:naddr1…, "+
			"a link that contains it, or 30312:<host's hex pubkey>:<d>.", bad, p.why)
	case nostrx.CodeRateLimited:
		// Two limits answer this: the requester's own and the bot's
		// budget of new rooms; the reason says which.
		return fmt.Sprintf("Slow down: %s. Try again in a minute.", reason)
	case nostrx.CodeNotFound:
		if where, ok := hostedWhere(reason); ok {
			return "Sorry, that room is hosted elsewhere (" + where + "), not by the service this bot looks after, " +
				"so I cannot restart it or tell its status. Ask whoever runs that service."
		}
		return "Sorry, I could not find that room."
	case nostrx.CodeNotImplemented:
		return "Sorry, I cannot do that. Send \"help\" to see what I can do."
	case nostrx.CodeUnavailable:
		return "Sorry, a service I need is not answering right now. Please try again in a minute."
	default:
		return "Sorry, something went wrong on my side. Please try again later."
	}
}

// hostedWhere reads where a room lives from the engine's "hosted
// elsewhere (…)" NOT_FOUND reason.
func hostedWhere(reason string) (string, bool) {
	const mark = "hosted elsewhere ("
	i := strings.Index(reason, mark)
	j := strings.LastIndex(reason, ")")
	if i < 0 || j < i+len(mark) {
		return "", false
	}
	where := reason[i+len(mark) : j]
	if len(where) > 200 {
		where = where[:200] + "…"
	}
	return where, true
}
