package rooms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/utils/xtwirp"
	"github.com/twitchtv/twirp"

	iretry "github.com/nestbot/nestbot/internal/retry"
)

// RoomOptions are the LiveKit settings every nest is created with; the
// defaults match what the Nests API server uses.
type RoomOptions struct {
	MaxParticipants  uint32
	EmptyTimeout     time.Duration
	DepartureTimeout time.Duration
}

// LiveKitRooms manages nests' rooms through LiveKit's RoomService API.
type LiveKitRooms struct {
	client *roomAPI
	opts   RoomOptions
	clock  *lkClock

	// afterDelete, when set (tests), is called by Recreate between the
	// delete and the create that is to make the new room, as a bot cut
	// off there would stop.
	afterDelete func()
}

// NewLiveKitRooms connects to LiveKit's API at url (http, https, ws or wss).
func NewLiveKitRooms(url, apiKey, apiSecret string, opts RoomOptions) *LiveKitRooms {
	return &LiveKitRooms{client: newRoomAPI(url, apiKey, apiSecret), opts: opts, clock: newLKClock()}
}

// roomAPI is LiveKit's RoomService over Twirp, as lksdk.RoomServiceClient
// calls it, with two differences that matter on the restart path (see
// docs/performance.md): its HTTP client keeps enough idle connections for
// the bot's workers (lksdk uses http.DefaultTransport, which keeps two per
// host and so dials anew under concurrency), and it signs one API token and
// reuses it until it is half spent instead of signing one per call. It
// leaves out lksdk's region failover, which only applies to LiveKit Cloud
// hosts.
type roomAPI struct {
	svc    livekit.RoomService
	key    string
	secret string

	mu    sync.Mutex
	token string
	renew time.Time

	// onCall, when set (before the first call), is told of every call by
	// its method name ("CreateRoom", "DeleteRoom", "ListRooms").
	onCall func(method string)
}

// OnCall makes l report every LiveKit API call it makes to f with the
// method's name, e.g. for a Prometheus counter. It is set once, before l
// is used; it returns l.
func (l *LiveKitRooms) OnCall(f func(method string)) *LiveKitRooms {
	l.client.onCall = f
	return l
}

func (a *roomAPI) count(method string) {
	if a.onCall != nil {
		a.onCall(method)
	}
}

// apiTokenTTL is the lifetime of the token the bot calls LiveKit's API
// with; it is renewed when half of it is left.
const apiTokenTTL = 10 * time.Minute

func newRoomAPI(url, apiKey, apiSecret string) *roomAPI {
	tr, ok := http.DefaultTransport.(*http.Transport)
	if ok {
		tr = tr.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, IdleConnTimeout: 90 * time.Second}
	}
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: tr}
	return &roomAPI{
		svc: livekit.NewRoomServiceProtobufClient(httpURL(url), client, xtwirp.DefaultClientOptions()...),
		key: apiKey, secret: apiSecret,
	}
}

// httpURL is the API URL for a ws:// or wss:// one, as lksdk maps it.
func httpURL(u string) string {
	if strings.HasPrefix(u, "ws") {
		return "http" + u[len("ws"):]
	}
	return u
}

// authorize attaches the API token to ctx.
func (a *roomAPI) authorize(ctx context.Context) (context.Context, error) {
	a.mu.Lock()
	if a.token == "" || !time.Now().Before(a.renew) {
		at := auth.NewAccessToken(a.key, a.secret).
			SetVideoGrant(&auth.VideoGrant{RoomCreate: true, RoomList: true}).
			SetValidFor(apiTokenTTL)
		tok, err := at.ToJWT()
		if err != nil {
			a.mu.Unlock()
			return nil, fmt.Errorf("livekit API token: %w", err)
		}
		a.token, a.renew = tok, time.Now().Add(apiTokenTTL/2)
	}
	tok := a.token
	a.mu.Unlock()
	h := make(http.Header, 1)
	h.Set("Authorization", "Bearer "+tok)
	return twirp.WithHTTPRequestHeaders(ctx, h)
}

func (a *roomAPI) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	ctx, err := a.authorize(ctx)
	if err != nil {
		return nil, err
	}
	a.count("CreateRoom")
	return a.svc.CreateRoom(ctx, req)
}

func (a *roomAPI) ListRooms(ctx context.Context, req *livekit.ListRoomsRequest) (*livekit.ListRoomsResponse, error) {
	ctx, err := a.authorize(ctx)
	if err != nil {
		return nil, err
	}
	a.count("ListRooms")
	return a.svc.ListRooms(ctx, req)
}

func (a *roomAPI) DeleteRoom(ctx context.Context, req *livekit.DeleteRoomRequest) (*livekit.DeleteRoomResponse, error) {
	ctx, err := a.authorize(ctx)
	if err != nil {
		return nil, err
	}
	a.count("DeleteRoom")
	return a.svc.DeleteRoom(ctx, req)
}

