package bot

import (
	"context"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/nestbot/nestbot/rooms"
)

// knownPubkeys bounds the set of pubkeys seen as host or admin.
const knownPubkeys = 10_000

// knownSet is a bounded LRU of pubkeys that a Redis record names host or
// admin, or that a record authorized: the priority lane. Room events feed
// it nothing: anyone can publish one naming any number of keys Admin, and
// a lane strangers can join is no lane (issue 9, item 5).
type knownSet struct {
	pks *lru.Cache[string, struct{}]
}

func newKnownSet(max int) *knownSet {
	c, err := lru.New[string, struct{}](max)
	if err != nil {
		panic(err) // max below one: a constant, never
	}
	return &knownSet{pks: c}
}

// Has reports whether pk is known; it does not refresh the entry, so that
// lookups by a flood cannot keep entries alive.
func (k *knownSet) Has(pk string) bool { return k.pks.Contains(pk) }

// Add notes pks (64 hex characters; anything else is ignored), refreshing
// those already known; the least recently noted go first.
func (k *knownSet) Add(pks ...string) {
	for _, pk := range pks {
		if len(pk) == 64 {
			k.pks.Add(pk, struct{}{})
		}
	}
}

func (k *knownSet) Len() int { return k.pks.Len() }

// addRecord notes the host and admins of a record. A record the bot
// recreated from a room event (IsRecreated) copied its admins from that
// event, which anyone may have published: only its host, the requester
// whose recreation wrote it, is noted; its admins join once the record
// authorizes a request of theirs (judge).
func (k *knownSet) addRecord(rec *rooms.Record) {
	k.Add(rec.Host)
	if !rec.IsRecreated {
		k.Add(rec.Admins...)
	}
}

// observedState is the engine's Redis state, noting the hosts and admins of
// every record it reads.
type observedState struct {
	rooms.State
	known *knownSet
}

func (o observedState) Record(ctx context.Context, id string) (*rooms.Record, error) {
	rec, err := o.State.Record(ctx, id)
	if rec != nil {
		o.known.addRecord(rec)
	}
	return rec, err
}
