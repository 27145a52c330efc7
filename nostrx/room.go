package nostrx

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
)

// Role is a participant's standing in a room, ordered so that a higher value
// includes the powers of a lower one.
type Role int

// Roles in increasing order of power.
const (
	RoleNone Role = iota
	RoleSpeaker
	RoleAdmin
	RoleHost
)

// String is the capitalised form clients write in "p" tags.
func (r Role) String() string {
	switch r {
	case RoleHost:
		return "Host"
	case RoleAdmin:
		return "Admin"
	case RoleSpeaker:
		return "Speaker"
	}
	return ""
}

// ParseRole reads a "p" tag role in either vocabulary, ignoring case:
// host/owner, admin/moderator, speaker.
func ParseRole(s string) Role {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "host", "owner":
		return RoleHost
	case "admin", "moderator":
		return RoleAdmin
	case "speaker":
		return RoleSpeaker
	}
	return RoleNone
}

// Room statuses after normalisation. The LiveKit-era vocabulary (live,
// planned, ended) is mapped the way Amethyst and nostr.blue read it.
const (
	StatusOpen    = "open"
	StatusPrivate = "private"
	StatusClosed  = "closed"
	StatusPlanned = "planned"
)

func normaliseStatus(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "open", "live":
		return StatusOpen
	case "private":
		return StatusPrivate
	case "closed", "ended":
		return StatusClosed
	case "planned":
		return StatusPlanned
	}
	return ""
}

// Bounds on what the bot reads from a room event and copies into the
// events it publishes (issue 9: a stranger's room event must not make the
// bot store or send megabytes). Values over a byte bound are truncated
// (names, summaries) or dropped (URLs, tags); lists keep their first
// entries. Roles are never dropped: the host and admins decide who may act.
const (
	// MaxRoomEventBytes: a room event whose tags and content add up to more
	// bytes than this is ignored, as if none had been found. NIP-53 rooms
	// list up to about 1,000 participants: about 110 KB of "p" tags.
	MaxRoomEventBytes = 256 << 10
	MaxTitleBytes     = 256  // room name, truncated
	MaxSummaryBytes   = 2000 // summary, truncated
	MaxURLBytes       = 1024 // image, service, streaming URLs: longer ones are dropped
	MaxColorBytes     = 64
	MaxTopics         = 16 // "t" tags
	MaxTopicBytes     = 64
	MaxRoomRelays     = 8   // URLs in the "relays" tag
	MaxRelayURLBytes  = 256 // longer relay URLs are dropped
	MaxStreaming      = 8   // "streaming"/"endpoint" values read
	// MaxSpeakerTags bounds the Speaker "p" tags of an event the bot
	// publishes; the host and every admin are always written.
	MaxSpeakerTags = 1000
	// Tags the bot copies verbatim from the original (see CopiedTags).
	MaxCopiedTags      = 32
	MaxCopiedTagFields = 8
	MaxCopiedTagBytes  = 1024 // per field
)

// RoomEventBytes approximates ev's serialized size from its content and tag
// values, without encoding it.
func RoomEventBytes(ev *nostr.Event) int {
	n := len(ev.Content) + 200
	for _, t := range ev.Tags {
		n += 3
		for _, v := range t {
			n += len(v) + 3
		}
	}
	return n
}

// Vocabulary is the family of words a room event was written in, so that
// the bot writes its own tags the way the room's clients read them: the
// current Nests client lists only live/planned/ended rooms and compares
// role words exactly.
type Vocabulary struct {
	// Live: status words live/planned/ended (nostrnests, Amethyst) rather
	// than NIP-53's open/private/closed.
	Live bool
	// LowerRoles: role words host/admin/speaker rather than Host/Admin/Speaker.
	LowerRoles bool
}

// StatusWord is how status (one of the Status constants) is written in v.
func (v Vocabulary) StatusWord(status string) string {
	if status == "" {
		status = StatusOpen
	}
	if v.Live {
		switch status {
		case StatusOpen:
			return "live"
		case StatusClosed:
			return "ended"
		}
	}
	return status
}

// RoleWord is how r is written in v's "p" tags.
func (v Vocabulary) RoleWord(r Role) string {
	if v.LowerRoles {
		return strings.ToLower(r.String())
	}
	return r.String()
}

// vocabularyOf reads the family from an event's own words: its status tag
// and its first "p" tag with a known role. Unknown words leave the default
// (NIP-53's open/closed, capitalised roles).
func vocabularyOf(tags nostr.Tags) Vocabulary {
	var v Vocabulary
	statusSeen, roleSeen := false, false
	for _, t := range tags {
		if len(t) < 2 {
			continue
		}
		switch {
		case t[0] == "status" && !statusSeen:
			statusSeen = true
			switch strings.ToLower(strings.TrimSpace(t[1])) {
			case "live", "ended", "planned":
				v.Live = true
			}
		case t[0] == "p" && !roleSeen && len(t) >= 4 && ParseRole(t[3]) != RoleNone:
			roleSeen = true
			v.LowerRoles = t[3] == strings.ToLower(t[3])
		}
	}
	return v
}