// LiveRoom is what the bot needs to know of a LiveKit room.
type LiveRoom struct {
	Name         string
	SID          string
	Participants int
	Metadata     string
	// CreatedMs is the room's creation_time_ms: LiveKit's clock, ms since
	// the Unix epoch, set once with the SID (see Replaced).
	CreatedMs int64
}

// maxSIDRetries bounds how often Recreate deletes again a room it could
// not tell from the old one (see LiveKitRooms.replace).
const maxSIDRetries = 3

// Find returns the room named name, or nil when LiveKit has none.
func (l *LiveKitRooms) Find(ctx context.Context, name string) (*LiveRoom, error) {
	res, err := l.client.ListRooms(ctx, &livekit.ListRoomsRequest{Names: []string{name}})
	if err != nil {
		return nil, livekitErr("list room "+name, err)
	}
	for _, r := range res.Rooms {
		if r.Name == name {
			return liveRoom(r), nil
		}
	}
	return nil, nil
}

// Ensure creates the room if it does not exist and returns it; LiveKit's
// CreateRoom on an existing name returns the existing room untouched, which
// makes this the idempotent step of a recreation that may be resumed.
//
// Every answer gives a lower bound of LiveKit's clock offset (lkClock):
// whatever room it returned was created before the answer.
func (l *LiveKitRooms) Ensure(ctx context.Context, name, metadata string) (*LiveRoom, error) {
	r, err := l.client.CreateRoom(ctx, &livekit.CreateRoomRequest{
		Name:             name,
		MaxParticipants:  l.opts.MaxParticipants,
		EmptyTimeout:     uint32(l.opts.EmptyTimeout / time.Second),
		DepartureTimeout: uint32(l.opts.DepartureTimeout / time.Second),
		Metadata:         metadata,
	})
	if err != nil {
		return nil, livekitErr("create room "+name, err)
	}
	if r.CreationTimeMs > 0 {
		now := l.clock.now()
		l.clock.observeLower(now, offsetLower(r.CreationTimeMs, now))
	}
	return liveRoom(r), nil
}

// Recreate really recreates a room: it deletes the room if LiveKit has one
// and creates it again, checking that the room it gets back was made after
// the delete, and deleting again if it cannot tell. The Nests API server's
// restart leaves a live room untouched; this is the fix.
//
// Two calls, DeleteRoom then CreateRoom, once LiveKit's clock is
// calibrated (see lkClock): the room CreateRoom returns is taken as new
// when its creation_time_ms is at least Replaced.After, the first LiveKit
// ms after the moment the delete was sent (newAfter: the bot's send time
// plus an upper bound of LiveKit's clock offset). LiveKit sets a room's
// creation time once, with its SID, and keeps it when it hands an existing
// room back (roomallocator.go CreateRoom loads the stored room; rtc.NewRoom
// keeps a non-zero CreationTime), so a room that passes was created after
// the delete left the bot: a room that existed before the delete can only
// pass if it was created while the delete was in flight, which under the
// room's lock only a participant's join (LiveKit's auto-create) could do,
// and such a room is not the one the restart replaces. A step of
// LiveKit's clock backwards makes new rooms look old (extra calls, no
// wrong answer) until the retry's SID check gives a new sample; a step
// forwards by d lets through only rooms created within d before the
// delete, until the next CreateRoom's lower bound reaches the upper one
// and the calibration is dropped. The bot's own clock is monotonic here.
// A multi-node LiveKit stamps a room with its RTC node's clock: nodes
// apart by more than about a ms contradict each other's bounds and keep
// the bot on three calls; closer ones act as a step that small.
//
// Without a recent calibration (at start, or after a quiet minute) it
// falls back to three calls: ListRooms, then DeleteRoom, then CreateRoom,
// and the SID check against the listed room; the created room calibrates
// the clock.
//
// When the room it got back is not provably new (LiveKit handed the old
// room back, or the time check could not tell), it deletes it and creates
// again until the SID differs from the one it got, at most
// maxSIDRetries times; such a room was made after the last delete and
// calibrates the clock too.
//
// gone, when not nil, is called once, after the delete and concurrently
// with the create that is to make the new room, with what tells the new
// room from the ones it replaces. The
// caller can remember it (Engine.markRecreating), so that a restart cut
// off after the create can tell that LiveKit's room is already the new
// one. Recreate returns only once gone has returned.
func (l *LiveKitRooms) Recreate(ctx context.Context, name, metadata string, gone func(Replaced)) (*LiveRoom, error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tell := func(p Replaced) {
		if gone == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			gone(p)
		}()
	}
	c := l.clock
	if ub, ok := c.upper(c.now()); ok {
		sent := c.now()
		if _, err := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil && !isNotFound(err) {
			return nil, livekitErr("delete room "+name, err)
		}
		p := Replaced{After: newAfter(sent, ub)}
		tell(p)
		if l.afterDelete != nil {
			l.afterDelete()
		}
		r, err := l.Ensure(ctx, name, metadata)
		if err != nil {
			return nil, err
		}
		// The bounds must still agree once this create's own lower bound
		// is in: a contradiction means LiveKit's clock stepped.
		if _, ok := c.upper(c.now()); ok && p.IsNew(r) {
			return r, nil
		}
		return l.replace(ctx, name, metadata, r.SID, 0)
	}
	return l.recreateListed(ctx, name, metadata, tell)
}

