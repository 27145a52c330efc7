package config

import (
	"slices"
	"testing"
)

// A mistyped override (NESTBOT_LIMITS_WORKRS) is reported with the
// variable it was meant to be; the variables of real keys, other tools'
// NESTBOT_* variables and everything else are not, and no value is echoed.
func TestUnknownEnv(t *testing.T) {
	got := UnknownEnv([]string{
		"NESTBOT_LIMITS_WORKRS=3",
		"NESTBOT_LIMITS_WORKERS=2",
		"NESTBOT_NOSTR_SECRET_KEY=abc",
		"NESTBOT_HEAL_NEWID=true",
		"NESTBOT_REDIS_URLL=redis://:hunter2@10.0.0.1:6379/0",
		"NESTBOT_CLIENT_KEY=nsec1x",
		"NESTBOT_SOAK=10m",
		"NESTBOT_CACHE=/tmp/c",
		"NESTBOT_LIVEKIT_PREBUILT=/usr/local/bin/livekit-server",
		"NESTBOT_LOG_=x",
		"PATH=/usr/bin",
		"NESTBOT_HTTP_LISTEN=",
	})
	want := []string{
		"NESTBOT_HEAL_NEWID (did you mean NESTBOT_HEAL_NEW_ID?)",
		"NESTBOT_LIMITS_WORKRS (did you mean NESTBOT_LIMITS_WORKERS?)",
		"NESTBOT_LIVEKIT_PREBUILT",
		"NESTBOT_REDIS_URLL (did you mean NESTBOT_REDIS_URL?)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("UnknownEnv:\n got %q\nwant %q", got, want)
	}
	for _, k := range Keys() {
		if u := UnknownEnv([]string{envName(k.Name) + "=x"}); len(u) != 0 {
			t.Errorf("%s is a key's variable, reported as %q", k.Name, u)
		}
	}
}
