package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/heal"
	"github.com/nestbot/nestbot/rooms"
)

// Auto-heal (issue 14) is internal/heal; this file wires it to the
// service: its settings, the engine, the store, LiveKit, the relay pool
// and the DM that tells the host.

// newHealer builds the service's healer from the heal section, or returns
// nil when heal.enabled is off. Run calls it after the outbox exists.
func (s *Service) newHealer(lk *rooms.LiveKitRooms) *heal.Healer {
	if !s.cfg.Heal.Enabled {
		return nil
	}
	h := &heal.Healer{
		Bot:    s.PublicKey(),
		Relays: s.cfg.Nostr.Relays,
		Set: heal.Settings{
			PresenceTTL: s.cfg.Heal.PresenceTTL, MinPresent: s.cfg.Heal.MinPresent, NewID: s.cfg.Heal.NewID,
			MaxPerMinute: s.cfg.Heal.MaxPerMinute, Interval: s.cfg.Heal.Interval, MaxRooms: s.cfg.Heal.MaxRooms,
			DependencyTimeout: s.cfg.Limits.DependencyTimeout,
		},
		Engine:  s.engine,
		Store:   s.store,
		LiveKit: lk,
		Relay:   s.outbox.pool,
		Notify:  s.tellHost,
		Log:     s.log,
	}
	h.Register(s.Metrics())
	return h
}

// tellHost sends the host of a healed room one NIP-17 DM (a kind 14 rumor,
// sealed and gift-wrapped, NIP-59) saying what broke, what the bot did and
// where the room is, to the host's kind 10050 relays (else their NIP-65
// read relays) and the bot's relays, as command replies go. It returns
// once one relay accepted it.
func (s *Service) tellHost(ctx context.Context, h *rooms.Healed, present int) error {
	if h.Host == "" || h.Host == s.PublicKey() {
		return errors.New("the room has no host to tell")
	}
	text := s.healText(h, present)
	wrap, err := s.giftWrapDM(h.Host, nostr.Tags{{"p", h.Host}}, text)
	if err != nil {
		return fmt.Errorf("gift wrap: %w", err)
	}
	l := s.relayListsOf(ctx, h.Host)
	inbox := l.DM
	if len(inbox) == 0 {
		inbox = l.Read
	}
	relays := dedupe(append(append([]string{}, s.cfg.Nostr.Relays...), inbox...))
	if err := s.outbox.Publish(ctx, &wrap, relays); err != nil {
		return err
	}
	s.metrics.Published.WithLabelValues(strconv.Itoa(nostr.KindGiftWrap)).Inc()
	return nil
}

// healText is the DM's words: what broke, what the bot did, the room's
// link (nostr:naddr and the web client's page). It never carries a token.
func (s *Service) healText(h *rooms.Healed, present int) string {
	people := fmt.Sprintf("%d people were", present)
	switch present {
	case 0:
		people = "people were"
	case 1:
		people = "1 person was"
	}
	naddr := h.Room.Naddr(healFirstN(h.Relays, 3)...)
	if h.Result != nil && h.Result.Naddr != "" {
		naddr = h.Result.Naddr
	}
	links := s.roomLinks(naddr)
	switch h.Action {
	case rooms.HealRestarted:
		return "Your room " + h.Room.D + " lost its LiveKit room while " + people + " in it. " +
			"I restarted it in place (same address, new LiveKit room); everyone rejoins it here:\n\n" + links
	case rooms.HealMetadata:
		return "Your room " + h.Room.D + " came back in LiveKit without its settings (LiveKit restarted and a " +
			"participant's client recreated it bare). I restored its settings; nobody was disconnected. The room:\n\n" + links
	case rooms.HealRecreated:
		id := h.Room.D
		if h.Result != nil {
			id = h.Result.RoomID
		}
		return "Your room's record was gone while " + people + " in it, so I recreated it under a new room ID (" + id +
			"). Its new address:\n\n" + links + "\n\nThe old address no longer works; share this one. To take it over, " +
			"publish the room under your own key with the same room ID (d tag " + id + "): `nestbot restart` does it for you."
	}
	return "Your room " + h.Room.D + " was repaired:\n\n" + links
}

func healFirstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
