package bot

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/internal/config"
)

func TestKnownSetBounded(t *testing.T) {
	k := newKnownSet(3)
	pk := func(i int) string { return strings.Repeat(strconv.Itoa(i), 64) }
	k.Add(pk(1), pk(2), pk(3), "short")
	if k.Len() != 3 || k.Has("short") {
		t.Fatalf("len %d", k.Len())
	}
	k.Add(pk(1)) // refreshed: 2 is now the oldest
	k.Add(pk(4))
	if k.Has(pk(2)) || !k.Has(pk(1)) || !k.Has(pk(4)) || k.Len() != 3 {
		t.Fatal("LRU order not kept")
	}
}

func TestDeferredQueueOrderAndBound(t *testing.T) {
	d := newDeferredQueue(2)
	now := time.Now()
	a, b, c := job{via: "a"}, job{via: "b"}, job{via: "c"}
	if !d.add(a, now.Add(2*time.Second)) || !d.add(b, now.Add(time.Second)) || d.add(c, now) {
		t.Fatal("bound not kept")
	}
	if got := d.due(now); len(got) != 0 {
		t.Fatalf("%d due too early", len(got))
	}
	got := d.due(now.Add(3 * time.Second))
	if len(got) != 2 || got[0].via != "b" || got[1].via != "a" || d.Len() != 0 {
		t.Fatalf("due %v", got)
	}
}

func TestNextServesPriorityFirst(t *testing.T) {
	s := intakeTestService(t, func(c *config.Config) { c.Limits.Workers = 16 })
	if s.reservedWorkers() != 2 {
		t.Fatalf("reserved %d", s.reservedWorkers())
	}
	s.queue <- job{via: "n1"}
	s.queue <- job{via: "n2"}
	s.priority <- job{via: "p1"}
	var order []string
	for range 3 {
		j, ok := s.next(false)
		if !ok {
			t.Fatal("closed")
		}
		order = append(order, j.via)
	}
	if strings.Join(order, ",") != "p1,n1,n2" {
		t.Fatalf("order %v", order)
	}
	// A reserved worker never takes normal jobs.
	s.queue <- job{via: "n3"}
	got := make(chan job, 1)
	go func() {
		j, ok := s.next(true)
		if ok {
			got <- j
		}
		close(got)
	}()
	select {
	case j := <-got:
		t.Fatalf("reserved worker took %s", j.via)
	case <-time.After(50 * time.Millisecond):
	}
	s.priority <- job{via: "p2"}
	if j := <-got; j.via != "p2" {
		t.Fatalf("reserved worker took %s", j.via)
	}
	close(s.queue)
	close(s.priority)
	if j, ok := s.next(false); !ok || j.via != "n3" {
		t.Fatal("queued work lost at shutdown")
	}
	if _, ok := s.next(false); ok {
		t.Fatal("next after both queues closed and drained")
	}
	if _, ok := s.next(true); ok {
		t.Fatal("reserved next after close")
	}
}

func TestSingleWorkerServesBoth(t *testing.T) {
	s := intakeTestService(t, func(c *config.Config) { c.Limits.Workers = 1 })
	if s.reservedWorkers() != 0 {
		t.Fatal("the only worker must serve both queues")
	}
}

// TestDispatchShedsOnlyRefusals: with the normal queue full, a request that
// is refused without looking at any room (malformed, or an operator's deny
// list) is shed and counted; a known host goes to the priority queue; a
// request that may be authorized (Redis cannot tell: unknown) waits.
func TestDispatchShedsOnlyRefusals(t *testing.T) {
	denied := nostr.GeneratePrivateKey()
	deniedPK, _ := nostr.GetPublicKey(denied)
	s := intakeTestService(t, func(c *config.Config) {
		c.Limits.Queue = 1
		c.Nostr.DeniedPubkeys = []string{deniedPK}
	})
	ctx := context.Background()
	s.queue <- job{via: "filler"}

	bad := signedRequest(t, s, "", nostr.Now()) // empty action: BAD_REQUEST
	s.dispatch(ctx, job{ev: &bad})
	fromDenied := signedRequest(t, s, "restart", nostr.Now())
	fromDenied.PubKey = deniedPK
	s.dispatch(ctx, job{ev: &fromDenied})
	if n := s.overload.shedN.Load(); n != 2 {
		t.Fatalf("shed %v, want 2", n)
	}

	host := signedRequest(t, s, "restart", nostr.Now())
	s.known.Add(host.PubKey)
	s.dispatch(ctx, job{ev: &host})
	if len(s.priority) != 1 {
		t.Fatal("known host not in the priority queue")
	}

	maybe := signedRequest(t, s, "restart", nostr.Now()) // Redis unreachable: unknown
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	s.dispatch(dctx, job{ev: &maybe}) // waits for room until dctx ends: never shed
	if n := s.overload.shedN.Load(); n != 2 {
		t.Fatalf("a request that may be authorized was shed")
	}
}

