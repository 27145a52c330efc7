package bot

import (
	stdlog "log"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/nestbot/nestbot/internal/testlog"
	"github.com/nestbot/nestbot/rooms"
)

// What libraries print through the standard log package lands in slog,
// one escaped line each (go-redis's logger: rooms.RouteRedisLogs).
func TestRouteLibraryLogs(t *testing.T) {
	prev := slog.Default()
	defer func() {
		slog.SetDefault(prev)
		stdlog.SetOutput(os.Stderr)
		rooms.RouteRedisLogs(prev)
	}()
	var buf testlog.Buffer
	RouteLibraryLogs(slog.New(slog.NewTextHandler(&buf, nil)))
	stdlog.Print("from std\ntime=2026 level=INFO msg=forged")
	out := buf.String()
	if !strings.Contains(out, "from std") {
		t.Fatalf("the standard logger's line is not in slog:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "time=2026 ") {
			t.Fatalf("forged line %q", l)
		}
	}
}
