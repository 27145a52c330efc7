package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// errNotAccepted marks a room event no relay accepted (as opposed to one
// that could not be signed).
var errNotAccepted = errors.New("no relay accepted the room event")

// RoomPublisher signs and publishes the bot's own 30312 events (NIP-53
// rooms, built by nostrx.BuildRoomEvent): the one publisher of room events,
// for Engine's restarts and the upkeep of the bot's rooms alike.
type RoomPublisher struct {
	Signer Signer
	Events RoomEvents
	Relays []string // the bot's relays; each event also goes to its room's relays
}

// Publish signs the version of spec that follows last (nil: the first):
// its created_at is now in unix seconds when that is above last's, else
// last's + 1, because a relay keeps only the newest version of an
// addressable event. It publishes it to the bot's relays and spec.Relays
// (each once) and returns it once at least one relay accepted it; the
// error otherwise is RoomEvents.Publish's or the signer's. It does not
// save it as the last event: the caller does, with its other writes.
func (p RoomPublisher) Publish(ctx context.Context, spec nostrx.RoomSpec, last *nostr.Event, now time.Time) (*nostr.Event, error) {
	ev := nostrx.BuildRoomEvent(spec, nextCreatedAt(now, last))
	if err := p.Signer.Sign(&ev); err != nil {
		return nil, err
	}
	relays := slices.Clip(p.Relays)
	for _, r := range spec.Relays {
		if !slices.Contains(relays, r) {
			relays = append(relays, r)
		}
	}
	if err := p.Events.Publish(ctx, &ev, relays); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotAccepted, err)
	}
	return &ev, nil
}
