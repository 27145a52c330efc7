package bot

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// Config is the whole validated configuration. LoadConfig is the only way to
// get a validated one; a Config printed with fmt or logged with slog never
// shows nostr.secret_key, livekit.api_secret or a password in redis.url.
type Config struct {
	Nostr     NostrConfig
	Redis     RedisConfig
	LiveKit   LiveKitConfig
	Nests     NestsConfig
	HTTP      HTTPConfig
	Limits    LimitsConfig
	Lifecycle LifecycleConfig
	Heal      HealConfig
	Log       LogConfig
	Profile   ProfileConfig
}

// NostrConfig is the "nostr" section: the bot's identity, its relays and the
// kinds and ages of the events it handles.
type NostrConfig struct {
	// SecretKey is the bot's secret key as 64 lowercase hex characters, from
	// nostr.secret_key or the file named by nostr.secret_key_file.
	SecretKey string `json:"-"`
	// SecretKeyFile is the path the key was read from, "" when it came from
	// nostr.secret_key. Not secret.
	SecretKeyFile  string
	Relays         []string      // ws:// or wss:// URLs, duplicates removed
	RequestKind    int           // kind of restart requests (4312)
	ResponseKind   int           // kind of encrypted responses (4313)
	MaxRequestAge  time.Duration // requests older than this are ignored
	MaxDMAge       time.Duration // DMs older than this are ignored
	ResponseTTL    time.Duration // expiration set on responses
	LookupTimeout  time.Duration // timeout of one relay lookup (room event, relay list)
	AllowedPubkeys []string      // lowercase hex; empty means anyone
	DeniedPubkeys  []string      // lowercase hex; always refused
	// AllowPrivateRelays lets the bot connect to relays that others name
	// (request hints, rooms' relays, requesters' relay lists) on loopback,
	// private or link-local addresses; its own Relays are always used.
	AllowPrivateRelays bool
}

// RedisConfig is the "redis" section. Addrs, when non-empty, switches to a
// go-redis UniversalClient (Cluster, or Sentinel when MasterName is set); URL
// still supplies username, password, database and TLS then.
type RedisConfig struct {
	URL        string        // redis://, rediss:// or unix:// URL; may hold a password
	Addrs      []string      // host:port list for Cluster/Sentinel
	MasterName string        // Sentinel master name; requires Addrs
	KeyPrefix  string        // prefix of the room records shared with the Nests API ("nest:")
	BotPrefix  string        // prefix of nestbot's own keys ("nestbot:")
	RoomTTL    time.Duration // TTL of a room record written by the bot
	// Mode says what Addrs (or URL's host alone) is: "auto" infers it as
	// go-redis does (several addrs: Cluster; MasterName: Sentinel; one
	// URL: single server), "single", "cluster" (one seed address is
	// enough) or "sentinel".
	Mode string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// when they require it; the data nodes use URL's credentials.
	SentinelUsername string
	SentinelPassword string
	// TLSCAFile is a PEM bundle to verify the servers' certificates with
	// (rediss:// turns TLS on, in every mode); "" uses the system's roots.
	TLSCAFile string
	// WaitReplicas > 0 makes claims and restart commits WAIT until that
	// many replicas acknowledged them, for at most WaitTimeout.
	WaitReplicas int
	WaitTimeout  time.Duration
}

// LiveKitConfig is the "livekit" section.
type LiveKitConfig struct {
	URL              string        // server API URL (http, https, ws or wss)
	PublicURL        string        // URL clients connect to (ws, wss, http or https)
	APIKey           string        // not secret on its own
	APISecret        string        `json:"-"`
	TokenTTL         time.Duration // lifetime of issued access tokens
	MaxParticipants  int           // per room; 0 means no limit
	EmptyTimeout     time.Duration // room closes if nobody joins within this
	DepartureTimeout time.Duration // room closes this long after the last one leaves
}

// NestsConfig is the "nests" section.
type NestsConfig struct {
	ServiceURL string // Nests API base, written in the room event's service tag
	WebURL     string // web client base, used in links sent to users
	// ConsoleURL is the address of the restart page (web/) for hosts; when
	// set, the bot's kind 0 profile names it as its website so users find
	// it. "" (the default) leaves the profile without one.
	ConsoleURL string
	// Hosted are URLs naming this deployment (nests.hosted): a room whose
	// event names none of them in service/auth/streaming/endpoint is
	// another deployment's, answered NOT_FOUND. Empty: ServiceURL and the
	// endpoint derived from livekit.public_url (see HostedURLs).
	Hosted []string
}

// HostedURLs is nests.hosted, or by default the service URL and the
// LiveKit endpoint this bot itself writes into room events.
func (c Config) HostedURLs() []string {
	if len(c.Nests.Hosted) > 0 {
		return c.Nests.Hosted
	}
	out := []string{c.Nests.ServiceURL}
	if ep, err := nostrx.LiveKitEndpoint(c.LiveKit.PublicURL); err == nil {
		out = append(out, ep)
	}
	return out
}

