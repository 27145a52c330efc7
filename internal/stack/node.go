package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RunNode runs one of the nostr-tools scripts in interop/ (an implementation
// nobody here wrote) with input as its stdin JSON, and decodes its stdout
// JSON into out. A non-zero exit or output that is not JSON fails the test
// with what the script printed.
func RunNode(t testing.TB, script string, input, out any) {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatalf("stack: node %s: encode input: %v", script, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(NodeDir(t), script))
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("stack: node %s: %v\nstdout: %s\nstderr: %s", script, err, stdout.String(), stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("stack: node %s: output is not JSON: %v: %s", script, err, stdout.String())
	}
}
