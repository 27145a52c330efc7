package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"go.yaml.in/yaml/v3"
)

// NIP-19's published test vector.
const (
	testSecretHex  = "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa"
	testSecretNsec = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5"
	testPubHex     = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
	testNpub       = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"

	// x-only public keys of the secret keys 1 and 2.
	pubG  = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	pub2G = "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
)

// envName is the environment variable that overrides key.
func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// clearEnv unsets every NESTBOT_* variable Load reads for the rest of
// the test (an empty variable counts as set), restoring them afterwards.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range Keys() {
		name := envName(k.Name)
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLoad(t *testing.T, path string) Config {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%q): %v", path, err)
	}
	return cfg
}

func defaultConfig() Config {
	return Config{
		Nostr: Nostr{
			SecretKey:      testSecretHex,
			Relays:         []string{"wss://relay.damus.io", "wss://nos.lol", "wss://relay.primal.net"},
			RequestKind:    4312,
			ResponseKind:   4313,
			MaxRequestAge:  120 * time.Second,
			MaxDMAge:       10 * time.Minute,
			ResponseTTL:    10 * time.Minute,
			LookupTimeout:  3 * time.Second,
			AllowedPubkeys: []string{},
			DeniedPubkeys:  []string{},
		},
		Redis: Redis{
			URL:         "redis://127.0.0.1:6379/0",
			Addrs:       []string{},
			KeyPrefix:   "nest:",
			BotPrefix:   "nestbot:",
			RoomTTL:     24 * time.Hour,
			Mode:        "auto",
			WaitTimeout: 250 * time.Millisecond,
		},
		LiveKit: LiveKit{
			URL:              "http://127.0.0.1:7880",
			PublicURL:        "ws://127.0.0.1:7880",
			APIKey:           "devkey",
			APISecret:        "secret",
			TokenTTL:         10 * time.Minute,
			MaxParticipants:  500,
			EmptyTimeout:     30 * time.Minute,
			DepartureTimeout: 60 * time.Second,
		},
		Nests: Nests{
			ServiceURL: "http://127.0.0.1:5544/api/v1/nests",
			WebURL:     "https://nostrnests.com",
			Hosted:     []string{},
		},
		HTTP: HTTP{Listen: "127.0.0.1:9090", WebhookPath: "/livekit/webhook"},
		Limits: Limits{
			RoomCooldown:      10 * time.Second,
			RestartsPerMinute: 5,
			NewRoomsPerMinute: 60,
			DependencyTimeout: 30 * time.Second,
			Workers:           16,
			Queue:             1024,
			SeenCache:         100000,
		},
		Lifecycle: Lifecycle{RepublishInterval: time.Hour, ReconcileInterval: time.Minute},
		Heal:      Heal{Enabled: true, PresenceTTL: 5 * time.Minute, MinPresent: 1, MaxPerMinute: 30, Interval: 15 * time.Second, MaxRooms: 10000},
		Log:       Log{Level: slog.LevelInfo, Format: "text"},
		Profile: Profile{
			Name:  "nestbot",
			About: "Restarts Nostr audio rooms (nests). Send me a restart request or a DM: restart <naddr>.",
		},
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct{ name, secret string }{
		{"hex", testSecretHex},
		{"upper hex", strings.ToUpper(testSecretHex)},
		{"nsec", testSecretNsec},
		{"padded nsec", "  " + testSecretNsec + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("NESTBOT_NOSTR_SECRET_KEY", tc.secret)
			cfg := mustLoad(t, "")
			if want := defaultConfig(); !reflect.DeepEqual(cfg, want) {
				t.Errorf("got  %#v\nwant %#v", cfg, want)
			}
			if got := cfg.PublicKey(); got != testPubHex {
				t.Errorf("PublicKey() = %s, want %s", got, testPubHex)
			}
		})
	}
}

func TestConfigPublicKeyWithoutLoad(t *testing.T) {
	// A Config built by hand (as other packages' tests may do) still derives
	// its public key.
	c := Config{Nostr: Nostr{SecretKey: testSecretHex}}
	if got := c.PublicKey(); got != testPubHex {
		t.Errorf("PublicKey() = %s, want %s", got, testPubHex)
	}
	if got := (Config{}).PublicKey(); got != "" {
		t.Errorf("PublicKey() of empty config = %q, want empty", got)
	}
}

var fullFile = `
nostr:
  secret_key: ` + testSecretNsec + `
  relays: [wss://relay.one, "ws://127.0.0.1:7777/path", wss://relay.one]
  request_kind: 24312
  response_kind: 24313
  max_request_age: 90s
  max_dm_age: 1h
  response_ttl: 5m
  lookup_timeout: 1500ms
  allowed_pubkeys:
    - ` + testNpub + `
    - ` + strings.ToUpper(pubG) + `
  denied_pubkeys: [` + pub2G + `]
  allow_private_relays: true
redis:
  url: rediss://user:pw@redis.example:6380/2
  addrs: [10.0.0.1:26379, "[::1]:26380"]
  master_name: mymaster
  key_prefix: "nests:"
  bot_prefix: "bot:"
  room_ttl: 48h
  mode: sentinel
  sentinel_username: watcher
  sentinel_password: sentinel-pw
  tls_ca_file: /etc/ssl/redis-ca.pem
  wait_replicas: 1
  wait_timeout: 250ms
livekit:
  url: https://lk.example
  public_url: wss://lk.example
  api_key: 12345
  api_secret: s3cr3t-livekit
  token_ttl: 1h
  max_participants: 0
  empty_timeout: 5m
  departure_timeout: 20s
nests:
  service_url: https://nests.example/api/v1/nests
  web_url: http://nests.example
  hosted: [https://nests.example/api/v1/nests, "wss+livekit://lk.example"]
http:
  listen: ""
  webhook_path: /hooks/livekit
limits:
  room_cooldown: 1m
  restarts_per_minute: 2
  new_rooms_per_minute: 0
  dependency_timeout: 5s
  workers: 4
  queue: 8
  seen_cache: 1e3
lifecycle:
  republish_interval: 2h30m
  reconcile_interval: 15s
log:
  level: DEBUG
  format: json
profile:
  name: Room Bot
  about: hi
  picture: https://img.example/p.png
`

