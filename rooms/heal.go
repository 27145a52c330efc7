package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/nbd-wtf/go-nostr"
	"github.com/twitchtv/twirp"

	"github.com/nestbot/nestbot/nostrx"
)

// Auto-heal (issue 14): a room of this deployment that broke while people
// are in it is restored without a request. The bot's healer (internal/heal)
// notices a room that looks broken from outside any lock; Heal decides
// again under the room's lock, with the same reads a restart starts with,
// and repairs it through the restart path itself, so that replicas heal a
// room once (the cool-down the repair writes makes the others stand down)
// and a host's request arriving meanwhile waits for the lock and is
// answered with the healed room.

// Why a room was broken (the reason label of nestbot_heals_total).
const (
	// HealLiveKitMissing: the room has a record (or is the bot's) but
	// LiveKit has no room of its name.
	HealLiveKitMissing = "livekit_missing"
	// HealBareRoom: LiveKit holds a room of its name without this
	// deployment's metadata (a rejoining client auto-created it).
	HealBareRoom = "bare_room"
	// HealRecordGone: the bot's own open room lost its record.
	HealRecordGone = "record_gone"
)

// What Heal did.
const (
	HealRestarted = "restarted" // restarted in place: new SID, record refreshed
	HealMetadata  = "metadata"  // metadata restored on the live room, nobody kicked
	HealRecreated = "recreated" // recreated under a new ID (heal.new_id)
)

// Why Heal did nothing.
const (
	HealSkipHealthy  = "healthy"    // not broken (any more): another replica or a request fixed it
	HealSkipCooldown = "cooldown"   // restarted within limits.room_cooldown
	HealSkipClosed   = "closed"     // its host closed it: never healed
	HealSkipNotOurs  = "not_ours"   // no record of this coordinate, and not the bot's room
	HealSkipNewIDOff = "new_id_off" // a new ID would be needed and heal.new_id is off
	HealSkipEmpty    = "empty"      // nobody is there
	// HealSkipRateLimited: HealOptions.Allow refused (heal.max_per_minute).
	HealSkipRateLimited = "rate_limited"
)

// HealOptions are the healer's inputs to one Heal.
type HealOptions struct {
	// Present says fresh presence (kind 10312) names the room: people are
	// there even when LiveKit has no room for them.
	Present bool
	// NewID allows recreating a room whose record is gone under a new ID
	// (heal.new_id).
	NewID bool
	// Allow, when not nil, is asked once, under the lock, right before a
	// repair: false leaves the room broken (HealSkipRateLimited), so that
	// only repairs spend the budget, not rooms another replica fixed.
	Allow func(ctx context.Context) (bool, error)
}

// allowed asks opt.Allow; a budget that cannot be read refuses.
func (opt HealOptions) allowed(ctx context.Context) (bool, error) {
	if opt.Allow == nil {
		return true, nil
	}
	ok, err := opt.Allow(ctx)
	if err != nil {
		return false, unavailable(err)
	}
	return ok, nil
}

// Healed is what one Heal found and did. Exactly one of Action and Skip
// is set.
type Healed struct {
	Reason string            // HealLiveKitMissing, HealBareRoom, HealRecordGone; "" when not broken
	Action string            // HealRestarted, HealMetadata, HealRecreated; "" when nothing was done
	Skip   string            // HealSkip*; "" when Action is set
	Host   string            // hex pubkey of the room's host, who is told
	Room   nostrx.Coordinate // the live room's address after the heal
	Relays []string          // the live room's relays
	OldSID string            // LiveKit SID before (bare room), "" when there was none
	SID    string            // LiveKit SID after
	Result *Result           // the restart's result for HealRestarted and HealRecreated
}

// metadataSetter is the optional LiveKit capability Heal needs for a bare
// room; LiveKitRooms has it.
type metadataSetter interface {
	SetMetadata(ctx context.Context, name, metadata string) (*LiveRoom, error)
}

