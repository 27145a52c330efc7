package stack_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/internal/stack"
)

// TestRedisCluster: six real nodes form a cluster, and a killed master's
// slots move to its replica, with the data written before the kill.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := stack.StartRedisCluster(t)
	ctx := ctxT(t, 90*time.Second)
	m, err := c.MasterFor(ctx, "{k}a")
	if err != nil {
		t.Fatal(err)
	}
	// Write on the key's master and WAIT on that same connection (WAIT
	// counts the replicas that have this connection's writes), so the
	// failover cannot lose the write to asynchronous replication.
	mc := redis.NewClient(&redis.Options{Addr: m.Addr})
	defer mc.Close()
	conn := mc.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "{k}a", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}
	m.Kill()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	m2, err := c.MasterFor(ctx, "{k}a")
	if err != nil || m2 == m {
		t.Fatalf("master after failover = %v, %v", m2, err)
	}
	fresh := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{m2.Addr}})
	defer fresh.Close()
	if v, err := fresh.Get(ctx, "{k}a").Result(); err != nil || v != "v" {
		t.Fatalf("GET after failover = %q, %v", v, err)
	}
}

// TestRedisSentinel: a master, a replica and three sentinels; a killed
// master is replaced by its replica.
func TestRedisSentinel(t *testing.T) {
	t.Parallel()
	s := stack.StartRedisSentinel(t)
	ctx := ctxT(t, 90*time.Second)
	m, err := s.Master(ctx)
	if err != nil || m != s.Servers[0] {
		t.Fatalf("master = %v, %v", m, err)
	}
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs()})
	defer fc.Close()
	if err := fc.Set(ctx, "a", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := fc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v", n, err)
	}
	m.Kill()
	m2, err := s.WaitFailover(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if m2 != s.Servers[1] {
		t.Fatalf("new master = %s", m2.Addr)
	}
	if v, err := fc.Get(ctx, "a").Result(); err != nil || v != "v" {
		t.Fatalf("GET after failover = %q, %v", v, err)
	}
}
