// Command profbot is nestbot's "run" with a CPU profile: nestbench builds
// and runs it instead of cmd/nestbot when asked for -cpuprofile, so the
// profile shows the bot's own work under the bench's load. It wires the
// service exactly as `nestbot run --config` does and writes the profile to
// $NESTBENCH_CPUPROFILE when it stops (SIGINT or SIGTERM), and, when
// $NESTBENCH_HEAPPROFILE is set, a heap profile taken once it stopped (after
// a GC: what the bot still held after the run).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
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
	log := bot.NewLogger(os.Stderr, cfg.Log)
	bot.RouteLibraryLogs(log)
	svc, err := bot.New(cfg, log)
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
	err = svc.Run(ctx)
	if heap := os.Getenv("NESTBENCH_HEAPPROFILE"); heap != "" {
		runtime.GC()
		if f, ferr := os.Create(heap); ferr == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	runtime.KeepAlive(svc) // its caches are what the heap profile is about
	return err
}
