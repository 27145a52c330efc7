package bot

import (
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/nestbot/nestbot/rooms"
)

// job is one verified request waiting for a worker: a kind 4312 request
// (ev) or a command that arrived by direct message (dm).
type job struct {
	ev       *nostr.Event
	dm       *dmCommand
	via      string
	received time.Time

	attempt int // claim attempts that failed because Redis did not answer
	// finishing: a restart resumed after a public change (resumeLater); it
	// was admitted on its first run and is finished, not admitted again.
	finishing bool
	// givenUp: a restart resumed after a public change that cannot be
	// finished before its request goes stale (resumeLater, claimRetry). It
	// holds its claim and is answered UNAVAILABLE, without working again.
	givenUp bool
	// marks: the recreation marks this request's runs made, carried from
	// a run to its resumption (rooms.Marks); nil until the first run.
	marks      *rooms.Marks
	watching   bool      // another instance held the claim; we look again later
	watchUntil time.Time // when to stop watching
}

// id is the request id the job is claimed under: the event id of a 4312,
// the rumor or event id of a direct message.
func (j job) id() string {
	if j.dm != nil {
		return j.dm.id
	}
	return j.ev.ID
}

// requester is the pubkey the job is answered to.
func (j job) requester() string {
	if j.dm != nil {
		return j.dm.sender
	}
	return j.ev.PubKey
}

// staleAt is when the job's request is too old to be answered.
func (s *Service) staleAt(j job) time.Time {
	if j.dm != nil {
		return j.dm.createdAt.Time().Add(s.cfg.Nostr.MaxDMAge)
	}
	return j.ev.CreatedAt.Time().Add(s.cfg.Nostr.MaxRequestAge)
}

// forgetJob lets a job's request be taken again when a relay brings it
// again (its gift wrap too), after it could not be finished here.
func (s *Service) forgetJob(j job) {
	s.seen.forget(j.id())
	if j.dm != nil && j.dm.wrapID != "" {
		s.seen.forget(j.dm.wrapID)
	}
}
