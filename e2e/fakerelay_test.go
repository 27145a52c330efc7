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