// ownedTags are the tags the bot writes itself in every room event it
// publishes, from its own state or from the original's fields read with
// the bounds above. Every other tag of the original is copied as it is
// (CopiedTags). docs/protocol.md lists both.
var ownedTags = map[string]bool{
	"d": true, "room": true, "title": true, "summary": true, "image": true, "color": true, "t": true,
	"status": true, "service": true, "streaming": true, "starts": true, "relays": true, "p": true,
	"a": true, "alt": true,
	// Dropped: they name the original's media and auth servers (the bot
	// writes its own service and streaming), an expiry the replacement must
	// not inherit, and NIP-70's "-", which relays honour only from the author.
	"auth": true, "endpoint": true, "expiration": true, "-": true,
}

// CopiedTags are the tags of ev the bot does not own, in their order,
// bounded: at most MaxCopiedTags tags of at most MaxCopiedTagFields fields
// of at most MaxCopiedTagBytes bytes each; a tag over a bound is dropped
// whole, never cut. Amethyst's look and schedule (c, bg, f, ends,
// recording) travel this way.
func CopiedTags(tags nostr.Tags) nostr.Tags {
	var out nostr.Tags
	for _, t := range tags {
		if len(out) == MaxCopiedTags {
			break
		}
		if len(t) == 0 || t[0] == "" || ownedTags[t[0]] || len(t) > MaxCopiedTagFields {
			continue
		}
		ok := true
		for _, v := range t {
			if len(v) > MaxCopiedTagBytes {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, slices.Clone(t))
		}
	}
	return out
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// RoomEvent is a kind 30312 event read in both vocabularies in use.
type RoomEvent struct {
	Event     *nostr.Event
	Room      Coordinate
	Title     string
	Summary   string
	Image     string
	Color     string
	Status    string // normalised; empty when absent or unknown
	Service   string
	Streaming []string
	Topics    []string
	Relays    []string
	Roles     map[string]Role // highest role per pubkey, from "p" tags
	Starts    int64           // "starts", unix seconds; 0 when absent
	Vocab     Vocabulary      // the words the event was written in
	Extra     nostr.Tags      // tags the bot does not own, see CopiedTags
	// Places are the event's "service", "auth", "streaming" and "endpoint"
	// values as written (at most MaxStreaming, each at most MaxURLBytes):
	// where the room is hosted.
	Places []string

	spec RoomSpec // the event read back exactly, see Spec
}

// ParseRoomEvent reads a 30312 leniently, in both vocabularies in use and
// within the bounds above, to decide who may act; its Spec is the same
// event read back exactly (see SpecFromEvent). It does not verify the
// signature: callers that got the event from a relay must Verify it
// first. Errors: ErrWrongKind for another kind, an *AddressError-carrying
// error for an author or d that is not a valid coordinate.
func ParseRoomEvent(ev *nostr.Event) (*RoomEvent, error) {
	if ev.Kind != KindRoom {
		return nil, fmt.Errorf("room event: %w: kind %d", ErrWrongKind, ev.Kind)
	}
	coord, err := newCoordinate(ev.ID, ev.Kind, ev.PubKey, ev.Tags.GetD(), nil)
	if err != nil {
		return nil, fmt.Errorf("room event %s: %w", ev.ID, err)
	}
	r := parseRoom(ev)
	r.Room = coord
	return r, nil
}

// parseRoom is the one walk over a 30312's tags. Each tag is read twice
// over, side by side: leniently into RoomEvent's fields (first value
// wins, bounded, both vocabularies, relays filtered, "p" tags only with a
// hex pubkey, "auth" and "endpoint" read as places) and exactly into spec
// (values as written, roles in tag order) for the round trip of the bot's
// own events.
func parseRoom(ev *nostr.Event) *RoomEvent {
	r := &RoomEvent{Event: ev, Roles: map[string]Role{}}
	s := &r.spec
	s.D = ev.Tags.GetD()
	var name, title string
	for _, t := range ev.Tags {
		if len(t) < 2 {
			continue
		}
		v := t[1]
		switch t[0] {
		case "room":
			name = first(name, v)
		case "title":
			title = first(title, v)
		case "summary":
			r.Summary = first(r.Summary, truncateUTF8(v, MaxSummaryBytes))
			s.Summary = first(s.Summary, v)
		case "image":
			if len(v) <= MaxURLBytes {
				r.Image = first(r.Image, v)
			}
			s.Image = first(s.Image, v)
		case "color":
			if len(v) <= MaxColorBytes {
				r.Color = first(r.Color, v)
			}
			s.Color = first(s.Color, v)
		case "status":
			r.Status = first(r.Status, normaliseStatus(v))
		case "starts":
			if r.Starts == 0 {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
					r.Starts = n
				}
			}
			if s.Starts == 0 {
				s.Starts, _ = strconv.ParseInt(v, 10, 64)
			}
		case "service", "auth":
			r.addPlace(v)
			if len(v) <= MaxURLBytes && isHTTPURL(v) {
				r.Service = first(r.Service, v)
			}
			if t[0] == "service" {
				s.Service = first(s.Service, v)
			}
		case "streaming", "endpoint":
			r.addPlace(v)
			if len(v) <= MaxURLBytes && len(r.Streaming) < MaxStreaming && !slices.Contains(r.Streaming, v) {
				r.Streaming = append(r.Streaming, v)
			}
			if t[0] == "streaming" {
				s.Streaming = first(s.Streaming, v)
			}
		case "t":
			if len(v) <= MaxTopicBytes && len(r.Topics) < MaxTopics {
				r.Topics = append(r.Topics, v)
			}
			s.Topics = append(s.Topics, v)
		case "relays":
			for _, u := range t[1:] {
				if len(r.Relays) < MaxRoomRelays && len(u) <= MaxRelayURLBytes && ValidRelayURL(u) && !slices.Contains(r.Relays, u) {
					r.Relays = append(r.Relays, u)
				}
			}
			if s.Relays == nil {
				s.Relays = append([]string{}, t[1:]...)
			}
		case "p":
			role := RoleNone
			if len(t) >= 4 {
				role = ParseRole(t[3])
			}
			if isLowerHex64(v) && role > r.Roles[v] {
				r.Roles[v] = role
			}
			switch role {
			case RoleHost:
				if s.Host == "" {
					s.Host = v
				} else {
					s.Admins = append(s.Admins, v)
				}
			case RoleAdmin:
				s.Admins = append(s.Admins, v)
			case RoleSpeaker:
				s.Speakers = append(s.Speakers, v)
			}
		case "a":
			c, err := ParseCoordinate(v)
			if err != nil {
				continue
			}
			switch {
			case len(t) >= 4 && t[3] == "successor":
				if s.Successor == nil {
					s.Successor = &c
				}
			case c.D == s.D && c.Author != ev.PubKey:
				if s.AdoptedBy == nil {
					s.AdoptedBy = &c
				}
			case s.Replaces == nil:
				s.Replaces = &c
			}
		}
	}
	r.Title = truncateUTF8(first(name, title), MaxTitleBytes)
	r.Vocab = vocabularyOf(ev.Tags)
	r.Extra = CopiedTags(ev.Tags)
	s.Title, s.Status, s.Vocab, s.Extra = first(name, title), r.Status, r.Vocab, r.Extra
	return r
}

