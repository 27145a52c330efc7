package rooms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
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
}

// NewLiveKitRooms connects to LiveKit's API at url (http, https, ws or wss).
func NewLiveKitRooms(url, apiKey, apiSecret string, opts RoomOptions) *LiveKitRooms {
	return &LiveKitRooms{client: newRoomAPI(url, apiKey, apiSecret), opts: opts}
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
}

// maxSIDRetries bounds how often Recreate deletes again a room that came
// back with its old SID; the second attempt goes at once, the third and
// later ones wait as retry.Recreate says.
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
	return liveRoom(r), nil
}

// Recreate really recreates a room: it deletes the room if LiveKit has one
// and creates it again, checking that the new room has a new SID (LiveKit
// may hand the old one back when a name is recreated at once) and deleting
// again if not. The Nests API server's restart leaves a live room untouched;
// this is the fix.
//
// The first delete is sent together with the look-up of the old room, not
// after it (one LiveKit round trip less on every restart), but only once
// the look-up's request is on the wire, so that a look-up that has to
// dial a connection does not fall behind a delete that found an idle one.
// The look-up almost always reads the room
// before the delete removes it; when it does not (nothing found, yet the
// delete removed a room), the old SID is unknown, so the room created next
// is recreated once more, which yields a room LiveKit made after the
// delete.
//
// gone, when not nil, is called once, before the create that makes the new
// room, with the SID of the room that create replaces: the old room,
// already deleted ("" when there was none), or, when the look-up missed
// it, the stand-in made in its place and deleted next. The caller can
// remember it, so that a restart cut off after the create can tell that
// LiveKit's room is already the new one.
func (l *LiveKitRooms) Recreate(ctx context.Context, name, metadata string, gone func(oldSID string)) (*LiveRoom, error) {
	type found struct {
		room *LiveRoom
		err  error
	}
	lookup := make(chan found, 1)
	wrote := make(chan struct{})
	var once sync.Once
	sent := func() { once.Do(func() { close(wrote) }) }
	lctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { sent() },
	})
	go func() {
		r, err := l.Find(lctx, name)
		sent() // no request written (an error before it): do not wait
		lookup <- found{r, err}
	}()
	select {
	case <-wrote:
	case <-ctx.Done():
	}
	_, delErr := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name})
	f := <-lookup
	if f.err != nil {
		return nil, f.err
	}
	if delErr != nil && !isNotFound(delErr) {
		return nil, livekitErr("delete room "+name, delErr)
	}
	old := f.room
	deleted := old != nil // the room to delete before each create; done once already
	if old == nil && delErr == nil {
		// The look-up came after the delete: make a room, then replace it.
		r, err := l.Ensure(ctx, name, metadata)
		if err != nil {
			return nil, err
		}
		old, deleted = r, false
	}
	if gone != nil {
		oldSID := ""
		if old != nil {
			oldSID = old.SID
		}
		gone(oldSID)
	}
	backoff := iretry.Recreate.Backoff()
	for attempt := 0; ; attempt++ {
		if old != nil && !deleted {
			if _, err := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil && !isNotFound(err) {
				return nil, livekitErr("delete room "+name, err)
			}
		}
		deleted = false
		r, err := l.Ensure(ctx, name, metadata)
		if err != nil {
			return nil, err
		}
		if old == nil || r.SID != old.SID {
			return r, nil
		}
		if attempt+1 >= maxSIDRetries {
			return nil, fmt.Errorf("recreate room %s: LiveKit kept SID %s after %d attempts", name, r.SID, maxSIDRetries)
		}
		// LiveKit 1.13.5 hands the old room back to a create right after
		// its delete in about one restart in five (nestbench: 1.2–1.35
		// deletes per restart at concurrency 1); a second delete and
		// create at once has always given a new room on this machine, so
		// the first retry does not wait (it waited 20 ms, which was the
		// p90 of a restart in place), later ones back off.
		if attempt > 0 && !iretry.Sleep(ctx, backoff.NextBackOff()) {
			return nil, ctx.Err()
		}
	}
}

func liveRoom(r *livekit.Room) *LiveRoom {
	return &LiveRoom{Name: r.Name, SID: r.Sid, Participants: int(r.NumParticipants), Metadata: r.Metadata}
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
