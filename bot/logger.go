package bot

import (
	"io"
	"log/slog"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/rooms"
)

// NewLogger is the process's one logger: text or JSON, at the configured
// level. Secrets never reach it: Config redacts itself when logged.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// RouteLibraryLogs sends what libraries would print outside slog through
// log instead: the standard log package (slog.SetDefault routes it), and
// go-redis's own logger (a log.Logger of its own on stderr), each message
// quoted and cut so that it cannot forge a line. go-nostr's loggers are
// kept on io.Discard; the bot does no relay I/O through go-nostr anyway
// (internal/relay). Call it once, at process start.
func RouteLibraryLogs(log *slog.Logger) {
	slog.SetDefault(log)
	rooms.RouteRedisLogs(log)
	nostr.InfoLogger.SetOutput(io.Discard)
	nostr.DebugLogger.SetOutput(io.Discard)
}
