package flood

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/nostrx"
)

// Kind says what a junk event is, to check afterwards what was answered.
type Kind int

const (
	Valid     Kind = iota // valid signature, random key, someone else's room
	BadSig                // correct id, random signature
	ForgedID              // valid signature, id replaced
	OtherP                // addressed to someone else
	Malformed             // broken fields
	Stale                 // an hour old
)

// Event is one junk event, ready to send.
type Event struct {
	Kind Kind
	JSON []byte
	ID   string
}

// Junk builds n junk restart requests to bot naming the given rooms, in
// the mix a hostile relay sends: 15 % valid signatures from 500 random
// keys, 35 % bad signatures, 10 % forged ids, 15 % for another p, 15 %
// malformed, 10 % stale. seed varies the mix from run to run.
func Junk(bot string, rooms []nostrx.Coordinate, n int, seed uint64) ([]Event, error) {
	if len(rooms) == 0 {
		return nil, fmt.Errorf("junk: no rooms to name")
	}
	keys := make([]*btcec.PrivateKey, 500)
	pubs := make([]string, len(keys))
	for i := range keys {
		var err error
		if keys[i], err = btcec.NewPrivateKey(); err != nil {
			return nil, err
		}
		pubs[i] = hex.EncodeToString(schnorr.SerializePubKey(keys[i].PubKey()))
	}
	now := nostr.Now()
	out := make([]Event, n)
	parts := runtime.GOMAXPROCS(0)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed+uint64(p), 42))
			for i := p; i < n; i += parts {
				ev, err := junkEvent(rng, i, now, bot, rooms, keys, pubs)
				if err != nil {
					errs[p] = err
					return
				}
				out[i] = ev
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func junkEvent(rng *rand.Rand, i int, now nostr.Timestamp, bot string, rooms []nostrx.Coordinate, keys []*btcec.PrivateKey, pubs []string) (Event, error) {
	k := rng.IntN(len(keys))
	room := rooms[rng.IntN(len(rooms))]
	ev := nostrx.NewRequest(nostrx.DefaultRequestKind, bot, room, "restart", "", strconv.Itoa(i), now, 0)
	ev.PubKey = pubs[k]
	var kind Kind
	switch r := rng.IntN(100); {
	case r < 15:
		kind = Valid
	case r < 50:
		kind = BadSig
	case r < 60:
		kind = ForgedID
	case r < 75:
		kind = OtherP
		ev.Tags = nostr.Tags{{"a", room.String()}, {"p", pubs[(k+1)%len(pubs)]}, {"action", "restart"}}
	case r < 90:
		kind = Malformed
	default:
		kind = Stale
		ev.CreatedAt = now - 3600
	}
	ev.ID = ev.GetID()
	switch kind {
	case BadSig:
		b := make([]byte, 64)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		ev.Sig = hex.EncodeToString(b)
	case Malformed:
		ev.Sig = "00"
		switch i % 3 {
		case 0:
			ev.ID = "not-an-id"
		case 1:
			ev.PubKey = ev.PubKey[:10]
		}
	default:
		idb, _ := hex.DecodeString(ev.ID)
		sig, err := schnorr.Sign(keys[k], idb, schnorr.FastSign())
		if err != nil {
			return Event{}, err
		}
		ev.Sig = hex.EncodeToString(sig.Serialize())
		if kind == ForgedID {
			ev.ID = fmt.Sprintf("%064x", rng.Uint64())
		}
	}
	b, err := ev.MarshalJSON()
	if err != nil {
		return Event{}, err
	}
	return Event{Kind: kind, JSON: b, ID: ev.ID}, nil
}