// HTTPConfig is the "http" section.
type HTTPConfig struct {
	Listen      string // host:port of the ops listener (health, metrics, webhook); "" disables it
	WebhookPath string // path of the LiveKit webhook endpoint on Listen; "" disables it
}

// LifecycleConfig is the "lifecycle" section: upkeep of the rooms the bot
// published.
type LifecycleConfig struct {
	RepublishInterval time.Duration // republish an occupied room's event this often
	ReconcileInterval time.Duration // compare owned rooms with LiveKit this often
}

// HealConfig is the "heal" section: auto-heal of rooms that broke while
// people are in them (issue 14, internal/heal).
type HealConfig struct {
	Enabled      bool          // watch presence and heal; false: the bot only answers requests
	PresenceTTL  time.Duration // a kind 10312 presence is fresh this long
	MinPresent   int           // distinct fresh pubkeys that make a room occupied
	NewID        bool          // recreate a bot room whose record is gone under a new ID
	MaxPerMinute int           // heals per clock minute, all replicas together
	Interval     time.Duration // how often occupied rooms are checked
	MaxRooms     int           // rooms remembered in the presence table (LRU)
}

// LimitsConfig is the "limits" section.
type LimitsConfig struct {
	RoomCooldown      time.Duration // minimum time between two restarts of one room
	RestartsPerMinute int           // per requester
	NewRoomsPerMinute int           // rooms recreated under a new ID, all requesters together; 0 = no limit
	DependencyTimeout time.Duration // timeout of one Redis/LiveKit operation
	Workers           int           // concurrent request handlers
	Queue             int           // pending requests before new ones are shed
	SeenCache         int           // event ids remembered to drop duplicates
}

// LogConfig is the "log" section.
type LogConfig struct {
	Level  slog.Level // from debug|info|warn|error
	Format string     // "text" or "json"
}

// ProfileConfig is the "profile" section: the bot's kind 0 metadata.
type ProfileConfig struct {
	Name    string
	About   string
	Picture string // http(s) URL or ""
	// Website is nests.console_url, copied here because it is what the
	// kind 0 profile calls it (NIP-24 "website").
	Website string
}

// ConfigError is returned for every invalid value: it names the key and says
// what is wrong in one line. LoadConfig may join several of them; use
// errors.As to get the first.
type ConfigError struct{ Key, Reason string }

func (e *ConfigError) Error() string { return "config: " + e.Key + ": " + e.Reason }

// EnvPrefix is the prefix of environment overrides: nostr.secret_key is
// NESTBOT_NOSTR_SECRET_KEY.
const EnvPrefix = "NESTBOT"

// configKeys lists every key LoadConfig knows, in documentation order, with
// its default. Lists are []string, durations are strings.
var configKeys = []struct {
	key string
	def any
}{
	{"nostr.secret_key", ""},
	{"nostr.secret_key_file", ""},
	{"nostr.relays", []string{"wss://relay.damus.io", "wss://nos.lol", "wss://relay.primal.net"}},
	{"nostr.request_kind", 4312},
	{"nostr.response_kind", 4313},
	{"nostr.max_request_age", "120s"},
	{"nostr.max_dm_age", "10m"},
	{"nostr.response_ttl", "10m"},
	{"nostr.lookup_timeout", "3s"},
	{"nostr.allowed_pubkeys", []string{}},
	{"nostr.denied_pubkeys", []string{}},
	{"nostr.allow_private_relays", false},

	{"redis.url", "redis://127.0.0.1:6379/0"},
	{"redis.addrs", []string{}},
	{"redis.master_name", ""},
	{"redis.key_prefix", "nest:"},
	{"redis.bot_prefix", "nestbot:"},
	{"redis.room_ttl", "24h"},
	{"redis.mode", "auto"},
	{"redis.sentinel_username", ""},
	{"redis.sentinel_password", ""},
	{"redis.tls_ca_file", ""},
	{"redis.wait_replicas", 0},
	{"redis.wait_timeout", "250ms"},

	{"livekit.url", "http://127.0.0.1:7880"},
	{"livekit.public_url", "ws://127.0.0.1:7880"},
	{"livekit.api_key", "devkey"},
	{"livekit.api_secret", "secret"},
	{"livekit.token_ttl", "10m"},
	{"livekit.max_participants", 500},
	{"livekit.empty_timeout", "30m"},
	{"livekit.departure_timeout", "60s"},

	{"nests.service_url", "http://127.0.0.1:5544/api/v1/nests"},
	{"nests.web_url", "https://nostrnests.com"},
	{"nests.hosted", []string{}},
	{"nests.console_url", ""},

	{"http.listen", "127.0.0.1:9090"},
	{"http.webhook_path", "/livekit/webhook"},

	{"limits.room_cooldown", "10s"},
	{"limits.restarts_per_minute", 5},
	{"limits.new_rooms_per_minute", 60},
	{"limits.dependency_timeout", "30s"},
	{"limits.workers", 16},
	{"limits.queue", 1024},
	{"limits.seen_cache", 100000},

	{"lifecycle.republish_interval", "1h"},
	{"lifecycle.reconcile_interval", "1m"},

	{"heal.enabled", true},
	{"heal.presence_ttl", "5m"},
	{"heal.min_present", 1},
	{"heal.new_id", false},
	{"heal.max_per_minute", 30},
	{"heal.interval", "15s"},
	{"heal.max_rooms", 10000},

	{"log.level", "info"},
	{"log.format", "text"},

	{"profile.name", "nestbot"},
	{"profile.about", "Restarts Nostr audio rooms (nests). Send me a restart request or a DM: restart <naddr>."},
	{"profile.picture", ""},
}

