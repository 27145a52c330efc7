// Package stack starts real services for tests: redis-server, livekit-server
// and nestbot's khatru relay (devstack/relay), each on free loopback ports and
// stopped at t.Cleanup.
//
// It launches the binaries that devstack/install.sh (make deps) installs:
// redis-server from PATH, and livekit-server-v1.13.5 and nestrelay from
// $NESTBOT_CACHE/bin (default $HOME/.cache/nestbot/bin). Each process runs in
// its own process group and gets SIGKILL when the test binary dies. A
// service's stdout and stderr go to a file in t.TempDir; its tail is logged
// when the test fails.
//
// Every service has Stop (SIGTERM, wait), Kill (SIGKILL, wait) and Start
// (start again on the same port and wait until ready) for fault-injection
// tests, and PID for RSS measurements. Start, like the Start* functions,
// calls t.Fatalf on failure, so call it from the test's own goroutine; Stop,
// Kill and PID may be called from any goroutine.
package stack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	modulePath = "github.com/nestbot/nestbot"
	// readyTimeout bounds how long a service may take to answer after launch.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// portAttempts is how often a first start is retried with fresh ports
	// when another process grabbed a port between probing and binding.
	portAttempts = 5
	installHint  = "run devstack/install.sh (make deps)"
)

// RepoRoot returns the absolute path of the nestbot repository: the nearest
// directory, from the working directory upwards, whose go.mod declares module
// github.com/nestbot/nestbot, else the directory this source file was
// compiled from. It returns "" if neither is found.
func RepoRoot() string {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if isRepoRoot(dir) {
				return dir
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
		if isRepoRoot(dir) {
			return dir
		}
	}
	return ""
}

func isRepoRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == modulePath {
			return true
		}
	}
	return false
}

// NodeDir returns the absolute path of <repo>/interop, the directory of the
// independent Node client, and fails the test unless its node_modules are
// installed.
func NodeDir(t testing.TB) string {
	t.Helper()
	skipShort(t, "nostr-tools (interop/)")
	root := RepoRoot()
	if root == "" {
		t.Fatalf("stack: cannot find the nestbot repository root (go.mod of %s) from the working directory", modulePath)
	}
	dir := filepath.Join(root, "interop")
	if fi, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil || !fi.IsDir() {
		t.Fatalf("stack: %s has no node_modules: run devstack/install.sh", dir)
	}
	return dir
}

// skipShort skips a test under -short: a test that starts a real service
// or runs node needs what make deps installs, and `go test -short ./...`
// must pass on a fresh clone with nothing installed. A Session (a program,
// not a test) never skips.
func skipShort(t testing.TB, what string) {
	t.Helper()
	if _, program := t.(*Session); !program && testing.Short() {
		t.Skipf("-short: needs %s from make deps; run without -short (make test)", what)
	}
}

// LoopbackHostname is this machine's host name when it resolves to loopback
// addresses only (as /etc/hosts usually makes it), else "": a name, not an
// IP literal, that tests can use for a relay on a private address.
func LoopbackHostname() string {
	name, err := os.Hostname()
	if err != nil {
		return ""
	}
	addrs, err := net.LookupHost(name)
	if err != nil || len(addrs) == 0 {
		return ""
	}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.IsLoopback() {
			return ""
		}
	}
	return name
}

// BinDir returns the directory devstack/install.sh installs binaries into:
// $NESTBOT_CACHE/bin, default $HOME/.cache/nestbot/bin.
func BinDir() string {
	cache := os.Getenv("NESTBOT_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache", "nestbot")
	}
	return filepath.Join(cache, "bin")
}

// cachedBinary returns BinDir()/name or fails the test if it is missing.
func cachedBinary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(BinDir(), name)
	fi, err := os.Stat(p)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("stack: %s is missing: %s", p, installHint)
	}
	return p
}

// --- ports -------------------------------------------------------------

var (
	portsMu sync.Mutex
	// handedOut keeps this process from giving one port to two services.
	handedOut = map[string]bool{}
)

// freePort returns a loopback port that was free a moment ago for network
// "tcp" or "udp".
func freePort(t testing.TB, network string) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 50; i++ {
		var port int
		switch network {
		case "tcp":
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("stack: probe free tcp port: %v", err)
			}
			port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		case "udp":
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("stack: probe free udp port: %v", err)
			}
			port = pc.LocalAddr().(*net.UDPAddr).Port
			pc.Close()
		default:
			panic("stack: bad network " + network)
		}
		key := fmt.Sprintf("%s/%d", network, port)
		if !handedOut[key] {
			handedOut[key] = true
			return port
		}
	}
	t.Fatalf("stack: no free %s port found", network)
	return 0
}

// --- processes ----------------------------------------------------------

// spawnCh feeds a goroutine locked to one OS thread that is never released:
// Pdeathsig fires when the thread that forked the child exits, so every
// child is forked from a thread that lives as long as the test binary.
var (
	spawnOnce sync.Once
	spawnCh   chan func()
)

// StartChild starts cmd in a process group of its own (so a kill reaches
// its children too) and with SIGKILL as its parent-death signal, forked
// from the spawn thread: a stack process never outlives the test or bench
// that started it, even when that one is killed.
func StartChild(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var err error
	onSpawnThread(func() { err = cmd.Start() })
	return err
}

