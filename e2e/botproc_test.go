//go:build faults

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/stack"
)

var (
	botBinOnce sync.Once
	botBin     string
	botBinErr  error
)

// TestMain removes the bot binary the fault suite built (50 MB a run).
func TestMain(m *testing.M) {
	code := m.Run()
	if botBin != "" {
		os.RemoveAll(filepath.Dir(botBin))
	}
	os.Exit(code)
}

// nestbotBinary builds cmd/nestbot once per test binary.
func nestbotBinary(t *testing.T) string {
	t.Helper()
	botBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nestbot-faults-*")
		if err != nil {
			botBinErr = err
			return
		}
		botBin = filepath.Join(dir, "nestbot")
		cmd := exec.Command("go", "build", "-o", botBin, "./cmd/nestbot")
		cmd.Dir = stack.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			botBinErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if botBinErr != nil {
		t.Fatal(botBinErr)
	}
	return botBin
}

// botProc is `nestbot run` as a separate process, configured through
// NESTBOT_* variables only.
type botProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// botEnv is the environment of a bot process for w's stack and cfg.
func (w *world) botEnv(cfg config.Config) []string {
	env := []string{
		"NESTBOT_NOSTR_SECRET_KEY=" + w.botKey,
		"NESTBOT_NOSTR_RELAYS=" + strings.Join(cfg.Nostr.Relays, ","),
		"NESTBOT_NOSTR_LOOKUP_TIMEOUT=" + cfg.Nostr.LookupTimeout.String(),
		"NESTBOT_NOSTR_ALLOW_PRIVATE_RELAYS=" + strconv.FormatBool(cfg.Nostr.AllowPrivateRelays),
		"NESTBOT_REDIS_URL=" + cfg.Redis.URL.Reveal(),
		"NESTBOT_REDIS_MODE=" + cfg.Redis.Mode,
		"NESTBOT_REDIS_ADDRS=" + strings.Join(cfg.Redis.Addrs, ","),
		"NESTBOT_REDIS_MASTER_NAME=" + cfg.Redis.MasterName,
		"NESTBOT_REDIS_WAIT_REPLICAS=" + strconv.Itoa(cfg.Redis.WaitReplicas),
		"NESTBOT_REDIS_WAIT_TIMEOUT=" + cfg.Redis.WaitTimeout.String(),
		"NESTBOT_LIVEKIT_URL=" + cfg.LiveKit.URL,
		"NESTBOT_LIVEKIT_PUBLIC_URL=" + cfg.LiveKit.PublicURL,
		"NESTBOT_LIVEKIT_API_KEY=" + cfg.LiveKit.APIKey,
		"NESTBOT_LIVEKIT_API_SECRET=" + cfg.LiveKit.APISecret.Reveal(),
		"NESTBOT_LIMITS_DEPENDENCY_TIMEOUT=" + cfg.Limits.DependencyTimeout.String(),
		"NESTBOT_LIMITS_WORKERS=" + strconv.Itoa(cfg.Limits.Workers),
		"NESTBOT_LIMITS_QUEUE=" + strconv.Itoa(cfg.Limits.Queue),
		"NESTBOT_HTTP_LISTEN=" + cfg.HTTP.Listen, // "" unless the test reads /metrics
		"NESTBOT_LOG_LEVEL=info",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NESTBOT_") || strings.HasPrefix(kv, "NESTBOT_CACHE=") {
			env = append(env, kv)
		}
	}
	return env
}

// startBotProc runs the bot and waits until it is subscribed on every relay.
func (w *world) startBotProc(cfg config.Config, name string) *botProc {
	w.t.Helper()
	bin := nestbotBinary(w.t)
	p := &botProc{t: w.t, logPath: filepath.Join(w.t.TempDir(), name+".log"), done: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, "run")
	p.cmd.Dir = w.t.TempDir() // no config.yaml: environment only
	p.cmd.Env = w.botEnv(cfg)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := stack.StartChild(p.cmd); err != nil {
		w.t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	w.t.Cleanup(func() {
		p.kill()
		if w.t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			w.t.Logf("%s log tail:\n%s", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	want := len(cfg.Nostr.Relays)
	deadline := time.Now().Add(20 * time.Second)
	for p.countLog("msg=subscribed") < want {
		select {
		case <-p.done:
			w.t.Fatalf("%s exited during start-up:\n%s", name, p.log())
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s not subscribed on %d relays:\n%s", name, want, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func (p *botProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *botProc) countLog(substr string) int {
	b, _ := os.ReadFile(p.logPath)
	return bytes.Count(b, []byte(substr))
}

func (p *botProc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL to the bot's process group and waits.
func (p *botProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to the shutdown grace.
func (p *botProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(bot.ShutdownGrace + 5*time.Second):
		p.kill()
	}
}

// procStatus reads a field of /proc/<pid>/status in kB.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

// startReplica runs one more in-process bot on cfg until the test ends (or
// stop is called) and waits until it is subscribed on every relay.
func (w *world) startReplica(cfg config.Config) (*bot.Service, func()) {
	w.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("NESTBOT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return w.runInProcess(cfg, log)
}

// runInProcess runs a bot on cfg with log until the test ends (or stop is
// called) and waits until it is subscribed on every relay. It opens no ops
// port: replicas in one process would share it.
func (w *world) runInProcess(cfg config.Config, log *slog.Logger) (*bot.Service, func()) {
	w.t.Helper()
	cfg.HTTP.Listen = ""
	svc, err := bot.New(cfg, log)
	if err != nil {
		w.t.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				w.t.Errorf("Run: %v", err)
			}
		})
	}
	w.t.Cleanup(stop)
	waitFor(w.t, "bot subscribed on every relay", func() bool { return svc.RelaysConnected() == len(cfg.Nostr.Relays) })
	return svc, stop
}

// waitCtx is a context for one step of a fault test.
func waitCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// sendAsync publishes req as u and waits for its answer, up to within, in
// the background: the test injects its fault meanwhile. The channel gets
// the exchange, or nil (and the test an error) when none came.
func (w *world) sendAsync(u *user, req nostr.Event, within time.Duration) <-chan *bot.Exchange {
	answer := make(chan *bot.Exchange, 1)
	go func() {
		ctx, cancel := waitCtx(within)
		defer cancel()
		ex, err := w.client(u).SendEvent(ctx, req)
		if err != nil {
			w.t.Error(err)
		}
		answer <- ex
	}()
	return answer
}
