package config

import (
	"slices"
	"strings"
)

// UnknownEnv lists the environment variables that look like overrides of a
// key (NESTBOT_<SECTION>_<KEY>, SECTION one of Config's sections) but name
// no key, each followed by a suggestion when a key's variable is within
// edit distance 3, e.g. `NESTBOT_LIMITS_WORKRS (did you mean
// NESTBOT_LIMITS_WORKERS?)`. viper reads only the variables of known keys,
// so a mistyped one leaves the default in place without a word; a mistyped
// key in the file is an error, but a variable cannot be, since other tools
// share the prefix (NESTBOT_CLIENT_KEY of `nestbot restart`,
// NESTBOT_LIVEKIT_PREBUILT of devstack/install.sh, the test suites'). The
// caller logs them. environ is in os.Environ's form, NAME=value; the result
// is sorted and never holds a value.
func UnknownEnv(environ []string) []string {
	var sections, known []string
	for _, k := range Keys() {
		sec, _, _ := strings.Cut(k.Name, ".")
		if !slices.Contains(sections, sec) {
			sections = append(sections, sec)
		}
		known = append(known, keyEnv(k.Name))
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix+"_")
		if !ok || slices.Contains(known, name) {
			continue
		}
		sec, key, ok := strings.Cut(rest, "_")
		if !ok || key == "" || !slices.Contains(sections, strings.ToLower(sec)) {
			continue
		}
		out = append(out, name+suggest(name, known))
	}
	slices.Sort(out)
	return out
}

// keyEnv is the environment variable of key "section.key":
// NESTBOT_SECTION_KEY.
func keyEnv(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