// LoadConfig reads the YAML file at path, applies NESTBOT_<SECTION>_<KEY>
// environment overrides and defaults, and validates the result.
//
// path "" means no file: defaults and environment only. A path that does not
// exist is an error (Key "--config"), as is any key in the file that
// LoadConfig does not know. List values may be YAML lists or comma-separated
// strings (the only form the environment has). Every invalid value yields a
// *ConfigError; when there are several they are joined.
func LoadConfig(path string) (Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true) // NESTBOT_HTTP_LISTEN= disables the listener
	v.AutomaticEnv()
	for _, k := range configKeys {
		v.SetDefault(k.key, k.def)
	}

	if path != "" {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return Config{}, &ConfigError{"--config", fmt.Sprintf("%s: file not found", path)}
		}
		if err != nil {
			return Config{}, &ConfigError{"--config", err.Error()}
		}
		if err := checkFileKeys(path, data); err != nil {
			return Config{}, err
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return Config{}, &ConfigError{"--config", fmt.Sprintf("%s: %s", path, oneLine(err.Error()))}
		}
	}

	l := &loader{v: v}
	cfg := l.load()
	if len(l.errs) == 1 {
		return Config{}, l.errs[0]
	}
	if len(l.errs) > 1 {
		return Config{}, errors.Join(l.errs...)
	}
	return cfg, nil
}

// PublicKey is the bot's public key as lowercase hex ("" if SecretKey is not
// a valid key, which LoadConfig never lets through).
func (c Config) PublicKey() string { return c.Nostr.PublicKey() }

// PublicKey is the public key of SecretKey as lowercase hex, derived on each
// call (tens of microseconds) so it always matches SecretKey.
func (n NostrConfig) PublicKey() string {
	if len(n.SecretKey) != 64 {
		return ""
	}
	pk, err := nostr.GetPublicKey(n.SecretKey)
	if err != nil {
		return ""
	}
	return pk
}

