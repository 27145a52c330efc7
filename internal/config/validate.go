package config

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nestbot/nestbot/rooms"
)

// Validate checks the rules a value's type does not already enforce (decode
// hooks do that while loading), one line per rule: each yields "" or the
// reason for its key. Load calls it; a Config built by hand may too. The
// result is nil or *Error values joined, the first per key.
func (c Config) Validate() error { return join(c.rules()) }

func (c Config) rules() []*Error {
	var errs []*Error
	rule := func(key, reason string) {
		if reason != "" {
			errs = append(errs, &Error{key, reason})
		}
	}
	n, r, lk := c.Nostr, c.Redis, c.LiveKit
	kp, bp := r.KeyPrefix, r.BotPrefix

	rule("nostr.relays", when(len(n.Relays) == 0, "must list at least one relay"))
	rule("nostr.relays", urls(n.Relays, "ws", "wss"))
	rule("nostr.request_kind", between(n.RequestKind, 1, 65535))
	rule("nostr.response_kind", between(n.ResponseKind, 1, 65535))
	rule("nostr.response_kind", when(n.RequestKind == n.ResponseKind, "must differ from nostr.request_kind (both %d)", n.RequestKind))
	rule("nostr.denied_pubkeys", both(n.DeniedPubkeys, n.AllowedPubkeys, "is also in nostr.allowed_pubkeys"))

	rule("redis.url", redisURL(r.URL.Reveal()))
	rule("redis.addrs", hostPorts(r.Addrs, false))
	rule("redis.addrs", when(r.MasterName != "" && len(r.Addrs) == 0, "must list the Sentinel addresses when redis.master_name is set"))
	rule("redis.key_prefix", when(kp == "", "must not be empty"))
	rule("redis.bot_prefix", when(bp == "", "must not be empty"))
	rule("redis.bot_prefix", when(kp != "" && kp == bp, "must differ from redis.key_prefix (both %q)", kp))
	rule("redis.bot_prefix", when(kp != "" && bp != "" && (strings.HasPrefix(kp, bp) || strings.HasPrefix(bp, kp)), "%q and redis.key_prefix %q overlap: neither may be a prefix of the other", bp, kp))
	rule("redis.mode", when(!slices.Contains([]string{"auto", "single", "cluster", "sentinel"}, r.Mode), "must be auto, single, cluster or sentinel, not %q", r.Mode))
	rule("redis.mode", when(r.Mode == "single" && len(r.Addrs) > 0, "single uses redis.url alone; leave redis.addrs empty or pick cluster or sentinel"))
	rule("redis.mode", when(r.Mode == "sentinel" && (r.MasterName == "" || len(r.Addrs) == 0), "sentinel needs redis.master_name and the sentinels in redis.addrs"))
	rule("redis.wait_replicas", between(r.WaitReplicas, 0, 16))

	rule("livekit.url", urls([]string{lk.URL}, "http", "https", "ws", "wss"))
	rule("livekit.public_url", urls([]string{lk.PublicURL}, "ws", "wss", "http", "https"))
	rule("livekit.api_key", when(lk.APIKey == "", "must not be empty"))
	rule("livekit.api_secret", when(lk.APISecret == "", "must not be empty"))
	rule("livekit.max_participants", between(lk.MaxParticipants, 0, math.MaxUint32))
	rule("livekit.empty_timeout", seconds(lk.EmptyTimeout))
	rule("livekit.departure_timeout", seconds(lk.DepartureTimeout))

	rule("nests.service_url", urls([]string{c.Nests.ServiceURL}, "http", "https"))
	rule("nests.web_url", urls([]string{c.Nests.WebURL}, "http", "https"))
	rule("nests.hosted", urls(c.Nests.Hosted))
	rule("nests.console_url", urls(nonEmpty(c.Nests.ConsoleURL), "http", "https"))

	rule("http.listen", hostPorts(nonEmpty(c.HTTP.Listen), true))
	rule("http.webhook_path", webhookPath(c.HTTP.WebhookPath))

	rule("limits.restarts_per_minute", between(c.Limits.RestartsPerMinute, 1, math.MaxInt32))
	rule("limits.new_rooms_per_minute", between(c.Limits.NewRoomsPerMinute, 0, math.MaxInt32))
	rule("limits.workers", between(c.Limits.Workers, 1, 1<<16))
	rule("limits.queue", between(c.Limits.Queue, 1, MaxQueue))
	rule("limits.seen_cache", between(c.Limits.SeenCache, 1, 1<<28))

	rule("lifecycle.republish_interval", when(c.Lifecycle.RepublishInterval >= MaxRepublishInterval, "must be under %s (clients treat an older room event as closed), got %s", MaxRepublishInterval, c.Lifecycle.RepublishInterval))

	rule("heal.min_present", between(c.Heal.MinPresent, 1, MaxHealMinPresent))
	rule("heal.max_per_minute", between(c.Heal.MaxPerMinute, 1, 1<<20))
	rule("heal.max_rooms", between(c.Heal.MaxRooms, 1, 1<<22))
	rule("heal.interval", when(c.Heal.PresenceTTL > 0 && c.Heal.Interval > c.Heal.PresenceTTL, "must not be longer than heal.presence_ttl (%s), got %s", c.Heal.PresenceTTL, c.Heal.Interval))

	rule("log.format", when(c.Log.Format != "text" && c.Log.Format != "json", "%q is not one of text, json", c.Log.Format))

	rule("profile.picture", urls(nonEmpty(c.Profile.Picture), "http", "https"))
	return errs
}

