// Package config is nestbot's configuration: the Config struct, its
// defaults, loading from config.yaml and NESTBOT_* environment variables
// (viper), and validation.
//
// Every key is one field of a section struct below, carrying its YAML key
// and its default in struct tags:
//
//	RoomCooldown time.Duration `mapstructure:"room_cooldown" default:"10s"`
//
// The default is written the way the environment would write it (a list is
// comma-separated) and goes through the same decoding as a value from the
// file or the environment. The key list, the defaults, the environment names
// (NESTBOT_<SECTION>_<KEY>), unknown-key detection and the log rendering are
// all derived from the struct, so adding a key is:
//
//  1. one field with `mapstructure` and `default` tags in its section;
//  2. one line in Validate if the value has a rule beyond its type;
//  3. the key, with a comment above it, in config.yaml (a test checks that).
//
// Adding a section is one more struct type like those below and one more
// field of Config naming it:
//
//	Heal Heal `mapstructure:"heal"`
//
// What a field's Go type already says is checked while decoding
// (decode.go): integers must be whole numbers, booleans true or false,
// durations positive and with a unit, lists come from YAML lists or
// comma-separated strings, Pubkeys are npub or 64-hex keys on the curve. A
// value that must not be printed has type Secret or SecretURL, which redact
// themselves under fmt, slog, JSON and text marshalling.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/go-viper/mapstructure/v2"
	"github.com/nbd-wtf/go-nostr"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/nestbot/nestbot/nostrx"
)

// Config is the whole configuration. Load is the only way to get a validated
// one; printed with fmt or logged with slog it never shows a Secret.
type Config struct {
	Nostr     Nostr     `mapstructure:"nostr"`
	Redis     Redis     `mapstructure:"redis"`
	LiveKit   LiveKit   `mapstructure:"livekit"`
	Nests     Nests     `mapstructure:"nests"`
	HTTP      HTTP      `mapstructure:"http"`
	Limits    Limits    `mapstructure:"limits"`
	Lifecycle Lifecycle `mapstructure:"lifecycle"`
	Heal      Heal      `mapstructure:"heal"`
	Log       Log       `mapstructure:"log"`
	Profile   Profile   `mapstructure:"profile"`
}

// Nostr is the "nostr" section: the bot's identity, its relays and the kinds
// and ages of the events it handles.
type Nostr struct {
	// SecretKey is the bot's secret key as 64 lowercase hex characters, from
	// nostr.secret_key (nsec1… or hex) or the file named by secret_key_file.
	SecretKey Secret `mapstructure:"secret_key" default:""`
	// SecretKeyFile is the path the key was read from, "" when it came from
	// nostr.secret_key. Not secret.
	SecretKeyFile  string        `mapstructure:"secret_key_file" default:""`
	Relays         []string      `mapstructure:"relays" default:"wss://relay.damus.io,wss://nos.lol,wss://relay.primal.net"` // ws:// or wss:// URLs
	RequestKind    int           `mapstructure:"request_kind" default:"4312"`                                                // kind of restart requests
	ResponseKind   int           `mapstructure:"response_kind" default:"4313"`                                               // kind of encrypted responses
	MaxRequestAge  time.Duration `mapstructure:"max_request_age" default:"120s"`                                             // older requests are ignored
	MaxDMAge       time.Duration `mapstructure:"max_dm_age" default:"10m"`                                                   // older DMs are ignored
	ResponseTTL    time.Duration `mapstructure:"response_ttl" default:"10m"`                                                 // NIP-40 expiration of responses
	LookupTimeout  time.Duration `mapstructure:"lookup_timeout" default:"3s"`                                                // one relay lookup
	AllowedPubkeys Pubkeys       `mapstructure:"allowed_pubkeys" default:""`                                                 // empty means anyone
	DeniedPubkeys  Pubkeys       `mapstructure:"denied_pubkeys" default:""`                                                  // always refused
	// AllowPrivateRelays lets the bot connect to relays that others name
	// (request hints, rooms' relays, requesters' relay lists) on loopback,
	// private or link-local addresses; its own Relays are always used.
	AllowPrivateRelays bool `mapstructure:"allow_private_relays" default:"false"`
}

