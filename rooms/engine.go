package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// State is the storage side of Engine: room records and the bot's own
// bookkeeping, exactly the calls Engine makes. RedisStore implements it
// over Redis (keys.go lists the keys); memstore.Store implements it in
// memory, with the same semantics, for fast tests of Engine's decisions.
// Errors that may pass (the store did not answer) wrap ErrUnavailable:
// Engine retries them within its dependency budget.
type State interface {
	// Record returns room id's record, nil when there is none.
	Record(ctx context.Context, id string) (*Record, error)
	// PutRecord writes rec with the room TTL.
	PutRecord(ctx context.Context, rec *Record) error
	// Lock takes room's lock, waiting until ctx ends; ttl bounds how long
	// it is held. The func releases it.
	Lock(ctx context.Context, room string, ttl time.Duration) (func(), error)
	// LockView is Lock for c.D plus the reads Restart starts with, batched.
	LockView(ctx context.Context, c nostrx.Coordinate, ttl time.Duration) (HeldLock, RoomView, error)
	// Replacement returns the ID of the room that replaced c, or "".
	Replacement(ctx context.Context, c nostrx.Coordinate) (string, error)
	// ChoosePendingLast records newID as c's replacement-to-be unless one
	// is recorded already (the first choice wins), and returns the ID that
	// holds with the last 30312 the bot published for it (nil for none).
	ChoosePendingLast(ctx context.Context, c nostrx.Coordinate, newID string, ttl time.Duration) (string, *nostr.Event, error)
	// CoolingDown reports whether room was (re)started within its cool-down.
	CoolingDown(ctx context.Context, room string) (bool, error)
	// MarkRecreating notes that room's LiveKit room was deleted and its
	// replacement is being created; Commit clears it. mark tells the new
	// room from the old: the old room's SID ("" for none) or "at:<ms>"
	// (Replaced's two forms).
	MarkRecreating(ctx context.Context, room, mark string, ttl time.Duration) error
	// Recreating returns the mark MarkRecreating left for room, if any,
	// as it was given (a mark of an older bot is the old room's SID).
	Recreating(ctx context.Context, room string) (mark string, marked bool, err error)
	// CountNewRoom counts a recreation under a new ID in now's minute and
	// returns that minute's count, all replicas together.
	CountNewRoom(ctx context.Context, now time.Time) (int64, error)
	// LastEvent returns the last 30312 the bot published for d, or nil.
	LastEvent(ctx context.Context, d string) (*nostr.Event, error)
	// Commit applies the writes that end a restart and then releases lock
	// (when not nil), which must come from the same store.
	Commit(ctx context.Context, w Writes, lock HeldLock) error
}

// HeldLock is a room lock a State handed out (LockView). Unlock releases
// it unless Commit or an earlier Unlock already did; it is safe to call
// more than once.
type HeldLock interface{ Unlock() }

// LiveKit is the media side of Engine. LiveKitRooms implements it.
type LiveKit interface {
	Find(ctx context.Context, name string) (*LiveRoom, error)
	Ensure(ctx context.Context, name, metadata string) (*LiveRoom, error)
	// Recreate calls gone, when not nil, after the deletion of the old
	// room (possibly while the new one is being created, but before
	// Recreate returns), with what tells the new room from the old.
	Recreate(ctx context.Context, name, metadata string, gone func(Replaced)) (*LiveRoom, error)
	// Delete removes a room (gone already is not an error).
	Delete(ctx context.Context, name string) error
}

// RoomEvents is the Nostr side of Engine: reading a room's newest 30312 and
// publishing the bot's own. The bot implements it over its relays.
type RoomEvents interface {
	// Latest returns the newest verified 30312 at c from relays, or nil
	// when none answered with one in time.
	Latest(ctx context.Context, c nostrx.Coordinate, relays []string) (*nostr.Event, error)
	// Publish returns once at least one relay accepted ev.
	Publish(ctx context.Context, ev *nostr.Event, relays []string) error
}

// Signer signs the 30312 events the bot publishes.
type Signer interface {
	PublicKey() string
	Sign(ev *nostr.Event) error
}

// Settings are Engine's knobs, taken from configuration.
type Settings struct {
	Relays           []string      // the bot's relays: lookups, publishing, default room relays
	ServiceURL       string        // written into "service" tags
	Endpoint         string        // LiveKit endpoint, see nostrx.LiveKitEndpoint
	Cooldown         time.Duration // limits.room_cooldown
	DependencyBudget time.Duration // limits.dependency_timeout
	LookupTimeout    time.Duration // nostr.lookup_timeout
	// NewRoomsPerMinute bounds recreations under a new ID, all requesters
	// together (limits.new_rooms_per_minute; 0 = none). Any key may
	// recreate a room at its own coordinate, so a per-requester limit
	// alone would let fresh keys make the bot create rooms without end.
	NewRoomsPerMinute int
	// Hosted are the URLs that name this deployment (nests.hosted): a room
	// whose event names none of them in its service, auth, streaming or
	// endpoint tags is another deployment's and is answered NOT_FOUND.
	// Empty: every room is taken as this deployment's.
	Hosted []string
}

