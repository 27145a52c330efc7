package stack

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server of the test's own on a free loopback port, with no
// persistence: a restart after Stop or Kill starts empty.
type Redis struct {
	// Addr is host:port, e.g. "127.0.0.1:34567".
	Addr string
	// URL is the redis URL of database 0, e.g. "redis://127.0.0.1:34567/0".
	URL string

	svc *service
}

// StartRedis starts redis-server (from PATH) on a free loopback port, waits
// until it answers PING and stops it at t.Cleanup.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	skipShort(t, "redis-server")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("stack: redis-server not found in PATH: %s", installHint)
	}
	r := &Redis{}
	r.svc = newService(t, "redis", bin)
	dir := t.TempDir()
	r.svc.ready = func(ctx context.Context) error { return redisPing(ctx, r.Addr) }
	r.svc.firstStart(func() []string {
		port := freePort(t, "tcp")
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.URL = "redis://" + r.Addr + "/0"
		return []string{
			"--bind", "127.0.0.1",
			"--port", strconv.Itoa(port),
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--dir", dir,
			"--logfile", "",
		}
	})
	return r
}

// Stop sends SIGTERM to redis-server and waits for it to exit.
func (r *Redis) Stop() { r.svc.stop() }

// Kill sends SIGKILL to redis-server and waits for it to exit.
func (r *Redis) Kill() { r.svc.kill() }

// Start starts redis-server again on the same port, empty, and waits until
// it answers PING. It does nothing if it is running.
func (r *Redis) Start() { r.svc.t.Helper(); r.svc.restart() }

// PID returns the process id of redis-server, or 0 if it is not running.
func (r *Redis) PID() int { return r.svc.pid() }

// redisPing sends an inline PING and expects +PONG.
func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(time.Second))
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
