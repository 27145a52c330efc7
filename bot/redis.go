package bot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/rooms"
)

// newRedis builds the client redis.mode asks for. Credentials, database
// and TLS (rediss://) come from redis.url in every mode; the sentinels
// may have credentials of their own. "auto" keeps go-redis's inference:
// addrs with master_name is Sentinel, several addrs a Cluster, none the
// single server at url; "cluster" makes even one seed address a cluster.
func newRedis(c RedisConfig) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, &ConfigError{Key: "redis.url", Reason: "not a valid redis URL"}
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, &ConfigError{Key: "redis.tls_ca_file", Reason: "cannot be read"}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Key: "redis.tls_ca_file", Reason: "holds no PEM certificate"}
		}
		if opt.TLSConfig == nil {
			host, _, _ := net.SplitHostPort(opt.Addr)
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		}
		opt.TLSConfig.RootCAs = pool
	}
	mode := c.Mode
	if mode == "" || mode == "auto" {
		switch {
		case c.MasterName != "":
			mode = "sentinel"
		case len(c.Addrs) > 1:
			mode = "cluster"
		case len(c.Addrs) == 1:
			// go-redis's UniversalClient: one address is a single server.
			mode = "single"
			opt.Addr = c.Addrs[0]
		default:
			mode = "single"
		}
	}
	switch mode {
	case "sentinel":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.MasterName, SentinelAddrs: c.Addrs,
			SentinelUsername: c.SentinelUsername, SentinelPassword: c.SentinelPassword,
			Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig,
		}), nil
	case "cluster":
		addrs := c.Addrs
		if len(addrs) == 0 {
			addrs = []string{opt.Addr}
		}
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig,
		})
		cc.AddHook(reloadOnError{cc})
		return cc, nil
	default:
		return redis.NewClient(opt), nil
	}
}

// reloadOnError refreshes a cluster client's slot map whenever a command
// fails for another reason than a missing key: go-redis reloads it by
// itself only every 60 s or on MOVED/ASK, so after a master dies it
// would keep dialling the dead address long after the cluster promoted
// its replica. ReloadState is asynchronous and coalesced (one reload at a
// time, 200 ms apart), so a burst of errors costs one CLUSTER SLOTS.
type reloadOnError struct{ cc *redis.ClusterClient }

func (h reloadOnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h reloadOnError) check(err error) {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) || errors.Is(err, context.Canceled) {
		return
	}
	h.cc.ReloadState(context.Background())
}

// newStore wraps rdb in the store with the configured prefixes and WAIT.
func newStore(rdb redis.UniversalClient, c RedisConfig) *rooms.RedisStore {
	s := rooms.NewRedisStore(rdb, c.KeyPrefix, c.BotPrefix, c.RoomTTL)
	s.SetWait(c.WaitReplicas, c.WaitTimeout)
	return s
}
