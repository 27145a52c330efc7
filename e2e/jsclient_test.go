//go:build web

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// The JavaScript client library (clients/js) and the restart page (web/)
// run against the same real stack as the Go tests: this file starts the
// stack and the bot, sets up rooms, and runs the node test runner or the
// browser driver as a subprocess with what it set up in the environment.

// jsDir returns <repo>/<rel> and fails unless its node_modules are installed.
func jsDir(t *testing.T, rel string) string {
	t.Helper()
	root := stack.RepoRoot()
	if root == "" {
		t.Fatal("cannot find the repository root")
	}
	dir := filepath.Join(root, rel)
	if fi, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil || !fi.IsDir() {
		t.Fatalf("%s has no node_modules: run devstack/install.sh (make deps)", dir)
	}
	return dir
}

// runNode runs node with args in dir, with extra environment, and returns
// its stdout; a non-zero exit fails the test with both outputs.
func runNode(t *testing.T, dir string, env []string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// jsWorld is a started bot whose limits let one requester ask many times in
// a minute, with its kind 10002 already on the relay (the library reads it).
// Its nests.console_url names the page, so its profile must say so.
func jsWorld(t *testing.T) *world {
	t.Helper()
	t.Setenv("NESTBOT_NESTS_CONSOLE_URL", consoleURL)
	w := newWorld(t, 1)
	w.cfg.Limits.RestartsPerMinute = 1000
	w.start()
	waitFor(t, "the bot's relay list (kind 10002) on the relay", func() bool {
		return len(query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{10002}, Authors: []string{w.botPub()}})) > 0
	})
	// The bot's kind 0 names the restart page as its website.
	waitFor(t, "the bot's profile (kind 0) naming the restart page", func() bool {
		for _, ev := range query(t, w.relays[0].URL, nostr.Filter{Kinds: []int{0}, Authors: []string{w.botPub()}}) {
			var p struct {
				Website string `json:"website"`
				Bot     bool   `json:"bot"`
			}
			if json.Unmarshal([]byte(ev.Content), &p) == nil && p.Website == consoleURL && p.Bot {
				return true
			}
		}
		return false
	})
	return w
}

// consoleURL is where the tests' bot says its restart page is.
const consoleURL = "https://console.nests.example/restart/"

// streamingEndpoint is the bot's own LiveKit endpoint, as its replacement
// rooms name it ("ws+livekit://host:port"), so that rooms made by the tests
// look like this deployment's.
func streamingEndpoint(w *world) string {
	return "ws+livekit://" + w.lk.Addr
}

// publishLocalRoom publishes u's own 30312 for a room of this deployment
// (its service and streaming endpoint), with no Nests record.
func publishLocalRoom(t *testing.T, w *world, u *user, d string) {
	t.Helper()
	ev := nostr.Event{Kind: nostrx.KindRoom, CreatedAt: nostr.Now(), Tags: nostr.Tags{
		{"d", d}, {"title", "Evening Nest"}, {"summary", "a room whose record is gone"}, {"status", "live"},
		{"service", w.cfg.Nests.ServiceURL}, {"streaming", streamingEndpoint(w)}, {"p", u.pk, "", "host"},
	}}
	if err := u.signer.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	w.publish(ev)
}

// TestJSClientLibrary runs clients/js's node tests: the offline ones (room
// formats, forged answers from a programmable relay, timeouts) and the ones
// against this stack (restart in place, new ID and adoption, a stranger, a
// bot that is not there, every room format, relays from the bot's 10002).
func TestJSClientLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real stack and node (make deps)")
	}
	dir := jsDir(t, "clients/js")
	w := jsWorld(t)
	host, stranger := newUser(t), newUser(t)
	liveID, formatID := uuid.NewString(), uuid.NewString()
	w.nestsRecord(liveID, host.pk, nil, nil)
	before := w.createLiveRoom(liveID)
	w.nestsRecord(formatID, host.pk, nil, nil)

	env, _ := json.Marshal(map[string]any{
		"bot": w.botPub(), "relays": w.relayURLs(), "hostSk": host.sk, "strangerSk": stranger.sk,
		"liveRoom":   map[string]string{"d": liveID, "naddr": coord(host.pk, liveID).Naddr(w.relays[0].URL)},
		"formatRoom": map[string]string{"d": formatID, "naddr": coord(host.pk, formatID).Naddr(w.relays[0].URL)},
		"service":    w.cfg.Nests.ServiceURL, "streaming": streamingEndpoint(w),
	})
	out := runNode(t, dir, []string{"NESTBOT_JS_STACK=" + string(env)},
		"--test", "--test-reporter=spec", "test/offline.test.js", "test/stack.test.js")
	t.Logf("node --test:\n%s", out)
	if bytes.Contains(out, []byte("NESTBOT_JS_STACK is not set")) {
		t.Fatal("the stack tests skipped although NESTBOT_JS_STACK was set")
	}

	// What the library's "restarted in place" means on LiveKit: the same
	// room name under a new SID.
	after := w.liveRoom(liveID)
	if after == nil || after.Sid == before.Sid {
		t.Fatalf("LiveKit room %s: before %s, after %v: not recreated", liveID, before.Sid, after)
	}
}