// Engine is the recreate algorithm: authorize, then restart a room in place
// while its record exists or recreate it under a new ID when it is gone,
// and publish the replacement room event.
type Engine struct {
	State   State
	LiveKit LiveKit
	Events  RoomEvents
	Signer  Signer
	Tokens  Tokens
	Set     Settings
	Now     func() time.Time // nil means time.Now
}

// Result is what a restart produced, ready to become a response.
type Result struct {
	nostrx.RestartResult
	Room   nostrx.Coordinate // the live room's address
	SID    string            // LiveKit room SID, empty after a cool-down answer
	Relays []string          // the live room's relays
	// Record is the live room's record as the restart left it, so the
	// caller can tell whether it names the requester without reading it
	// again (bot: the known-hosts lane).
	Record *Record
}

// Messages of a restart result; clients show them as they are.
const (
	MsgRestarted = "Nest restarted"
	MsgRecreated = "Nest recreated with new room ID"
	MsgCoolDown  = "Nest was restarted moments ago; rejoin with this token"
)

// replacementTTL is how long the bot remembers which room replaced which.
const replacementTTL = 30 * 24 * time.Hour

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Restart handles one verified restart request. Refusals are
// *nostrx.RequestError values; on any error nothing outside the bot's
// bookkeeping has changed, except a recreation cut off half way, which the
// next request for the same room finishes under the same new ID.
//
// Relay look-ups (the room event of a room whose record is gone, the host's
// own event of a room the bot published) never run under the room's lock
// (issue 9 item 5): when the locked pass finds it needs one, it lets the
// lock go, the look-up runs, and a new locked pass re-reads everything the
// decision depends on (record, replacement, last event) before acting.
func (e *Engine) Restart(ctx context.Context, req nostrx.Request) (*Result, error) {
	return e.RestartRun(ctx, req, Run{})
}

// Run is what the runs of one request's restart share with their caller
// (RestartRun). The zero Run shares nothing: the restart commits its own
// writes, and only Redis's recreation marks are read.
type Run struct {
	// Later takes the restart's final writes and lock, for the caller to
	// commit with its answer (see CommitLater); nil: committed at once.
	Later *CommitLater
	// Marks keeps the recreation marks of this request's runs across them
	// (see Marks); nil: Redis's only.
	Marks *Marks
}

// RestartRun is Restart sharing run with its caller.
func (e *Engine) RestartRun(ctx context.Context, req nostrx.Request, run Run) (*Result, error) {
	var pre lookups
	for range 3 {
		res, err := e.restartLocked(ctx, req, &pre, run)
		var need *needLookup
		if !errors.As(err, &need) {
			return res, err
		}
		if need.room {
			// Decided before any lock: a refusal takes no lock at all.
			orig, err := e.lookupAuthorized(ctx, req)
			if err != nil {
				return nil, err
			}
			pre.room, pre.roomDone = orig, true
		}
		if need.host != nil {
			ev, err := e.lookupAt(ctx, *need.host, need.relays)
			if err != nil {
				return nil, err
			}
			pre.host, pre.hostOf = ev, need.host.String()
		}
	}
	return nil, fmt.Errorf("restart %s: the room kept changing under the look-ups", req.Room)
}

// lookups carries what Restart looked up on relays, without a lock,
// between its locked passes.
type lookups struct {
	room     *nostrx.RoomEvent // the requested coordinate's newest event
	roomDone bool
	host     *nostrx.RoomEvent // the host's own event for a bot room (adoption)
	hostOf   string            // the coordinate host was looked up at
}

// needLookup ends a locked pass that needs a relay look-up first.
type needLookup struct {
	room   bool               // the requested room's event
	host   *nostrx.Coordinate // the host's own event for a bot room
	relays []string           // extra relays for host
}

func (n *needLookup) Error() string { return "a relay look-up is needed first" }

