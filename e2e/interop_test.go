package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
)

// TestNostrToolsClient drives a restart from nostr-tools, a client nobody
// here wrote: it signs the request, decrypts the answer and reads the 30312.
func TestNostrToolsClient(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host := newUser(t)
	oldID := uuid.NewString()
	w.publishRoom(host, oldID, nil)

	var out struct {
		Request   nostr.Event    `json:"request"`
		Response  nostr.Event    `json:"response"`
		Payload   nostrx.Payload `json:"payload"`
		RoomEvent *nostr.Event   `json:"roomEvent"`
	}
	stack.RunNode(t, "client-restart.mjs", map[string]any{
		"sk": host.sk, "botPubkey": w.botPub(), "relays": w.relayURLs(),
		"coord": "30312:" + host.pk + ":" + oldID, "timeoutMs": 20000,
	}, &out)
	res := restartResult(t, out.Payload)
	if !res.IsNewRoom || res.OriginalRoomID != oldID {
		t.Fatalf("%+v", res)
	}
	if out.RoomEvent == nil || out.RoomEvent.Tags.GetD() != res.RoomID || out.RoomEvent.PubKey != w.botPub() {
		t.Fatalf("nostr-tools did not read the replacement room event: %+v", out.RoomEvent)
	}
	if out.Response.Tags.Find("e")[1] != out.Request.ID {
		t.Fatal("response does not reference the request")
	}
	checkToken(t, w, res.Token, res.RoomID, host.pk)
}

// TestRestartCommand runs `nestbot restart` as a user would, against the
// running bot: a result on stdout and exit 0, or the error code and exit 3.
func TestRestartCommand(t *testing.T) {
	w := newWorld(t, 1)
	w.start()
	host, stranger := newUser(t), newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)

	bin := filepath.Join(t.TempDir(), "nestbot")
	build := exec.Command("go", "build", "-o", bin, "github.com/nestbot/nestbot/cmd/nestbot")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	naddr := coord(host.pk, id).Naddr(w.relays[0].URL)
	run := func(key string, args ...string) (string, string, int) {
		cmd := exec.Command(bin, append([]string{"restart", "--bot", nostrx.Npub(w.botPub()), "--relay", w.relays[0].URL, "--timeout", "20s"}, args...)...)
		cmd.Env = append(os.Environ(), "NESTBOT_CLIENT_KEY="+key)
		cmd.Dir = t.TempDir() // no config.yaml here: flags only
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return stdout.String(), stderr.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), 0
	}

	stdout, stderr, code := run(host.sk, "nostr:"+naddr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var p nostrx.Payload
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("stdout is not the JSON payload: %v: %s", err, stdout)
	}
	if res := restartResult(t, p); res.RoomID != id || res.IsNewRoom {
		t.Fatalf("%+v", res)
	}

	stdout, stderr, code = run(stranger.sk, naddr)
	if code != 3 || !bytes.Contains([]byte(stderr), []byte("UNAUTHORIZED")) {
		t.Fatalf("stranger: exit %d, stderr %q, stdout %q", code, stderr, stdout)
	}
	if _, stderr, code = run(stranger.sk, "not-a-room"); code != 1 || stderr == "" {
		t.Fatalf("bad room: exit %d, stderr %q", code, stderr)
	}
}