// checkFileKeys rejects keys LoadConfig does not know, so a typo in the file
// is an error rather than a silently ignored setting. Keys are compared
// case-insensitively, as viper reads them.
func checkFileKeys(path string, data []byte) error {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return &ConfigError{"--config", fmt.Sprintf("%s: %s", path, oneLine(err.Error()))}
	}
	known := make(map[string]bool, len(configKeys))
	sections := map[string]bool{}
	for _, k := range configKeys {
		known[k.key] = true
		sections[strings.SplitN(k.key, ".", 2)[0]] = true
	}
	for _, s := range sortedKeys(doc) {
		sec := strings.ToLower(s)
		if !sections[sec] {
			return &ConfigError{s, "unknown key" + suggest(sec, known)}
		}
		body := doc[s]
		if body == nil {
			continue
		}
		m, ok := body.(map[string]any)
		if !ok {
			return &ConfigError{s, fmt.Sprintf("must be a mapping of %s.* keys, not a single value", sec)}
		}
		for _, k := range sortedKeys(m) {
			full := sec + "." + strings.ToLower(k)
			if !known[full] {
				return &ConfigError{s + "." + k, "unknown key" + suggest(full, known)}
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// suggest names the known key closest to a mistyped one, if any is close.
func suggest(key string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		cand := k
		if !strings.Contains(key, ".") {
			cand = strings.SplitN(k, ".", 2)[0]
		}
		if d := editDistance(key, cand); d < bestD || (d == bestD && cand < best) {
			best, bestD = cand, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// loader turns raw viper values into typed fields, collecting a ConfigError
// for each bad one.
type loader struct {
	v    *viper.Viper
	errs []error
}

// fail records an error for key; only the first one per key is kept (a value
// of the wrong type would otherwise also fail the checks after it).
func (l *loader) fail(key, format string, args ...any) {
	for _, e := range l.errs {
		if e.(*ConfigError).Key == key {
			return
		}
	}
	l.errs = append(l.errs, &ConfigError{key, fmt.Sprintf(format, args...)})
}

func (l *loader) load() Config {
	var c Config

	// nostr
	c.Nostr.SecretKey, c.Nostr.SecretKeyFile = l.secretKey()
	c.Nostr.Relays = l.relays("nostr.relays")
	c.Nostr.RequestKind = l.kind("nostr.request_kind")
	c.Nostr.ResponseKind = l.kind("nostr.response_kind")
	if c.Nostr.RequestKind != 0 && c.Nostr.RequestKind == c.Nostr.ResponseKind {
		l.fail("nostr.response_kind", "must differ from nostr.request_kind (both %d)", c.Nostr.RequestKind)
	}
	c.Nostr.MaxRequestAge = l.duration("nostr.max_request_age")
	c.Nostr.MaxDMAge = l.duration("nostr.max_dm_age")
	c.Nostr.ResponseTTL = l.duration("nostr.response_ttl")
	c.Nostr.LookupTimeout = l.duration("nostr.lookup_timeout")
	c.Nostr.AllowedPubkeys = l.pubkeys("nostr.allowed_pubkeys")
	c.Nostr.DeniedPubkeys = l.pubkeys("nostr.denied_pubkeys")
	c.Nostr.AllowPrivateRelays = l.boolean("nostr.allow_private_relays")
	for _, pk := range c.Nostr.DeniedPubkeys {
		if slices.Contains(c.Nostr.AllowedPubkeys, pk) {
			l.fail("nostr.denied_pubkeys", "%s is also in nostr.allowed_pubkeys", pk)
			break
		}
	}

	// redis
	c.Redis.URL = l.redisURL("redis.url")
	c.Redis.Addrs = l.hostPorts("redis.addrs")
	c.Redis.MasterName = l.str("redis.master_name")
	if c.Redis.MasterName != "" && len(c.Redis.Addrs) == 0 {
		l.fail("redis.addrs", "must list the Sentinel addresses when redis.master_name is set")
	}
	c.Redis.KeyPrefix = l.str("redis.key_prefix")
	c.Redis.BotPrefix = l.str("redis.bot_prefix")
	switch kp, bp := c.Redis.KeyPrefix, c.Redis.BotPrefix; {
	case kp == "":
		l.fail("redis.key_prefix", "must not be empty")
	case bp == "":
		l.fail("redis.bot_prefix", "must not be empty")
	case kp == bp:
		l.fail("redis.bot_prefix", "must differ from redis.key_prefix (both %q)", kp)
	case strings.HasPrefix(kp, bp) || strings.HasPrefix(bp, kp):
		l.fail("redis.bot_prefix", "%q and redis.key_prefix %q overlap: neither may be a prefix of the other", bp, kp)
	}
	c.Redis.RoomTTL = l.duration("redis.room_ttl")
	c.Redis.Mode = l.str("redis.mode")
	switch c.Redis.Mode {
	case "auto", "cluster":
	case "single":
		if len(c.Redis.Addrs) > 0 {
			l.fail("redis.mode", "single uses redis.url alone; leave redis.addrs empty or pick cluster or sentinel")
		}
	case "sentinel":
		if c.Redis.MasterName == "" || len(c.Redis.Addrs) == 0 {
			l.fail("redis.mode", "sentinel needs redis.master_name and the sentinels in redis.addrs")
		}
	default:
		l.fail("redis.mode", "must be auto, single, cluster or sentinel, not %q", c.Redis.Mode)
	}
	c.Redis.SentinelUsername = l.str("redis.sentinel_username")
	c.Redis.SentinelPassword = l.str("redis.sentinel_password")
	c.Redis.TLSCAFile = l.str("redis.tls_ca_file")
	c.Redis.WaitReplicas = l.integer("redis.wait_replicas", 0, 16)
	c.Redis.WaitTimeout = l.duration("redis.wait_timeout")

	// livekit
	c.LiveKit.URL = l.url("livekit.url", "http", "https", "ws", "wss")
	c.LiveKit.PublicURL = l.url("livekit.public_url", "ws", "wss", "http", "https")
	c.LiveKit.APIKey = l.required("livekit.api_key")
	c.LiveKit.APISecret = l.required("livekit.api_secret")
	c.LiveKit.TokenTTL = l.duration("livekit.token_ttl")
	c.LiveKit.MaxParticipants = l.integer("livekit.max_participants", 0, math.MaxUint32)
	c.LiveKit.EmptyTimeout = l.seconds("livekit.empty_timeout")
	c.LiveKit.DepartureTimeout = l.seconds("livekit.departure_timeout")

	// nests
	c.Nests.ServiceURL = l.url("nests.service_url", "http", "https")
	c.Nests.WebURL = l.url("nests.web_url", "http", "https")
	c.Nests.Hosted = l.absoluteURLs("nests.hosted")
	if u := l.str("nests.console_url"); u != "" {
		c.Nests.ConsoleURL = l.url("nests.console_url", "http", "https")
	}

	// http
	if listen := l.str("http.listen"); listen != "" {
		if l.hostPort("http.listen", listen, true) {
			c.HTTP.Listen = listen
		}
	}
	c.HTTP.WebhookPath = l.webhookPath("http.webhook_path")

	// limits
	c.Limits.RoomCooldown = l.duration("limits.room_cooldown")
	c.Limits.RestartsPerMinute = l.integer("limits.restarts_per_minute", 1, math.MaxInt32)
	c.Limits.NewRoomsPerMinute = l.integer("limits.new_rooms_per_minute", 0, math.MaxInt32)
	c.Limits.DependencyTimeout = l.duration("limits.dependency_timeout")
	c.Limits.Workers = l.integer("limits.workers", 1, 1<<16)
	c.Limits.Queue = l.integer("limits.queue", 1, 1<<24)
	c.Limits.SeenCache = l.integer("limits.seen_cache", 1, 1<<28)

	// lifecycle
	c.Lifecycle.RepublishInterval = l.duration("lifecycle.republish_interval")
	if d := c.Lifecycle.RepublishInterval; d >= MaxRepublishInterval {
		l.fail("lifecycle.republish_interval", "must be under %s (clients treat an older room event as closed), got %s", MaxRepublishInterval, d)
	}
	c.Lifecycle.ReconcileInterval = l.duration("lifecycle.reconcile_interval")

	// heal
	c.Heal.Enabled = l.boolean("heal.enabled")
	c.Heal.PresenceTTL = l.duration("heal.presence_ttl")
	c.Heal.MinPresent = l.integer("heal.min_present", 1, maxPubkeysPerHealRoom)
	c.Heal.NewID = l.boolean("heal.new_id")
	c.Heal.MaxPerMinute = l.integer("heal.max_per_minute", 1, 1<<20)
	c.Heal.Interval = l.duration("heal.interval")
	c.Heal.MaxRooms = l.integer("heal.max_rooms", 1, 1<<22)
	if c.Heal.Interval > c.Heal.PresenceTTL && c.Heal.PresenceTTL > 0 {
		l.fail("heal.interval", "must not be longer than heal.presence_ttl (%s), got %s", c.Heal.PresenceTTL, c.Heal.Interval)
	}

	// log
	switch lv := strings.ToLower(l.str("log.level")); lv {
	case "debug":
		c.Log.Level = slog.LevelDebug
	case "info":
		c.Log.Level = slog.LevelInfo
	case "warn":
		c.Log.Level = slog.LevelWarn
	case "error":
		c.Log.Level = slog.LevelError
	default:
		l.fail("log.level", "%q is not one of debug, info, warn, error", lv)
	}
	switch f := strings.ToLower(l.str("log.format")); f {
	case "text", "json":
		c.Log.Format = f
	default:
		l.fail("log.format", "%q is not one of text, json", f)
	}

	// profile
	c.Profile.Name = l.str("profile.name")
	c.Profile.About = l.str("profile.about")
	if pic := l.str("profile.picture"); pic != "" {
		c.Profile.Picture = l.url("profile.picture", "http", "https")
	}
	c.Profile.Website = c.Nests.ConsoleURL
	return c
}

// maxPubkeysPerHealRoom bounds heal.min_present: the healer remembers at
// most this many pubkeys per room (internal/heal).
const maxPubkeysPerHealRoom = 64

// MaxRepublishInterval bounds lifecycle.republish_interval: Amethyst treats a
// 30312 whose created_at is more than 8 hours old as closed.
const MaxRepublishInterval = 8 * time.Hour

// reservedPaths are served by the ops listener and cannot be the webhook path.
var reservedPaths = []string{"/healthz", "/readyz", "/metrics"}

// webhookPath reads an absolute URL path ("" disables the endpoint).
func (l *loader) webhookPath(key string) string {
	p := l.str(key)
	if p == "" {
		return ""
	}
	u, err := url.Parse(p)
	switch {
	case err != nil || !strings.HasPrefix(p, "/") || u.Path != p || u.RawQuery != "" || strings.ContainsAny(p, " \t\n"):
		l.fail(key, "%q is not an absolute URL path like /livekit/webhook", p)
		return ""
	case p == "/" || slices.Contains(reservedPaths, p):
		l.fail(key, "%q is taken: pick a path other than /, %s", p, strings.Join(reservedPaths, ", "))
		return ""
	}
	return p
}

// raw is the value of key from env, file or default, in whatever type the
// source gave it.
func (l *loader) raw(key string) any { return l.v.Get(key) }

// str reads a string value, trimmed. YAML integers are accepted as their
// decimal text (an api_key of digits); other non-strings are errors.
func (l *loader) str(key string) string {
	switch x := l.raw(key).(type) {
	case nil:
		return ""
	case string:
		return strings.TrimSpace(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	default:
		l.fail(key, "must be a string, got %s", describe(x))
		return ""
	}
}

func (l *loader) required(key string) string {
	s := l.str(key)
	if s == "" {
		l.fail(key, "must not be empty")
	}
	return s
}

// list reads a list given as a YAML sequence or a comma-separated string;
// items are trimmed and empty items dropped.
func (l *loader) list(key string) []string {
	var items []string
	switch x := l.raw(key).(type) {
	case nil:
	case string:
		items = strings.Split(x, ",")
	case []string:
		items = x
	case []any:
		for i, it := range x {
			switch s := it.(type) {
			case string:
				items = append(items, s)
			case int:
				items = append(items, strconv.Itoa(s))
			default:
				l.fail(key, "item %d must be a string, got %s", i+1, describe(it))
				return nil
			}
		}
	default:
		l.fail(key, "must be a list or a comma-separated string, got %s", describe(x))
		return nil
	}
	out := []string{}
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" && !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	return out
}

// integer reads a whole number within [lo, hi].
func (l *loader) integer(key string, lo, hi int) int {
	var n int64
	switch x := l.raw(key).(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case uint64:
		if x > math.MaxInt64 {
			l.fail(key, "%d is too large", x)
			return 0
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			l.fail(key, "%v is not a whole number", x)
			return 0
		}
		n = int64(x)
	case string:
		var err error
		n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			l.fail(key, "%q is not a whole number", x)
			return 0
		}
	default:
		l.fail(key, "must be a whole number, got %s", describe(x))
		return 0
	}
	switch {
	case n < int64(lo) && lo == 0:
		l.fail(key, "must not be negative, got %d", n)
		return 0
	case n < int64(lo) && lo == 1:
		l.fail(key, "must be positive, got %d", n)
		return 0
	case n < int64(lo) || n > int64(hi):
		l.fail(key, "must be between %d and %d, got %d", lo, hi, n)
		return 0
	}
	return int(n)
}

// boolean reads true or false (YAML, or the words in an environment
// variable); anything else is an error rather than a silent false.
func (l *loader) boolean(key string) bool {
	switch x := l.raw(key).(type) {
	case bool:
		return x
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			l.fail(key, "must be true or false, got %q", x)
		}
		return b
	default:
		l.fail(key, "must be true or false, got %s", describe(x))
		return false
	}
}

// kind reads a Nostr event kind.
func (l *loader) kind(key string) int { return l.integer(key, 1, 65535) }

// duration reads a positive Go duration ("90s", "10m", "1h30m"). Bare numbers
// are refused: without a unit nobody can tell seconds from nanoseconds.
func (l *loader) duration(key string) time.Duration {
	var s string
	switch x := l.raw(key).(type) {
	case string:
		s = strings.TrimSpace(x)
	case time.Duration:
		s = x.String()
	case int, int64, uint64, float64:
		l.fail(key, "%v has no unit: write it like 90s, 10m or 1h", x)
		return 0
	default:
		l.fail(key, "must be a duration like 90s, 10m or 1h, got %s", describe(x))
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			l.fail(key, "%q has no unit: write it like 90s, 10m or 1h", s)
		} else {
			l.fail(key, "%q is not a duration like 90s, 10m or 1h", s)
		}
		return 0
	}
	if d <= 0 {
		l.fail(key, "must be positive, got %s", s)
		return 0
	}
	return d
}

// seconds is a duration that LiveKit takes in whole seconds.
func (l *loader) seconds(key string) time.Duration {
	n := len(l.errs)
	d := l.duration(key)
	if len(l.errs) > n {
		return 0
	}
	if d%time.Second != 0 {
		l.fail(key, "must be whole seconds (LiveKit counts in seconds), got %s", d)
		return 0
	}
	if d/time.Second > math.MaxUint32 {
		l.fail(key, "%s is too long", d)
		return 0
	}
	return d
}

// url reads an absolute URL with one of the given schemes and a host.
func (l *loader) url(key string, schemes ...string) string {
	s := l.str(key)
	u, err := url.Parse(s)
	if err != nil || !slices.Contains(schemes, u.Scheme) {
		l.fail(key, "%q is not %s URL", s, schemeList(schemes))
		return ""
	}
	if u.Hostname() == "" {
		l.fail(key, "%q has no host", s)
		return ""
	}
	return s
}

func schemeList(schemes []string) string {
	parts := make([]string, len(schemes))
	for i, s := range schemes {
		parts[i] = s + "://"
	}
	art := "a"
	if strings.HasPrefix(schemes[0], "h") {
		art = "an"
	}
	if len(parts) == 1 {
		return art + " " + parts[0]
	}
	return art + " " + strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// absoluteURLs reads a list of URLs of any scheme that name a host.
func (l *loader) absoluteURLs(key string) []string {
	out := l.list(key)
	for _, s := range out {
		if u, err := url.Parse(s); err != nil || u.Scheme == "" || u.Hostname() == "" {
			l.fail(key, "%q is not an absolute URL", s)
			return nil
		}
	}
	return out
}

func (l *loader) relays(key string) []string {
	rs := l.list(key)
	if rs == nil {
		return nil
	}
	if len(rs) == 0 {
		l.fail(key, "must list at least one relay")
		return nil
	}
	for _, r := range rs {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
			l.fail(key, "%q is not a ws:// or wss:// URL", r)
			return nil
		}
		if u.Hostname() == "" {
			l.fail(key, "%q has no host", r)
			return nil
		}
	}
	return rs
}

// redisURL validates with go-redis's own parser, never echoing a URL that
// may carry a password.
func (l *loader) redisURL(key string) string {
	s := l.str(key)
	u, err := url.Parse(s)
	if err != nil || s == "" {
		l.fail(key, "is not a valid URL (want redis://[user:password@]host:port/db, rediss:// or unix://)")
		return ""
	}
	if err := rooms.ValidRedisURL(s); err != nil {
		l.fail(key, "%s: %s", u.Redacted(), strings.TrimPrefix(err.Error(), "redis: "))
		return ""
	}
	if u.Scheme != "unix" && u.Hostname() == "" {
		l.fail(key, "%s has no host", u.Redacted())
		return ""
	}
	return s
}

func (l *loader) hostPorts(key string) []string {
	hs := l.list(key)
	for _, h := range hs {
		if !l.hostPort(key, h, false) {
			return nil
		}
	}
	return hs
}

// hostPort checks "host:port" with a numeric port; an empty host (":9090",
// all interfaces) is allowed only for a listen address.
func (l *loader) hostPort(key, s string, listen bool) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		l.fail(key, "%q is not host:port", s)
		return false
	}
	if host == "" && !listen {
		l.fail(key, "%q has no host", s)
		return false
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 || (p == 0 && !listen) {
		l.fail(key, "%q has no valid port", s)
		return false
	}
	return true
}

func (l *loader) pubkeys(key string) []string {
	in := l.list(key)
	out := []string{}
	for i, s := range in {
		pk, ok := decodePubkey(s)
		if !ok {
			l.fail(key, "item %d %q is not an npub1… or 64-hex public key", i+1, s)
			return nil
		}
		if !slices.Contains(out, pk) {
			out = append(out, pk)
		}
	}
	return out
}

func decodePubkey(s string) (string, bool) {
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		prefix, v, err := nip19.Decode(strings.ToLower(s))
		if err != nil || prefix != "npub" {
			return "", false
		}
		s, _ = v.(string)
	}
	s = strings.ToLower(s)
	if !nostr.IsValidPublicKey(s) {
		return "", false
	}
	return s, true
}

// secretKey resolves nostr.secret_key / nostr.secret_key_file. No message
// here ever contains the key or the file's content.
func (l *loader) secretKey() (key, file string) {
	inline := l.str("nostr.secret_key")
	file = l.str("nostr.secret_key_file")
	switch {
	case inline != "" && file != "":
		l.fail("nostr.secret_key", "set only one of nostr.secret_key and nostr.secret_key_file")
		return "", ""
	case inline == "" && file == "":
		l.fail("nostr.secret_key", "required: set NESTBOT_NOSTR_SECRET_KEY, nostr.secret_key or nostr.secret_key_file")
		return "", ""
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			l.fail("nostr.secret_key_file", "cannot read: %s", oneLine(err.Error()))
			return "", ""
		}
		content := strings.TrimSpace(string(data))
		if content == "" {
			l.fail("nostr.secret_key_file", "%s is empty", file)
			return "", ""
		}
		sk, reason := decodeSecretKey(content)
		if reason != "" {
			l.fail("nostr.secret_key_file", "%s: content %s", file, reason)
			return "", ""
		}
		return sk, file
	default:
		sk, reason := decodeSecretKey(inline)
		if reason != "" {
			l.fail("nostr.secret_key", "value %s", reason)
			return "", ""
		}
		return sk, ""
	}
}

