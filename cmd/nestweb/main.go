// Command nestweb serves the restart page (web/) on loopback for `make run`:
// static files plus a config.js naming the bot of the given configuration
// (its pubkey, its relays and nests.web_url). It holds no key: it derives
// the bot's public key from the configuration and never reads anything else.
//
//	nestweb --config config.yaml --dir web --listen 127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/webconsole"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("nestweb", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	configPath := flag.String("config", "config.yaml", "the bot's configuration (its pubkey, relays and nests.web_url go into config.js)")
	dir := flag.String("dir", "web", "the page's folder, with dist/app.js built (make web)")
	listen := flag.String("listen", "127.0.0.1:8080", "host:port to serve on; keep it on loopback for local use")
	flag.Parse()

	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	h, err := webconsole.Handler(*dir, webconsole.Config{Bot: cfg.PublicKey(), Relays: cfg.Nostr.Relays, WebURL: cfg.Nests.WebURL})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	url := "http://" + ln.Addr().String() + "/"
	log.Info("the restart page is served", "url", url, "bot", cfg.PublicKey(), "relays", cfg.Nostr.Relays)
	fmt.Fprintf(os.Stderr, "\n  restart page: %s\n\n", url)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
