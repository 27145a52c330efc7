package rooms

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// go-redis's own log lines (a connection pool that cannot dial, printed
// while Redis is away) reach the bot's log as one line each, whose "msg" is
// the bot's and whose text is an attribute of its own. The text was a second
// "msg" key: in the JSON format that makes an object with a duplicate key,
// of which log collectors keep one (or refuse the line).
func TestRedisLogLine(t *testing.T) {
	const text = "redis: connection pool: failed to dial after 5 attempts"
	forged := "\ntime=2026 level=INFO msg=forged"

	var js bytes.Buffer
	redisLogger{slog.New(slog.NewJSONHandler(&js, nil))}.Printf(context.Background(), "%s%s", text, forged)
	line := strings.TrimSuffix(js.String(), "\n")
	if strings.Contains(line, "\n") {
		t.Fatalf("more than one line: %q", line)
	}
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %q", line)
	}
	count := map[string]int{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		count[key.(string)]++
	}
	for k, n := range count {
		if n > 1 {
			t.Errorf("key %q appears %d times in %s", k, n, line)
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	if m["msg"] != "redis client" || m["level"] != "WARN" {
		t.Errorf("msg %q, level %q, want \"redis client\", WARN: %s", m["msg"], m["level"], line)
	}
	if d, _ := m["detail"].(string); d != text+forged {
		t.Errorf("detail %q, want the library's text %q", d, text+forged)
	}

	var txt bytes.Buffer
	redisLogger{slog.New(slog.NewTextHandler(&txt, nil))}.Printf(context.Background(), "%s%s", text, forged)
	if out := txt.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, "failed to dial") {
		t.Errorf("text format: want the text on one line, got %q", out)
	}
}