// Redis is the "redis" section. Addrs, when non-empty, switches to a go-redis
// UniversalClient (Cluster, or Sentinel when MasterName is set); URL still
// supplies username, password, database and TLS then.
type Redis struct {
	URL        SecretURL     `mapstructure:"url" default:"redis://127.0.0.1:6379/0"` // redis://, rediss:// or unix://; may hold a password
	Addrs      []string      `mapstructure:"addrs" default:""`                       // host:port list for Cluster/Sentinel
	MasterName string        `mapstructure:"master_name" default:""`                 // Sentinel master name; requires Addrs
	KeyPrefix  string        `mapstructure:"key_prefix" default:"nest:"`             // room records shared with the Nests API
	BotPrefix  string        `mapstructure:"bot_prefix" default:"nestbot:"`          // nestbot's own keys
	RoomTTL    time.Duration `mapstructure:"room_ttl" default:"24h"`                 // TTL of a room record the bot writes
	// Mode says what Addrs (or URL's host alone) is: "auto" infers it as
	// go-redis does, "single", "cluster" (one seed address is enough) or
	// "sentinel".
	Mode             string `mapstructure:"mode" default:"auto"`
	SentinelUsername string `mapstructure:"sentinel_username" default:""` // the sentinels' own credentials
	SentinelPassword Secret `mapstructure:"sentinel_password" default:""`
	TLSCAFile        string `mapstructure:"tls_ca_file" default:""` // PEM bundle; "" = system roots
	// WaitReplicas > 0 makes claims and restart commits WAIT until that many
	// replicas acknowledged them, for at most WaitTimeout.
	WaitReplicas int           `mapstructure:"wait_replicas" default:"0"`
	WaitTimeout  time.Duration `mapstructure:"wait_timeout" default:"250ms"`
}

// LiveKit is the "livekit" section.
type LiveKit struct {
	URL              string        `mapstructure:"url" default:"http://127.0.0.1:7880"`      // server API (http, https, ws or wss)
	PublicURL        string        `mapstructure:"public_url" default:"ws://127.0.0.1:7880"` // handed to clients
	APIKey           string        `mapstructure:"api_key" default:"devkey"`                 // not secret on its own
	APISecret        Secret        `mapstructure:"api_secret" default:"secret"`
	TokenTTL         time.Duration `mapstructure:"token_ttl" default:"10m"`         // lifetime of issued access tokens
	MaxParticipants  int           `mapstructure:"max_participants" default:"500"`  // per room; 0 = no limit
	EmptyTimeout     time.Duration `mapstructure:"empty_timeout" default:"30m"`     // whole seconds
	DepartureTimeout time.Duration `mapstructure:"departure_timeout" default:"60s"` // whole seconds
}

// Nests is the "nests" section.
type Nests struct {
	ServiceURL string `mapstructure:"service_url" default:"http://127.0.0.1:5544/api/v1/nests"` // written in the room event's service tag
	WebURL     string `mapstructure:"web_url" default:"https://nostrnests.com"`                 // used in links sent to users
	// Hosted are URLs naming this deployment: a room whose event names none
	// of them in service/auth/streaming/endpoint is another deployment's,
	// answered NOT_FOUND. Empty: see HostedURLs.
	Hosted []string `mapstructure:"hosted" default:""`
	// ConsoleURL is the restart page (web/) for hosts; when set, the bot's
	// kind 0 profile names it as its website. "" leaves it out.
	ConsoleURL string `mapstructure:"console_url" default:""`
}

// HTTP is the "http" section.
type HTTP struct {
	Listen      string `mapstructure:"listen" default:"127.0.0.1:9090"`         // ops listener; "" disables it
	WebhookPath string `mapstructure:"webhook_path" default:"/livekit/webhook"` // LiveKit webhook on Listen; "" disables it
}

