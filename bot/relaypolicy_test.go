package bot

import (
	"slices"
	"testing"
)

func TestPrivateRelay(t *testing.T) {
	cases := []struct {
		url     string
		private bool
	}{
		{"wss://relay.damus.io", false},
		{"wss://nos.lol/", false},
		{"ws://203.0.113.7:7777", false},
		{"wss://[2001:db8::1]/", false},
		{"ws://8.8.8.8", false},
		{"ws://100.63.255.255", false},
		{"ws://localhost:7777", true},
		{"ws://LOCALHOST.:7777", true},
		{"ws://relay.localhost", true},
		{"ws://127.0.0.1:6379", true},
		{"ws://127.8.9.10", true},
		{"ws://[::1]:7777", true},
		{"ws://[::ffff:127.0.0.1]", true},
		{"ws://10.1.2.3", true},
		{"ws://172.16.0.1", true},
		{"ws://192.168.1.1", true},
		{"ws://100.64.0.1", true},
		{"ws://169.254.169.254/latest/meta-data", true},
		{"ws://[fe80::1]", true},
		{"ws://[fd00::1]", true},
		{"ws://0.0.0.0:7777", true},
		{"ws://[::]", true},
		{"ws://224.0.0.1", true},
		{"ws://", true},
		{"://bad", true},
	}
	for _, c := range cases {
		if got := privateRelay(c.url); got != c.private {
			t.Errorf("privateRelay(%q) = %v, want %v", c.url, got, c.private)
		}
	}
}

func TestRelayPolicyUsable(t *testing.T) {
	own := []string{"ws://127.0.0.1:7777", "wss://relay.example.com"}
	in := []string{"ws://127.0.0.1:7777/", "ws://127.0.0.1:7778", "wss://nos.lol", "wss://relay.example.com", "ws://10.0.0.1", "wss://nos.lol/"}

	keep, refused := newRelayPolicy(own, false).usable(in)
	if want := []string{"ws://127.0.0.1:7777", "wss://nos.lol", "wss://relay.example.com"}; !slices.Equal(keep, want) {
		t.Errorf("kept %v, want %v (own relays always, public ones, normalized and once)", keep, want)
	}
	if want := []string{"ws://127.0.0.1:7778", "ws://10.0.0.1"}; !slices.Equal(refused, want) {
		t.Errorf("refused %v, want %v", refused, want)
	}

	keep, refused = newRelayPolicy(own, true).usable(in)
	if len(keep) != 5 || len(refused) != 0 {
		t.Errorf("allowed private: kept %v, refused %v", keep, refused)
	}
}