// recreateListed is Recreate without a calibrated clock: ListRooms for
// the old SID, then DeleteRoom, then CreateRoom.
//
// The look-up goes before the delete, not beside it as it did: sent
// together, the delete overtook the look-up in about one restart in five
// on a loaded 2-core machine (each on its own connection, LiveKit's
// handlers race), which left the old SID unknown and cost a stand-in
// room, deleted and created again: two calls more. One round trip more,
// on the few restarts that calibrate, costs less than that.
func (l *LiveKitRooms) recreateListed(ctx context.Context, name, metadata string, tell func(Replaced)) (*LiveRoom, error) {
	found, err := l.Find(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, err := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil && !isNotFound(err) {
		return nil, livekitErr("delete room "+name, err)
	}
	old := ""
	if found != nil {
		old = found.SID
	}
	tell(Replaced{SID: old})
	if l.afterDelete != nil {
		l.afterDelete()
	}
	r, sentAt, err := l.ensureTimed(ctx, name, metadata)
	if err != nil {
		return nil, err
	}
	if r.SID != old {
		l.clock.observeUpper(l.clock.now(), offsetUpper(r.CreatedMs, sentAt))
		return r, nil
	}
	return l.replace(ctx, name, metadata, r.SID, 1)
}

// replace deletes the room named name, whose SID is sid, and creates it
// again until it gets a room with another SID: a room made after the last
// delete, which calibrates the clock. tries is how many replacements
// were made already; there are at most maxSIDRetries. The first goes at
// once, later ones wait as retry.Recreate says.
func (l *LiveKitRooms) replace(ctx context.Context, name, metadata, sid string, tries int) (*LiveRoom, error) {
	backoff := iretry.Recreate.Backoff()
	for ; ; tries++ {
		if tries >= maxSIDRetries {
			return nil, fmt.Errorf("recreate room %s: LiveKit kept SID %s after %d attempts", name, sid, maxSIDRetries)
		}
		if tries > 0 && !iretry.Sleep(ctx, backoff.NextBackOff()) {
			return nil, ctx.Err()
		}
		if _, err := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil && !isNotFound(err) {
			return nil, livekitErr("delete room "+name, err)
		}
		r, sentAt, err := l.ensureTimed(ctx, name, metadata)
		if err != nil {
			return nil, err
		}
		if r.SID != sid {
			l.clock.observeUpper(l.clock.now(), offsetUpper(r.CreatedMs, sentAt))
			return r, nil
		}
	}
}

// ensureTimed is Ensure that also returns when its request began to go
// out (bot clock, lkClock.now): when it got its connection, after any
// dial and before any byte of the request was written, so that LiveKit
// cannot have read it earlier. Taking the time before the call would
// count a dial in and loosen the clock's upper bound; taking it after
// the write could come after LiveKit's answer was already made.
func (l *LiveKitRooms) ensureTimed(ctx context.Context, name, metadata string) (*LiveRoom, int64, error) {
	var conn atomic.Int64
	before := l.clock.now()
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { conn.Store(l.clock.now()) },
	})
	r, err := l.Ensure(tctx, name, metadata)
	sent := conn.Load()
	if sent < before {
		sent = before
	}
	return r, sent, err
}

func liveRoom(r *livekit.Room) *LiveRoom {
	return &LiveRoom{Name: r.Name, SID: r.Sid, Participants: int(r.NumParticipants), Metadata: r.Metadata, CreatedMs: r.CreationTimeMs}
}

func isNotFound(err error) bool {
	var te twirp.Error
	return errors.As(err, &te) && te.Code() == twirp.NotFound
}

// livekitErr wraps err and marks it transient unless LiveKit rejected the
// call itself (bad argument, bad credentials), which retrying cannot fix.
func livekitErr(op string, err error) error {
	var te twirp.Error
	if errors.As(err, &te) {
		switch te.Code() {
		case twirp.InvalidArgument, twirp.PermissionDenied, twirp.Unauthenticated, twirp.NotFound, twirp.AlreadyExists, twirp.FailedPrecondition:
			return fmt.Errorf("livekit %s: %w", op, err)
		}
	}
	return fmt.Errorf("livekit %s: %w: %w", op, ErrUnavailable, err)
}