func onSpawnThread(f func()) {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must not exit
			for f := range spawnCh {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnCh <- func() { defer close(done); f() }
	<-done
}

// errPortInUse marks a launch that failed because a port was taken.
var errPortInUse = errors.New("port already in use")

// service is one supervised process; the exported types wrap it.
type service struct {
	t       testing.TB
	name    string
	bin     string
	logPath string
	// args is fixed once the first start succeeded, so restarts reuse ports.
	args []string
	// ready reports nil once the service answers.
	ready func(ctx context.Context) error
	// termTwice sends a second SIGTERM if the first one did not end the
	// process within a second (livekit-server ignores a SIGTERM that arrives
	// while it is still starting, and waits for participants on the first).
	termTwice bool

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has been waited for
	launches int
}

func newService(t testing.TB, name, bin string) *service {
	s := &service{t: t, name: name, bin: bin, logPath: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("stack: %s log tail (%s):\n%s", s.name, s.logPath, s.logTail(40))
		}
	})
	return s
}

// firstStart launches the service with ports chosen by pick, retrying with
// fresh ports when one was grabbed in the meantime.
func (s *service) firstStart(pick func() []string) {
	s.t.Helper()
	var err error
	for attempt := 0; attempt < portAttempts; attempt++ {
		s.args = pick()
		if err = s.launch(); err == nil {
			return
		}
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	s.t.Fatalf("stack: start %s: %v\n%s log tail (%s):\n%s", s.name, err, s.name, s.logPath, s.logTail(40))
}

// restart starts the service again with the same arguments; a no-op if it
// is running.
func (s *service) restart() {
	s.t.Helper()
	var err error
	// The old socket may linger for a moment after a kill; retry briefly.
	deadline := time.Now().Add(readyTimeout)
	for {
		err = s.launch()
		if err == nil || !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("stack: restart %s: %v\n%s log tail (%s):\n%s", s.name, err, s.name, s.logPath, s.logTail(40))
	}
}

// launch starts the process and waits until it is ready.
func (s *service) launch() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return nil // already running
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	defer logf.Close() // the child keeps its own descriptor
	s.launches++
	fmt.Fprintf(logf, "=== stack: launch %d at %s: %s %s\n", s.launches,
		time.Now().Format(time.RFC3339Nano), s.bin, strings.Join(quoteArgs(s.args), " "))
	offset, _ := logf.Seek(0, io.SeekEnd)

	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = filepath.Dir(s.logPath)
	if err := StartChild(cmd); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("exec %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for {
		select {
		case <-done:
			s.clear(cmd)
			msg := fmt.Errorf("%s exited during startup: %s", s.name, cmd.ProcessState)
			if s.logSinceContains(offset, "address already in use") {
				return fmt.Errorf("%w: %v", errPortInUse, msg)
			}
			return msg
		default:
		}
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, time.Second)
		err := s.ready(attemptCtx)
		cancelAttempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			s.kill()
			return fmt.Errorf("%s not ready after %s: %v", s.name, readyTimeout, err)
		}
		select {
		case <-done:
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// clear forgets cmd once it has exited.
func (s *service) clear(cmd *exec.Cmd) {
	s.mu.Lock()
	if s.cmd == cmd {
		s.cmd, s.done = nil, nil
	}
	s.mu.Unlock()
}

func (s *service) current() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.done
}

// stop sends SIGTERM and waits; SIGKILL after stopTimeout.
func (s *service) stop() {
	cmd, done := s.current()
	if cmd == nil {
		return
	}
	signalGroup(cmd, syscall.SIGTERM)
	wait := stopTimeout
	if s.termTwice {
		select {
		case <-done:
			s.clear(cmd)
			return
		case <-time.After(time.Second):
			signalGroup(cmd, syscall.SIGTERM)
			wait -= time.Second
		}
	}
	select {
	case <-done:
	case <-time.After(wait):
		signalGroup(cmd, syscall.SIGKILL)
		<-done
	}
	s.clear(cmd)
}

// kill sends SIGKILL and waits.
func (s *service) kill() {
	cmd, done := s.current()
	if cmd == nil {
		return
	}
	signalGroup(cmd, syscall.SIGKILL)
	<-done
	s.clear(cmd)
}

func (s *service) pid() int {
	cmd, _ := s.current()
	if cmd == nil {
		return 0
	}
	return cmd.Process.Pid
}

// signalGroup signals the process group of cmd (each child leads its own).
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil {
		_ = cmd.Process.Signal(sig)
	}
}

func (s *service) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *service) logSinceContains(offset int64, substr string) bool {
	f, err := os.Open(s.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	needle := []byte(strings.ToLower(substr))
	for sc.Scan() {
		if bytes.Contains(bytes.ToLower(sc.Bytes()), needle) {
			return true
		}
	}
	return false
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \n\t'\"") {
			out[i] = fmt.Sprintf("%q", a)
		} else {
			out[i] = a
		}
	}
	return out
}

// dialReady reports nil once addr accepts a TCP connection.
func dialReady(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