// restartLocked is one pass of Restart under the room's lock.
func (e *Engine) restartLocked(ctx context.Context, req nostrx.Request, pre *lookups, run Run) (*Result, error) {
	// The lock and the first reads share one round trip (LockView).
	lk, view, err := e.lockView(ctx, req.Room, run.Later)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()

	newID := view.Replacement
	if view.ReplacementErr != nil {
		if newID, err = e.replacement(ctx, req.Room); err != nil {
			return nil, err
		}
	}
	target, redirected, err := e.follow(ctx, req.Room, newID)
	if err != nil {
		return nil, err
	}
	commitLock := lk // released with the final writes
	view0 := &view   // what LockView read is about target
	if redirected {
		unlockTarget, err := e.lock(ctx, target.D)
		if err != nil {
			return nil, err
		}
		defer unlockTarget()
		commitLock, view0 = nil, nil // two locks: the defers release both, in order
	}
	var rec *Record
	if view0 != nil && view0.RecordErr == nil {
		rec = view0.Record
	} else if rec, err = e.record(ctx, target.D); err != nil {
		return nil, err
	}
	if rec == nil {
		if !pre.roomDone {
			return nil, &needLookup{room: true}
		}
		resuming := view0 != nil && view0.PendingErr == nil && view0.Pending != ""
		return e.recreate(ctx, req, pre.room, commitLock, resuming, run.Later)
	}
	last, err := e.lastEvent(ctx, rec.ID, view0)
	if err != nil {
		return nil, err
	}
	// A room the bot published is handed to its host once the host
	// publishes its own event for it (adoption); from then on the host's
	// newest version decides its roles. Look it up, unlocked, first.
	var hostEv *nostrx.RoomEvent
	if last != nil && last.PubKey == e.Signer.PublicKey() && rec.Host != "" && rec.Host != e.Signer.PublicKey() {
		hc := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: rec.Host, D: rec.ID}
		if pre.hostOf != hc.String() {
			return nil, &needLookup{host: &hc, relays: rec.Relays}
		}
		hostEv = pre.host
	}
	role, err := authorizeInPlace(rec, hostEv, req.Requester)
	if err != nil {
		return nil, err
	}
	res, err := e.restartInPlace(ctx, req, target, rec, role, view0, last, hostEv, commitLock, run)
	if err != nil {
		return nil, err
	}
	if redirected {
		res.IsNewRoom = true
		res.OriginalRoomID = req.Room.D
	}
	return res, nil
}

// authorizeInPlace: the host's own event, once there is one, decides (its
// newest version: the host adds and removes admins there); else the record.
func authorizeInPlace(rec *Record, hostEv *nostrx.RoomEvent, requester string) (nostrx.Role, error) {
	if hostEv != nil && hostEv.Room.Author == rec.Host {
		return AuthorizeByEvent(hostEv.Room, hostEv, requester)
	}
	return AuthorizeByRecord(rec, requester)
}

// checkHosted refuses a room whose event names another deployment (issue
// 12): NOT_FOUND, saying where it lives. A room without an event cannot
// say; its author's own request is taken as saying it is here.
func (e *Engine) checkHosted(c nostrx.Coordinate, ev *nostrx.RoomEvent) error {
	if ev == nil || len(e.Set.Hosted) == 0 {
		return nil
	}
	ok, where := Hosted(ev, e.Set.Hosted)
	if ok {
		return nil
	}
	if where == "" {
		return nostrx.Refuse(nostrx.CodeNotFound, "room %s is hosted elsewhere (its event names no service of this bot)", c.D)
	}
	return nostrx.Refuse(nostrx.CodeNotFound, "room %s is hosted elsewhere (%s)", c.D, truncateString(where, 200))
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (e *Engine) lastEvent(ctx context.Context, d string, pre *RoomView) (*nostr.Event, error) {
	if pre != nil && pre.LastErr == nil {
		return pre.Last, nil
	}
	last, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*nostr.Event, error) {
		return e.State.LastEvent(ctx, d)
	})
	return last, unavailable(err)
}

// resolve follows the bot's memory of replaced rooms: a request for a room
// the bot already recreated is a request for its replacement, as long as
// the replacement's record exists.
func (e *Engine) resolve(ctx context.Context, c nostrx.Coordinate) (nostrx.Coordinate, bool, error) {
	newID, err := e.replacement(ctx, c)
	if err != nil {
		return c, false, err
	}
	return e.follow(ctx, c, newID)
}

func (e *Engine) replacement(ctx context.Context, c nostrx.Coordinate) (string, error) {
	newID, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (string, error) {
		return e.State.Replacement(ctx, c)
	})
	return newID, unavailable(err)
}

// follow goes to the replacement newID of c when it has a record.
func (e *Engine) follow(ctx context.Context, c nostrx.Coordinate, newID string) (nostrx.Coordinate, bool, error) {
	if newID == "" {
		return c, false, nil
	}
	rec, err := e.record(ctx, newID)
	if err != nil {
		return c, false, err
	}
	if rec == nil {
		return c, false, nil
	}
	return nostrx.Coordinate{Kind: nostrx.KindRoom, Author: e.Signer.PublicKey(), D: newID}, true, nil
}

