package config

import (
	"log/slog"
	"net/url"
	"strconv"
)

const redacted = "[REDACTED]"

// Secret is a configuration value that must never be printed: a secret key,
// an API secret, a password. fmt (%v, %s, %q, %#v), slog, encoding/json and
// any encoding.TextMarshaler user see "[REDACTED]" (or "" when it is
// empty); only Reveal gives the value, for the one call that needs it.
type Secret string

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String is "[REDACTED]", or "" for an unset secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is %#v: the redacted text, quoted.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue is what slog shows.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText is what encoding/json and other text encoders write.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// SecretURL is a URL that may carry a password (redis://user:password@host).
// It prints with the password replaced by url.URL.Redacted's "xxxxx", or
// hidden whole when it does not parse.
type SecretURL string

// Reveal returns the URL with its password.
func (u SecretURL) Reveal() string { return string(u) }

// String is the URL without its password.
func (u SecretURL) String() string {
	p, err := url.Parse(string(u))
	if err != nil {
		return Secret(u).String()
	}
	return p.Redacted()
}

// GoString is %#v: the redacted URL, quoted.
func (u SecretURL) GoString() string { return strconv.Quote(u.String()) }

// LogValue is what slog shows.
func (u SecretURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalText is what encoding/json and other text encoders write.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }
