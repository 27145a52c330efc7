// Command nestrelay is a small khatru relay for nestbot's local stack and
// tests: badger storage, NIP-01/09/42/45, replaceable, addressable and
// ephemeral kinds. It prints "relay listening on ws://HOST:PORT" once ready.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"
	"github.com/fiatjaf/eventstore/badger"
	"github.com/fiatjaf/khatru"
	"github.com/nbd-wtf/go-nostr"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7777", "address to listen on (port 0 picks a free port)")
	dbDir := flag.String("db", "", "badger database directory (empty: a temporary directory removed on exit)")
	auth := flag.Bool("auth", false, "require NIP-42 AUTH for reading and writing")
	maxTag := flag.Int("max-indexed-tag", 1024, "index tag values up to this length (badger's own limit is 100)")
	flag.Parse()
	log.SetPrefix("[nestrelay] ")

	dir := *dbDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "nestrelay-*")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	db := &badger.BadgerBackend{
		Path: dir,
		BadgerOptionsModifier: func(o badgerdb.Options) badgerdb.Options {
			return o.WithLoggingLevel(badgerdb.WARNING)
		},
		// badger skips tag values longer than 100 characters; addressable
		// coordinates with a UUID d tag are longer, and real relays index them.
		IndexLongerTag: func(_ *nostr.Event, _ string, v string) bool { return len(v) <= *maxTag },
	}
	if err := db.Init(); err != nil {
		log.Fatalf("open db %s: %v", dir, err)
	}
	defer db.Close()

	rl := khatru.NewRelay()
	rl.Info.Name = "nestrelay"
	rl.Info.Description = "nestbot local test relay"
	rl.Info.SupportedNIPs = []any{1, 9, 11, 40, 42, 45, 70}
	rl.StoreEvent = append(rl.StoreEvent, db.SaveEvent)
	rl.QueryEvents = append(rl.QueryEvents, db.QueryEvents)
	rl.CountEvents = append(rl.CountEvents, db.CountEvents)
	rl.DeleteEvent = append(rl.DeleteEvent, db.DeleteEvent)
	rl.ReplaceEvent = append(rl.ReplaceEvent, db.ReplaceEvent)

	if *auth {
		const msg = "auth-required: this relay requires NIP-42 authentication"
		rl.RejectEvent = append(rl.RejectEvent, func(ctx context.Context, _ *nostr.Event) (bool, string) {
			return khatru.GetAuthed(ctx) == "", msg
		})
		rejectFilter := func(ctx context.Context, _ nostr.Filter) (bool, string) {
			if khatru.IsInternalCall(ctx) || khatru.GetAuthed(ctx) != "" {
				return false, ""
			}
			return true, msg
		}
		rl.RejectFilter = append(rl.RejectFilter, rejectFilter)
		rl.RejectCountFilter = append(rl.RejectCountFilter, func(ctx context.Context, f nostr.Filter) (bool, string) {
			reject, m := rejectFilter(ctx, f)
			if reject {
				khatru.RequestAuth(ctx)
			}
			return reject, m
		})
	}

	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("bad --listen %q: %v", *listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		log.Fatalf("bad --listen port %q: %v", portStr, err)
	}
	started := make(chan bool)
	errc := make(chan error, 1)
	go func() { errc <- rl.Start(host, port, started) }()
	select {
	case <-started: // rl.Addr holds the bound address now
	case err := <-errc:
		log.Fatalf("listen %s: %v", *listen, err)
	}
	fmt.Printf("relay listening on ws://%s\n", rl.Addr)

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigc:
		log.Printf("%s: shutting down", sig)
	case err := <-errc:
		log.Printf("serve: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rl.Shutdown(ctx) // stops the HTTP server and closes every websocket
}