// decodeSecretKey accepts nsec1… or 64 hex characters and returns lowercase
// hex, or a reason that does not repeat the input.
func decodeSecretKey(s string) (string, string) {
	lower := strings.ToLower(s)
	switch {
	case strings.HasPrefix(lower, "npub1"):
		return "", "is an npub (a public key); the bot needs its secret key (nsec1… or 64 hex)"
	case strings.HasPrefix(lower, "nsec1"):
		prefix, v, err := nip19.Decode(lower)
		if err != nil || prefix != "nsec" {
			return "", "is not a valid nsec1… key (bad bech32 encoding or checksum)"
		}
		lower, _ = v.(string)
	case len(lower) != 64:
		return "", fmt.Sprintf("is not an nsec1… or 64-hex secret key (%d characters)", len(lower))
	}
	b, err := hex.DecodeString(lower)
	if err != nil || len(b) != 32 {
		return "", "is not an nsec1… or 64-hex secret key (not hex)"
	}
	var sc secp256k1.ModNScalar
	if overflow := sc.SetByteSlice(b); overflow || sc.IsZero() {
		return "", "is not a valid secp256k1 secret key (zero or not below the curve order)"
	}
	return lower, ""
}

func describe(x any) string {
	switch x.(type) {
	case nil:
		return "nothing"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	case []any, []string:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T", x)
	}
}