// restartInPlace restarts rec's room under its own ID. pre, when not nil,
// holds what LockView already read about it; lk, when not nil, is released
// together with the final writes. last is the bot's last event for it and
// hostEv the host's own event (adoption), both nil when there is none.
func (e *Engine) restartInPlace(ctx context.Context, req nostrx.Request, target nostrx.Coordinate, rec *Record, role nostrx.Role, pre *RoomView, last *nostr.Event, hostEv *nostrx.RoomEvent, lk HeldLock, run Run) (*Result, error) {
	var cooling bool
	var err error
	if pre != nil && pre.CoolingErr == nil {
		cooling = pre.Cooling
	} else if cooling, err = retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (bool, error) {
		return e.State.CoolingDown(ctx, rec.ID)
	}); err != nil {
		return nil, unavailable(err)
	}
	// A room whose 30312 the bot published is addressed by the bot's key,
	// whoever the requester named; the record's own author is unknown.
	owned := last != nil && last.PubKey == e.Signer.PublicKey()
	var adopted *nostrx.Coordinate // the host's own event took the room over
	var lastEv *nostrx.RoomEvent   // the bot's last event, read once
	var lastSpec nostrx.RoomSpec   // and read back exactly
	if owned {
		target = nostrx.Coordinate{Kind: nostrx.KindRoom, Author: last.PubKey, D: rec.ID}
		if lastEv, err = nostrx.ParseRoomEvent(last); err != nil {
			return nil, fmt.Errorf("room %s: %w", rec.ID, err)
		}
		lastSpec = lastEv.Spec()
		adopted = lastSpec.AdoptedBy
		if hostEv != nil {
			adopted = &hostEv.Room
		}
	}
	var w Writes
	if adopted != nil {
		target = *adopted
		if hostEv != nil {
			hostRoles(rec, hostEv, e.Signer.PublicKey())
			w.Record = rec
		}
		if lastSpec.AdoptedBy == nil {
			// First sight of the host's event: the bot's own version is
			// published once more, closed, pointing at the host's, and
			// then left alone.
			closed := lastSpec
			closed.Status, closed.AdoptedBy = nostrx.StatusClosed, adopted
			ev, err := e.publish(ctx, closed, last)
			if err != nil {
				return nil, err
			}
			w.Event, w.Closed = ev, true
		}
	}
	if cooling {
		if w.Event != nil || w.Record != nil {
			if err := e.commit(ctx, w, lk, run.Later); err != nil {
				return nil, err
			}
		}
		return e.result(target, rec, req.Requester, role, MsgCoolDown, "", nil)
	}

	now := e.now()
	rec.Status = StatusActive
	rec.RestartedAt = now.UnixMilli()
	room, err := e.recreatedBefore(ctx, rec.ID, pre, run.Marks)
	if err != nil {
		return nil, err
	}
	if room == nil {
		var deleted atomic.Bool
		room, err = retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*LiveRoom, error) {
			return e.LiveKit.Recreate(ctx, rec.ID, roomMetadata(rec), func(p Replaced) {
				deleted.Store(true)
				e.markRecreating(ctx, rec.ID, p, run.Marks)
			})
		})
		if err != nil && deleted.Load() {
			return nil, incomplete(err) // the old room is gone: finish, do not fail
		}
		if err != nil {
			return nil, unavailable(err)
		}
	}
	// The LiveKit room was recreated: a public change. From here on a
	// failure is ErrIncomplete (finish it later), never an answer.
	w.Restarted, w.Cooldown = rec.ID, e.Set.Cooldown
	var published *nostr.Event
	if owned && adopted == nil {
		if err := e.put(ctx, rec); err != nil {
			return nil, incomplete(err)
		}
		spec := e.spec(rec, lastEv, now)
		spec.Replaces = replacesTag(last)
		if published, err = e.publish(ctx, spec, last); err != nil {
			return nil, incomplete(err)
		}
		w.Event = published
	} else {
		w.Record = rec
	}
	// record (unless written above), last event, cool-down, unlock
	if err := e.commit(ctx, w, lk, run.Later); err != nil {
		return nil, incomplete(err)
	}
	res, err := e.result(target, rec, req.Requester, role, MsgRestarted, room.SID, published)
	if err != nil {
		return nil, err
	}
	if published != nil && req.Requester == rec.Host {
		res.Template = template(published)
	}
	return res, nil
}

// hostRoles makes the host's own event the source of rec's roles: its
// hosts and admins are the admins, they and its speakers the speakers
// (bounded like a recreation's), the host stays host.
func hostRoles(rec *Record, ev *nostrx.RoomEvent, bot string) {
	admins, speakers := []string{rec.Host}, []string{rec.Host}
	for _, pk := range sortedKeys(ev.Roles) {
		if pk == bot || pk == rec.Host {
			continue
		}
		switch ev.Roles[pk] {
		case nostrx.RoleHost, nostrx.RoleAdmin:
			admins = append(admins, pk)
			speakers = append(speakers, pk)
		case nostrx.RoleSpeaker:
			if len(speakers) < nostrx.MaxSpeakerTags+len(admins) {
				speakers = append(speakers, pk)
			}
		}
	}
	rec.Admins, rec.Speakers = admins, speakers
	if len(ev.Relays) > 0 {
		rec.Relays = slices.Clone(ev.Relays)
	}
}

// template is the bot's replacement as an unsigned event for its host to
// sign and publish (adoption).
func template(ev *nostr.Event) *nostrx.EventTemplate {
	tags := make(nostr.Tags, len(ev.Tags))
	for i, t := range ev.Tags {
		tags[i] = slices.Clone(t)
	}
	return &nostrx.EventTemplate{Kind: ev.Kind, CreatedAt: ev.CreatedAt, Tags: tags, Content: ev.Content}
}

