package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/twitchtv/twirp"
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
	client *lksdk.RoomServiceClient
	opts   RoomOptions
}

// NewLiveKitRooms connects to LiveKit's API at url (http, https, ws or wss).
func NewLiveKitRooms(url, apiKey, apiSecret string, opts RoomOptions) *LiveKitRooms {
	return &LiveKitRooms{client: lksdk.NewRoomServiceClient(url, apiKey, apiSecret), opts: opts}
}

// LiveRoom is what the bot needs to know of a LiveKit room.
type LiveRoom struct {
	Name         string
	SID          string
	Participants int
	Metadata     string
}

// maxSIDRetries bounds how often Recreate deletes again a room that came
// back with its old SID.
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
func (l *LiveKitRooms) Recreate(ctx context.Context, name, metadata string) (*LiveRoom, error) {
	old, err := l.Find(ctx, name)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if old != nil {
			if _, err := l.client.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil && !isNotFound(err) {
				return nil, livekitErr("delete room "+name, err)
			}
		}
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
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
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
