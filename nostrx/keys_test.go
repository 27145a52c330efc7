package nostrx

import (
	"errors"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr/nip19"
)

func TestDecodeSecretKey(t *testing.T) {
	nsec, err := nip19.EncodePrivateKey(botSK)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{botSK, strings.ToUpper(botSK), " " + botSK + "\n", nsec, strings.ToUpper(nsec), "  " + nsec} {
		got, err := DecodeSecretKey(in)
		if err != nil || got != botSK {
			t.Errorf("DecodeSecretKey(%.12q…) = %.12q…, %v; want the key", in, got, err)
		}
	}
	// The largest and smallest valid scalars.
	for _, in := range []string{"fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140", hexOf('0', 63) + "1"} {
		if _, err := DecodeSecretKey(in); err != nil {
			t.Errorf("DecodeSecretKey(%s): %v", in, err)
		}
	}
	tests := map[string]struct{ in, reason string }{
		"empty":         {"", "(0 characters)"},
		"63 hex":        {botSK[:63], "(63 characters)"},
		"not hex":       {"g" + botSK[1:], "(not hex)"},
		"0x prefix":     {"0x" + botSK[2:], "(not hex)"},
		"zero":          {hexOf('0', 64), "zero or not below the curve order"},
		"curve order":   {"fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", "not below the curve order"},
		"above order":   {hexOf('f', 64), "not below the curve order"},
		"npub":          {Npub(botPK), "is an npub"},
		"bad checksum":  {nsec[:len(nsec)-1] + flip(nsec[len(nsec)-1]), "bad bech32"},
		"nsec of zeros": {mustNsec(t, hexOf('0', 64)), "zero or not below"},
	}
	for name, tt := range tests {
		got, err := DecodeSecretKey(tt.in)
		var ke *KeyError
		if !errors.As(err, &ke) || !ke.Secret {
			t.Errorf("%s: DecodeSecretKey = %q, %v; want a *KeyError", name, got, err)
			continue
		}
		if !strings.Contains(ke.Reason, tt.reason) {
			t.Errorf("%s: reason %q, want it to say %q", name, ke.Reason, tt.reason)
		}
		if len(tt.in) > 8 && strings.Contains(err.Error(), tt.in[2:len(tt.in)-2]) {
			t.Errorf("%s: the error repeats the input: %q", name, err)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: not one line: %q", name, err)
		}
	}
}

func mustNsec(t *testing.T, hexKey string) string {
	t.Helper()
	s, err := nip19.EncodePrivateKey(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecodePubkeyErrors(t *testing.T) {
	long := strings.Repeat("z", 500)
	_, err := DecodePubkey(long)
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Secret {
		t.Fatalf("DecodePubkey(junk) = %v, want a public *KeyError", err)
	}
	if strings.Contains(err.Error(), strings.Repeat("z", 81)) {
		t.Fatalf("error quotes more than 80 bytes: %q", err)
	}
}

// FuzzDecodeKeys: neither decoder panics on any input, and a key either
// decodes to 64 lowercase hex that decodes to itself or is a *KeyError.
func FuzzDecodeKeys(f *testing.F) {
	nsec, _ := nip19.EncodePrivateKey(botSK)
	for _, s := range []string{botSK, nsec, Npub(botPK), botPK, "", "nsec1", "npub1qqqq", "nostr:npub1", hexOf('f', 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, decode := range map[string]func(string) (string, error){"secret": DecodeSecretKey, "public": DecodePubkey} {
			k, err := decode(s)
			if err != nil {
				var ke *KeyError
				if !errors.As(err, &ke) || k != "" {
					t.Fatalf("%s(%q) = %q, %v; want \"\" and a *KeyError", name, s, k, err)
				}
				continue
			}
			if !isLowerHex64(k) {
				t.Fatalf("%s(%q) = %q, not 64 lowercase hex", name, s, k)
			}
			if again, err := decode(k); err != nil || again != k {
				t.Fatalf("%s(%q) = %q, which decodes to %q, %v", name, s, k, again, err)
			}
		}
	})
}