// markTTL is how long the mark of a restart in place outlives a cut-off
// restart: long enough for a replica, or the bot started again, to take the
// request over within max_request_age (default 2 minutes).
func (e *Engine) markTTL() time.Duration {
	return 3*e.Set.DependencyBudget + e.Set.LookupTimeout + 2*time.Minute
}

// markRecreating remembers, once a room's LiveKit room was deleted, what
// tells the new room from the deleted one (Replaced: the time of the
// delete on LiveKit's clock, or the deleted room's SID). LiveKit.Recreate
// calls it while the new room is being created, not before (the Redis
// round trip is off the restart's critical path), and returns only after
// it, so the mark is written before the commit clears it. It is best
// effort: without the mark a restart cut off after the create would
// recreate the room once more on resume; failing the restart for it would
// leave the room deleted.
func (e *Engine) markRecreating(ctx context.Context, room string, p Replaced, marks *Marks) {
	marks.note(room, p) // in memory too: see Marks
	mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = e.State.MarkRecreating(mctx, room, p.Mark(), e.markTTL())
}

// recreatedBefore returns room's LiveKit room when an earlier restart in
// place was cut off after it deleted the old room (its mark is there) and
// LiveKit already has a room made after that delete (Replaced.IsNew on
// the mark, either form: marks of older bots name the deleted SID): that
// restart's new room, which this restart completes instead of recreating
// it again. nil means recreate. marks holds the marks this request's
// earlier runs made, for when Redis refused them (nil: none).
func (e *Engine) recreatedBefore(ctx context.Context, room string, pre *RoomView, marks *Marks) (*LiveRoom, error) {
	mark, marked := "", false
	if pre != nil && pre.RecreatingErr == nil {
		mark, marked = pre.RecreatingMark, pre.Recreating
	} else {
		type read struct {
			mark string
			ok   bool
		}
		m, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (read, error) {
			v, ok, err := e.State.Recreating(ctx, room)
			return read{v, ok}, err
		})
		if err != nil {
			return nil, unavailable(err)
		}
		mark, marked = m.mark, m.ok
	}
	if !marked {
		// Redis has none: this request's earlier run may have made one
		// Redis refused (Marks).
		p, ok := marks.get(room)
		if !ok {
			return nil, nil
		}
		mark, marked = p.Mark(), true
	}
	live, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*LiveRoom, error) {
		return e.LiveKit.Find(ctx, room)
	})
	if err != nil {
		return nil, unavailable(err)
	}
	if ParseMark(mark).IsNew(live) {
		return live, nil
	}
	return nil, nil
}

// recreate recreates req's room under a new ID from orig, its event as
// looked up (nil when none was found), already authorized and found hosted
// here by Restart. resuming says a recreation cut off after its public
// change is being finished: it is not counted against
// new_rooms_per_minute again.
func (e *Engine) recreate(ctx context.Context, req nostrx.Request, orig *nostrx.RoomEvent, lk HeldLock, resuming bool, later *CommitLater) (*Result, error) {
	if !resuming {
		if err := e.newRoomBudget(ctx); err != nil {
			return nil, err
		}
	}

	type chosen struct {
		id   string
		last *nostr.Event
	}
	pick, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (chosen, error) {
		id, last, err := e.State.ChoosePendingLast(ctx, req.Room, uuid.NewString(), replacementTTL)
		return chosen{id, last}, err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	newID := pick.id
	now := e.now()
	rec := e.newRecord(newID, req, orig, now)
	room, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*LiveRoom, error) {
		return e.LiveKit.Ensure(ctx, newID, roomMetadata(rec))
	})
	if err != nil {
		return nil, unavailable(err)
	}
	// The new LiveKit room exists: a public change. From here on a failure
	// is ErrIncomplete; the pending choice makes the retry finish this room.
	if err := e.put(ctx, rec); err != nil {
		return nil, incomplete(err)
	}
	spec := e.spec(rec, orig, now)
	spec.Replaces = &req.Room
	published, err := e.publish(ctx, spec, pick.last)
	if err != nil {
		return nil, incomplete(err)
	}
	// last event, replacement, cool-down, unlock
	if err := e.commit(ctx, Writes{
		Event: published, Replaced: &req.Room, ReplacedBy: newID, ReplacementTTL: replacementTTL,
		Restarted: newID, Cooldown: e.Set.Cooldown,
	}, lk, later); err != nil {
		return nil, incomplete(err)
	}
	e.closeOldRoom(ctx, req.Room)
	target := nostrx.Coordinate{Kind: nostrx.KindRoom, Author: e.Signer.PublicKey(), D: newID}
	// The requester is the new record's host, whatever role the original gave.
	res, err := e.result(target, rec, req.Requester, nostrx.RoleHost, MsgRecreated, room.SID, published)
	if err != nil {
		return nil, err
	}
	res.IsNewRoom = true
	res.OriginalRoomID = req.Room.D
	res.Template = template(published)
	return res, nil
}