// Limits is the "limits" section.
type Limits struct {
	RoomCooldown      time.Duration `mapstructure:"room_cooldown" default:"10s"`       // between two restarts of one room
	RestartsPerMinute int           `mapstructure:"restarts_per_minute" default:"5"`   // per requester
	NewRoomsPerMinute int           `mapstructure:"new_rooms_per_minute" default:"60"` // all requesters together; 0 = no limit
	DependencyTimeout time.Duration `mapstructure:"dependency_timeout" default:"30s"`  // one Redis/LiveKit operation
	Workers           int           `mapstructure:"workers" default:"16"`              // concurrent request handlers
	Queue             int           `mapstructure:"queue" default:"1024"`              // pending requests before shedding
	SeenCache         int           `mapstructure:"seen_cache" default:"100000"`       // event ids remembered for dedup
}

// Lifecycle is the "lifecycle" section: upkeep of the rooms the bot published.
type Lifecycle struct {
	RepublishInterval time.Duration `mapstructure:"republish_interval" default:"1h"` // under MaxRepublishInterval
	ReconcileInterval time.Duration `mapstructure:"reconcile_interval" default:"1m"`
}

// Heal is the "heal" section: auto-heal of rooms of this deployment that
// broke while people are in them (issue 14, internal/heal,
// docs/operations.md).
type Heal struct {
	Enabled      bool          `mapstructure:"enabled" default:"true"`      // watch presence and heal; false: requests only
	PresenceTTL  time.Duration `mapstructure:"presence_ttl" default:"5m"`   // a kind 10312 presence is fresh this long
	MinPresent   int           `mapstructure:"min_present" default:"1"`     // distinct fresh pubkeys that make a room occupied, 1..MaxHealMinPresent
	NewID        bool          `mapstructure:"new_id" default:"false"`      // recreate a bot room whose record is gone under a new ID
	MaxPerMinute int           `mapstructure:"max_per_minute" default:"30"` // heals per clock minute, all replicas together
	Interval     time.Duration `mapstructure:"interval" default:"15s"`      // how often occupied rooms are checked; at most presence_ttl
	MaxRooms     int           `mapstructure:"max_rooms" default:"10000"`   // rooms in the presence table (LRU)
}

// MaxHealMinPresent bounds heal.min_present: the healer remembers at most
// this many pubkeys per room (internal/heal).
const MaxHealMinPresent = 64

// MaxQueue bounds limits.queue. Each of the bot's two request queues is a
// channel of this many jobs allocated at start, and the garbage collector
// scans both on every cycle: at the old bound (16,777,216) the bot held
// 3.2 GB resident before its first request and took 28 s to start. At
// this one the queues cost about 13 MB.
const MaxQueue = 1 << 16

// Log is the "log" section.
type Log struct {
	Level  slog.Level `mapstructure:"level" default:"info"`  // debug|info|warn|error
	Format string     `mapstructure:"format" default:"text"` // text|json
}

// Profile is the "profile" section: the bot's kind 0 metadata (NIP-01, NIP-24).
type Profile struct {
	Name    string `mapstructure:"name" default:"nestbot"`
	About   string `mapstructure:"about" default:"Restarts Nostr audio rooms (nests). Send me a restart request or a DM: restart <naddr>."`
	Picture string `mapstructure:"picture" default:""` // http(s) URL or ""
	// Website is nests.console_url, copied here because NIP-24 calls it
	// "website". Not a key of its own.
	Website string `mapstructure:"-"`
}

// MaxRepublishInterval bounds lifecycle.republish_interval: Amethyst treats a
// 30312 whose created_at is more than 8 hours old as closed.
const MaxRepublishInterval = 8 * time.Hour

// EnvPrefix is the prefix of environment overrides: nostr.secret_key is
// NESTBOT_NOSTR_SECRET_KEY.
const EnvPrefix = "NESTBOT"

