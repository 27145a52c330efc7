//go:build faults

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/bot"
	"github.com/nestbot/nestbot/internal/config"
	"github.com/nestbot/nestbot/internal/stack"
	"github.com/nestbot/nestbot/nostrx"
	"github.com/nestbot/nestbot/rooms"
)

// haDeployment is a distributed Redis under test: how the bot reaches it,
// a client for the test's own reads, and its faults.
type haDeployment struct {
	mode   string
	client redis.UniversalClient
	// killMaster SIGKILLs the master that serves key and returns once the
	// deployment has promoted a replica in its place.
	killMaster func(ctx context.Context, key string) error
	// keys lists the keys matching pattern on every master.
	keys func(ctx context.Context, pattern string) []string
}

func clusterDeployment(t *testing.T, cfg *config.Config) *haDeployment {
	c := stack.StartRedisCluster(t)
	cfg.Redis.Mode, cfg.Redis.Addrs = "cluster", c.Addrs()[:1] // one seed address, as with a managed cluster
	cc := c.Client()
	return &haDeployment{
		mode: "cluster", client: cc,
		killMaster: func(ctx context.Context, key string) error {
			m, err := c.MasterFor(ctx, key)
			if err != nil {
				return err
			}
			m.Kill()
			return c.WaitHealthy(ctx)
		},
		keys: func(ctx context.Context, pattern string) []string {
			var mu sync.Mutex
			var out []string
			err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				ks, err := n.Keys(ctx, pattern).Result()
				mu.Lock()
				out = append(out, ks...)
				mu.Unlock()
				return err
			})
			if err != nil {
				t.Errorf("KEYS %s: %v", pattern, err)
			}
			return out
		},
	}
}

func sentinelDeployment(t *testing.T, cfg *config.Config) *haDeployment {
	s := stack.StartRedisSentinel(t)
	cfg.Redis.Mode, cfg.Redis.Addrs, cfg.Redis.MasterName = "sentinel", s.Addrs(), s.MasterName
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.Addrs()})
	t.Cleanup(func() { fc.Close() })
	return &haDeployment{
		mode: "sentinel", client: fc,
		killMaster: func(ctx context.Context, _ string) error {
			m, err := s.Master(ctx)
			if err != nil {
				return err
			}
			m.Kill()
			_, err = s.WaitFailover(ctx, m)
			return err
		},
		keys: func(ctx context.Context, pattern string) []string {
			ks, err := fc.Keys(ctx, pattern).Result()
			if err != nil {
				t.Errorf("KEYS %s: %v", pattern, err)
			}
			return ks
		},
	}
}

// TestFaultRedisCluster and TestFaultRedisSentinel: three bot replicas
// (one a separate process) and two relays on a real distributed Redis; 60
// requests over 30 rooms (half with a record, half with the record gone;
// ten rooms asked three times at once, ten twice, ten once), the master
// serving the gone rooms' keys SIGKILLed mid-batch, then the bot process
// SIGKILLed while it holds claims. Every request is answered exactly once,
// never INTERNAL; each gone room gets one LiveKit room, one replacement
// event and its replacement mapping; UNAVAILABLE only for requests whose
// budget overlapped the failover.
func TestFaultRedisCluster(t *testing.T)  { runHAScenario(t, clusterDeployment) }
func TestFaultRedisSentinel(t *testing.T) { runHAScenario(t, sentinelDeployment) }

