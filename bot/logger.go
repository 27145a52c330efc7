package bot

import (
	"io"
	"log/slog"
)

// NewLogger is the process's one logger: text or JSON, at the configured
// level. Secrets never reach it: Config redacts itself when logged.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
