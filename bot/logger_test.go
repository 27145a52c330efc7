package bot

import (
	"bytes"
	"context"
	stdlog "log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// What libraries print through the standard log package or go-redis's
// logger lands in slog, one escaped line each.
func TestRouteLibraryLogs(t *testing.T) {
	prev := slog.Default()
	defer func() { slog.SetDefault(prev); stdlog.SetOutput(os.Stderr) }()
	var buf lockedBuf
	RouteLibraryLogs(slog.New(slog.NewTextHandler(&buf, nil)))
	defer redis.SetLogger(redisLogger{prev})
	stdlog.Print("from std\ntime=2026 level=INFO msg=forged")
	redisLogger{slog.Default()}.Printf(context.Background(), "pool: %s", "x\ntime=2026 level=INFO msg=forged2")
	buf.mu.Lock()
	out := buf.b.String()
	buf.mu.Unlock()
	if !strings.Contains(out, "from std") || !strings.Contains(out, "redis client") {
		t.Fatalf("library logs not in slog:\n%s", out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "time=2026 ") {
			t.Fatalf("forged line %q", l)
		}
	}
}
