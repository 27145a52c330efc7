package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// liveKitVersion is the livekit-server release the stack runs.
const liveKitVersion = "v1.13.5"

// probeClient does not keep connections to a server that may be killed.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// LiveKit is a livekit-server of the test's own (--dev, in-memory, no Redis)
// on free loopback ports, so it never collides with a dev LiveKit on 7880.
// Rooms do not survive Stop, Kill and Start.
type LiveKit struct {
	// URL is the HTTP (Twirp) URL, e.g. "http://127.0.0.1:34567".
	URL string
	// WSURL is the websocket (signalling) URL, e.g. "ws://127.0.0.1:34567".
	WSURL string
	// Addr is host:port of the HTTP and websocket listener.
	Addr string
	// APIKey is the API key ("devkey").
	APIKey string
	// APISecret is the API secret: random, 64 hex characters, per instance.
	APISecret string

	svc *service
}

// StartLiveKit starts livekit-server-v1.13.5 from BinDir on free loopback
// ports, waits until it answers HTTP and stops it at t.Cleanup. Media (RTC)
// uses one UDP port on 127.0.0.1 only; the RTC TCP fallback is disabled
// because livekit-server can only bind it on all interfaces.
func StartLiveKit(t testing.TB) *LiveKit {
	t.Helper()
	skipShort(t, "livekit-server")
	bin := cachedBinary(t, "livekit-server-"+liveKitVersion)
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		t.Fatalf("stack: random secret: %v", err)
	}
	lk := &LiveKit{APIKey: "devkey", APISecret: hex.EncodeToString(secret[:])}
	lk.svc = newService(t, "livekit", bin)
	lk.svc.termTwice = true
	lk.svc.ready = func(ctx context.Context) error { return livekitReady(ctx, lk.URL) }
	lk.svc.firstStart(func() []string {
		port := freePort(t, "tcp")
		udp := freePort(t, "udp")
		lk.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		lk.URL = "http://" + lk.Addr
		lk.WSURL = "ws://" + lk.Addr
		return []string{"--dev", "--bind", "127.0.0.1", "--config-body", liveKitConfig(port, udp, lk.APIKey, lk.APISecret)}
	})
	return lk
}

// liveKitConfig returns the --config-body for livekit-server:
// HTTP on port, media on one UDP port, all on 127.0.0.1, one API key.
func liveKitConfig(port, udpPort int, key, secret string) string {
	return fmt.Sprintf(`port: %d
rtc:
  tcp_port: 0
  udp_port: %d
  node_ip: 127.0.0.1
  use_external_ip: false
  enable_loopback_candidate: true
  interfaces:
    includes: [lo]
keys:
  %s: %s
logging:
  level: info
`, port, udpPort, key, secret)
}

// Stop sends SIGTERM to livekit-server and waits for it to exit (a second
// SIGTERM after a second forces it past connected participants).
func (lk *LiveKit) Stop() { lk.svc.stop() }

// Kill sends SIGKILL to livekit-server and waits for it to exit.
func (lk *LiveKit) Kill() { lk.svc.kill() }

// Start starts livekit-server again on the same ports with the same keys and
// waits until it answers. It does nothing if it is running.
func (lk *LiveKit) Start() { lk.svc.t.Helper(); lk.svc.restart() }

// PID returns the process id of livekit-server, or 0 if it is not running.
func (lk *LiveKit) PID() int { return lk.svc.pid() }

// livekitReady reports nil once the health check at / answers 200. It then
// waits a little longer: livekit-server marks itself running 100 ms after it
// starts serving and ignores a SIGTERM that arrives before.
func livekitReady(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET / answered %s", resp.Status)
	}
	time.Sleep(150 * time.Millisecond)
	return nil
}
