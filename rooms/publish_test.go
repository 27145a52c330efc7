package rooms_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
	"github.com/nestbot/nestbot/rooms/memstore"
)

// The one publisher of room events: each version is signed, goes above the
// last one even within the same second, and reaches the relays.
func TestRoomPublisher(t *testing.T) {
	ctx := context.Background()
	bot, err := nostrx.NewSigner(botKey.sk, 1)
	if err != nil {
		t.Fatal(err)
	}
	relays := memstore.NewRelays()
	p := rooms.RoomPublisher{Signer: bot, Events: relays, Relays: []string{"wss://a.example"}}
	spec := nostrx.RoomSpec{D: "room-1", Title: "Nest", Host: hostKey.pk, Relays: []string{"wss://a.example", "wss://b.example"}}
	first, err := p.Publish(ctx, spec, nil, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if first.CreatedAt != nostr.Timestamp(epoch.Unix()) || first.PubKey != bot.PublicKey() {
		t.Fatalf("first version %v", first)
	}
	spec.Status = nostrx.StatusClosed
	second, err := p.Publish(ctx, spec, first, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if second.CreatedAt != first.CreatedAt+1 {
		t.Fatalf("second version at %d, first at %d", second.CreatedAt, first.CreatedAt)
	}
	stored := relays.Event(nostrx.Coordinate{Kind: nostrx.KindRoom, Author: bot.PublicKey(), D: "room-1"})
	if stored == nil || stored.ID != second.ID {
		t.Fatalf("relays hold %v, want the second version", stored)
	}
	relays.Fail = func(string) error { return errors.New("blocked") }
	if _, err := p.Publish(ctx, spec, second, epoch); err == nil {
		t.Fatal("a version no relay accepted was reported published")
	}
}
