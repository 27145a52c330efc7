package bench

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
)

// world is the bench's stack: one Redis, one LiveKit and one relay, started
// from the binaries devstack/install.sh installs, on free loopback ports.
type world struct {
	sess  *stack.Session
	redis *stack.Redis
	lk    *stack.LiveKit
	relay *stack.Relay // relays[0]: the requesters' relay
	// relays are the bot's relays; the answer goes to all of them.
	relays []*stack.Relay
	rdb    *redis.Client
	rooms  *lksdk.RoomServiceClient
}

func startWorld(log io.Writer, relays int) (*world, error) {
	sess, err := stack.NewSession(log)
	if err != nil {
		return nil, err
	}
	w := &world{sess: sess}
	if err := sess.Run(func() {
		w.redis = stack.StartRedis(sess)
		w.lk = stack.StartLiveKit(sess)
		for range max(relays, 1) {
			w.relays = append(w.relays, stack.StartRelay(sess))
		}
		w.relay = w.relays[0]
	}); err != nil {
		sess.Close()
		return nil, err
	}
	opt, err := redis.ParseURL(w.redis.URL)
	if err != nil {
		sess.Close()
		return nil, err
	}
	opt.PoolSize = 64
	w.rdb = redis.NewClient(opt)
	w.rooms = lksdk.NewRoomServiceClient(w.lk.URL, w.lk.APIKey, w.lk.APISecret)
	return w, nil
}

func (w *world) close() {
	if w.rdb != nil {
		w.rdb.Close()
	}
	w.sess.Close()
}

// buildInfo says how a bot binary was built.
type buildInfo struct {
	Path    string `json:"path"`
	Package string `json:"package"`
	Tags    string `json:"tags"`
	CGO     string `json:"cgo"`
	Libsecp bool   `json:"libsecp256k1"`
	Go      string `json:"go"`
}

func readBuildInfo(path string) (buildInfo, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return buildInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	out := buildInfo{Path: path, Package: bi.Path, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "-tags":
			out.Tags = s.Value
		case "CGO_ENABLED":
			out.CGO = s.Value
		}
	}
	for _, t := range strings.Split(out.Tags, ",") {
		if t == "libsecp256k1" {
			out.Libsecp = true
		}
	}
	return out, nil
}

// buildBot builds pkg (./cmd/nestbot) into out the way
// the Makefile's build and build-libsecp targets do: pure Go with cgo off,
// or with the libsecp256k1 tag, cgo on and Go's internal linker.
func buildBot(root, pkg, out string, libsecp bool) error {
	args := []string{"build", "-o", out}
	cgo := "CGO_ENABLED=0"
	if libsecp {
		// Internal linking, as make build-libsecp: the external linker's
		// layout leaves about 12 MB more of the binary resident.
		args = append(args, "-tags", "libsecp256k1", "-ldflags=-linkmode=internal")
		cgo = "CGO_ENABLED=1"
	}
	args = append(args, pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), cgo)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// botConfig is the bot's configuration for the bench. The limits are set
// explicitly: restarts_per_minute is raised so that the per-requester rate
// limit never answers RATE_LIMITED (each request also comes from its own
// host, so even the default would not trigger); new_rooms_per_minute is
// off, since the recreate scenario makes 200 rooms in seconds; the room cool-down stays
// at its default, 10 s, and never applies because every request is for a
// room of its own. Everything else is the default.
//
// listen is the ops listener's address (its /metrics gives the bench the
// bot's dependency counters); "" turns it off.
func botConfig(w *world, secret, listen string, extraRelays ...string) string {
	var urls []string
	for _, r := range w.relays {
		urls = append(urls, fmt.Sprintf("%q", r.URL))
	}
	for _, r := range extraRelays {
		urls = append(urls, fmt.Sprintf("%q", r))
	}
	relays := strings.Join(urls, ", ")
	return fmt.Sprintf(`# written by nestbench
nostr:
  secret_key: %q
  relays: [%s]
  max_request_age: 120s
  lookup_timeout: 3s
redis:
  url: %q
livekit:
  url: %q
  public_url: %q
  api_key: %q
  api_secret: %q
http:
  listen: %q
limits:
  room_cooldown: 10s
  restarts_per_minute: 1000000
  new_rooms_per_minute: 0
  dependency_timeout: 30s
  workers: 16
  queue: 1024
  seen_cache: 100000
log:
  level: info
  format: text
`, secret, relays, w.redis.URL, w.lk.URL, w.lk.WSURL, w.lk.APIKey, w.lk.APISecret, listen)
}

// botProc is the bot running as a child process.
type botProc struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// startBot runs bin with "run --config cfgPath" and args, and waits until it has
// subscribed on its relay (its "subscribed" log line).
func startBot(bin, cfgPath, logPath string, extraEnv []string, args ...string) (*botProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, append([]string{"run", "--config", cfgPath}, args...)...)
	cmd.Dir = filepath.Dir(cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NESTBOT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := stack.StartChild(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &botProc{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if p.logContains("msg=subscribed") {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("bot exited during start-up: %s\n%s", cmd.ProcessState, p.tail(20))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("bot did not subscribe within 20s\n%s", p.tail(20))
		}
	}
}

func (p *botProc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits for the bot to finish (it drains in-flight
// work) and kills it after 30 s.
func (p *botProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return errors.New("bot did not stop within 30s; killed")
	}
	return nil
}

func (p *botProc) logContains(s string) bool {
	f, err := os.Open(p.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

func (p *botProc) tail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countLines counts log lines containing s (e.g. outcome=INTERNAL).
func (p *botProc) countLines(s string) int {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// logSize is the bot log's current length, an offset for handleTimes.
func (p *botProc) logSize() int64 {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

var durationRE = regexp.MustCompile(`duration_ms=([0-9.]+)`)

// handleTimes returns the bot's own duration_ms (from taking a request off
// its queue to a relay's OK for the answer) of every successful request
// logged after offset.
func (p *botProc) handleTimes(offset int64) []time.Duration {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	var out []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "msg=request") || !strings.Contains(line, "outcome=ok") {
			continue
		}
		if m := durationRE.FindStringSubmatch(line); m != nil {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				out = append(out, time.Duration(v*float64(time.Millisecond)))
			}
		}
	}
	return out
}

// ctxSleep sleeps for d or until ctx ends.
func ctxSleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// relayURLs are the bot's relays' URLs.
func (w *world) relayURLs() []string {
	out := make([]string, len(w.relays))
	for i, r := range w.relays {
		out[i] = r.URL
	}
	return out
}