// --- redaction ---

const redacted = "[REDACTED]"

func redact(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// redactURL hides a password in a URL; a URL that does not parse is hidden
// whole.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redact(s)
	}
	return u.Redacted()
}

// LogValue renders the configuration for slog with secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("nostr", c.Nostr),
		slog.Any("redis", c.Redis),
		slog.Any("livekit", c.LiveKit),
		slog.Group("nests", "service_url", c.Nests.ServiceURL, "web_url", c.Nests.WebURL, "console_url", c.Nests.ConsoleURL, "hosted", c.Nests.Hosted),
		slog.Group("http", "listen", c.HTTP.Listen, "webhook_path", c.HTTP.WebhookPath),
		slog.Group("limits",
			"room_cooldown", c.Limits.RoomCooldown,
			"restarts_per_minute", c.Limits.RestartsPerMinute,
			"new_rooms_per_minute", c.Limits.NewRoomsPerMinute,
			"dependency_timeout", c.Limits.DependencyTimeout,
			"workers", c.Limits.Workers,
			"queue", c.Limits.Queue,
			"seen_cache", c.Limits.SeenCache),
		slog.Group("lifecycle",
			"republish_interval", c.Lifecycle.RepublishInterval,
			"reconcile_interval", c.Lifecycle.ReconcileInterval),
		slog.Group("heal",
			"enabled", c.Heal.Enabled,
			"presence_ttl", c.Heal.PresenceTTL,
			"min_present", c.Heal.MinPresent,
			"new_id", c.Heal.NewID,
			"max_per_minute", c.Heal.MaxPerMinute,
			"interval", c.Heal.Interval,
			"max_rooms", c.Heal.MaxRooms),
		slog.Group("log", "level", c.Log.Level.String(), "format", c.Log.Format),
		slog.Group("profile", "name", c.Profile.Name, "about", c.Profile.About, "picture", c.Profile.Picture),
	)
}

