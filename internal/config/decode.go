package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/nestbot/nestbot/nostrx"
)

// Pubkeys is a list of public keys as lowercase hex, given as npub1… or 64
// hex characters (any case), each on the secp256k1 curve; duplicates are
// dropped.
type Pubkeys []string

var (
	durationType = reflect.TypeFor[time.Duration]()
	levelType    = reflect.TypeFor[slog.Level]()
	listType     = reflect.TypeFor[[]string]()
	pubkeysType  = reflect.TypeFor[Pubkeys]()
)

// decodeHook converts what YAML, the environment or a default tag gave for a
// key into the field's type, strictly: the error it returns becomes the
// key's *Error. Values are whatever go.yaml.in/yaml/v3 produced (string,
// int, float64, bool, []any, map) or a string from the environment.
func decodeHook(_, to reflect.Type, data any) (any, error) {
	switch to {
	case durationType:
		return toDuration(data)
	case levelType:
		return toLevel(data)
	case listType:
		return toList(data)
	case pubkeysType:
		return toPubkeys(data)
	}
	switch to.Kind() {
	case reflect.String:
		return toString(data)
	case reflect.Int:
		return toInt(data)
	case reflect.Bool:
		return toBool(data)
	}
	return data, nil
}

// toString trims a string; YAML integers are taken as their decimal text (an
// api_key of digits). Anything else is an error.
func toString(data any) (string, error) {
	switch x := data.(type) {
	case string:
		return strings.TrimSpace(x), nil
	case int, int64, uint64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("must be a string, got %s", describe(data))
}

// toInt takes a whole number: YAML int, a float without a fraction (1e3), or
// decimal text from the environment. Ranges are Validate's.
func toInt(data any) (int, error) {
	switch x := data.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is too large", x)
		}
		return int(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int(x), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", x)
		}
		return int(n), nil
	}
	return 0, fmt.Errorf("must be a whole number, got %s", describe(data))
}

// toBool takes true or false (YAML, or the words strconv.ParseBool knows in
// an environment variable); "yes please" or 2 is an error, not false.
func toBool(data any) (bool, error) {
	switch x := data.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("must be true or false, got %q", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("must be true or false, got %s", describe(data))
}

// toDuration takes a positive Go duration ("90s", "10m", "1h30m"). Bare
// numbers are refused: without a unit nobody can tell seconds from
// nanoseconds.
func toDuration(data any) (time.Duration, error) {
	switch data.(type) {
	case int, int64, uint64, float64:
		return 0, fmt.Errorf("%v has no unit: write it like 90s, 10m or 1h", data)
	case string:
	default:
		return 0, fmt.Errorf("must be a duration like 90s, 10m or 1h, got %s", describe(data))
	}
	s := strings.TrimSpace(data.(string))
	d, err := time.ParseDuration(s)
	if _, nerr := strconv.ParseFloat(s, 64); err != nil && nerr == nil {
		return 0, fmt.Errorf("%q has no unit: write it like 90s, 10m or 1h", s)
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 90s, 10m or 1h", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive, got %s", s)
	}
	return d, nil
}

var levels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// toLevel takes one of the names in levels, in any case.
func toLevel(data any) (slog.Level, error) {
	s, err := toString(data)
	if l, ok := levels[strings.ToLower(s)]; ok || err != nil {
		return l, err
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", strings.ToLower(s))
}

// toList takes a YAML list or a comma-separated string; items are trimmed,
// empty items and duplicates dropped. The result is never nil.
func toList(data any) ([]string, error) {
	var items []string
	switch x := data.(type) {
	case string:
		items = strings.Split(x, ",")
	case []string:
		items = x
	case []any:
		for i, it := range x {
			s, ok := it.(string)
			if n, isInt := it.(int); isInt {
				s, ok = strconv.Itoa(n), true
			}
			if !ok {
				return nil, fmt.Errorf("item %d must be a string, got %s", i+1, describe(it))
			}
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("must be a list or a comma-separated string, got %s", describe(data))
	}
	out := []string{}
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" && !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	return out, nil
}

func toPubkeys(data any) (Pubkeys, error) {
	in, err := toList(data)
	if err != nil {
		return nil, err
	}
	out := Pubkeys{}
	for i, s := range in {
		pk, ok := decodePubkey(s)
		if !ok {
			return nil, fmt.Errorf("item %d %q is not an npub1… or 64-hex public key", i+1, s)
		}
		if !slices.Contains(out, pk) {
			out = append(out, pk)
		}
	}
	return out, nil
}

// decodePubkey is nostrx.DecodePubkey, the one public-key rule (npub1… or
// 64 hex, a point on the curve), reporting only whether it held.
func decodePubkey(s string) (string, bool) {
	pk, err := nostrx.DecodePubkey(s)
	return pk, err == nil
}

// decodeSecretKey is nostrx.DecodeSecretKey, the one secret-key rule
// (nsec1… or 64 hex, a valid secp256k1 key), with its reason, which never
// repeats the input.
func decodeSecretKey(s string) (string, string) {
	sk, err := nostrx.DecodeSecretKey(s)
	if err != nil {
		var ke *nostrx.KeyError
		if errors.As(err, &ke) {
			return "", ke.Reason
		}
		return "", "is not a valid secret key"
	}
	return sk, ""
}

// describe names the YAML type of a value the key did not expect, without
// repeating the value.
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
	}
	return fmt.Sprintf("%T", x)
}

// decodeErrors turns mapstructure's joined errors into one *Error per key:
// the decode hook's message, or mapstructure's for anything the hook let
// through.
func decodeErrors(err error) []*Error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*Error
		for _, e := range j.Unwrap() {
			out = append(out, decodeErrors(e)...)
		}
		return out
	}
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		return []*Error{{de.Name(), oneLine(de.Unwrap().Error())}}
	}
	return []*Error{{"--config", oneLine(err.Error())}}
}