func runHAScenario(t *testing.T, deploy func(*testing.T, *config.Config) *haDeployment) {
	w := newWorld(t, 2)
	cfg := w.cfg
	ha := deploy(t, &cfg)
	cfg.Redis.WaitReplicas = 1
	keys := rooms.DefaultKeys
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var svcs []*bot.Service
	for range 2 {
		svc, _ := w.startReplica(cfg)
		svcs = append(svcs, svc)
	}
	proc := w.startBotProc(cfg, "replica-proc")
	m := regexp.MustCompile(`instance=([0-9a-f]+)`).FindStringSubmatch(proc.log())
	if m == nil {
		t.Fatalf("bot process logged no instance:\n%s", proc.log())
	}
	procInstance := m[1]

	// 30 rooms: even ones have their record (restart in place), odd ones
	// only their 30312 (recreated under a new ID).
	const nRooms = 30
	type roomCase struct {
		host   *user
		admins []*user
		id     string
		gone   bool
	}
	var cases []roomCase
	for i := range nRooms {
		c := roomCase{host: newUser(t), admins: []*user{newUser(t), newUser(t)}, id: uuid.NewString(), gone: i%2 == 1}
		if c.gone {
			w.publishRoom(c.host, c.id, nostr.Tags{{"p", c.admins[0].pk, "", "Admin"}, {"p", c.admins[1].pk, "", "Admin"}})
		} else {
			rec := &rooms.Record{ID: c.id, Host: c.host.pk, Admins: []string{c.host.pk, c.admins[0].pk, c.admins[1].pk},
				Speakers: []string{c.host.pk}, Relays: w.relayURLs(), Status: rooms.StatusActive}
			if err := rooms.NewRedisStore(ha.client, keys.Record, keys.Bot, 24*time.Hour).PutRecord(ctx, rec); err != nil {
				t.Fatal(err)
			}
		}
		cases = append(cases, c)
	}
	type sent struct {
		ev   nostr.Event
		u    *user
		room int
		at   time.Time
	}
	// Asks: rooms 0-9 three times at once, 10-19 twice, 20-29 once.
	var batch1, batch2 []*sent
	for i, c := range cases {
		n := 1
		switch {
		case i < 10:
			n = 3
		case i < 20:
			n = 2
		}
		askers := append([]*user{c.host}, c.admins...)
		for k := range n {
			s := &sent{ev: signRequest(t, w, askers[k], coord(c.host.pk, c.id), "restart", ""), u: askers[k], room: i}
			if i%4 < 2 {
				batch1 = append(batch1, s)
			} else {
				batch2 = append(batch2, s)
			}
		}
	}
	all := append(append([]*sent{}, batch1...), batch2...)
	if len(all) != 60 {
		t.Fatalf("%d requests, want 60", len(all))
	}
	publish := func(batch []*sent) {
		var wg sync.WaitGroup
		for _, s := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.at = time.Now()
				for _, url := range w.relayURLs() {
					if err := publishUntilAccepted(url, s.ev, 20*time.Second); err != nil {
						t.Errorf("publish: %v", err)
					}
				}
			}()
		}
		wg.Wait()
	}

	start := time.Now()
	publish(batch1)
	// The master that serves a gone room's keys dies while batch 1 is worked on.
	var goneKey string
	for _, c := range cases {
		if c.gone {
			goneKey = keys.Lock(c.id)
			break
		}
	}
	killAt := time.Now()
	failoverDone := make(chan error, 1)
	go func() {
		fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		failoverDone <- ha.killMaster(fctx, goneKey)
	}()
	publish(batch2)
	if err := <-failoverDone; err != nil {
		t.Fatalf("failover: %v", err)
	}
	healedAt := time.Now()

	// The bot process dies while it holds claims: frozen, its claims are
	// looked at, and it is killed once it holds at least one.
	held := 0
	deadline := time.Now().Add(60 * time.Second)
	for held == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the bot process never held a claim")
		}
		syscall.Kill(-proc.pid(), syscall.SIGSTOP)
		for _, k := range ha.keys(ctx, keys.Bot+"{*}:claim") {
			if v, _ := ha.client.Get(ctx, k).Result(); strings.HasPrefix(v, "w:"+procInstance+":") {
				held++
			}
		}
		if held > 0 {
			proc.kill()
			break
		}
		syscall.Kill(-proc.pid(), syscall.SIGCONT)
		// No claim now: ask once more for a room, so that it gets work.
		c := cases[int(time.Now().UnixNano()%nRooms)]
		extra := &sent{ev: signRequest(t, w, c.host, coord(c.host.pk, c.id), "status", ""), u: c.host, room: -1}
		publish([]*sent{extra})
		all = append(all, extra)
		time.Sleep(20 * time.Millisecond)
	}
	killedAt := time.Now()

	var ids []string
	byID := map[string]*sent{}
	for _, s := range all {
		ids = append(ids, s.ev.ID)
		byID[s.ev.ID] = s
	}
	got := waitAnswered(t, w.relayURLs(), w.botPub(), ids, 150*time.Second)
	took, afterKill := time.Since(start), time.Since(killedAt)
	lost, dup := exactlyOnce(t, got, ids)
	for _, id := range ids {
		if len(got[id]) > 1 {
			for _, ev := range got[id] {
				p := open(t, w, byID[id].u, ev)
				t.Logf("duplicate of %s (room %d, sent %s): response %s at %s: %+v", id[:8], byID[id].room, byID[id].at.Format(time.StampMilli), ev.ID[:8], ev.CreatedAt.Time().Format(time.Stamp), p.Error)
			}
		}
	}

	// Results: no INTERNAL; UNAVAILABLE only when the request was worked
	// on during the failover; every answer about a gone room names one
	// new room.
	unavailable, internal := 0, 0
	newID := map[int]string{}
	var retry []int
	okPerRoom := map[int]int{}
	for _, id := range ids {
		s := byID[id]
		resp := only(got[id])
		if resp == nil {
			continue
		}
		p := open(t, w, s.u, resp)
		if p.Error != nil {
			switch p.Error.Code {
			case nostrx.CodeInternal:
				internal++
				t.Errorf("request %s: INTERNAL: %s", id, p.Error.Message)
			case nostrx.CodeUnavailable:
				unavailable++
				answered := resp.CreatedAt.Time()
				if s.at.After(healedAt.Add(cfg.Limits.DependencyTimeout)) || answered.Before(killAt.Add(-time.Second)) {
					t.Errorf("request %s: UNAVAILABLE outside the failover (sent %s, answered %s; failover %s to %s)",
						id, s.at.Format(time.StampMilli), answered.Format(time.Stamp), killAt.Format(time.StampMilli), healedAt.Format(time.StampMilli))
				}
				if s.room >= 0 {
					retry = append(retry, s.room)
				}
			default:
				t.Errorf("request %s: %s: %s", id, p.Error.Code, p.Error.Message)
			}
			continue
		}
		if s.room < 0 {
			continue // a status request sent to give the process work
		}
		okPerRoom[s.room]++
		res := restartResult(t, p)
		if c := cases[s.room]; c.gone {
			if !res.IsNewRoom || res.OriginalRoomID != c.id {
				t.Errorf("gone room %d: %+v", s.room, res)
			}
			if prev, ok := newID[s.room]; ok && prev != res.RoomID {
				t.Errorf("gone room %d: answers name two rooms %s and %s", s.room, prev, res.RoomID)
			}
			newID[s.room] = res.RoomID
		} else if res.RoomID != c.id {
			t.Errorf("room %d restarted as %s", s.room, res.RoomID)
		}
	}
	// A room whose every ask was UNAVAILABLE is asked again, as its host's
	// client would: nothing changed, so the retry does the work.
	for _, i := range retry {
		if okPerRoom[i] > 0 {
			continue
		}
		okPerRoom[i]++
		c := cases[i]
		ex := w.ask(c.host, coord(c.host.pk, c.id), "restart")
		res := restartResult(t, ex.Payload)
		if c.gone {
			newID[i] = res.RoomID
		}
	}

	// Each gone room: one LiveKit room, one replacement event, the mapping.
	live := map[string]bool{}
	for _, r := range w.allLiveRooms() {
		live[r.Name] = true
	}
	// On the first relay: a restart returns once one relay accepted its
	// room event (maybe the other one), so wait for this one to have them.
	var events map[string]int
	waitFor(t, "every new room's event on the first relay", func() bool {
		events = map[string]int{}
		for _, ev := range query(t, w.relayURLs()[0], nostr.Filter{Kinds: []int{nostrx.KindRoom}, Authors: []string{w.botPub()}, Limit: 1000}) {
			events[ev.Tags.GetD()]++
		}
		for _, id := range newID {
			if events[id] == 0 {
				return false
			}
		}
		return true
	})
	mappings := 0
	for i, c := range cases {
		if !c.gone {
			if !live[c.id] {
				t.Errorf("room %d (in place): no LiveKit room", i)
			}
			continue
		}
		id := newID[i]
		if id == "" {
			t.Errorf("gone room %d: never recreated", i)
			continue
		}
		if !live[id] || live[c.id] {
			t.Errorf("gone room %d: LiveKit has new %v, old %v", i, live[id], live[c.id])
		}
		if events[id] != 1 {
			t.Errorf("gone room %d: %d replacement events", i, events[id])
		}
		if v, err := ha.client.Get(ctx, keys.Replaced(coord(c.host.pk, c.id))).Result(); err != nil || v != id {
			t.Errorf("gone room %d: mapping %q, %v; want %s", i, v, err, id)
		} else {
			mappings++
		}
	}
	if len(live) != nRooms || len(events) != nRooms/2 {
		t.Errorf("LiveKit rooms %d (want %d), rooms with a replacement event %d (want %d)", len(live), nRooms, len(events), nRooms/2)
	}
	records := len(ha.keys(ctx, keys.Record+"*"))
	if records != nRooms {
		t.Errorf("records %d, want %d", records, nRooms)
	}
	var perReplica []string
	for _, svc := range svcs {
		perReplica = append(perReplica, fmt.Sprintf("%.0f", counter(t, svc, "nestbot_requests_total", nil)))
	}
	sort.Strings(perReplica)
	t.Logf("FIGURES redis_%s: replicas=3 relays=2 rooms=%d requests=%d answered=%d lost=%d duplicated=%d unavailable=%d internal=%d "+
		"retried_rooms=%d mappings=%d/%d records=%d livekit_rooms=%d failover=%s bot_killed_holding=%d all_answered_after_bot_kill_in=%s all_answered_in=%s answered_by_in_process=%s",
		ha.mode, nRooms, len(ids), len(ids)-lost, lost, dup, unavailable, internal, len(retry), mappings, nRooms/2, records, len(live),
		healedAt.Sub(killAt).Round(100*time.Millisecond), held, afterKill.Round(100*time.Millisecond), took.Round(100*time.Millisecond),
		strings.Join(perReplica, "/"))
}