// closeOldRoom deletes the LiveKit room the recreated room replaces, when
// LiveKit still has it (its record expired while people were in it), so
// that nobody stays in a room nothing points to any more: they are
// disconnected and rejoin at the new address. Only a room whose metadata
// names the requested coordinate's author as host is touched: a stranger's
// coordinate that shares the d never closes someone else's room. Best
// effort: the restart has succeeded whatever LiveKit answers.
func (e *Engine) closeOldRoom(ctx context.Context, old nostrx.Coordinate) {
	dctx, cancel := context.WithTimeout(ctx, e.Set.DependencyBudget)
	defer cancel()
	room, err := e.LiveKit.Find(dctx, old.D)
	if err != nil || room == nil || metadataHost(room.Metadata) != old.Author {
		return
	}
	_ = e.LiveKit.Delete(dctx, old.D)
}

// newRoomBudget refuses a recreation under a new ID once this minute's
// budget is spent, before anything is chosen or created. A recreation that
// resumes one cut off half way counts too: it is rare, and counting it
// keeps the check before any write.
func (e *Engine) newRoomBudget(ctx context.Context) error {
	if e.Set.NewRoomsPerMinute <= 0 {
		return nil
	}
	n, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (int64, error) {
		return e.State.CountNewRoom(ctx, e.now())
	})
	if err != nil {
		return unavailable(err)
	}
	if n > int64(e.Set.NewRoomsPerMinute) {
		return nostrx.Refuse(nostrx.CodeRateLimited, "this bot recreates at most %d rooms per minute", e.Set.NewRoomsPerMinute)
	}
	return nil
}

// lookup fetches the newest 30312 at the requested coordinate from the
// bot's relays and the request's hint, within the lookup timeout. A room
// with no event, or none in time, is nil: then only its author may act.
func (e *Engine) lookup(ctx context.Context, req nostrx.Request) (*nostrx.RoomEvent, error) {
	var extra []string
	if req.RelayHint != "" {
		extra = []string{req.RelayHint}
	}
	return e.lookupAt(ctx, req.Room, extra)
}

// lookupAuthorized is lookup, then the checks a room without a record
// passes before anything is done for it: the requester is authorized by
// that event (or is the coordinate's author when there is none), and the
// room is this deployment's.
func (e *Engine) lookupAuthorized(ctx context.Context, req nostrx.Request) (*nostrx.RoomEvent, error) {
	orig, err := e.lookup(ctx, req)
	if err != nil {
		return nil, err
	}
	if _, err := AuthorizeByEvent(req.Room, orig, req.Requester); err != nil {
		return nil, err
	}
	if err := e.checkHosted(req.Room, orig); err != nil {
		return nil, err
	}
	return orig, nil
}

// lookupAt fetches the newest 30312 at c from the bot's relays and extra
// (at most nostrx.MaxRoomRelays of them). An event that is too large,
// expired (NIP-40), unreadable or not at c proves nothing and comes back
// nil, as does none in time.
func (e *Engine) lookupAt(ctx context.Context, c nostrx.Coordinate, extra []string) (*nostrx.RoomEvent, error) {
	lookupCtx, cancel := context.WithTimeout(ctx, e.Set.LookupTimeout)
	defer cancel()
	relays := slices.Clip(e.Set.Relays)
	for _, r := range firstN(extra, nostrx.MaxRoomRelays) {
		if r != "" && !slices.Contains(relays, r) {
			relays = append(relays, r)
		}
	}
	raw, err := e.Events.Latest(lookupCtx, c, relays)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil || raw == nil {
		return nil, nil
	}
	if nostrx.RoomEventBytes(raw) > nostrx.MaxRoomEventBytes {
		// Issue 9: bounded input. Not even its roles are read.
		return nil, nil
	}
	if nostrx.Expired(raw, e.now()) {
		// NIP-40: an expired event proves nothing, whatever roles it names.
		return nil, nil
	}
	orig, err := nostrx.ParseRoomEvent(raw)
	if err != nil || orig.Room.String() != c.String() {
		return nil, nil // an unreadable event proves no roles
	}
	return orig, nil
}

