package bot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

func TestParseRelayLists(t *testing.T) {
	dm := &nostr.Event{Kind: 10050, Tags: nostr.Tags{
		{"relay", "wss://dm.example.com/"}, {"relay", "wss://dm.example.com"}, {"relay", "https://not-a-relay.example.com"},
		{"relay"}, {"r", "wss://wrong-tag.example.com"}, {"relay", "ws://127.0.0.1:7777"},
	}}
	if got := parseDMRelayList(dm); !slices.Equal(got, []string{"wss://dm.example.com", "ws://127.0.0.1:7777"}) {
		t.Fatalf("10050: %v", got)
	}
	nip65 := &nostr.Event{Kind: 10002, Tags: nostr.Tags{
		{"r", "wss://both.example.com"}, {"r", "wss://read.example.com", "read"}, {"r", "wss://write.example.com", "write"},
		{"r", "wss://empty-marker.example.com", ""}, {"relay", "wss://wrong-tag.example.com"}, {"r", "javascript:alert(1)"},
	}}
	if got := parseReadRelays(nip65); !slices.Equal(got, []string{"wss://both.example.com", "wss://read.example.com", "wss://empty-marker.example.com"}) {
		t.Fatalf("10002 read: %v", got)
	}
	many := &nostr.Event{Kind: 10050}
	for i := range 50 {
		many.Tags = append(many.Tags, nostr.Tag{"relay", fmt.Sprintf("wss://r%d.example.com", i)})
	}
	if got := parseDMRelayList(many); len(got) != maxListRelays {
		t.Fatalf("a list of 50 relays gave %d, want at most %d", len(got), maxListRelays)
	}
}

// TestRelayListsShared: concurrent look-ups of one pubkey share one fetch;
// a found list is kept for relayListTTL, a miss for relayListMissTTL, and
// a fetch cut short is not remembered.
func TestRelayListsShared(t *testing.T) {
	r := newRelayLists()
	clock := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	r.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	var fetches atomic.Int32
	release := make(chan struct{})
	lists := map[string]relayList{"alice": {DM: []string{"wss://dm.example.com"}}}
	fetch := func(ctx context.Context, pk string) (relayList, bool) {
		fetches.Add(1)
		<-release
		return lists[pk], pk != "cut"
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]relayList, 20)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = r.get(ctx, ctx, "alice", time.Second, each(fetch))
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, l := range got {
		if !slices.Equal(l.DM, lists["alice"].DM) {
			t.Fatalf("got %+v", l)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for one pubkey, want 1", n)
	}

	// A caller whose ctx ends stops waiting; the fetch goes on for others.
	// On a cache of its own: its look-up outlives the call, and a running
	// look-up takes the next queued pubkeys with its own fetch function.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if l := newRelayLists().get(cctx, ctx, "bob", time.Second, each(func(ctx context.Context, pk string) (relayList, bool) {
		time.Sleep(10 * time.Millisecond)
		return relayList{}, true
	})); len(l.DM)+len(l.Read) != 0 {
		t.Fatalf("cancelled caller got %+v", l)
	}

	r.get(ctx, ctx, "nobody", time.Second, each(fetch))
	r.get(ctx, ctx, "cut", time.Second, each(fetch))
	if _, ok := r.cached("cut"); ok {
		t.Fatal("a fetch cut short was cached")
	}
	if _, ok := r.cached("nobody"); !ok {
		t.Fatal("a miss is not cached")
	}
	advance(relayListMissTTL)
	if _, ok := r.cached("nobody"); ok {
		t.Fatal("a miss is cached longer than relayListMissTTL")
	}
	if _, ok := r.cached("alice"); !ok {
		t.Fatal("a found list expired with the miss TTL")
	}
	advance(relayListTTL)
	if _, ok := r.cached("alice"); ok {
		t.Fatal("a found list outlived relayListTTL")
	}
}

// each makes a batch look-up of a look-up of one pubkey: it asks for each
// pubkey in turn; complete only if every one was.
func each(fetch func(context.Context, string) (relayList, bool)) listFetch {
	return func(ctx context.Context, pks []string) (map[string]relayList, bool) {
		out := map[string]relayList{}
		all := true
		for _, pk := range pks {
			l, complete := fetch(ctx, pk)
			if len(l.DM)+len(l.Read) > 0 {
				out[pk] = l
			}
			all = all && complete
		}
		return out, all
	}
}

// TestRelayListsBatched: while maxListFetches look-ups run, the pubkeys
// that miss the cache wait and go out together in one look-up (one REQ
// per relay), each caller gets its own list, and the batch's misses are
// remembered like single ones.
func TestRelayListsBatched(t *testing.T) {
	r := newRelayLists()
	var mu sync.Mutex
	var batches [][]string
	release := make(chan struct{})
	started := make(chan struct{}, 16)
	fetch := func(ctx context.Context, pks []string) (map[string]relayList, bool) {
		mu.Lock()
		batches = append(batches, slices.Clone(pks))
		mu.Unlock()
		started <- struct{}{}
		<-release
		out := map[string]relayList{}
		for _, pk := range pks {
			if pk != "none" && pk != "none2" {
				out[pk] = relayList{Read: []string{"wss://" + pk + ".example.com"}}
			}
		}
		return out, true
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	got := map[string]relayList{}
	var gotMu sync.Mutex
	ask := func(pk string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := r.get(ctx, ctx, pk, time.Minute, fetch)
			gotMu.Lock()
			got[pk] = l
			gotMu.Unlock()
		}()
	}
	// Two look-ups take the two slots and block.
	ask("a")
	<-started
	ask("b")
	<-started
	// These miss while both run: they queue for one look-up.
	queued := []string{"c", "d", "e", "none", "f", "g", "h", "i", "j", "none2"}
	for _, pk := range queued {
		ask(pk)
	}
	// Wait until all of them are queued, not yet asked for.
	for {
		r.mu.Lock()
		n := len(r.queue)
		r.mu.Unlock()
		if n == len(queued) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()

	if len(batches) != 3 {
		t.Fatalf("%d look-ups for %d pubkeys, want 3: %v", len(batches), 2+len(queued), batches)
	}
	var last []string
	for _, b := range batches {
		if len(b) > 1 {
			last = b
		}
	}
	slices.Sort(last)
	want := slices.Clone(queued)
	slices.Sort(want)
	if !slices.Equal(last, want) {
		t.Fatalf("the queued pubkeys went out as %v, want one look-up of %v", batches, want)
	}
	for _, pk := range append([]string{"a", "b"}, queued...) {
		l := got[pk]
		if pk == "none" || pk == "none2" {
			if len(l.Read) != 0 {
				t.Fatalf("%s got %+v", pk, l)
			}
		} else if len(l.Read) != 1 || l.Read[0] != "wss://"+pk+".example.com" {
			t.Fatalf("%s got %+v", pk, l)
		}
		if _, ok := r.cached(pk); !ok {
			t.Fatalf("%s not cached (misses are remembered too)", pk)
		}
	}
	// Cached now: no look-up at all.
	r.get(ctx, ctx, "none", time.Minute, fetch)
	if len(batches) != 3 {
		t.Fatalf("a cached miss was looked up again")
	}
	// The look-ups end once the queue is empty (they may still be
	// finishing their last round when the callers have their answers).
	for {
		r.mu.Lock()
		running, queued := r.fetching, len(r.queue)
		r.mu.Unlock()
		if queued != 0 {
			t.Fatalf("%d pubkeys still queued after every caller got its answer", queued)
		}
		if running == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
}
