//go:build faults

package e2e

import (
	"testing"

	"github.com/nestbot/nestbot/internal/flood"
)

// startFakeRelay starts a hostile relay (see flood.Relay) until the test ends.
func startFakeRelay(t *testing.T) *flood.Relay {
	t.Helper()
	r := flood.StartRelay()
	t.Cleanup(r.Close)
	return r
}

// startMalformedRelay is a fake relay that greets every connection with
// flood.MalformedFrames, the frames that once crashed the bot.
func startMalformedRelay(t *testing.T) *flood.Relay {
	t.Helper()
	r := startFakeRelay(t)
	r.OnConnect = func(c *flood.Conn) {
		for _, f := range flood.MalformedFrames {
			if c.Send([]byte(f)) != nil {
				return
			}
		}
	}
	return r
}