// Status answers a status request with the same authorization as a
// restart: whether the LiveKit room is live, its participants, whether the
// record exists and when the room was last restarted.
//
// It reports only a room that belongs to the requested coordinate (issue 9
// item 8): the record's host is the coordinate's author, or the LiveKit
// room's metadata names that author as host, or the coordinate is the
// bot's own replacement (or the host's adopted version of it). Otherwise
// the coordinate shares only its d with someone else's room, and the
// answer says nothing of that room.
func (e *Engine) Status(ctx context.Context, req nostrx.Request) (*nostrx.StatusResult, error) {
	target, redirected, err := e.resolve(ctx, req.Room)
	if err != nil {
		return nil, err
	}
	rec, err := e.record(ctx, target.D)
	if err != nil {
		return nil, err
	}
	last, err := e.lastEvent(ctx, target.D, nil)
	if err != nil {
		return nil, err
	}
	bot := e.Signer.PublicKey()
	botRoom := last != nil && last.PubKey == bot
	naddrOf := target
	if botRoom && rec != nil {
		naddrOf = nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot, D: rec.ID}
		if spec, err := nostrx.SpecFromEvent(last); err == nil && spec.AdoptedBy != nil {
			naddrOf = *spec.AdoptedBy
		}
	}
	belongs := rec != nil && (redirected || rec.Host == target.Author ||
		botRoom && (target.Author == bot || target.String() == naddrOf.String()))
	if rec != nil && !belongs {
		rec = nil // another coordinate's record under the same d
	}
	var relays []string
	if rec != nil {
		var hostEv *nostrx.RoomEvent
		if botRoom && rec.Host != bot {
			if hostEv, err = e.lookupAt(ctx, nostrx.Coordinate{Kind: nostrx.KindRoom, Author: rec.Host, D: rec.ID}, rec.Relays); err != nil {
				return nil, err
			}
		}
		if _, err := authorizeInPlace(rec, hostEv, req.Requester); err != nil {
			return nil, err
		}
		relays = rec.Relays
	} else {
		orig, err := e.lookupAuthorized(ctx, req)
		if err != nil {
			return nil, err
		}
		if orig != nil {
			relays = orig.Relays
		}
		naddrOf = req.Room
	}
	room, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*LiveRoom, error) {
		return e.LiveKit.Find(ctx, target.D)
	})
	if err != nil {
		return nil, unavailable(err)
	}
	if room != nil && rec == nil && metadataHost(room.Metadata) != target.Author && !(botRoom && target.Author == bot) {
		room = nil // someone else's LiveKit room under the same name
	}
	res := &nostrx.StatusResult{RoomID: target.D, Record: rec != nil, Naddr: naddrOf.Naddr(firstN(relays, 3)...)}
	if room != nil {
		res.Live, res.Participants = true, room.Participants
	}
	if rec != nil {
		res.RestartedAt = rec.RestartedAt
	}
	return res, nil
}

// metadataHost reads "host" from LiveKit room metadata as the Nests API
// server and the bot write it; "" when there is none.
func metadataHost(meta string) string {
	if meta == "" || len(meta) > 64<<10 {
		return ""
	}
	var m struct {
		Host string `json:"host"`
	}
	if json.Unmarshal([]byte(meta), &m) != nil {
		return ""
	}
	return m.Host
}

// newRecord builds the record of a room recreated under a new ID. The
// requester becomes host; the original's hosts and admins and its author
// (unless that is the bot) stay admins, so an admin who recreates a room
// never locks its host out.
func (e *Engine) newRecord(id string, req nostrx.Request, orig *nostrx.RoomEvent, now time.Time) *Record {
	rec := &Record{
		ID: id, Host: req.Requester, Admins: []string{req.Requester}, Speakers: []string{req.Requester},
		CreatedAt: now.UnixMilli(), RestartedAt: now.UnixMilli(), Status: StatusActive,
		OriginalRoomID: req.Room.D, IsRecreated: true,
	}
	add := func(list *[]string, pk string) {
		if pk != "" && pk != e.Signer.PublicKey() && !slices.Contains(*list, pk) {
			*list = append(*list, pk)
		}
	}
	if orig != nil {
		add(&rec.Admins, orig.Room.Author)
		add(&rec.Speakers, orig.Room.Author)
		for _, pk := range sortedKeys(orig.Roles) {
			switch orig.Roles[pk] {
			case nostrx.RoleHost, nostrx.RoleAdmin:
				add(&rec.Admins, pk)
				add(&rec.Speakers, pk)
			case nostrx.RoleSpeaker:
				// Speakers holds the admins too; the bound is on the others.
				if len(rec.Speakers) < nostrx.MaxSpeakerTags+len(rec.Admins) {
					add(&rec.Speakers, pk)
				}
			}
		}
		rec.Relays = slices.Clone(orig.Relays)
	}
	if len(rec.Relays) == 0 {
		rec.Relays = slices.Clone(e.Set.Relays)
	}
	return rec
}

// spec describes the 30312 the bot publishes for rec, keeping what the
// original event said about the room that the record does not hold.
func (e *Engine) spec(rec *Record, orig *nostrx.RoomEvent, now time.Time) nostrx.RoomSpec {
	s := nostrx.RoomSpec{
		D: rec.ID, Status: nostrx.StatusOpen, Service: e.Set.ServiceURL, Streaming: e.Set.Endpoint,
		Starts: now.Unix(), Relays: rec.Relays, Host: rec.Host, Admins: rec.Admins, Speakers: rec.Speakers,
	}
	if orig != nil {
		// ParseRoomEvent already bounded every field (issue 9).
		s.Title, s.Summary, s.Image, s.Color, s.Topics = orig.Title, orig.Summary, orig.Image, orig.Color, orig.Topics
		s.Vocab, s.Extra = orig.Vocab, orig.Extra
		if orig.Starts > 0 {
			s.Starts = orig.Starts
		}
		if s.Service == "" {
			s.Service = orig.Service
		}
	}
	return s
}

