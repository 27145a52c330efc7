package rooms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions say how to reach Redis: the bot's "redis" section.
type RedisOptions struct {
	URL              string   // redis://, rediss:// or unix://; credentials, db and TLS in every mode
	Mode             string   // auto, single, cluster or sentinel
	Addrs            []string // cluster nodes or sentinels
	MasterName       string   // Sentinel master name
	SentinelUsername string
	SentinelPassword string
	TLSCAFile        string // PEM bundle to verify the servers with
}

// OptionError is a RedisOptions field that cannot be used, named by its
// configuration key.
type OptionError struct{ Key, Reason string }

func (e *OptionError) Error() string { return e.Key + ": " + e.Reason }

// ValidRedisURL reports whether go-redis accepts u, with its reason.
func ValidRedisURL(u string) error {
	_, err := redis.ParseURL(u)
	return err
}

// OpenRedisStore builds the client c.Mode asks for and wraps it in a
// store with the given prefixes. Credentials, database and TLS
// (rediss://) come from c.URL in every mode; the sentinels may have
// credentials of their own. "auto" keeps go-redis's inference: addrs
// with a master name is Sentinel, several addrs a Cluster, none the
// single server at the URL; "cluster" makes even one seed address a
// cluster. It opens no connection yet.
func OpenRedisStore(c RedisOptions, recordPrefix, botPrefix string, roomTTL time.Duration) (*RedisStore, error) {
	rdb, err := newRedisClient(c)
	if err != nil {
		return nil, err
	}
	return NewRedisStore(rdb, recordPrefix, botPrefix, roomTTL), nil
}

// pipelineBuffer is the read and write buffer of a pipeline connection, in
// bytes (see newRedisClient).
const pipelineBuffer = 32 << 10

func newRedisClient(c RedisOptions) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, &OptionError{Key: "redis.url", Reason: "not a valid redis URL"}
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, &OptionError{Key: "redis.tls_ca_file", Reason: "cannot be read"}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &OptionError{Key: "redis.tls_ca_file", Reason: "holds no PEM certificate"}
		}
		if opt.TLSConfig == nil {
			host, _, _ := net.SplitHostPort(opt.Addr)
			opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		}
		opt.TLSConfig.RootCAs = pool
	}
	// The bot's pipelines and transactions are a few KB (the largest
	// carries one answer event), so the pipeline pool's buffers need not
	// be go-redis's 128 KiB default: 32 KiB, like a regular connection's,
	// saves about 1.9 MB of resident heap (issue 15).
	opt.PipelineReadBufferSize, opt.PipelineWriteBufferSize = pipelineBuffer, pipelineBuffer
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
			PipelineReadBufferSize: pipelineBuffer, PipelineWriteBufferSize: pipelineBuffer,
		}), nil
	case "cluster":
		addrs := c.Addrs
		if len(addrs) == 0 {
			addrs = []string{opt.Addr}
		}
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: addrs, Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig,
			PipelineReadBufferSize: pipelineBuffer, PipelineWriteBufferSize: pipelineBuffer,
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

// Close closes the store's connections.
func (s *RedisStore) Close() error { return s.rdb.Close() }

// RouteRedisLogs sends go-redis's own log lines (it keeps a log.Logger of
// its own on stderr) to log as warnings, msg "redis client" with the text,
// cut to 300 bytes, in "detail" (a second "msg" key would make a JSON line
// with a duplicate key). slog's handlers escape the text, so that it cannot
// forge a line. Call it once, at process start.
func RouteRedisLogs(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	l.log.WarnContext(ctx, "redis client", "detail", msg)
}

// forEachMaster runs f on every master of a cluster (a SCAN sees one node's
// keys only), or once on the single server.
func (s *RedisStore) forEachMaster(ctx context.Context, f func(context.Context, redis.Cmdable) error) error {
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return f(ctx, node) })
	}
	return f(ctx, s.rdb)
}
