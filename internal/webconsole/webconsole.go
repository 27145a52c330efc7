// Package webconsole serves the restart page (web/) as static files, with a
// config.js that tells the page which bot to ask and on which relays. The
// page talks only to Nostr relays; this server holds no state and no
// secret, and exists so that `make run` and the browser tests can open the
// page over http:// (ES modules do not load from file://).
package webconsole

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Config is what the page learns from config.js: the bot's 64-hex pubkey,
// the bot's relays (ws:// or wss://) and the Nests web client base URL that
// room links point at.
type Config struct {
	Bot    string   `json:"bot"`
	Relays []string `json:"relays"`
	WebURL string   `json:"webUrl"`
}

// Handler serves dir (the web/ folder, with dist/app.js built by
// web/build.mjs) and answers /config.js from cfg. It fails when dir has no
// index.html or no dist/app.js, naming the step that makes it.
func Handler(dir string, cfg Config) (http.Handler, error) {
	for _, f := range []string{"index.html", filepath.Join("dist", "app.js")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("webconsole: %s is missing (build it with `make web`): %w", filepath.Join(dir, f), err)
		}
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("webconsole: encode config: %w", err)
	}
	configJS := []byte("// served by nestbot's webconsole\nwindow.NESTBOT_CONFIG = " + string(js) + "\n")
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page loads only its own files and talks only to relays.
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		switch {
		case r.URL.Path == "/config.js":
			h.Set("Content-Type", "text/javascript; charset=utf-8")
			_, _ = w.Write(configJS)
		case strings.HasPrefix(r.URL.Path, "/node_modules/") || strings.HasPrefix(r.URL.Path, "/test/") ||
			strings.HasSuffix(r.URL.Path, ".json") || strings.HasSuffix(r.URL.Path, ".mjs"):
			// Only the page itself is public: not its tooling.
			http.NotFound(w, r)
		default:
			files.ServeHTTP(w, r)
		}
	}), nil
}
