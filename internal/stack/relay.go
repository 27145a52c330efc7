package stack

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Relay is a nestrelay (khatru + badger, devstack/relay) of the test's own
// on a free loopback port. Its database lives in t.TempDir, so events
// survive Stop, Kill and Start.
type Relay struct {
	// URL is the websocket URL, e.g. "ws://127.0.0.1:34567".
	URL string
	// Addr is host:port.
	Addr string
	// Auth reports whether the relay requires NIP-42 AUTH (WithAuth).
	Auth bool

	svc *service
}

type relayOptions struct {
	auth bool
}

// RelayOption configures StartRelay.
type RelayOption func(*relayOptions)

// WithAuth makes the relay require NIP-42 AUTH for reading and writing: it
// answers "auth-required: ..." (CLOSED or OK false, then an AUTH challenge)
// until the connection has authenticated.
func WithAuth() RelayOption { return func(o *relayOptions) { o.auth = true } }

// StartRelay starts nestrelay on a free loopback port, waits until it
// accepts connections and stops it at t.Cleanup.
func StartRelay(t testing.TB, opts ...RelayOption) *Relay {
	t.Helper()
	skipShort(t, "the khatru relay")
	var o relayOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin := cachedBinary(t, "nestrelay")
	checkRelayFresh(t, bin)
	r := &Relay{Auth: o.auth}
	r.svc = newService(t, "relay", bin)
	db := filepath.Join(t.TempDir(), "relay-db")
	r.svc.ready = func(ctx context.Context) error { return dialReady(ctx, r.Addr) }
	r.svc.firstStart(func() []string {
		port := freePort(t, "tcp")
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.URL = "ws://" + r.Addr
		args := []string{"--listen", r.Addr, "--db", db}
		if o.auth {
			args = append(args, "--auth")
		}
		return args
	})
	return r
}

// Stop sends SIGTERM to the relay and waits for it to exit.
func (r *Relay) Stop() { r.svc.stop() }

// Kill sends SIGKILL to the relay and waits for it to exit.
func (r *Relay) Kill() { r.svc.kill() }

// Start starts the relay again on the same port with the same database and
// waits until it accepts connections. It does nothing if it is running.
func (r *Relay) Start() { r.svc.t.Helper(); r.svc.restart() }

// PID returns the process id of the relay, or 0 if it is not running.
func (r *Relay) PID() int { return r.svc.pid() }

// checkRelayFresh fails the test if the relay's sources are newer than its
// binary, i.e. devstack/install.sh has not rebuilt it yet.
func checkRelayFresh(t testing.TB, bin string) {
	t.Helper()
	root := RepoRoot()
	if root == "" {
		return
	}
	bfi, err := os.Stat(bin)
	if err != nil {
		return
	}
	src := filepath.Join(root, "devstack", "relay")
	_ = filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if ext := filepath.Ext(p); ext != ".go" && ext != ".mod" && ext != ".sum" {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(bfi.ModTime()) {
			t.Fatalf("stack: %s is older than %s: %s", bin, p, installHint)
		}
		return nil
	})
}
