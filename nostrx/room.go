package nostrx

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

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
}

// ParseRoomEvent reads a 30312. It does not verify the signature: callers
// that got the event from a relay must Verify it first.
func ParseRoomEvent(ev *nostr.Event) (*RoomEvent, error) {
	if ev.Kind != KindRoom {
		return nil, fmt.Errorf("room event: %w: kind %d", ErrWrongKind, ev.Kind)
	}
	coord, err := newCoordinate(ev.ID, ev.Kind, ev.PubKey, ev.Tags.GetD(), nil)
	if err != nil {
		return nil, fmt.Errorf("room event %s: %w", ev.ID, err)
	}
	r := &RoomEvent{Event: ev, Room: coord, Roles: map[string]Role{}}
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
			r.Summary = first(r.Summary, v)
		case "image":
			r.Image = first(r.Image, v)
		case "color":
			r.Color = first(r.Color, v)
		case "status":
			r.Status = first(r.Status, normaliseStatus(v))
		case "service", "auth":
			if isHTTPURL(v) {
				r.Service = first(r.Service, v)
			}
		case "streaming", "endpoint":
			if !slices.Contains(r.Streaming, v) {
				r.Streaming = append(r.Streaming, v)
			}
		case "t":
			r.Topics = append(r.Topics, v)
		case "relays":
			for _, u := range t[1:] {
				if ValidRelayURL(u) && !slices.Contains(r.Relays, u) {
					r.Relays = append(r.Relays, u)
				}
			}
		case "p":
			if !isLowerHex64(v) {
				continue
			}
			role := RoleNone
			if len(t) >= 4 {
				role = ParseRole(t[3])
			}
			if role > r.Roles[v] {
				r.Roles[v] = role
			}
		}
	}
	r.Title = first(name, title)
	return r, nil
}

// Expired reports whether ev carries a NIP-40 expiration at or before now.
// An unreadable expiration counts as passed, as for requests: an event
// whose deadline cannot be read proves nothing. Relays keep serving expired
// events until they sweep them, so readers must check themselves.
func Expired(ev *nostr.Event, now time.Time) bool {
	exp, ok, err := expiration(ev.Tags)
	return err != nil || (ok && !exp.Time().After(now))
}

// RoleOf is the role a pubkey holds in the room. The author is always host:
// almost every client treats the event's author as the host.
func (r *RoomEvent) RoleOf(pubkey string) Role {
	if pubkey == r.Room.Author {
		return RoleHost
	}
	return r.Roles[pubkey]
}

// Hosts lists the pubkeys with the Host role, the author first.
func (r *RoomEvent) Hosts() []string {
	out := []string{r.Room.Author}
	for pk, role := range r.Roles {
		if role == RoleHost && pk != r.Room.Author {
			out = append(out, pk)
		}
	}
	slices.Sort(out[1:])
	return out
}

// SpecFromEvent reads back the RoomSpec of a 30312 built with
// BuildRoomEvent, so that the bot can publish a new version of its own
// event (republished, or closed) that differs only where it means to:
// BuildRoomEvent(SpecFromEvent(ev), t) has ev's tags. Tags BuildRoomEvent
// never writes (a role-less "p", a second Host) are dropped. Unlike
// ParseRoomEvent, which reads anyone's event leniently (both vocabularies,
// filtered relays) to decide who may act, it keeps values as written.
func SpecFromEvent(ev *nostr.Event) (RoomSpec, error) {
	var s RoomSpec
	if ev.Kind != KindRoom {
		return s, fmt.Errorf("room event %s: kind %d", ev.ID, ev.Kind)
	}
	s.D = ev.Tags.GetD()
	if s.D == "" {
		return s, fmt.Errorf("room event %s: no d tag", ev.ID)
	}
	var room, title string
	for _, t := range ev.Tags {
		if len(t) < 2 {
			continue
		}
		v := t[1]
		switch t[0] {
		case "room":
			room = first(room, v)
		case "title":
			title = first(title, v)
		case "summary":
			s.Summary = first(s.Summary, v)
		case "image":
			s.Image = first(s.Image, v)
		case "color":
			s.Color = first(s.Color, v)
		case "t":
			s.Topics = append(s.Topics, v)
		case "status":
			s.Status = first(s.Status, v)
		case "service":
			s.Service = first(s.Service, v)
		case "streaming":
			s.Streaming = first(s.Streaming, v)
		case "starts":
			if s.Starts == 0 {
				s.Starts, _ = strconv.ParseInt(v, 10, 64)
			}
		case "relays":
			if s.Relays == nil {
				s.Relays = append([]string{}, t[1:]...)
			}
		case "p":
			if len(t) < 4 {
				continue
			}
			switch ParseRole(t[3]) {
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
			if len(t) >= 4 && t[3] == "successor" {
				if s.Successor == nil {
					s.Successor = &c
				}
			} else if s.Replaces == nil {
				s.Replaces = &c
			}
		}
	}
	s.Title = first(room, title)
	return s, nil
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
	tags = append(tags, nostr.Tag{"status", status})
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
	addP := func(pk string, role Role) {
		if pk == "" || seen[pk] {
			return
		}
		seen[pk] = true
		tags = append(tags, nostr.Tag{"p", pk, "", role.String()})
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
