package rooms

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestNewRedisModes: redis.mode picks the client, and "cluster" makes one
// seed address a cluster (go-redis alone would return a plain client and
// the bot would take its single-server paths against a cluster).
func TestNewRedisModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    RedisOptions
		want string
	}{
		{"auto, url only", RedisOptions{URL: "redis://127.0.0.1:6379/0", Mode: "auto"}, "single"},
		{"auto, one addr", RedisOptions{URL: "redis://127.0.0.1:6379/0", Mode: "auto", Addrs: []string{"10.0.0.1:6379"}}, "single"},
		{"auto, addrs", RedisOptions{URL: "redis://127.0.0.1:6379/0", Mode: "auto", Addrs: []string{"a:1", "b:2"}}, "cluster"},
		{"auto, master name", RedisOptions{URL: "redis://127.0.0.1:6379/0", Mode: "auto", Addrs: []string{"a:1"}, MasterName: "m"}, "failover"},
		{"cluster, one seed", RedisOptions{URL: "rediss://u:p@cache.example:6379/0", Mode: "cluster"}, "cluster"},
		{"cluster, one addr", RedisOptions{URL: "redis://127.0.0.1:6379/0", Mode: "cluster", Addrs: []string{"a:1"}}, "cluster"},
		{"sentinel", RedisOptions{URL: "redis://127.0.0.1:6379/0", Mode: "sentinel", Addrs: []string{"a:1"}, MasterName: "m"}, "failover"},
	} {
		rdb, err := newRedisClient(tc.c)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := "single"
		switch c := rdb.(type) {
		case *redis.ClusterClient:
			got = "cluster"
		case *redis.Client:
			if c.Options().Addr == "FailoverClient" {
				got = "failover"
			}
		}
		rdb.Close()
		if got != tc.want {
			t.Errorf("%s: %s client, want %s", tc.name, got, tc.want)
		}
	}
}

func TestNewRedisTLSCA(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, filepath.Join(dir, "missing.pem")} {
		_, err := newRedisClient(RedisOptions{URL: "rediss://127.0.0.1:6379/0", Mode: "cluster", TLSCAFile: f})
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Key != "redis.tls_ca_file" {
			t.Errorf("%s: err = %v, want a redis.tls_ca_file OptionError", f, err)
		}
	}
}