// when is the reason if cond holds, else "".
func when(cond bool, format string, args ...any) string {
	if !cond {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

// nonEmpty is s as a list of one, or no list for "" (an optional value).
func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func between(n, lo, hi int) string {
	switch {
	case n < lo && lo == 0:
		return fmt.Sprintf("must not be negative, got %d", n)
	case n < lo && lo == 1:
		return fmt.Sprintf("must be positive, got %d", n)
	case n < lo || n > hi:
		return fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n)
	}
	return ""
}

// seconds: LiveKit takes these durations in whole seconds (uint32).
func seconds(d time.Duration) string {
	return cmp.Or(when(d%time.Second != 0, "must be whole seconds (LiveKit counts in seconds), got %s", d),
		when(d/time.Second > math.MaxUint32, "%s is too long", d))
}

// both names the first item of list that is also in other.
func both(list, other []string, reason string) string {
	for _, s := range list {
		if slices.Contains(other, s) {
			return s + " " + reason
		}
	}
	return ""
}

// urls checks absolute URLs with a host and, if schemes are given, one of
// them.
func urls(list []string, schemes ...string) string {
	for _, s := range list {
		u, err := url.Parse(s)
		switch {
		case len(schemes) == 0 && (err != nil || u.Scheme == "" || u.Hostname() == ""):
			return fmt.Sprintf("%q is not an absolute URL", s)
		case len(schemes) > 0 && (err != nil || !slices.Contains(schemes, u.Scheme)):
			return fmt.Sprintf("%q is not %s URL", s, schemeList(schemes))
		case u.Hostname() == "":
			return fmt.Sprintf("%q has no host", s)
		}
	}
	return ""
}

// schemeList is "a ws:// or wss://", "an http:// or https://".
func schemeList(schemes []string) string {
	parts := make([]string, len(schemes))
	for i, s := range schemes {
		parts[i] = s + "://"
	}
	art := "a "
	if strings.HasPrefix(schemes[0], "h") {
		art = "an "
	}
	if len(parts) == 1 {
		return art + parts[0]
	}
	return art + strings.Join(parts[:len(parts)-1], ", ") + " or " + parts[len(parts)-1]
}

// redisURL validates with go-redis's own parser, never echoing a password.
func redisURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return "is not a valid URL (want redis://[user:password@]host:port/db, rediss:// or unix://)"
	}
	if err := rooms.ValidRedisURL(s); err != nil {
		return u.Redacted() + ": " + strings.TrimPrefix(err.Error(), "redis: ")
	}
	return when(u.Scheme != "unix" && u.Hostname() == "", "%s has no host", u.Redacted())
}

// hostPorts checks "host:port" with a numeric port; an empty host (":9090",
// all interfaces) and port 0 are allowed only for a listen address.
func hostPorts(list []string, listen bool) string {
	for _, s := range list {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return fmt.Sprintf("%q is not host:port", s)
		}
		if host == "" && !listen {
			return fmt.Sprintf("%q has no host", s)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || (p == 0 && !listen) {
			return fmt.Sprintf("%q has no valid port", s)
		}
	}
	return ""
}

// reservedPaths are served by the ops listener and cannot be the webhook path.
var reservedPaths = []string{"/healthz", "/readyz", "/metrics"}

// webhookPath checks an absolute URL path ("" disables the endpoint).
func webhookPath(p string) string {
	if p == "" {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || !strings.HasPrefix(p, "/") || u.Path != p || u.RawQuery != "" || strings.ContainsAny(p, " \t\n") {
		return fmt.Sprintf("%q is not an absolute URL path like /livekit/webhook", p)
	}
	return when(p == "/" || slices.Contains(reservedPaths, p), "%q is taken: pick a path other than /, %s", p, strings.Join(reservedPaths, ", "))
}
