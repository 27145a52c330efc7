// Command nestbench measures nestbot end to end on a real local stack.
//
// It starts its own Redis, LiveKit and relay (the binaries devstack/install.sh
// installs; run `make deps` once), builds nestbot (pure Go, or with
// -libsecp the libsecp256k1 build tag), runs it as a child process, and acts
// as the requesters: restart latency in place and under a new ID, throughput
// at several concurrencies, the bot's CPU time per restart (from
// /proc/<pid>/stat) and its RSS idle and after a soak. It prints a Markdown
// table and writes the figures as JSON. See docs/performance.md.
//
//	go run ./cmd/nestbench                      # quick run (make bench)
//	go run ./cmd/nestbench -both -soak 10000    # the figures in docs/performance.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nestbot/nestbot/bench"
	"github.com/nestbot/nestbot/internal/stack"
)

func main() {
	var o bench.Options
	var conc, out, botEnv, bots string
	var libsecp, both bool
	flag.IntVar(&o.N, "n", 200, "requests per latency scenario (restart in place, recreate under a new ID), each from its own host and room")
	flag.IntVar(&o.ThroughputN, "throughput-n", 300, "restarts per throughput level")
	flag.StringVar(&conc, "c", "1,8,32", "throughput concurrency levels, comma-separated")
	flag.IntVar(&o.Soak, "soak", 2000, "restarts in the CPU and memory run (the documented figures use 10000; 0 skips it)")
	flag.IntVar(&o.SoakConcurrency, "soak-c", 8, "concurrency of the soak")
	flag.IntVar(&o.Warmup, "warmup", 20, "restarts before measuring (not counted)")
	flag.IntVar(&o.Flood, "flood", 10000, "junk events a second a hostile relay sends during the last run, -n restarts in place one at a time (0 skips it)")
	flag.BoolVar(&libsecp, "libsecp", false, "build the bot with -tags libsecp256k1 (cgo) instead of pure Go")
	flag.BoolVar(&both, "both", false, "measure the pure Go and the libsecp256k1 builds one after the other, each on a fresh stack")
	flag.StringVar(&bots, "bot", "", "run these prebuilt bot binaries (comma-separated, e.g. /tmp/nestbot-main,bin/nestbot) instead of building one; \"this\" builds this tree")
	flag.IntVar(&o.Rounds, "rounds", 1, "run the list of bots this many times, interleaved (a, b, a, b …), each on a fresh stack")
	flag.IntVar(&o.Relays, "relays", 2, "the bot's relays (requesters publish on the first; the answer goes to all)")
	flag.StringVar(&o.CPUProfile, "cpuprofile", "", "write the bot's CPU profile to this file (nestbot run --cpuprofile), and its heap profile beside it")
	flag.StringVar(&botEnv, "bot-env", "", "extra environment for the bot process, comma-separated KEY=VALUE (e.g. GOMAXPROCS=1)")
	flag.DurationVar(&o.Timeout, "timeout", 15*time.Second, "how long to wait for one answer")
	flag.StringVar(&out, "out", "", "JSON output (default bench-results/<timestamp>.json)")
	flag.Parse()

	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fail(fmt.Errorf("-c %q: want positive integers", conc))
		}
		o.Concurrency = append(o.Concurrency, n)
	}
	switch {
	case both && bots != "":
		fail(fmt.Errorf("-both builds the bot; it cannot be combined with -bot"))
	case bots != "" && o.CPUProfile != "":
		fail(fmt.Errorf("-cpuprofile builds the bot itself; it cannot be combined with -bot"))
	case bots != "":
		for _, b := range strings.Split(bots, ",") {
			if b = strings.TrimSpace(b); b == "this" {
				o.Variants = append(o.Variants, bench.Variant{Name: "this"})
			} else if b != "" {
				abs, err := filepath.Abs(b)
				if err != nil {
					fail(err)
				}
				o.Variants = append(o.Variants, bench.Variant{Name: filepath.Base(b), Bin: abs})
			}
		}
	case both:
		o.Variants = []bench.Variant{{Name: "pure"}, {Name: "libsecp", Libsecp: true}}
	case libsecp:
		o.Variants = []bench.Variant{{Name: "libsecp", Libsecp: true}}
	default:
		o.Variants = []bench.Variant{{Name: "pure"}}
	}
	if o.N < 1 || o.ThroughputN < 1 || o.SoakConcurrency < 1 || o.Rounds < 1 || o.Relays < 1 {
		fail(fmt.Errorf("-n, -throughput-n, -soak-c, -rounds and -relays must be positive"))
	}
	if o.Flood < 0 || o.Soak < 0 || o.Warmup < 0 {
		fail(fmt.Errorf("-flood, -soak and -warmup must not be negative"))
	}
	o.Log = os.Stderr
	for _, kv := range strings.Split(botEnv, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				fail(fmt.Errorf("-bot-env %q: want KEY=VALUE", kv))
			}
			o.BotEnv = append(o.BotEnv, kv)
		}
	}

	root := stack.RepoRoot()
	if root == "" {
		fail(fmt.Errorf("run nestbench from inside the nestbot repository"))
	}
	if out == "" {
		out = filepath.Join(root, "bench-results", time.Now().UTC().Format("20060102T150405Z")+".json")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := bench.Bench(ctx, root, o)
	if res != nil && len(res.Runs) > 0 {
		bench.PrintTable(os.Stdout, res)
		if werr := bench.WriteJSON(out, res); werr != nil {
			fail(werr)
		}
		fmt.Printf("\nJSON: %s (%.0f s)\n", out, time.Since(start).Seconds())
		svgs, perr := bench.PlotCDFs(out, res)
		for _, f := range svgs {
			fmt.Printf("CDF: %s\n", f)
		}
		if perr != nil {
			fail(perr)
		}
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nestbench:", err)
	os.Exit(1)
}
