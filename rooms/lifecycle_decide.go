package rooms

import (
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// The lifecycle of the rooms whose 30312 the bot published: what each room
// needs, decided from its last event, its LiveKit room and its successor.
// bot/lifecycle.go runs the loop that reads those, applies the decision
// under the room's lock, and decides again there before it publishes.

// LifecycleAction is what a room needs.
type LifecycleAction int

const (
	ActKeep          LifecycleAction = iota // nothing to do
	ActRepublish                            // occupied and its event is getting old
	ActCloseGone                            // the LiveKit room is gone
	ActCloseReplaced                        // a newer room replaced it
	ActForget                               // not the bot's open room: drop from the index
	ActAdopted                              // its host published their own event for it
)

func (a LifecycleAction) String() string {
	return [...]string{"keep", "republish", "close_gone", "close_replaced", "forget", "adopted"}[a]
}

// DecideLifecycle is the rule, given the room's last event (nil if none),
// its LiveKit room (nil if gone) and its successor's d ("" if none).
func DecideLifecycle(bot string, last *nostr.Event, live *LiveRoom, successor string, now time.Time, every time.Duration) LifecycleAction {
	if last == nil || last.PubKey != bot || last.Kind != nostrx.KindRoom {
		return ActForget
	}
	if roomStatus(last) == nostrx.StatusClosed {
		return ActForget
	}
	d := last.Tags.GetD()
	if successor != "" && successor != d {
		return ActCloseReplaced
	}
	if live == nil {
		return ActCloseGone
	}
	if live.Participants > 0 && now.Sub(last.CreatedAt.Time()) >= every {
		return ActRepublish
	}
	return ActKeep
}

func roomStatus(ev *nostr.Event) string {
	r, err := nostrx.ParseRoomEvent(ev)
	if err != nil {
		return ""
	}
	return r.Status
}

// SuccessorsByTag finds, among the bot's open rooms, those that name an
// older room of the bot in their "a" tag: predecessor d → successor d (the
// newest successor wins).
func SuccessorsByTag(bot string, lasts map[string]*nostr.Event) map[string]string {
	out := map[string]string{}
	newest := map[string]nostr.Timestamp{}
	for d, ev := range lasts {
		if ev.PubKey != bot || roomStatus(ev) == nostrx.StatusClosed {
			continue
		}
		spec, err := nostrx.SpecFromEvent(ev)
		if err != nil || spec.Replaces == nil || spec.Replaces.Author != bot || spec.Replaces.D == d {
			continue
		}
		p := spec.Replaces.D
		if ev.CreatedAt > newest[p] || (ev.CreatedAt == newest[p] && d < out[p]) {
			out[p], newest[p] = d, ev.CreatedAt
		}
	}
	return out
}

// OwnOpenRoom reports whether ev is a room event of the bot's (bot is its
// hex pubkey) that is not closed: a room the lifecycle looks after.
func OwnOpenRoom(bot string, ev *nostr.Event) bool {
	return ev != nil && ev.PubKey == bot && ev.Kind == nostrx.KindRoom && roomStatus(ev) != nostrx.StatusClosed
}