// Error is returned for every invalid value: it names the key and says what
// is wrong in one line. Load may join several; errors.As finds the first.
type Error struct{ Key, Reason string }

func (e *Error) Error() string { return "config: " + e.Key + ": " + e.Reason }

// Key is one configuration key, "section.key", with its default as written
// in the `default` tag.
type Key struct{ Name, Default string }

// Keys lists every key in declaration order, derived from Config's tags.
func Keys() []Key {
	var out []Key
	walk(reflect.ValueOf(Config{}), func(sec, key string, f reflect.StructField, _ reflect.Value) {
		out = append(out, Key{sec + "." + key, f.Tag.Get("default")})
	})
	return out
}

// walk calls fn for every key field of every section of c, in order.
func walk(c reflect.Value, fn func(section, key string, f reflect.StructField, v reflect.Value)) {
	for i := range c.NumField() {
		sec, sv := c.Type().Field(i), c.Field(i)
		for j := range sv.NumField() {
			if f := sv.Type().Field(j); f.Tag.Get("mapstructure") != "-" {
				fn(sec.Tag.Get("mapstructure"), f.Tag.Get("mapstructure"), f, sv.Field(j))
			}
		}
	}
}

// Load reads the YAML file at path, applies NESTBOT_<SECTION>_<KEY>
// environment overrides and defaults, and validates the result.
//
// path "" means no file: defaults and environment only. A path that does not
// exist is an error (Key "--config"), as is any key in the file Load does not
// know. Lists may be YAML lists or comma-separated strings (the only form the
// environment has). Every invalid value yields one *Error (the first per
// key); several are joined, in key order.
func Load(path string) (Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true) // NESTBOT_HTTP_LISTEN= disables the listener
	v.AutomaticEnv()
	for _, k := range Keys() {
		v.SetDefault(k.Name, k.Default)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return Config{}, &Error{"--config", path + ": file not found"}
		}
		if err != nil {
			return Config{}, &Error{"--config", oneLine(err.Error())}
		}
		doc, err := parseFile(path, data)
		if err != nil {
			return Config{}, err
		}
		if err := v.MergeConfigMap(doc); err != nil {
			return Config{}, &Error{"--config", path + ": " + oneLine(err.Error())}
		}
	}

	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = decodeHook
		dc.WeaklyTypedInput = false
	})
	errs := decodeErrors(err)
	if err := c.resolveSecretKey(); err != nil {
		errs = append(errs, err)
	}
	c.Log.Format = strings.ToLower(c.Log.Format)
	c.Profile.Website = c.Nests.ConsoleURL
	if err := join(append(errs, c.rules()...)); err != nil {
		return Config{}, err
	}
	return c, nil
}

// join keeps the first error per key, in the order the keys are declared,
// and returns nil, that one *Error, or them joined one per line.
func join(errs []*Error) error {
	var first []error
	for _, e := range errs {
		if !slices.ContainsFunc(first, func(f error) bool { return f.(*Error).Key == e.Key }) {
			first = append(first, e)
		}
	}
	keys := Keys()
	pos := func(e error) int { return slices.IndexFunc(keys, func(k Key) bool { return k.Name == e.(*Error).Key }) }
	slices.SortStableFunc(first, func(a, b error) int { return pos(a) - pos(b) })
	if len(first) == 1 {
		return first[0]
	}
	return errors.Join(first...)
}

