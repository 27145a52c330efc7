package bot

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/config"
)

// clearEnv unsets every NESTBOT_* variable the configuration reads for the
// rest of the test (an empty variable counts as set), restoring them
// afterwards. The configuration's own tests are in internal/config.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range config.Keys() {
		name := config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_"))
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

// The largest queue the configuration accepts costs the bot a few
// megabytes at start: its two request queues are allocated in full by New
// (and scanned by every garbage collection). At the old bound they took
// 3.2 GB.
func TestLargestQueueIsAffordable(t *testing.T) {
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", nostr.GeneratePrivateKey())
	t.Setenv("NESTBOT_LIMITS_QUEUE", strconv.Itoa(config.MaxQueue))
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(s)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("New allocated %d MB with limits.queue %d", grew>>20, config.MaxQueue)
	}
}
