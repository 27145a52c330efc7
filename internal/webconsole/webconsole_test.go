package webconsole

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func page(t *testing.T) string {
	dir := t.TempDir()
	for name, body := range map[string]string{"index.html": "<html>page</html>", "dist/app.js": "console.log(1)", "package.json": "{}", "test/browser.mjs": "x"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string, http.Header) {
	t.Helper()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func TestHandler(t *testing.T) {
	h, err := Handler(page(t), Config{Bot: strings.Repeat("ab", 32), Relays: []string{"ws://127.0.0.1:7777"}, WebURL: "https://nostrnests.com"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, body, hdr := get(t, srv, "/config.js")
	if code != 200 || !strings.Contains(body, `window.NESTBOT_CONFIG = {"bot":"abab`) || !strings.Contains(body, `"relays":["ws://127.0.0.1:7777"]`) {
		t.Fatalf("config.js: %d %s", code, body)
	}
	if !strings.Contains(hdr.Get("Content-Type"), "javascript") || !strings.Contains(hdr.Get("Content-Security-Policy"), "connect-src 'self' ws: wss:") {
		t.Fatalf("headers %v", hdr)
	}
	if code, body, _ := get(t, srv, "/"); code != 200 || body != "<html>page</html>" {
		t.Fatalf("index: %d %q", code, body)
	}
	if code, _, hdr := get(t, srv, "/dist/app.js"); code != 200 || !strings.Contains(hdr.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js: %d %v", code, hdr)
	}
	for _, p := range []string{"/package.json", "/test/browser.mjs", "/node_modules/x"} {
		if code, _, _ := get(t, srv, p); code != 404 {
			t.Fatalf("%s: %d, want 404", p, code)
		}
	}
	res, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", res.StatusCode)
	}
}

func TestHandlerUnbuilt(t *testing.T) {
	dir := page(t)
	os.Remove(filepath.Join(dir, "dist", "app.js"))
	if _, err := Handler(dir, Config{}); err == nil || !strings.Contains(err.Error(), "make web") {
		t.Fatalf("err %v", err)
	}
}