// resolveSecretKey reads nostr.secret_key or nostr.secret_key_file into
// SecretKey as lowercase hex. No message ever contains the key or the file's
// content.
func (c *Config) resolveSecretKey() *Error {
	n := &c.Nostr
	switch {
	case n.SecretKey != "" && n.SecretKeyFile != "":
		return &Error{"nostr.secret_key", "set only one of nostr.secret_key and nostr.secret_key_file"}
	case n.SecretKey == "" && n.SecretKeyFile == "":
		return &Error{"nostr.secret_key", "required: set NESTBOT_NOSTR_SECRET_KEY, nostr.secret_key or nostr.secret_key_file"}
	case n.SecretKeyFile != "":
		data, err := os.ReadFile(n.SecretKeyFile)
		if err != nil {
			return &Error{"nostr.secret_key_file", "cannot read: " + oneLine(err.Error())}
		}
		content := strings.TrimSpace(string(data))
		if content == "" {
			return &Error{"nostr.secret_key_file", n.SecretKeyFile + " is empty"}
		}
		sk, reason := decodeSecretKey(content)
		if reason != "" {
			return &Error{"nostr.secret_key_file", n.SecretKeyFile + ": content " + reason}
		}
		n.SecretKey = Secret(sk)
	default:
		sk, reason := decodeSecretKey(n.SecretKey.Reveal())
		if reason != "" {
			return &Error{"nostr.secret_key", "value " + reason}
		}
		n.SecretKey = Secret(sk)
	}
	return nil
}

// parseFile parses the YAML file and rejects keys Load does not know, so a
// typo is an error rather than a silently ignored setting. Keys are compared
// case-insensitively, as viper reads them. Empty sections are dropped (viper
// would let a null "nostr:" hide the section's defaults).
func parseFile(path string, data []byte) (map[string]any, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{"--config", path + ": " + oneLine(err.Error())}
	}
	var known, sections []string
	for _, k := range Keys() {
		known = append(known, k.Name)
		if s, _, _ := strings.Cut(k.Name, "."); !slices.Contains(sections, s) {
			sections = append(sections, s)
		}
	}
	for _, s := range sortedKeys(doc) {
		sec := strings.ToLower(s)
		if !slices.Contains(sections, sec) {
			return nil, &Error{s, "unknown key" + suggest(sec, sections)}
		}
		m, ok := doc[s].(map[string]any)
		if !ok && doc[s] != nil {
			return nil, &Error{s, fmt.Sprintf("must be a mapping of %s.* keys, not a single value", sec)}
		}
		for _, k := range sortedKeys(m) {
			if full := sec + "." + strings.ToLower(k); !slices.Contains(known, full) {
				return nil, &Error{s + "." + k, "unknown key" + suggest(full, known)}
			}
		}
		if m == nil {
			delete(doc, s)
		}
	}
	return doc, nil
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// suggest names the candidate within edit distance 3 of a mistyped key, if
// any (Levenshtein).
func suggest(key string, candidates []string) string {
	best, bestD := "", 4
	for _, c := range candidates {
		if d := levenshtein.ComputeDistance(key, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// PublicKey is the bot's public key as lowercase hex ("" if SecretKey is not
// a valid key, which Load never lets through).
func (c Config) PublicKey() string { return c.Nostr.PublicKey() }

// PublicKey is the public key of SecretKey as lowercase hex, derived on each
// call (tens of microseconds) so it always matches SecretKey.
func (n Nostr) PublicKey() string {
	if len(n.SecretKey) != 64 {
		return ""
	}
	pk, err := nostr.GetPublicKey(n.SecretKey.Reveal())
	if err != nil {
		return ""
	}
	return pk
}

// HostedURLs is nests.hosted, or by default the service URL and the LiveKit
// endpoint this bot itself writes into room events.
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

// LogValue renders the configuration for slog as groups named like the YAML
// keys, plus the bot's public key. Secrets redact themselves by type.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("public_key", c.PublicKey())}
	groups := map[string][]slog.Attr{}
	walk(reflect.ValueOf(c), func(sec, key string, _ reflect.StructField, v reflect.Value) {
		if _, ok := groups[sec]; !ok {
			attrs = append(attrs, slog.Attr{Key: sec})
		}
		groups[sec] = append(groups[sec], slog.Any(key, v.Interface()))
	})
	for i := range attrs[1:] {
		attrs[i+1].Value = slog.GroupValue(groups[attrs[i+1].Key]...)
	}
	return slog.GroupValue(attrs...)
}

// String is LogValue on one line, so %v and %s show the YAML key names.
func (c Config) String() string { return c.LogValue().String() }
