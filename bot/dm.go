package bot

import (
	"context"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// dmCommand is a command that arrived by direct message (NIP-17 or NIP-04).
type dmCommand struct{}

// dmFilters are the subscription filters for direct messages to the bot.
func (s *Service) dmFilters(now time.Time) nostr.Filters { return nil }

// intakeDM screens and verifies a direct message in the relay's goroutine.
func (s *Service) intakeDM(ctx context.Context, ev *nostr.Event, via string) {
	s.metrics.dropped.WithLabelValues("wrong_kind").Inc()
}

// handleDM answers one direct-message command on a worker.
func (s *Service) handleDM(ctx context.Context, j job) {}