func TestConfigFile(t *testing.T) {
	clearEnv(t)
	cfg := mustLoad(t, writeFile(t, "nestbot.yaml", fullFile))
	want := Config{
		Nostr: Nostr{
			SecretKey:          testSecretHex,
			Relays:             []string{"wss://relay.one", "ws://127.0.0.1:7777/path"},
			RequestKind:        24312,
			ResponseKind:       24313,
			MaxRequestAge:      90 * time.Second,
			MaxDMAge:           time.Hour,
			ResponseTTL:        5 * time.Minute,
			LookupTimeout:      1500 * time.Millisecond,
			AllowedPubkeys:     []string{testPubHex, pubG},
			DeniedPubkeys:      []string{pub2G},
			AllowPrivateRelays: true,
		},
		Redis: Redis{
			URL:        "rediss://user:pw@redis.example:6380/2",
			Addrs:      []string{"10.0.0.1:26379", "[::1]:26380"},
			MasterName: "mymaster",
			KeyPrefix:  "nests:",
			BotPrefix:  "bot:",
			RoomTTL:    48 * time.Hour,
			Mode:       "sentinel",

			SentinelUsername: "watcher",
			SentinelPassword: "sentinel-pw",
			TLSCAFile:        "/etc/ssl/redis-ca.pem",
			WaitReplicas:     1,
			WaitTimeout:      250 * time.Millisecond,
		},
		LiveKit: LiveKit{
			URL:              "https://lk.example",
			PublicURL:        "wss://lk.example",
			APIKey:           "12345",
			APISecret:        "s3cr3t-livekit",
			TokenTTL:         time.Hour,
			MaxParticipants:  0,
			EmptyTimeout:     5 * time.Minute,
			DepartureTimeout: 20 * time.Second,
		},
		Nests: Nests{ServiceURL: "https://nests.example/api/v1/nests", WebURL: "http://nests.example", Hosted: []string{"https://nests.example/api/v1/nests", "wss+livekit://lk.example"}},
		HTTP:  HTTP{Listen: "", WebhookPath: "/hooks/livekit"},
		Limits: Limits{
			RoomCooldown:      time.Minute,
			RestartsPerMinute: 2,
			NewRoomsPerMinute: 0,
			DependencyTimeout: 5 * time.Second,
			Workers:           4,
			Queue:             8,
			SeenCache:         1000,
		},
		Lifecycle: Lifecycle{RepublishInterval: 150 * time.Minute, ReconcileInterval: 15 * time.Second},
		Heal:      Heal{Enabled: true, PresenceTTL: 5 * time.Minute, MinPresent: 1, MaxPerMinute: 30, Interval: 15 * time.Second, MaxRooms: 10000},
		Log:       Log{Level: slog.LevelDebug, Format: "json"},
		Profile:   Profile{Name: "Room Bot", About: "hi", Picture: "https://img.example/p.png"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %#v\nwant %#v", cfg, want)
		// %#v redacts: compare the secrets separately.
		if cfg.Nostr.SecretKey != want.Nostr.SecretKey || cfg.LiveKit.APISecret != want.LiveKit.APISecret {
			t.Errorf("secrets differ")
		}
	}
}

func TestConfigFileKeysCaseInsensitive(t *testing.T) {
	clearEnv(t)
	cfg := mustLoad(t, writeFile(t, "c.yaml", "Nostr:\n  Secret_Key: "+testSecretHex+"\n  RELAYS: [wss://r.example]\n"))
	if !reflect.DeepEqual(cfg.Nostr.Relays, []string{"wss://r.example"}) {
		t.Errorf("relays = %v", cfg.Nostr.Relays)
	}
}

func TestConfigEmptyFileAndNullValues(t *testing.T) {
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
	for _, content := range []string{"", "# only a comment\n", "nostr:\nredis:\n", "nostr:\n  relays:\n  secret_key:\n"} {
		cfg := mustLoad(t, writeFile(t, "c.yaml", content))
		if want := defaultConfig(); !reflect.DeepEqual(cfg, want) {
			t.Errorf("file %q: got %v, want defaults", content, cfg)
		}
	}
}

func TestConfigEnvOverridesFile(t *testing.T) {
	clearEnv(t)
	path := writeFile(t, "c.yaml", fullFile)
	otherPub := pub2G
	setEnv(t, map[string]string{
		"NESTBOT_NOSTR_SECRET_KEY":             testSecretHex,
		"NESTBOT_NOSTR_RELAYS":                 "wss://env.one",
		"NESTBOT_NOSTR_REQUEST_KIND":           "4312",
		"NESTBOT_NOSTR_MAX_DM_AGE":             "2m",
		"NESTBOT_NOSTR_ALLOWED_PUBKEYS":        "",
		"NESTBOT_NOSTR_DENIED_PUBKEYS":         otherPub,
		"NESTBOT_NOSTR_ALLOW_PRIVATE_RELAYS":   " TRUE ",
		"NESTBOT_REDIS_URL":                    "redis://env:6379/1",
		"NESTBOT_REDIS_ADDRS":                  "",
		"NESTBOT_REDIS_MASTER_NAME":            "",
		"NESTBOT_REDIS_MODE":                   "auto",
		"NESTBOT_LIVEKIT_API_SECRET":           "from-env",
		"NESTBOT_LIVEKIT_MAX_PARTICIPANTS":     " 7 ",
		"NESTBOT_HTTP_LISTEN":                  ":9100",
		"NESTBOT_HTTP_WEBHOOK_PATH":            "",
		"NESTBOT_LIFECYCLE_REPUBLISH_INTERVAL": "30m",
		"NESTBOT_LIMITS_WORKERS":               "3",
		"NESTBOT_LOG_LEVEL":                    "warn",
		"NESTBOT_PROFILE_NAME":                 "Env Bot",
	})
	cfg := mustLoad(t, path)
	checks := []struct {
		name      string
		got, want any
	}{
		{"secret", cfg.Nostr.SecretKey.Reveal(), testSecretHex},
		{"relays", cfg.Nostr.Relays, []string{"wss://env.one"}},
		{"request kind", cfg.Nostr.RequestKind, 4312},
		{"response kind (file)", cfg.Nostr.ResponseKind, 24313},
		{"max dm age", cfg.Nostr.MaxDMAge, 2 * time.Minute},
		{"allowed (emptied by env)", []string(cfg.Nostr.AllowedPubkeys), []string{}},
		{"denied", []string(cfg.Nostr.DeniedPubkeys), []string{otherPub}},
		{"allow private relays", cfg.Nostr.AllowPrivateRelays, true},
		{"redis url", cfg.Redis.URL.Reveal(), "redis://env:6379/1"},
		{"redis addrs", cfg.Redis.Addrs, []string{}},
		{"api secret", cfg.LiveKit.APISecret.Reveal(), "from-env"},
		{"api key (file)", cfg.LiveKit.APIKey, "12345"},
		{"max participants", cfg.LiveKit.MaxParticipants, 7},
		{"listen", cfg.HTTP.Listen, ":9100"},
		{"webhook path (emptied by env)", cfg.HTTP.WebhookPath, ""},
		{"republish interval", cfg.Lifecycle.RepublishInterval, 30 * time.Minute},
		{"reconcile interval (file)", cfg.Lifecycle.ReconcileInterval, 15 * time.Second},
		{"workers", cfg.Limits.Workers, 3},
		{"queue (file)", cfg.Limits.Queue, 8},
		{"level", cfg.Log.Level, slog.LevelWarn},
		{"profile name", cfg.Profile.Name, "Env Bot"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestConfigEnvLists(t *testing.T) {
	otherPub := pub2G
	for _, tc := range []struct {
		name, key, env string
		get            func(Config) []string
		want           []string
	}{
		{"relays", "nostr.relays", "wss://a.example,wss://b.example", func(c Config) []string { return c.Nostr.Relays },
			[]string{"wss://a.example", "wss://b.example"}},
		{"relays spaced, trailing comma, duplicate", "nostr.relays", " wss://a.example , ws://b.example:7777/x,,wss://a.example,", func(c Config) []string { return c.Nostr.Relays },
			[]string{"wss://a.example", "ws://b.example:7777/x"}},
		{"allowed npub and hex", "nostr.allowed_pubkeys", testNpub + "," + strings.ToUpper(otherPub), func(c Config) []string { return c.Nostr.AllowedPubkeys },
			[]string{testPubHex, otherPub}},
		{"denied dedup npub/hex", "nostr.denied_pubkeys", testNpub + "," + testPubHex, func(c Config) []string { return c.Nostr.DeniedPubkeys },
			[]string{testPubHex}},
		{"redis addrs", "redis.addrs", "a.example:7000,b.example:7001", func(c Config) []string { return c.Redis.Addrs },
			[]string{"a.example:7000", "b.example:7001"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
			t.Setenv(envName(tc.key), tc.env)
			cfg := mustLoad(t, "")
			if got := tc.get(cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %#v, want %#v", tc.key, got, tc.want)
			}
		})
	}
}

func TestConfigFileCommaList(t *testing.T) {
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
	cfg := mustLoad(t, writeFile(t, "c.yaml", "nostr:\n  relays: \"wss://a.example, wss://b.example\"\n"))
	if want := []string{"wss://a.example", "wss://b.example"}; !reflect.DeepEqual(cfg.Nostr.Relays, want) {
		t.Errorf("relays = %v, want %v", cfg.Nostr.Relays, want)
	}
}

func TestConfigSecretFile(t *testing.T) {
	for _, content := range []string{testSecretHex, testSecretNsec + "\n", "\n  " + strings.ToUpper(testSecretHex) + "  \n"} {
		clearEnv(t)
		p := writeFile(t, "nsec", content)
		t.Setenv("NESTBOT_NOSTR_SECRET_KEY_FILE", p)
		cfg := mustLoad(t, "")
		if cfg.Nostr.SecretKey != testSecretHex || cfg.Nostr.SecretKeyFile != p || cfg.PublicKey() != testPubHex {
			t.Errorf("content %q: SecretKeyFile=%q, key ok=%v, pub=%s", content, cfg.Nostr.SecretKeyFile,
				cfg.Nostr.SecretKey == testSecretHex, cfg.PublicKey())
		}
	}
	// From the file too, with an explicitly empty secret_key.
	clearEnv(t)
	p := writeFile(t, "nsec", testSecretNsec)
	cfg := mustLoad(t, writeFile(t, "c.yaml", "nostr:\n  secret_key: \"\"\n  secret_key_file: "+p+"\n"))
	if cfg.Nostr.SecretKey != testSecretHex {
		t.Error("secret_key_file from the config file not used")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	emptyFile := filepath.Join(dir, "empty")
	badFile := filepath.Join(dir, "bad")
	goodFile := filepath.Join(dir, "good")
	os.WriteFile(emptyFile, []byte("\n \n"), 0o600)
	os.WriteFile(badFile, []byte("nsec1notakey\n"), 0o600)
	os.WriteFile(goodFile, []byte(testSecretHex), 0o600)
	pub2 := pub2G

	tests := []struct {
		name    string
		file    string            // YAML; "" means Load("")
		env     map[string]string // NESTBOT_NOSTR_SECRET_KEY is set unless env sets it
		wantKey string
		wantMsg string // substring of Error(), optional
	}{
		// secret key
		{name: "missing secret", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": ""}, wantKey: "nostr.secret_key", wantMsg: "required"},
		{name: "bad nsec checksum", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": testSecretNsec[:len(testSecretNsec)-1] + "q"}, wantKey: "nostr.secret_key"},
		{name: "short hex", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": testSecretHex[1:]}, wantKey: "nostr.secret_key"},
		{name: "non-hex", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": "z" + testSecretHex[1:]}, wantKey: "nostr.secret_key"},
		{name: "npub as secret", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": testNpub}, wantKey: "nostr.secret_key", wantMsg: "npub"},
		{name: "zero secret", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": strings.Repeat("0", 64)}, wantKey: "nostr.secret_key"},
		{name: "secret above curve order", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": strings.Repeat("f", 64)}, wantKey: "nostr.secret_key"},
		{name: "secret and secret file", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY_FILE": goodFile}, wantKey: "nostr.secret_key", wantMsg: "only one"},
		{name: "secret file missing", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": "", "NESTBOT_NOSTR_SECRET_KEY_FILE": filepath.Join(dir, "nope")}, wantKey: "nostr.secret_key_file"},
		{name: "secret file empty", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": "", "NESTBOT_NOSTR_SECRET_KEY_FILE": emptyFile}, wantKey: "nostr.secret_key_file", wantMsg: "empty"},
		{name: "secret file invalid", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": "", "NESTBOT_NOSTR_SECRET_KEY_FILE": badFile}, wantKey: "nostr.secret_key_file"},
		{name: "secret is a list", file: "nostr:\n  secret_key: [a]\n", env: map[string]string{"NESTBOT_NOSTR_SECRET_KEY": ""}, wantKey: "nostr.secret_key"},

		// relays
		{name: "http relay", env: map[string]string{"NESTBOT_NOSTR_RELAYS": "http://x"}, wantKey: "nostr.relays",
			wantMsg: `config: nostr.relays: "http://x" is not a ws:// or wss:// URL`},
		{name: "relay without scheme", env: map[string]string{"NESTBOT_NOSTR_RELAYS": "wss://ok.example,relay.example"}, wantKey: "nostr.relays"},
		{name: "relay without host", env: map[string]string{"NESTBOT_NOSTR_RELAYS": "wss://"}, wantKey: "nostr.relays", wantMsg: "no host"},
		{name: "relay port only", env: map[string]string{"NESTBOT_NOSTR_RELAYS": "wss://:443"}, wantKey: "nostr.relays"},
		{name: "relay unparsable", env: map[string]string{"NESTBOT_NOSTR_RELAYS": "wss://bad host%zz"}, wantKey: "nostr.relays"},
		{name: "empty relays env", env: map[string]string{"NESTBOT_NOSTR_RELAYS": ""}, wantKey: "nostr.relays", wantMsg: "at least one"},
		{name: "only commas", env: map[string]string{"NESTBOT_NOSTR_RELAYS": " , ,"}, wantKey: "nostr.relays"},
		{name: "empty relays file", file: "nostr:\n  relays: []\n", wantKey: "nostr.relays"},
		{name: "relay item not a string", file: "nostr:\n  relays: [{a: b}]\n", wantKey: "nostr.relays"},
		{name: "relays a mapping", file: "nostr:\n  relays: {a: b}\n", wantKey: "nostr.relays"},

		// kinds
		{name: "kind zero", env: map[string]string{"NESTBOT_NOSTR_REQUEST_KIND": "0"}, wantKey: "nostr.request_kind"},
		{name: "kind too big", file: "nostr:\n  response_kind: 65536\n", wantKey: "nostr.response_kind"},
		{name: "kind not a number", env: map[string]string{"NESTBOT_NOSTR_RESPONSE_KIND": "four"}, wantKey: "nostr.response_kind"},
		{name: "kind fractional", file: "nostr:\n  request_kind: 4312.5\n", wantKey: "nostr.request_kind"},
		{name: "same kinds", env: map[string]string{"NESTBOT_NOSTR_RESPONSE_KIND": "4312"}, wantKey: "nostr.response_kind", wantMsg: "differ"},

		// durations
		{name: "unparsable duration", env: map[string]string{"NESTBOT_NOSTR_MAX_REQUEST_AGE": "two minutes"}, wantKey: "nostr.max_request_age"},
		{name: "zero duration", env: map[string]string{"NESTBOT_NOSTR_MAX_DM_AGE": "0s"}, wantKey: "nostr.max_dm_age", wantMsg: "positive"},
		{name: "negative duration", env: map[string]string{"NESTBOT_NOSTR_RESPONSE_TTL": "-1m"}, wantKey: "nostr.response_ttl"},
		{name: "duration without unit (file)", file: "nostr:\n  lookup_timeout: 3\n", wantKey: "nostr.lookup_timeout", wantMsg: "unit"},
		{name: "duration without unit (env)", env: map[string]string{"NESTBOT_REDIS_ROOM_TTL": "86400"}, wantKey: "redis.room_ttl", wantMsg: "unit"},
		{name: "duration a list", file: "livekit:\n  token_ttl: [1s]\n", wantKey: "livekit.token_ttl"},
		{name: "zero token ttl", env: map[string]string{"NESTBOT_LIVEKIT_TOKEN_TTL": "0"}, wantKey: "livekit.token_ttl"},
		{name: "empty timeout negative", env: map[string]string{"NESTBOT_LIVEKIT_EMPTY_TIMEOUT": "-30m"}, wantKey: "livekit.empty_timeout"},
		{name: "departure timeout sub-second", env: map[string]string{"NESTBOT_LIVEKIT_DEPARTURE_TIMEOUT": "1500ms"}, wantKey: "livekit.departure_timeout", wantMsg: "whole seconds"},
		{name: "cooldown zero", env: map[string]string{"NESTBOT_LIMITS_ROOM_COOLDOWN": "0s"}, wantKey: "limits.room_cooldown"},
		{name: "dependency timeout bad", env: map[string]string{"NESTBOT_LIMITS_DEPENDENCY_TIMEOUT": "1d"}, wantKey: "limits.dependency_timeout"},

		// numbers
		{name: "negative participants", env: map[string]string{"NESTBOT_LIVEKIT_MAX_PARTICIPANTS": "-1"}, wantKey: "livekit.max_participants", wantMsg: "negative"},
		{name: "zero restarts per minute", env: map[string]string{"NESTBOT_LIMITS_RESTARTS_PER_MINUTE": "0"}, wantKey: "limits.restarts_per_minute", wantMsg: "positive"},
		{name: "negative new rooms per minute", env: map[string]string{"NESTBOT_LIMITS_NEW_ROOMS_PER_MINUTE": "-1"}, wantKey: "limits.new_rooms_per_minute"},
		{name: "zero workers", file: "limits:\n  workers: 0\n", wantKey: "limits.workers"},
		{name: "too many workers", env: map[string]string{"NESTBOT_LIMITS_WORKERS": "1000000"}, wantKey: "limits.workers"},
		{name: "negative queue", env: map[string]string{"NESTBOT_LIMITS_QUEUE": "-5"}, wantKey: "limits.queue"},
		{name: "queue of gigabytes", env: map[string]string{"NESTBOT_LIMITS_QUEUE": "16777216"}, wantKey: "limits.queue"},
		{name: "seen cache not a number", env: map[string]string{"NESTBOT_LIMITS_SEEN_CACHE": "lots"}, wantKey: "limits.seen_cache"},
		{name: "number a boolean", file: "limits:\n  queue: true\n", wantKey: "limits.queue"},

		// URLs
		{name: "livekit url ftp", env: map[string]string{"NESTBOT_LIVEKIT_URL": "ftp://lk.example"}, wantKey: "livekit.url"},
		{name: "livekit url no scheme", env: map[string]string{"NESTBOT_LIVEKIT_URL": "127.0.0.1:7880"}, wantKey: "livekit.url"},
		{name: "livekit public url empty", env: map[string]string{"NESTBOT_LIVEKIT_PUBLIC_URL": ""}, wantKey: "livekit.public_url"},
		{name: "livekit public url no host", env: map[string]string{"NESTBOT_LIVEKIT_PUBLIC_URL": "wss:///path"}, wantKey: "livekit.public_url"},
		{name: "nests service url ws", env: map[string]string{"NESTBOT_NESTS_SERVICE_URL": "ws://nests.example"}, wantKey: "nests.service_url"},
		{name: "nests web url garbage", env: map[string]string{"NESTBOT_NESTS_WEB_URL": "::nope"}, wantKey: "nests.web_url"},
		{name: "nests hosted not a url", env: map[string]string{"NESTBOT_NESTS_HOSTED": "https://ok.example,nohost"}, wantKey: "nests.hosted"},
		{name: "nests console url not http", env: map[string]string{"NESTBOT_NESTS_CONSOLE_URL": "ws://console.example"}, wantKey: "nests.console_url"},
		{name: "profile picture not http", env: map[string]string{"NESTBOT_PROFILE_PICTURE": "ipfs://x"}, wantKey: "profile.picture"},
		{name: "redis url scheme", env: map[string]string{"NESTBOT_REDIS_URL": "http://127.0.0.1:6379"}, wantKey: "redis.url"},
		{name: "redis url db", env: map[string]string{"NESTBOT_REDIS_URL": "redis://:pw@127.0.0.1:6379/x"}, wantKey: "redis.url"},
		{name: "redis url empty", env: map[string]string{"NESTBOT_REDIS_URL": ""}, wantKey: "redis.url"},
		{name: "redis url unparsable", env: map[string]string{"NESTBOT_REDIS_URL": "redis://a b:%zz"}, wantKey: "redis.url"},

		// redis topology and prefixes
		{name: "redis addr without port", env: map[string]string{"NESTBOT_REDIS_ADDRS": "10.0.0.1"}, wantKey: "redis.addrs"},
		{name: "redis addr bad port", env: map[string]string{"NESTBOT_REDIS_ADDRS": "a:1,b:http"}, wantKey: "redis.addrs"},
		{name: "redis addr without host", env: map[string]string{"NESTBOT_REDIS_ADDRS": ":6379"}, wantKey: "redis.addrs"},
		{name: "master name without addrs", env: map[string]string{"NESTBOT_REDIS_MASTER_NAME": "mymaster"}, wantKey: "redis.addrs"},
		{name: "same prefixes", env: map[string]string{"NESTBOT_REDIS_BOT_PREFIX": "nest:"}, wantKey: "redis.bot_prefix"},
		{name: "bot prefix under key prefix", env: map[string]string{"NESTBOT_REDIS_BOT_PREFIX": "nest:bot:"}, wantKey: "redis.bot_prefix", wantMsg: "prefix"},
		{name: "key prefix under bot prefix", env: map[string]string{"NESTBOT_REDIS_KEY_PREFIX": "nestbot:rooms:"}, wantKey: "redis.bot_prefix"},
		{name: "empty key prefix", env: map[string]string{"NESTBOT_REDIS_KEY_PREFIX": ""}, wantKey: "redis.key_prefix"},
		{name: "empty bot prefix", file: "redis:\n  bot_prefix: \"\"\n", wantKey: "redis.bot_prefix"},
		{name: "redis mode unknown", env: map[string]string{"NESTBOT_REDIS_MODE": "ring"}, wantKey: "redis.mode", wantMsg: "auto, single, cluster or sentinel"},
		{name: "sentinel mode without master", env: map[string]string{"NESTBOT_REDIS_MODE": "sentinel", "NESTBOT_REDIS_ADDRS": "a:26379"}, wantKey: "redis.mode", wantMsg: "master_name"},
		{name: "single mode with addrs", env: map[string]string{"NESTBOT_REDIS_MODE": "single", "NESTBOT_REDIS_ADDRS": "a:6379"}, wantKey: "redis.mode"},
		{name: "wait replicas negative", env: map[string]string{"NESTBOT_REDIS_WAIT_REPLICAS": "-1"}, wantKey: "redis.wait_replicas"},
		{name: "wait timeout without unit", env: map[string]string{"NESTBOT_REDIS_WAIT_TIMEOUT": "100"}, wantKey: "redis.wait_timeout", wantMsg: "unit"},

		// livekit credentials, http
		{name: "empty api key", env: map[string]string{"NESTBOT_LIVEKIT_API_KEY": ""}, wantKey: "livekit.api_key"},
		{name: "empty api secret", file: "livekit:\n  api_secret: \"\"\n", wantKey: "livekit.api_secret"},
		{name: "listen without port", env: map[string]string{"NESTBOT_HTTP_LISTEN": "9090"}, wantKey: "http.listen"},
		{name: "listen bad port", env: map[string]string{"NESTBOT_HTTP_LISTEN": "127.0.0.1:99999"}, wantKey: "http.listen"},
		{name: "webhook path relative", env: map[string]string{"NESTBOT_HTTP_WEBHOOK_PATH": "livekit"}, wantKey: "http.webhook_path"},
		{name: "webhook path with query", env: map[string]string{"NESTBOT_HTTP_WEBHOOK_PATH": "/hook?x=1"}, wantKey: "http.webhook_path"},
		{name: "webhook path a URL", env: map[string]string{"NESTBOT_HTTP_WEBHOOK_PATH": "https://x.example/hook"}, wantKey: "http.webhook_path"},
		{name: "webhook path taken", env: map[string]string{"NESTBOT_HTTP_WEBHOOK_PATH": "/metrics"}, wantKey: "http.webhook_path", wantMsg: "taken"},
		{name: "webhook path root", file: "http:\n  webhook_path: /\n", wantKey: "http.webhook_path"},

		// lifecycle
		{name: "republish interval too long", env: map[string]string{"NESTBOT_LIFECYCLE_REPUBLISH_INTERVAL": "8h"}, wantKey: "lifecycle.republish_interval", wantMsg: "under 8h"},
		{name: "republish interval zero", env: map[string]string{"NESTBOT_LIFECYCLE_REPUBLISH_INTERVAL": "0s"}, wantKey: "lifecycle.republish_interval"},
		{name: "reconcile interval no unit", file: "lifecycle:\n  reconcile_interval: 60\n", wantKey: "lifecycle.reconcile_interval", wantMsg: "unit"},
		// heal
		{name: "heal interval over presence ttl", env: map[string]string{"NESTBOT_HEAL_INTERVAL": "10m"}, wantKey: "heal.interval", wantMsg: "heal.presence_ttl"},
		{name: "heal min present zero", env: map[string]string{"NESTBOT_HEAL_MIN_PRESENT": "0"}, wantKey: "heal.min_present"},
		{name: "heal min present over the table", env: map[string]string{"NESTBOT_HEAL_MIN_PRESENT": "65"}, wantKey: "heal.min_present"},
		{name: "heal new id not a bool", env: map[string]string{"NESTBOT_HEAL_NEW_ID": "maybe"}, wantKey: "heal.new_id"},
		{name: "heal max per minute zero", env: map[string]string{"NESTBOT_HEAL_MAX_PER_MINUTE": "0"}, wantKey: "heal.max_per_minute"},
		{name: "heal presence ttl no unit", file: "heal:\n  presence_ttl: 300\n", wantKey: "heal.presence_ttl", wantMsg: "unit"},

		// pubkeys
		{name: "private relays not a boolean", env: map[string]string{"NESTBOT_NOSTR_ALLOW_PRIVATE_RELAYS": "yes please"}, wantKey: "nostr.allow_private_relays", wantMsg: "true or false"},
		{name: "private relays a number", file: "nostr:\n  allow_private_relays: 2\n", wantKey: "nostr.allow_private_relays", wantMsg: "true or false"},
		{name: "bad npub", env: map[string]string{"NESTBOT_NOSTR_ALLOWED_PUBKEYS": "npub1xyz"}, wantKey: "nostr.allowed_pubkeys"},
		{name: "nsec as pubkey", env: map[string]string{"NESTBOT_NOSTR_ALLOWED_PUBKEYS": testSecretNsec}, wantKey: "nostr.allowed_pubkeys"},
		{name: "short hex pubkey", env: map[string]string{"NESTBOT_NOSTR_DENIED_PUBKEYS": pub2 + "," + pub2[2:]}, wantKey: "nostr.denied_pubkeys", wantMsg: "item 2"},
		{name: "hex pubkey off curve", file: "nostr:\n  denied_pubkeys: [\"" + strings.Repeat("0", 64) + "\"]\n", wantKey: "nostr.denied_pubkeys"},
		{name: "pubkey allowed and denied", env: map[string]string{"NESTBOT_NOSTR_ALLOWED_PUBKEYS": testNpub, "NESTBOT_NOSTR_DENIED_PUBKEYS": testPubHex}, wantKey: "nostr.denied_pubkeys"},

		// log
		{name: "bad log level", env: map[string]string{"NESTBOT_LOG_LEVEL": "verbose"}, wantKey: "log.level"},
		{name: "bad log format", env: map[string]string{"NESTBOT_LOG_FORMAT": "xml"}, wantKey: "log.format"},
		{name: "log level a list", file: "log:\n  level: [info]\n", wantKey: "log.level"},

		// the file itself
		{name: "unknown key", file: "nostr:\n  relay: [wss://x]\n", wantKey: "nostr.relay", wantMsg: "did you mean nostr.relays?"},
		{name: "unknown section", file: "redsi:\n  url: redis://x\n", wantKey: "redsi", wantMsg: "did you mean redis?"},
		{name: "unknown top-level key", file: "secret_key: abc\n", wantKey: "secret_key"},
		{name: "section not a mapping", file: "nostr: wss://x\n", wantKey: "nostr"},
		{name: "invalid yaml", file: "nostr:\n  relays: [wss://x\n", wantKey: "--config"},
		{name: "duplicate key", file: "log:\n  level: info\n  level: debug\n", wantKey: "--config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
			setEnv(t, tc.env)
			path := ""
			if tc.file != "" {
				path = writeFile(t, "c.yaml", tc.file)
			}
			_, err := Load(path)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *Error", err)
			}
			if ce.Key != tc.wantKey {
				t.Errorf("Key = %q, want %q (err: %v)", ce.Key, tc.wantKey, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("more than one error or a multi-line error: %q", msg)
			}
			if !strings.HasPrefix(msg, "config: "+tc.wantKey+": ") || ce.Reason == "" {
				t.Errorf("Error() = %q, want \"config: %s: <reason>\"", msg, tc.wantKey)
			}
			if tc.wantMsg != "" && !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("Error() = %q, want it to contain %q", msg, tc.wantMsg)
			}
		})
	}
}

func TestConfigMissingFile(t *testing.T) {
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
	for _, path := range []string{filepath.Join(t.TempDir(), "missing.yaml"), t.TempDir()} {
		_, err := Load(path)
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "--config" || !strings.Contains(ce.Reason, path) {
			t.Errorf("Load(%q) = %v, want Error{Key: --config} naming the path", path, err)
		}
	}
	// No path: defaults and env, no error.
	mustLoad(t, "")
}

func TestConfigSeveralErrorsJoined(t *testing.T) {
	clearEnv(t)
	setEnv(t, map[string]string{
		"NESTBOT_NOSTR_SECRET_KEY": testSecretHex,
		"NESTBOT_NOSTR_RELAYS":     "http://x",
		"NESTBOT_LOG_FORMAT":       "xml",
	})
	_, err := Load("")
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "nostr.relays" {
		t.Fatalf("err = %v, want first *Error for nostr.relays", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "config: log.format: ") {
		t.Errorf("err = %q, want one line per invalid key", err)
	}
}

func TestConfigSecretsNeverPrinted(t *testing.T) {
	const apiSecret = "livekit-api-secret-0123456789"
	const redisPass = "redis-password-0123456789"
	secretFile := writeFile(t, "nsec", testSecretNsec)
	for _, env := range []map[string]string{
		{"NESTBOT_NOSTR_SECRET_KEY": testSecretHex},
		{"NESTBOT_NOSTR_SECRET_KEY": testSecretNsec},
		{"NESTBOT_NOSTR_SECRET_KEY_FILE": secretFile},
	} {
		clearEnv(t)
		setEnv(t, env)
		t.Setenv("NESTBOT_LIVEKIT_API_SECRET", apiSecret)
		t.Setenv("NESTBOT_REDIS_URL", "redis://bot:"+redisPass+"@127.0.0.1:6379/0")
		t.Setenv("NESTBOT_REDIS_SENTINEL_PASSWORD", redisPass+"-sentinel")
		cfg := mustLoad(t, "")

		var out bytes.Buffer
		fmt.Fprint(&out, cfg, &cfg, cfg.Nostr, cfg.LiveKit, cfg.Redis)
		fmt.Fprintf(&out, "%v %+v %#v %s %v %+v %#v %#v %#v\n", cfg, cfg, cfg, cfg, &cfg, cfg.Nostr, cfg.Nostr, cfg.LiveKit, cfg.Redis)
		fmt.Fprintf(&out, "%v %q %x\n", []any{cfg, struct{ C Config }{cfg}, map[string]Config{"c": cfg}}, cfg.Nostr.SecretKey, cfg.LiveKit.APISecret)
		for _, v := range []any{cfg, cfg.Nostr, cfg.Redis, cfg.LiveKit} {
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(j)
		}
		for _, h := range []slog.Handler{
			slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}),
			slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}),
		} {
			lg := slog.New(h)
			lg.Info("config", "config", cfg, "ptr", &cfg)
			lg.Info("sections", slog.Any("nostr", cfg.Nostr), slog.Any("livekit", cfg.LiveKit), slog.Any("redis", cfg.Redis))
		}
		s := out.String()
		for _, secret := range []string{testSecretHex, testSecretNsec, strings.ToUpper(testSecretHex), apiSecret, redisPass} {
			if strings.Contains(s, secret) {
				t.Fatalf("secret %q printed in:\n%s", secret[:8]+"…", s)
			}
		}
		for _, want := range []string{testPubHex, redacted, "relay.damus.io", "devkey", "secret_key_file"} {
			if !strings.Contains(s, want) {
				t.Errorf("output lacks %q:\n%s", want, s)
			}
		}
	}
}

func TestConfigErrorsNeverEchoSecrets(t *testing.T) {
	bad := []string{
		testSecretHex[:63],                              // too short
		testSecretHex + "0",                             // too long
		"g" + testSecretHex[1:],                         // not hex
		testSecretNsec[:len(testSecretNsec)-1] + "q",    // bad checksum
		strings.Repeat("f", 64),                         // out of range
		"redis://:" + "hunter2-secret" + "@host:6379/x", // as a redis URL
		"redis://:" + "hunter2-secret" + "@ho st:%zz/0", // unparsable redis URL
	}
	for i, v := range bad {
		clearEnv(t)
		key := "NESTBOT_NOSTR_SECRET_KEY"
		if strings.HasPrefix(v, "redis") {
			t.Setenv(key, testSecretHex)
			key = "NESTBOT_REDIS_URL"
		}
		t.Setenv(key, v)
		_, err := Load("")
		if err == nil {
			t.Fatalf("case %d: no error", i)
		}
		if strings.Contains(err.Error(), v) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("case %d: error echoes the secret: %v", i, err)
		}
		// Same via a secret file: the content is never echoed.
		if key == "NESTBOT_NOSTR_SECRET_KEY" {
			clearEnv(t)
			t.Setenv("NESTBOT_NOSTR_SECRET_KEY_FILE", writeFile(t, "k", v))
			if _, err := Load(""); err == nil || strings.Contains(err.Error(), v) {
				t.Errorf("case %d (file): err = %v", i, err)
			}
		}
	}
}

// The repository's config files must load, and config.yaml must document
// every key Load knows so that the docs never drift from the code.
func TestConfigRepoFiles(t *testing.T) {
	t.Run("config.yaml", func(t *testing.T) {
		clearEnv(t)
		cfg := mustLoad(t, "../../config.yaml")
		if want := []string{"ws://127.0.0.1:7777"}; !reflect.DeepEqual(cfg.Nostr.Relays, want) {
			t.Errorf("relays = %v, want %v", cfg.Nostr.Relays, want)
		}
		// Everything but the dev key and relays is at its default.
		t.Setenv("NESTBOT_NOSTR_SECRET_KEY", cfg.Nostr.SecretKey.Reveal())
		t.Setenv("NESTBOT_NOSTR_RELAYS", "ws://127.0.0.1:7777")
		if def := mustLoad(t, ""); !reflect.DeepEqual(cfg, def) {
			t.Errorf("config.yaml differs from the defaults:\n got  %v\n want %v", cfg, def)
		}
		// The npub named in the DEV ONLY comment is the key's.
		data, _ := os.ReadFile("../../config.yaml")
		if !strings.Contains(string(data), "DEV ONLY") {
			t.Error("config.yaml does not mark its secret key DEV ONLY")
		}
		npub, _ := nip19.EncodePublicKey(cfg.PublicKey())
		if !strings.Contains(string(data), npub) {
			t.Errorf("config.yaml does not name the dev key's npub %s", npub)
		}
		checkDocumented(t, data)
	})
	t.Run("config.example.yaml", func(t *testing.T) {
		clearEnv(t)
		data, err := os.ReadFile("../../config.example.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load("../../config.example.yaml"); err == nil {
			t.Error("config.example.yaml loads without any secret from the environment")
		}
		var doc map[string]map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"secret_key", "secret_key_file"} {
			if _, ok := doc["nostr"][k]; ok {
				t.Errorf("config.example.yaml sets nostr.%s; secrets belong in the environment or a file", k)
			}
		}
		setEnv(t, map[string]string{
			"NESTBOT_NOSTR_SECRET_KEY":   testSecretNsec,
			"NESTBOT_LIVEKIT_API_KEY":    "APIprodkey",
			"NESTBOT_LIVEKIT_API_SECRET": "prod-secret",
		})
		cfg := mustLoad(t, "../../config.example.yaml")
		if !strings.HasPrefix(cfg.LiveKit.PublicURL, "wss://") || !strings.HasPrefix(cfg.Nests.ServiceURL, "https://") {
			t.Errorf("public_url %q / service_url %q: want wss:// and https://", cfg.LiveKit.PublicURL, cfg.Nests.ServiceURL)
		}
		for _, r := range cfg.Nostr.Relays {
			if !strings.HasPrefix(r, "wss://") || strings.Contains(r, "127.0.0.1") {
				t.Errorf("relay %q is not a public wss relay", r)
			}
		}
		// Or with the secret from a file.
		t.Setenv("NESTBOT_NOSTR_SECRET_KEY", "")
		t.Setenv("NESTBOT_NOSTR_SECRET_KEY_FILE", writeFile(t, "nsec", testSecretNsec+"\n"))
		mustLoad(t, "../../config.example.yaml")
	})
}

// checkDocumented asserts that the YAML document has every known key, each
// with a comment line directly above it, and no other key.
func checkDocumented(t *testing.T, data []byte) {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		sec, body := top.Content[i], top.Content[i+1]
		for j := 0; j+1 < len(body.Content); j += 2 {
			k := body.Content[j]
			full := sec.Value + "." + k.Value
			found[full] = true
			if strings.TrimSpace(k.HeadComment) == "" {
				t.Errorf("config.yaml: %s (line %d) has no comment line above it", full, k.Line)
			}
		}
	}
	for _, k := range Keys() {
		if !found[k.Name] {
			t.Errorf("config.yaml does not mention %s", k.Name)
		}
		delete(found, k.Name)
	}
	for k := range found {
		t.Errorf("config.yaml has %s, which Load does not know", k)
	}
}

// TestConfigKeysMatchStruct: every field of every section is a key with a
// lowercase mapstructure tag and an explicit default tag (possibly empty),
// or is marked "-"; every section is named like its field.
func TestConfigKeysMatchStruct(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	n := 0
	for i := range typ.NumField() {
		sec := typ.Field(i)
		if got := sec.Tag.Get("mapstructure"); got != strings.ToLower(sec.Name) {
			t.Errorf("Config.%s has mapstructure tag %q", sec.Name, got)
		}
		for j := range sec.Type.NumField() {
			f := sec.Type.Field(j)
			name := f.Tag.Get("mapstructure")
			if name == "-" {
				continue
			}
			n++
			if name == "" || name != strings.ToLower(name) {
				t.Errorf("%s.%s: mapstructure tag %q", sec.Name, f.Name, name)
			}
			if _, ok := f.Tag.Lookup("default"); !ok {
				t.Errorf("%s.%s has no default tag", sec.Name, f.Name)
			}
		}
	}
	if len(Keys()) != n || n < 50 {
		t.Errorf("Keys() has %d keys, the struct %d", len(Keys()), n)
	}
	// And the public key helper agrees with go-nostr.
	if pk, _ := nostr.GetPublicKey(testSecretHex); pk != testPubHex {
		t.Fatalf("test vector mismatch: %s", pk)
	}
}

func TestHostedURLsDefault(t *testing.T) {
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.HostedURLs(); !slices.Equal(got, []string{"http://127.0.0.1:5544/api/v1/nests", "ws+livekit://127.0.0.1:7880"}) {
		t.Fatalf("default hosted %v", got)
	}
	t.Setenv("NESTBOT_NESTS_HOSTED", "https://a.example, wss://lk.example")
	if cfg, err = Load(""); err != nil {
		t.Fatal(err)
	}
	if got := cfg.HostedURLs(); !slices.Equal(got, []string{"https://a.example", "wss://lk.example"}) {
		t.Fatalf("hosted %v", got)
	}
}

// TestConfigConsoleURL: nests.console_url is off by default and, when set,
// becomes the profile's website.
func TestConfigConsoleURL(t *testing.T) {
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
	if cfg := mustLoad(t, ""); cfg.Nests.ConsoleURL != "" || cfg.Profile.Website != "" {
		t.Fatalf("default console url %q, website %q", cfg.Nests.ConsoleURL, cfg.Profile.Website)
	}
	t.Setenv("NESTBOT_NESTS_CONSOLE_URL", "https://console.example/restart/")
	cfg := mustLoad(t, "")
	if cfg.Nests.ConsoleURL != "https://console.example/restart/" || cfg.Profile.Website != cfg.Nests.ConsoleURL {
		t.Fatalf("console url %q, website %q", cfg.Nests.ConsoleURL, cfg.Profile.Website)
	}
}

// TestSecretRedactsItself: a Secret or SecretURL shows no secret under any
// fmt verb, slog handler, JSON or text marshalling, and Reveal gives it back.
func TestSecretRedactsItself(t *testing.T) {
	const pw = "hunter2-0123456789"
	s, u, bad := Secret(pw), SecretURL("redis://bot:"+pw+"@h.example:6379/0"), SecretURL("redis://:"+pw+"@ho st:%zz/0")
	type holder struct {
		S Secret
		U SecretURL
		B SecretURL
	}
	h := holder{s, u, bad}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%v %s %q %x %X %#v %+v|%v %s %#v|%v %#v %+v\n", s, s, s, s, s, s, s, u, u, u, h, h, &h)
	for _, v := range []any{s, u, bad, h, &h} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(j)
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(y)
	}
	for _, hd := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		slog.New(hd).Info("x", "s", s, "u", u, "b", bad, "h", h)
	}
	if strings.Contains(out.String(), pw) || strings.Contains(out.String(), "68756e74657232") { // hex of "hunter2"
		t.Fatalf("secret printed:\n%s", out.String())
	}
	for _, want := range []string{redacted, "redis://bot:xxxxx@h.example:6379/0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if s.Reveal() != pw || u.Reveal() != "redis://bot:"+pw+"@h.example:6379/0" {
		t.Error("Reveal does not return the value")
	}
	if Secret("").String() != "" {
		t.Error("an unset secret should print as empty, not as [REDACTED]")
	}
}

// TestValidateHandBuilt: Validate checks a Config that did not come from
// Load, one *Error per key, in key order.
func TestValidateHandBuilt(t *testing.T) {
	clearEnv(t)
	t.Setenv("NESTBOT_NOSTR_SECRET_KEY", testSecretHex)
	c := mustLoad(t, "")
	if err := c.Validate(); err != nil {
		t.Fatalf("loaded config: %v", err)
	}
	c.Log.Format = "xml"
	c.Limits.Workers = 0
	c.Nostr.Relays = []string{"http://x", "also bad"}
	err := c.Validate()
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "nostr.relays" {
		t.Fatalf("err = %v, want the nostr.relays error first", err)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "config: limits.workers: must be positive") || !strings.HasPrefix(lines[2], "config: log.format: ") {
		t.Errorf("err = %q, want one line each for nostr.relays, limits.workers, log.format", err)
	}
}