// Heal restores room c when it is still broken, judged again under the
// room's lock: its LiveKit room is missing (restart in place, as the host's
// request would: new SID, record refreshed, cool-down), LiveKit holds it
// bare (metadata restored, cool-down), or it is the bot's own open room
// and its record is gone (recreated under a new ID when opt.NewID).
// A room in its cool-down, a room whose newest event is closed and a
// coordinate that is not this deployment's room are left alone. Errors are
// those of Restart (UNAVAILABLE refusals for dependencies, ErrIncomplete
// after a public change).
func (e *Engine) Heal(ctx context.Context, c nostrx.Coordinate, opt HealOptions) (*Healed, error) {
	bot := e.Signer.PublicKey()
	// The host's own event decides whether the host closed the room. It is
	// looked up before the lock, as Restart does (issue 9 item 5).
	var hostEv *nostrx.RoomEvent
	if c.Author != bot {
		ev, err := e.lookupAt(ctx, c, nil)
		if err != nil {
			return nil, err
		}
		if ev != nil && ev.Status == nostrx.StatusClosed {
			return &Healed{Skip: HealSkipClosed, Host: c.Author, Room: c}, nil
		}
		hostEv = ev
	}
	lk, view, err := e.lockView(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	rec := view.Record
	if view.RecordErr != nil {
		if rec, err = e.record(ctx, c.D); err != nil {
			return nil, err
		}
	}
	last, err := e.lastEvent(ctx, c.D, &view)
	if err != nil {
		return nil, err
	}
	botRoom := last != nil && last.PubKey == bot && c.Author == bot
	if botRoom {
		spec, err := nostrx.SpecFromEvent(last)
		if err != nil || spec.Status == nostrx.StatusClosed || spec.AdoptedBy != nil {
			return &Healed{Skip: HealSkipClosed, Room: c}, nil
		}
		if rec == nil {
			return e.healRecordGone(ctx, c, spec, last, &view, lk, opt)
		}
	}
	if rec == nil || !(botRoom || rec.Host == c.Author) {
		return &Healed{Skip: HealSkipNotOurs, Room: c}, nil
	}
	h := &Healed{Host: rec.Host, Room: c, Relays: rec.Relays}
	if hostEv != nil && len(rec.Relays) == 0 {
		h.Relays = hostEv.Relays
	}
	live, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*LiveRoom, error) {
		return e.LiveKit.Find(ctx, rec.ID)
	})
	if err != nil {
		return nil, unavailable(err)
	}
	switch {
	case live == nil:
		h.Reason = HealLiveKitMissing
	case !ownMetadata(live.Metadata, rec):
		h.Reason, h.OldSID = HealBareRoom, live.SID
	default:
		h.Skip = HealSkipHealthy
		return h, nil
	}
	if !opt.Present && (live == nil || live.Participants == 0) {
		h.Skip = HealSkipEmpty
		return h, nil
	}
	if view.CoolingErr != nil || view.Cooling {
		cooling, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (bool, error) {
			return e.State.CoolingDown(ctx, rec.ID)
		})
		if err != nil {
			return nil, unavailable(err)
		}
		if cooling {
			h.Skip = HealSkipCooldown
			return h, nil
		}
		view.Cooling, view.CoolingErr = false, nil
	}
	if ok, err := opt.allowed(ctx); err != nil || !ok {
		h.Skip = HealSkipRateLimited
		return h, err
	}
	if h.Reason == HealBareRoom {
		setter, ok := e.LiveKit.(metadataSetter)
		if !ok {
			return nil, errors.New("heal: this LiveKit cannot set room metadata")
		}
		room, err := retry(ctx, e.Set.DependencyBudget, func(ctx context.Context) (*LiveRoom, error) {
			return setter.SetMetadata(ctx, rec.ID, roomMetadata(rec))
		})
		if err != nil {
			return nil, unavailable(err)
		}
		// The cool-down makes replicas and the next ticks stand down.
		if err := e.commit(ctx, Writes{Restarted: rec.ID, Cooldown: e.Set.Cooldown}, lk, nil); err != nil {
			return nil, err
		}
		h.Action, h.SID = HealMetadata, room.SID
		return h, nil
	}
	req := nostrx.Request{ID: "heal:" + c.String(), Requester: rec.Host, CreatedAt: nostr.Now(), Action: nostrx.ActionRestart, Room: c}
	res, err := e.restartInPlace(ctx, req, c, rec, nostrx.RoleHost, &view, last, nil, lk, Run{})
	if err != nil {
		return nil, err
	}
	h.Action, h.SID, h.Result, h.Room, h.Relays = HealRestarted, res.SID, res, res.Room, res.Relays
	return h, nil
}

