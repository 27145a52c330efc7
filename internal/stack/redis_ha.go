package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// haTimeout bounds how long a cluster or a sentinel set may take to form
// and how long a failover may take before a test gives up.
const haTimeout = 60 * time.Second

// startRedisNode starts one redis-server with extra arguments on a free
// loopback port, in a directory of its own, without persistence.
func startRedisNode(t testing.TB, name string, extra func(port int) []string) *Redis {
	t.Helper()
	skipShort(t, "redis-server")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("stack: redis-server not found in PATH: %s", installHint)
	}
	r := &Redis{}
	r.svc = newService(t, name, bin)
	dir := t.TempDir()
	r.svc.ready = func(ctx context.Context) error { return redisPing(ctx, r.Addr) }
	r.svc.firstStart(func() []string {
		port := freePort(t, "tcp")
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		r.URL = "redis://" + r.Addr + "/0"
		args := []string{
			"--bind", "127.0.0.1",
			"--port", strconv.Itoa(port),
			"--save", "",
			"--appendonly", "no",
			"--daemonize", "no",
			"--dir", dir,
			"--logfile", "",
		}
		return append(args, extra(port)...)
	})
	return r
}

// RedisCluster is a real Redis Cluster on loopback: three masters and
// three replicas (redis-cli --cluster create --cluster-replicas 1), with a
// node timeout of 3 s so that a killed master fails over in about 4 s.
type RedisCluster struct {
	// Nodes are the six redis-server processes, in creation order.
	Nodes []*Redis
	t     testing.TB
}

// StartRedisCluster starts six cluster-enabled redis-servers, joins them
// into a cluster with redis-cli and waits until every slot is served.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	skipShort(t, "a Redis Cluster (redis-server, redis-cli)")
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("stack: redis-cli not found in PATH: %s", installHint)
	}
	c := &RedisCluster{t: t}
	for i := range 6 {
		c.Nodes = append(c.Nodes, startRedisNode(t, fmt.Sprintf("redis-cluster-%d", i), func(int) []string {
			return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "3000", "--repl-diskless-sync-delay", "0"}
		}))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("stack: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("stack: cluster did not form: %v", err)
	}
	if err := waitReplicasSynced(ctx, c.Addrs()); err != nil {
		t.Fatalf("stack: cluster replicas did not sync: %v", err)
	}
	return c
}