func TestClaimRetryGivesUpWhenStale(t *testing.T) {
	s := intakeTestService(t, nil)
	fresh := signedRequest(t, s, "restart", nostr.Now())
	s.seen.Add(fresh.ID)
	s.claimRetry(job{ev: &fresh}, context.DeadlineExceeded)
	if s.deferred.Len() != 1 || !s.seen.Contains(fresh.ID) {
		t.Fatal("a fresh request was not deferred")
	}
	old := signedRequest(t, s, "restart", nostr.Timestamp(time.Now().Add(-s.cfg.Nostr.MaxRequestAge).Unix()))
	s.seen.Add(old.ID)
	s.claimRetry(job{ev: &old}, context.DeadlineExceeded)
	if s.deferred.Len() != 1 || s.seen.Contains(old.ID) {
		t.Fatal("a stale request was deferred")
	}
}

// A direct message whose claim fails (Redis down) is kept for a retry like a
// 4312, judged stale against max_dm_age, and forgotten with its gift wrap
// once it is too old.
func TestDMClaimRetry(t *testing.T) {
	s := intakeTestService(t, nil)
	age := s.cfg.Nostr.MaxRequestAge + time.Minute // stale for a 4312, fresh for a DM
	if age >= s.cfg.Nostr.MaxDMAge {
		t.Fatalf("defaults changed: max_dm_age %s", s.cfg.Nostr.MaxDMAge)
	}
	sender := hexPub(3)
	fresh := &dmCommand{proto: protoNIP17, id: "rumor-1", wrapID: "wrap-1", sender: sender,
		createdAt: nostr.Timestamp(time.Now().Add(-age).Unix()), text: "help"}
	s.seen.Add(fresh.id)
	s.seen.Add(fresh.wrapID)
	s.handleDM(context.Background(), job{dm: fresh, received: time.Now()}) // Redis at a closed port
	if s.deferred.Len() != 1 || !s.seen.Contains(fresh.id) || !s.seen.Contains(fresh.wrapID) {
		t.Fatalf("a fresh DM whose claim failed was not deferred (deferred %d)", s.deferred.Len())
	}
	due := s.deferred.due(time.Now().Add(time.Minute))
	if len(due) != 1 || due[0].dm != fresh || due[0].attempt != 1 || due[0].requester() != sender || due[0].id() != "rumor-1" {
		t.Fatalf("deferred %+v", due)
	}

	old := &dmCommand{proto: protoNIP17, id: "rumor-2", wrapID: "wrap-2", sender: sender,
		createdAt: nostr.Timestamp(time.Now().Add(-s.cfg.Nostr.MaxDMAge).Unix()), text: "help"}
	s.seen.Add(old.id)
	s.seen.Add(old.wrapID)
	s.claimRetry(job{dm: old}, context.DeadlineExceeded)
	if s.deferred.Len() != 0 || s.seen.Contains(old.id) || s.seen.Contains(old.wrapID) {
		t.Fatal("a stale DM was deferred, or its ids kept")
	}
}

// One allow/deny rule for requests (listed) and direct-message commands
// (serves).
func TestAccessOneRule(t *testing.T) {
	s := intakeTestService(t, nil)
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	if !s.serves(a) || s.listed(a) != nil {
		t.Fatal("no lists: everyone is served")
	}
	s.cfg.Nostr.DeniedPubkeys = []string{a}
	if s.serves(a) || s.listed(a) == nil || !s.serves(b) {
		t.Fatal("a denied pubkey is served")
	}
	s.cfg.Nostr.DeniedPubkeys = nil
	s.cfg.Nostr.AllowedPubkeys = []string{b}
	if s.serves(a) || s.listed(a) == nil || !s.serves(b) || s.listed(b) != nil {
		t.Fatal("the allow list is not applied")
	}
}
