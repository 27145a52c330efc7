package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// parallel runs f(i) for i in [0,n) on up to workers goroutines and
// returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
		ferr error
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := ferr != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

// prepareHosts makes n hosts, each with a room ID of its own and a signed
// restart request for it.
func prepareHosts(bot string, n int) ([]*prepared, error) {
	out := make([]*prepared, n)
	err := parallel(n, runtime.GOMAXPROCS(0), func(i int) error {
		p, err := newPrepared(bot, newRoomID())
		out[i] = p
		return err
	})
	return out, err
}

// setupInPlace writes each room's record as the Nests API server does
// (SETEX 86400, host in speakers and admins) and creates its LiveKit room,
// so that the bot's restart deletes a live room and creates it again.
func (w *world) setupInPlace(ctx context.Context, preps []*prepared) error {
	const chunk = 500
	for lo := 0; lo < len(preps); lo += chunk {
		pipe := w.rdb.Pipeline()
		for _, p := range preps[lo:min(lo+chunk, len(preps))] {
			rec := map[string]any{
				"id": p.room.D, "host": p.pk, "speakers": []string{p.pk}, "admins": []string{p.pk},
				"relays": w.relayURLs(), "hls_stream": false,
				"createdAt": time.Now().Add(-time.Hour).UnixMilli(), "status": "active",
			}
			b, _ := json.Marshal(rec)
			pipe.SetEx(ctx, "nest:"+p.room.D, b, 86400*time.Second)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("write records: %w", err)
		}
	}
	return parallel(len(preps), 4, func(i int) error {
		meta, _ := json.Marshal(map[string]any{"nestId": preps[i].room.D, "host": preps[i].pk})
		_, err := w.rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{
			Name: preps[i].room.D, EmptyTimeout: 1800, DepartureTimeout: 60, MaxParticipants: 500, Metadata: string(meta),
		})
		if err != nil {
			return fmt.Errorf("create LiveKit room: %w", err)
		}
		return nil
	})
}

// setupRecreate publishes each host's own 30312 to the relay and leaves
// Redis and LiveKit without the room: the record expired, the room is
// gone, only the event remains.
func (w *world) setupRecreate(ctx context.Context, preps []*prepared) error {
	c, err := dial(ctx, w.relay.URL, "")
	if err != nil {
		return err
	}
	defer c.close()
	// The room was this deployment's (issue 12: a room event naming
	// another deployment is answered NOT_FOUND): its streaming tag is the
	// bot's LiveKit endpoint.
	streaming, err := nostrx.LiveKitEndpoint(w.lk.WSURL)
	if err != nil {
		return err
	}
	for _, p := range preps {
		ev := nostr.Event{Kind: nostrx.KindRoom, CreatedAt: nostr.Now() - 3600, Tags: nostr.Tags{
			{"d", p.room.D}, {"title", "Bench Nest"}, {"summary", "nestbench"}, {"status", "live"},
			{"service", "https://nostrnests.com/api/v1/nests"}, {"streaming", streaming},
			append(nostr.Tag{"relays"}, w.relayURLs()...), {"p", p.pk, "", "Host"},
		}}
		if err := ev.Sign(p.sk); err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.relay.Publish(pctx, ev)
		cancel()
		if err != nil {
			return fmt.Errorf("publish 30312: %w", err)
		}
	}
	return nil
}

// deps times n Redis PINGs and n LiveKit ListRooms, DeleteRoom and
// CreateRoom calls on rooms of their own, one at a time.
func (w *world) deps(ctx context.Context, n int) (Deps, error) {
	var ping, list, del, create []time.Duration
	for range n {
		t := time.Now()
		if err := w.rdb.Ping(ctx).Err(); err != nil {
			return Deps{}, err
		}
		ping = append(ping, time.Since(t))
	}
	for range n {
		name := newRoomID()
		if _, err := w.rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: name}); err != nil {
			return Deps{}, err
		}
		t := time.Now()
		if _, err := w.rooms.ListRooms(ctx, &livekit.ListRoomsRequest{Names: []string{name}}); err != nil {
			return Deps{}, err
		}
		t1 := time.Now()
		if _, err := w.rooms.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: name}); err != nil {
			return Deps{}, err
		}
		t2 := time.Now()
		if _, err := w.rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: name, EmptyTimeout: 60}); err != nil {
			return Deps{}, err
		}
		list, del, create = append(list, t1.Sub(t)), append(del, t2.Sub(t1)), append(create, time.Since(t2))
	}
	q := func(d []time.Duration) [2]float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return [2]float64{ms(pct(d, 50)), ms(pct(d, 99))}
	}
	return Deps{RedisPing: q(ping), LKList: q(list), LKDelete: q(del), LKCreate: q(create)}, nil
}

// closeRooms deletes the LiveKit rooms of preps (a room already gone is fine).
func (w *world) closeRooms(ctx context.Context, preps []*prepared) error {
	return parallel(len(preps), 4, func(i int) error {
		_, err := w.rooms.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: preps[i].room.D})
		if err != nil && !strings.Contains(err.Error(), "not_found") && !strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("close LiveKit room: %w", err)
		}
		return nil
	})
}