// LogValue renders the section for slog with secret_key redacted and the
// public key shown instead.
func (n NostrConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("secret_key", redact(n.SecretKey)),
		slog.String("secret_key_file", n.SecretKeyFile),
		slog.String("public_key", n.PublicKey()),
		slog.Any("relays", n.Relays),
		slog.Int("request_kind", n.RequestKind),
		slog.Int("response_kind", n.ResponseKind),
		slog.Duration("max_request_age", n.MaxRequestAge),
		slog.Duration("max_dm_age", n.MaxDMAge),
		slog.Duration("response_ttl", n.ResponseTTL),
		slog.Duration("lookup_timeout", n.LookupTimeout),
		slog.Any("allowed_pubkeys", n.AllowedPubkeys),
		slog.Any("denied_pubkeys", n.DeniedPubkeys),
		slog.Bool("allow_private_relays", n.AllowPrivateRelays),
	)
}

// LogValue renders the section for slog with any password in url redacted.
func (r RedisConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(r.URL)),
		slog.Any("addrs", r.Addrs),
		slog.String("master_name", r.MasterName),
		slog.String("key_prefix", r.KeyPrefix),
		slog.String("bot_prefix", r.BotPrefix),
		slog.Duration("room_ttl", r.RoomTTL),
		slog.String("mode", r.Mode),
		slog.String("sentinel_username", r.SentinelUsername),
		slog.String("sentinel_password", redact(r.SentinelPassword)),
		slog.String("tls_ca_file", r.TLSCAFile),
		slog.Int("wait_replicas", r.WaitReplicas),
		slog.Duration("wait_timeout", r.WaitTimeout),
	)
}