// Expired reports whether ev carries a NIP-40 expiration at or before now.
// An unreadable expiration counts as passed, as for requests: an event
// whose deadline cannot be read proves nothing. Relays keep serving expired
// events until they sweep them, so readers must check themselves.
func Expired(ev *nostr.Event, now time.Time) bool {
	exp, ok, err := expiration(ev.Tags)
	return err != nil || (ok && !exp.Time().After(now))
}

func (r *RoomEvent) addPlace(v string) {
	if len(v) <= MaxURLBytes && len(r.Places) < MaxStreaming && !slices.Contains(r.Places, v) {
		r.Places = append(r.Places, v)
	}
}

// RoleOf is the role a pubkey holds in the room. The author is always host:
// almost every client treats the event's author as the host.
func (r *RoomEvent) RoleOf(pubkey string) Role {
	if pubkey == r.Room.Author {
		return RoleHost
	}
	return r.Roles[pubkey]
}

// Spec is the event read back exactly (see SpecFromEvent). Its slices
// are the RoomEvent's own: change them on a copy.
func (r *RoomEvent) Spec() RoomSpec { return r.spec }

// SpecFromEvent reads back the RoomSpec of a 30312 built with
// BuildRoomEvent, so that the bot can publish a new version of its own
// event (republished, or closed) that differs only where it means to:
// BuildRoomEvent(SpecFromEvent(ev), t) has ev's tags. Tags BuildRoomEvent
// never writes (a role-less "p", a second Host) are dropped. It is the
// exact half of the one parser (parseRoom), whose lenient half
// ParseRoomEvent returns; unlike ParseRoomEvent it needs no valid author,
// only kind 30312 and a d tag, so an unsigned event reads back too.
func SpecFromEvent(ev *nostr.Event) (RoomSpec, error) {
	if ev.Kind != KindRoom {
		return RoomSpec{}, fmt.Errorf("room event %s: kind %d", ev.ID, ev.Kind)
	}
	if ev.Tags.GetD() == "" {
		return RoomSpec{}, fmt.Errorf("room event %s: no d tag", ev.ID)
	}
	return parseRoom(ev).spec, nil
}