// publish signs spec with a created_at above the last version the bot
// published for the same d and publishes it. The caller saves it as the
// last event (Writes.Event) once the rest of its writes are known.
func (e *Engine) publish(ctx context.Context, spec nostrx.RoomSpec, last *nostr.Event) (*nostr.Event, error) {
	ev, err := RoomPublisher{Signer: e.Signer, Events: e.Events, Relays: e.Set.Relays}.Publish(ctx, spec, last, e.now())
	if err != nil && !errors.Is(err, errNotAccepted) {
		return nil, err
	}
	if err != nil {
		// The relays' own words stay in the log: they can name relays and
		// policies the requester has no business seeing.
		return nil, errors.Join(nostrx.Refuse(nostrx.CodeUnavailable, "no relay accepted the room event; try again shortly"), err)
	}
	return ev, nil
}

func (e *Engine) result(target nostrx.Coordinate, rec *Record, requester string, role nostrx.Role, msg, sid string, ev *nostr.Event) (*Result, error) {
	token, err := e.Tokens.Mint(rec.ID, requester, role)
	if err != nil {
		return nil, err
	}
	return &Result{
		RestartResult: nostrx.RestartResult{
			RoomID: rec.ID, Endpoints: []string{e.Set.Endpoint}, Token: token, Message: msg,
			Naddr: target.Naddr(firstN(rec.Relays, 3)...), Event: ev,
		},
		Room: target, SID: sid, Relays: rec.Relays, Record: rec,
	}, nil
}

func (e *Engine) lock(ctx context.Context, room string) (func(), error) {
	lockCtx, cancel := context.WithTimeout(ctx, e.Set.DependencyBudget)
	defer cancel()
	unlock, err := e.State.Lock(lockCtx, room, e.Set.DependencyBudget*3+e.Set.LookupTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable(err)
	}
	return unlock, nil
}

// lockView takes c's lock and reads c in one round trip, or takes what
// later prefetched with the request's claim (nil: nothing).
func (e *Engine) lockView(ctx context.Context, c nostrx.Coordinate, later *CommitLater) (HeldLock, RoomView, error) {
	if lk, view, ok := later.usePrefetched(c); ok {
		return lk, view, nil // taken with the request's claim (ClaimLocked)
	}
	lockCtx, cancel := context.WithTimeout(ctx, e.Set.DependencyBudget)
	defer cancel()
	lk, view, err := e.State.LockView(lockCtx, c, e.LockTTL())
	if err != nil {
		if ctx.Err() != nil {
			return nil, view, ctx.Err()
		}
		return nil, view, unavailable(err)
	}
	return lk, view, nil
}

func (e *Engine) record(ctx context.Context, id string) (*Record, error) {
	rec, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*Record, error) {
		return e.State.Record(ctx, id)
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return rec, nil
}

func (e *Engine) put(ctx context.Context, rec *Record) error {
	_, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, e.State.PutRecord(ctx, rec)
	})
	return unavailable(err)
}

// commit applies w, retrying within the dependency budget, and releases lk
// with it when lk is not nil. When later can take them (see CommitLater),
// w and lk are handed to it instead, for the caller to apply together
// with its answer.
func (e *Engine) commit(ctx context.Context, w Writes, lk HeldLock, later *CommitLater) error {
	if later.take(w, lk) {
		return nil
	}
	_, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, e.State.Commit(ctx, w, lk)
	})
	return unavailable(err)
}

// ErrIncomplete marks a restart that failed after a public change (its
// LiveKit room was recreated or created, or a replacement event may have
// been published). Such a request is never answered as failed: the caller
// keeps its claim and runs the restart again, which finishes the same
// room (the pending choice and the recreation mark lead it there), or
// leaves it to the replica that takes the claim over.
var ErrIncomplete = errors.New("restart incomplete after a public change")

func incomplete(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrIncomplete, err)
}

// unavailable turns a dependency failure that outlived its retries into the
// UNAVAILABLE answer; other errors pass through.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrUnavailable) {
		return errors.Join(nostrx.Refuse(nostrx.CodeUnavailable, "a backing service is unavailable; try again shortly"), err)
	}
	return err
}

// roomMetadata is the LiveKit room metadata the Nests API server writes, so
// its clients read a recreated room like one of their own.
func roomMetadata(rec *Record) string {
	m := map[string]any{"nestId": rec.ID, "host": rec.Host, "relays": rec.Relays, "createdAt": rec.CreatedAt}
	if rec.RestartedAt != 0 {
		m["restartedAt"] = rec.RestartedAt
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// replacesTag keeps the "a" tag naming the room a bot-published event
// replaced, so a republished event still leads back to the original.
func replacesTag(ev *nostr.Event) *nostrx.Coordinate {
	for _, t := range ev.Tags {
		if len(t) == 2 && t[0] == "a" {
			if c, err := nostrx.ParseCoordinate(t[1]); err == nil {
				return &c
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