// LogValue renders the section for slog with api_secret redacted.
func (k LiveKitConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(k.URL)),
		slog.String("public_url", redactURL(k.PublicURL)),
		slog.String("api_key", k.APIKey),
		slog.String("api_secret", redact(k.APISecret)),
		slog.Duration("token_ttl", k.TokenTTL),
		slog.Int("max_participants", k.MaxParticipants),
		slog.Duration("empty_timeout", k.EmptyTimeout),
		slog.Duration("departure_timeout", k.DepartureTimeout),
	)
}

// String renders the configuration on one line with secrets redacted; fmt's
// %v, %+v and %s use it.
func (c Config) String() string { return formatValue(c.LogValue()) }

// GoString is %#v; it redacts like String.
func (c Config) GoString() string { return "bot.Config" + c.String() }

// String renders the section with secret_key redacted.
func (n NostrConfig) String() string { return formatValue(n.LogValue()) }

// GoString is %#v; it redacts like String.
func (n NostrConfig) GoString() string { return "bot.NostrConfig" + n.String() }

// String renders the section with any password in url redacted.
func (r RedisConfig) String() string { return formatValue(r.LogValue()) }

// GoString is %#v; it redacts like String.
func (r RedisConfig) GoString() string { return "bot.RedisConfig" + r.String() }

// String renders the section with api_secret redacted.
func (k LiveKitConfig) String() string { return formatValue(k.LogValue()) }

// GoString is %#v; it redacts like String.
func (k LiveKitConfig) GoString() string { return "bot.LiveKitConfig" + k.String() }

// formatValue renders a resolved slog value as {k=v k={…}}.
func formatValue(v slog.Value) string {
	v = v.Resolve()
	if v.Kind() != slog.KindGroup {
		if v.Kind() == slog.KindString {
			s := v.String()
			if s == "" || strings.ContainsAny(s, " {}=\"") {
				return strconv.Quote(s)
			}
			return s
		}
		return fmt.Sprint(v.Any())
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, a := range v.Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(formatValue(a.Value))
	}
	b.WriteByte('}')
	return b.String()
}