// healRecordGone recreates the bot's own open room c, whose record is gone,
// under a new ID from its last event, as its host's request would (the host
// named in that event becomes the new record's host; the result carries the
// adoption template). The caller holds lk; recreate releases it.
func (e *Engine) healRecordGone(ctx context.Context, c nostrx.Coordinate, spec nostrx.RoomSpec, last *nostr.Event, view *RoomView, lk HeldLock, opt HealOptions) (*Healed, error) {
	h := &Healed{Reason: HealRecordGone, Host: spec.Host, Room: c, Relays: spec.Relays}
	if view.ReplacementErr != nil {
		var err error
		if view.Replacement, err = e.replacement(ctx, c); err != nil {
			return nil, err
		}
	}
	if view.Replacement != "" {
		if rec, err := e.record(ctx, view.Replacement); err != nil {
			return nil, err
		} else if rec != nil {
			h.Reason, h.Skip = "", HealSkipHealthy // already recreated: the lifecycle closes this one
			return h, nil
		}
	}
	if !opt.Present {
		h.Skip = HealSkipEmpty
		return h, nil
	}
	if spec.Host == "" || spec.Host == e.Signer.PublicKey() {
		h.Skip = HealSkipNotOurs
		return h, nil
	}
	if !opt.NewID {
		h.Skip = HealSkipNewIDOff
		return h, nil
	}
	if ok, err := opt.allowed(ctx); err != nil || !ok {
		h.Skip = HealSkipRateLimited
		return h, err
	}
	orig, err := nostrx.ParseRoomEvent(last)
	if err != nil {
		return nil, fmt.Errorf("heal %s: %w", c, err)
	}
	req := nostrx.Request{ID: "heal:" + c.String(), Requester: spec.Host, CreatedAt: nostr.Now(), Action: nostrx.ActionRestart, Room: c}
	resuming := view.PendingErr == nil && view.Pending != ""
	res, err := e.recreate(ctx, req, orig, lk, resuming, nil)
	if err != nil {
		return nil, err
	}
	h.Action, h.SID, h.Result, h.Room, h.Relays = HealRecreated, res.SID, res, res.Room, res.Relays
	return h, nil
}

// ownMetadata reports whether LiveKit room metadata is this deployment's
// for rec: it names rec's ID and host, as roomMetadata and the Nests API
// server write them.
func ownMetadata(meta string, rec *Record) bool {
	if meta == "" || len(meta) > 64<<10 {
		return false
	}
	var m struct {
		NestID string `json:"nestId"`
		Host   string `json:"host"`
	}
	if json.Unmarshal([]byte(meta), &m) != nil {
		return false
	}
	return m.NestID == rec.ID && m.Host == rec.Host
}

// OwnMetadata is ownMetadata for the healer's look from outside the lock.
func OwnMetadata(meta string, rec *Record) bool { return ownMetadata(meta, rec) }

// SetMetadata replaces the metadata of LiveKit room name (UpdateRoomMetadata)
// and returns the room; its participants stay connected. LiveKit requires a
// roomAdmin grant for that room, so the call carries a token of its own.
func (l *LiveKitRooms) SetMetadata(ctx context.Context, name, metadata string) (*LiveRoom, error) {
	tok, err := auth.NewAccessToken(l.client.key, l.client.secret).
		SetVideoGrant(&auth.VideoGrant{RoomAdmin: true, Room: name}).
		SetValidFor(time.Minute).ToJWT()
	if err != nil {
		return nil, fmt.Errorf("livekit API token: %w", err)
	}
	h := make(http.Header, 1)
	h.Set("Authorization", "Bearer "+tok)
	hctx, err := twirp.WithHTTPRequestHeaders(ctx, h)
	if err != nil {
		return nil, err
	}
	r, err := l.client.svc.UpdateRoomMetadata(hctx, &livekit.UpdateRoomMetadataRequest{Room: name, Metadata: metadata})
	if err != nil {
		return nil, livekitErr("update metadata of "+name, err)
	}
	return liveRoom(r), nil
}

// HealCount is the Redis key counting heals in one unix minute, all
// replicas together (heal.max_per_minute); listed in keys.go.
func (k Keys) HealCount(minute int64) string {
	return k.Bot + "heals:" + strconv.FormatInt(minute, 10)
}

// CountHeal counts one heal against now's clock minute, across replicas,
// and returns the minute's count including it.
func (s *RedisStore) CountHeal(ctx context.Context, now time.Time) (int64, error) {
	key := s.keys.HealCount(now.Unix() / 60)
	pipe := s.rdb.TxPipeline()
	n := pipe.Incr(ctx, key)
	pipe.Expire(ctx, key, 2*time.Minute)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, redisErr("count heal", err)
	}
	return n.Val(), nil
}
