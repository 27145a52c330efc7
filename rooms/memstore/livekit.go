package memstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// LiveKit is an in-memory rooms.LiveKit: rooms by name, each created room
// with a SID never used before (RM_1, RM_2, …) and a creation time
// (CreatedMs) later than every earlier room's, an existing name's create
// returning the room untouched, as LiveKit's CreateRoom does. Its clock
// is a counter: room RM_n was created at n ms.
type LiveKit struct {
	// Fail, when set, is called with "find", "create" or "delete" before
	// each of those steps (Recreate is a delete, then a create); an error
	// it returns fails the step, wrapped in rooms.ErrUnavailable as a
	// LiveKit that does not answer is.
	Fail func(op string) error

	mu    sync.Mutex
	rooms map[string]rooms.LiveRoom
	sids  int
}

var _ rooms.LiveKit = (*LiveKit)(nil)

// NewLiveKit makes a LiveKit with no rooms.
func NewLiveKit() *LiveKit { return &LiveKit{rooms: map[string]rooms.LiveRoom{}} }

func (l *LiveKit) fail(op, name string) error {
	if l.Fail == nil {
		return nil
	}
	if err := l.Fail(op); err != nil {
		return fmt.Errorf("livekit %s room %s: %w: %w", op, name, rooms.ErrUnavailable, err)
	}
	return nil
}

// Rooms returns a copy of every room by name.
func (l *LiveKit) Rooms() map[string]rooms.LiveRoom {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]rooms.LiveRoom, len(l.rooms))
	for k, v := range l.rooms {
		out[k] = v
	}
	return out
}

// Find returns the room named name, or nil.
func (l *LiveKit) Find(ctx context.Context, name string) (*rooms.LiveRoom, error) {
	if err := l.fail("find", name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rooms[name]
	if !ok {
		return nil, nil
	}
	return &r, nil
}

// Ensure creates the room unless it exists, and returns it.
func (l *LiveKit) Ensure(ctx context.Context, name, metadata string) (*rooms.LiveRoom, error) {
	if err := l.fail("create", name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.rooms[name]
	if !ok {
		l.sids++
		r = rooms.LiveRoom{Name: name, SID: "RM_" + strconv.Itoa(l.sids), Metadata: metadata, CreatedMs: int64(l.sids)}
		l.rooms[name] = r
	}
	return &r, nil
}

// Recreate deletes the room if there is one, calls gone with the time
// after the delete (as rooms.LiveKitRooms does once calibrated: the
// rooms created from then on are new), and creates it again with a new
// SID.
func (l *LiveKit) Recreate(ctx context.Context, name, metadata string, gone func(rooms.Replaced)) (*rooms.LiveRoom, error) {
	if err := l.fail("delete", name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	delete(l.rooms, name)
	after := int64(l.sids) + 1
	l.mu.Unlock()
	if gone != nil {
		gone(rooms.Replaced{After: after})
	}
	return l.Ensure(ctx, name, metadata)
}

// Delete removes the room; a room already gone is not an error.
func (l *LiveKit) Delete(ctx context.Context, name string) error {
	if err := l.fail("delete", name); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.rooms, name)
	return nil
}

// Relays is an in-memory rooms.RoomEvents: one set of relays that
// accepts only validly signed events and keeps the newest version of each
// addressable event (NIP-01: the higher created_at, then the lower id).
type Relays struct {
	// Fail, when set, is called with "latest" or "publish" before each;
	// an error it returns fails the call as no relay answering does.
	Fail func(op string) error

	mu     sync.Mutex
	events map[string]*nostr.Event // by "<kind>:<pubkey>:<d>"
}

var _ rooms.RoomEvents = (*Relays)(nil)

// NewRelays makes relays that hold no event.
func NewRelays() *Relays { return &Relays{events: map[string]*nostr.Event{}} }

func address(ev *nostr.Event) string {
	return strconv.Itoa(ev.Kind) + ":" + ev.PubKey + ":" + ev.Tags.GetD()
}

// Put stores ev as if its author had published it.
func (r *Relays) Put(ev *nostr.Event) error {
	if ok, err := ev.CheckSignature(); !ok {
		return fmt.Errorf("relay: invalid: event %s is not validly signed: %v", ev.ID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := address(ev)
	if old := r.events[a]; old != nil && (old.CreatedAt > ev.CreatedAt || old.CreatedAt == ev.CreatedAt && old.ID < ev.ID) {
		return nil // relays keep the newest version
	}
	c := *ev
	c.Tags = slices.Clone(ev.Tags)
	r.events[a] = &c
	return nil
}

// Event returns the stored version at c, or nil.
func (r *Relays) Event(c nostrx.Coordinate) *nostr.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events[strconv.Itoa(c.Kind)+":"+c.Author+":"+c.D]
	if ev == nil {
		return nil
	}
	cp := *ev
	return &cp
}

// Count is how many addresses hold an event.
func (r *Relays) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// Latest returns the stored version at c, or nil.
func (r *Relays) Latest(ctx context.Context, c nostrx.Coordinate, relays []string) (*nostr.Event, error) {
	if r.Fail != nil {
		if err := r.Fail("latest"); err != nil {
			return nil, fmt.Errorf("query %s: %w", c, err)
		}
	}
	return r.Event(c), nil
}

// Publish stores ev, as the relays accepting it do.
func (r *Relays) Publish(ctx context.Context, ev *nostr.Event, relays []string) error {
	if r.Fail != nil {
		if err := r.Fail("publish"); err != nil {
			return fmt.Errorf("publish %s: no relay accepted it: %w", ev.ID, err)
		}
	}
	return r.Put(ev)
}