func first(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// RoomSpec is everything the bot writes into a 30312 it publishes.
type RoomSpec struct {
	D         string
	Title     string
	Summary   string
	Image     string
	Color     string
	Topics    []string
	Status    string
	Service   string
	Streaming string
	Starts    int64 // unix seconds
	Relays    []string
	Host      string
	Admins    []string
	Speakers  []string
	Replaces  *Coordinate // the room this one replaces ("a" tag)
	Successor *Coordinate // for a closed room: the room that replaced it
	// AdoptedBy: for a closed room of the bot, the host's own event for the
	// same d, which took it over (["a", "30312:<host>:<d>"]).
	AdoptedBy *Coordinate
	Vocab     Vocabulary // the words status and roles are written in
	Extra     nostr.Tags // the original's tags the bot does not own, copied (CopiedTags)
}

// DefaultRoomTitle names a recreated room whose original name is unknown.
const DefaultRoomTitle = "Restarted Nest"

// BuildRoomEvent renders a RoomSpec as an unsigned 30312. It writes both
// "room" and "title", so readers of either vocabulary see the name, and one
// "p" tag per pubkey with its highest role, because almost every client
// treats the author (here the bot) as host unless told otherwise.
func BuildRoomEvent(spec RoomSpec, createdAt nostr.Timestamp) nostr.Event {
	title := spec.Title
	if title == "" {
		title = DefaultRoomTitle
	}
	tags := nostr.Tags{{"d", spec.D}, {"room", title}, {"title", title}}
	if spec.Summary != "" {
		tags = append(tags, nostr.Tag{"summary", spec.Summary})
	}
	if spec.Image != "" {
		tags = append(tags, nostr.Tag{"image", spec.Image})
	}
	if spec.Color != "" {
		tags = append(tags, nostr.Tag{"color", spec.Color})
	}
	for _, t := range spec.Topics {
		tags = append(tags, nostr.Tag{"t", t})
	}
	status := spec.Status
	if status == "" {
		status = StatusOpen
	}
	tags = append(tags, nostr.Tag{"status", spec.Vocab.StatusWord(status)})
	if spec.Service != "" {
		tags = append(tags, nostr.Tag{"service", spec.Service})
	}
	if spec.Streaming != "" {
		tags = append(tags, nostr.Tag{"streaming", spec.Streaming})
	}
	tags = append(tags, nostr.Tag{"starts", strconv.FormatInt(spec.Starts, 10)})
	if len(spec.Relays) > 0 {
		tags = append(tags, append(nostr.Tag{"relays"}, spec.Relays...))
	}
	seen := map[string]bool{}
	speakers := 0
	addP := func(pk string, role Role) {
		if pk == "" || seen[pk] {
			return
		}
		if role == RoleSpeaker {
			if speakers == MaxSpeakerTags {
				return
			}
			speakers++
		}
		seen[pk] = true
		tags = append(tags, nostr.Tag{"p", pk, "", spec.Vocab.RoleWord(role)})
	}
	addP(spec.Host, RoleHost)
	for _, pk := range spec.Admins {
		addP(pk, RoleAdmin)
	}
	for _, pk := range spec.Speakers {
		addP(pk, RoleSpeaker)
	}
	if spec.Replaces != nil {
		tags = append(tags, nostr.Tag{"a", spec.Replaces.String()})
	}
	if spec.Successor != nil {
		tags = append(tags, nostr.Tag{"a", spec.Successor.String(), "", "successor"})
	}
	if spec.AdoptedBy != nil {
		tags = append(tags, nostr.Tag{"a", spec.AdoptedBy.String()})
	}
	tags = append(tags, CopiedTags(spec.Extra)...)
	alt := "Audio room: " + title
	if status == StatusClosed {
		alt = "Closed audio room: " + title
	}
	tags = append(tags, nostr.Tag{"alt", alt})
	return nostr.Event{Kind: KindRoom, CreatedAt: createdAt, Tags: tags}
}

// LiveKitEndpoint turns the LiveKit URL clients connect to into the
// endpoint form Nests clients expect: wss+livekit://host[:port] for wss and
// https, ws+livekit://host[:port] for ws and http. Unlike the Nests API
// server it never produces "wss+livekit://http://…".
func LiveKitEndpoint(publicURL string) (string, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" {
		return "", fmt.Errorf("livekit public url %q: not an absolute URL", publicURL)
	}
	switch u.Scheme {
	case "wss", "https":
		return "wss+livekit://" + u.Host, nil
	case "ws", "http":
		return "ws+livekit://" + u.Host, nil
	}
	return "", fmt.Errorf("livekit public url %q: scheme must be ws, wss, http or https", publicURL)
}
