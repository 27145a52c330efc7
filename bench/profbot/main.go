// Command profbot is nestbot's "run" with a CPU profile: nestbench builds
// and runs it instead of cmd/nestbot when asked for -cpuprofile, so the
// profile shows the bot's own work under the bench's load. It wires the
// service exactly as `nestbot run --config` does and writes the profile to
// $NESTBENCH_CPUPROFILE when it stops (SIGINT or SIGTERM).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/nestbot/nestbot/bot"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "profbot:", err)
		os.Exit(1)
	}
}

func run() error {
	// Same command line as the real binary: run --config <path>.
	if len(os.Args) != 4 || os.Args[1] != "run" || os.Args[2] != "--config" {
		return fmt.Errorf("usage: profbot run --config <path>")
	}
	cfg, err := bot.LoadConfig(os.Args[3])
	if err != nil {
		return err
	}
	svc, err := bot.New(cfg, bot.NewLogger(os.Stderr, cfg.Log))
	if err != nil {
		return err
	}
	path := os.Getenv("NESTBENCH_CPUPROFILE")
	if path == "" {
		return fmt.Errorf("NESTBENCH_CPUPROFILE is not set")
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return svc.Run(ctx)
}
