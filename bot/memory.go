package bot

import (
	"context"
	"time"

	"github.com/nestbot/nestbot/internal/memtrim"
)

// startupSettle bounds how long releaseStartupMemory waits for every relay
// to be subscribed before it releases anyway.
const startupSettle = 30 * time.Second

// releaseStartupMemory gives start-up's memory back once the bot is up:
// when every relay's subscription is live (or startupSettle passed), the
// free heap and the executable's read-only pages that package
// initialisation touched (internal/memtrim; issue 15: idle RSS) are
// released. Pages the bot serves with come back on first use. It runs
// once, as one of Run's tasks.
func (s *Service) releaseStartupMemory(ctx context.Context) {
	deadline := time.Now().Add(startupSettle)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.RelaysConnected() < len(s.listeners) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	r, err := memtrim.Release()
	if err != nil {
		s.log.Warn("release start-up memory", "err", err)
		return
	}
	s.log.Debug("released start-up memory", "executable_mapped_bytes", r.ExecutableBytes)
}