// waitReplicasSynced returns once every replica among addrs has its link
// to its master up: a replica that never synced cannot be promoted.
func waitReplicasSynced(ctx context.Context, addrs []string) error {
	for {
		err := func() error {
			for _, a := range addrs {
				cl := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
				info, err := cl.Info(ctx, "replication").Result()
				cl.Close()
				if err != nil {
					return err
				}
				if strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
					return fmt.Errorf("%s: replica link not up", a)
				}
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Addrs are the six nodes' host:port addresses.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Client is a go-redis cluster client over every node, for the test's own
// reads and writes.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// MasterFor returns the node that serves key's slot now, as the live nodes
// see it.
func (c *RedisCluster) MasterFor(ctx context.Context, key string) (*Redis, error) {
	slot := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.liveAddrs()})
	defer slot.Close()
	n, err := slot.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	//lint:ignore SA1019 CLUSTER SLOTS names each range's master first; the go-redis cluster client routes by it too
	slots, err := slot.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	for _, s := range slots {
		if int64(s.Start) <= n && n <= int64(s.End) && len(s.Nodes) > 0 {
			for _, node := range c.Nodes {
				if node.Addr == s.Nodes[0].Addr {
					return node, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no master serves slot %d", n)
}

func (c *RedisCluster) liveAddrs() []string {
	var out []string
	for _, n := range c.Nodes {
		if n.PID() != 0 {
			out = append(out, n.Addr)
		}
	}
	return out
}

// WaitHealthy returns once every live node reports cluster_state:ok and
// every slot is served by a live master, that is after a failover has
// promoted a replica in place of a killed master.
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	live := c.liveAddrs()
	isLive := map[string]bool{}
	for _, a := range live {
		isLive[a] = true
	}
	var last error
	for {
		last = func() error {
			for _, a := range live {
				cl := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
				info, err := cl.ClusterInfo(ctx).Result()
				if err != nil {
					cl.Close()
					return err
				}
				if !strings.Contains(info, "cluster_state:ok") {
					cl.Close()
					return fmt.Errorf("%s: cluster_state not ok", a)
				}
				//lint:ignore SA1019 see MasterFor
				slots, err := cl.ClusterSlots(ctx).Result()
				cl.Close()
				if err != nil {
					return err
				}
				covered := 0
				for _, s := range slots {
					if len(s.Nodes) == 0 || !isLive[s.Nodes[0].Addr] {
						return fmt.Errorf("%s: slots %d-%d served by a dead master", a, s.Start, s.End)
					}
					covered += s.End - s.Start + 1
				}
				if covered != 16384 {
					return fmt.Errorf("%s: %d slots served", a, covered)
				}
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RedisSentinel is a real Sentinel deployment on loopback: one master, one
// replica and three sentinels watching them under MasterName, with
// down-after-milliseconds 2000 so that a killed master fails over in
// about 4 s.
type RedisSentinel struct {
	MasterName string
	// Servers are the data nodes: the first started as master, the second
	// as its replica. Which is master now is what the sentinels say.
	Servers   []*Redis
	Sentinels []*Redis
}

// StartRedisSentinel starts a master, its replica and three sentinels and
// waits until the sentinels see the replica and each other.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	skipShort(t, "a Redis Sentinel set (redis-server)")
	s := &RedisSentinel{MasterName: "mymaster"}
	master := startRedisNode(t, "redis-master", func(int) []string { return []string{"--repl-diskless-sync-delay", "0"} })
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := startRedisNode(t, "redis-replica", func(int) []string {
		return []string{"--replicaof", host, port, "--repl-diskless-sync-delay", "0"}
	})
	s.Servers = []*Redis{master, replica}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("stack: redis-server not found in PATH: %s", installHint)
	}
	for i := range 3 {
		r := &Redis{}
		r.svc = newService(t, fmt.Sprintf("redis-sentinel-%d", i), bin)
		dir := t.TempDir()
		r.svc.ready = func(ctx context.Context) error { return redisPing(ctx, r.Addr) }
		r.svc.firstStart(func() []string {
			p := freePort(t, "tcp")
			r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
			r.URL = "redis://" + r.Addr
			conf := filepath.Join(dir, "sentinel.conf")
			body := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor %s %s %s 2\n"+
				"sentinel down-after-milliseconds %s 2000\nsentinel failover-timeout %s 10000\n"+
				"sentinel parallel-syncs %s 1\n", p, dir, s.MasterName, host, port, s.MasterName, s.MasterName, s.MasterName)
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				t.Fatalf("stack: write sentinel.conf: %v", err)
			}
			return []string{conf, "--sentinel"}
		})
		s.Sentinels = append(s.Sentinels, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	if err := s.waitFormed(ctx); err != nil {
		t.Fatalf("stack: sentinels did not form: %v", err)
	}
	return s
}

// Addrs are the sentinels' host:port addresses.
func (s *RedisSentinel) Addrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, n := range s.Sentinels {
		out[i] = n.Addr
	}
	return out
}

// waitFormed returns once every sentinel knows the replica and the two
// other sentinels, so that a failover can be agreed on.
func (s *RedisSentinel) waitFormed(ctx context.Context) error {
	for {
		err := func() error {
			for _, sn := range s.Sentinels {
				sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1})
				m, err := sc.Master(ctx, s.MasterName).Result()
				if err != nil {
					sc.Close()
					return err
				}
				reps, err := sc.Replicas(ctx, s.MasterName).Result()
				sc.Close()
				if err != nil {
					return err
				}
				if m["num-other-sentinels"] != "2" || len(reps) != 1 || strings.Contains(reps[0]["flags"], "down") {
					return fmt.Errorf("%s: other sentinels %s, replicas %d", sn.Addr, m["num-other-sentinels"], len(reps))
				}
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Master returns the data node the sentinels name as master now.
func (s *RedisSentinel) Master(ctx context.Context) (*Redis, error) {
	var last error
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, MaxRetries: -1})
		addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		sc.Close()
		if err != nil {
			last = err
			continue
		}
		a := net.JoinHostPort(addr[0], addr[1])
		for _, r := range s.Servers {
			if r.Addr == a {
				return r, nil
			}
		}
		return nil, fmt.Errorf("sentinel names unknown master %s", a)
	}
	return nil, last
}

// WaitFailover returns once the sentinels name a live master other than
// old that answers as a master.
func (s *RedisSentinel) WaitFailover(ctx context.Context, old *Redis) (*Redis, error) {
	for {
		m, err := s.Master(ctx)
		if err == nil && m != old && m.PID() != 0 {
			cl := redis.NewClient(&redis.Options{Addr: m.Addr, MaxRetries: -1})
			info, ierr := cl.Info(ctx, "replication").Result()
			cl.Close()
			if ierr == nil && strings.Contains(info, "role:master") {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no failover from %s: %w", old.Addr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
