package rooms

import (
	"strconv"
	"strings"

	"github.com/nestbot/nestbot/nostrx"
)

// This file is the one list of every Redis key nestbot writes. The layout
// is designed for Redis Cluster: the keys one operation touches together
// share a hash tag (the part between "{" and "}"), so they live in one
// slot and one MULTI or Lua script may touch them all; every Lua script
// declares every key it touches in KEYS. On a single server or behind
// Sentinel the tags change nothing.
//
// With the default prefixes, B = "nestbot:" (redis.bot_prefix) and
// R = "nest:" (redis.key_prefix):
//
//	key                          tag       TTL                        written by
//	R<d>                         (none)    redis.room_ttl             Engine (PutRecord, Commit); the Nests API server. Exact key and JSON of the Nests API server: never renamed.
//	B{<d>}:lock                  {<d>}     10 s lease, renewed        Engine (Lock, LockView); released by Commit or Unlock
//	B{<d>}:replaced:<author>     {<d>}     30 days                    Engine (Commit): the room at 30312:<author>:<d> was replaced by the room in the value
//	B{<d>}:pending:<author>      {<d>}     30 days, deleted at commit Engine (ChoosePending): the new ID of a recreation under way
//	B{<d>}:last                  {<d>}     limits.room_cooldown       Engine (Commit): the room's cool-down
//	B{<d>}:event                 {<d>}     30 days                    Engine (Commit), room lifecycle: the last 30312 the bot published for d
//	B{<d>}:recreating            {<d>}     ~3 min, deleted at commit  Engine (MarkRecreating): a restart in place deleted its LiveKit room
//	B{<request id>}:claim        {<id>}    claim keep / answered ttl  bot claims: one key per request, owner and lease inside the value
//	B{<request id>}:answer       {<id>}    response_ttl + 1 h         bot deliveries (AddAnswer): an answer no relay has said OK to yet
//	B{<request id>}:answerlease  {<id>}    30 s lease, renewed        bot deliveries (LeaseAnswer): the instance sending that answer
//	Banswers                     (none)    none, members removed      bot deliveries: sorted set of pending answers' ids by deadline
//	Bowned                       (none)    none                       Engine (Commit), room lifecycle: set of the d's the bot looks after
//	Bnewrooms:<unix minute>      (none)    2 min                      Engine (CountNewRoom): recreations under a new ID, all replicas
//	Bheals:<unix minute>         (none)    2 min                      bot healer (CountHeal, rooms/heal.go): automatic heals, all replicas
//	Brate:<pubkey>:<unix minute> (none)    2 min                      bot (RateAllow): a requester's requests this minute
//	Bcheckpoint:<relay URL>      (none)    2 max_request_age + slack  bot listeners: the newest request seen on a relay
//	Bdmhelp:<pubkey>             (none)    10 min                     bot DMs: the help text was sent to this sender
//
// Everything a restart of room d touches under the bot's prefix is in
// d's slot, so the reads of LockView and the final writes of Commit go to
// one node. Only the record (fixed by the Nests API server) and the index
// of owned rooms live elsewhere; a recreation under a new ID also writes
// the new room's keys, in the new d's slot (see Commit for the order).
//
// Upgrading from the layout before hash tags (nestbot:lock:<d>,
// nestbot:replaced:<a>:<d>, ...): MigrateKeys copies the long-lived keys
// (replacements, pending choices, last events) to their new names at
// start-up. Short-lived state is not migrated: claims of requests in
// flight, locks, cool-downs, recreation marks, rate-limit counters and
// checkpoints under the old names are ignored after the upgrade, so a
// request in flight during the upgrade may be worked on again by the new
// version (its room is restarted once more) and a cool-down restarts.

// Keys names nestbot's Redis keys for one pair of prefixes.
type Keys struct {
	Record string // prefix of the Nests API server's records, "nest:"
	Bot    string // prefix of nestbot's own keys, "nestbot:"
}

// DefaultKeys are the keys under the default prefixes.
var DefaultKeys = Keys{Record: "nest:", Bot: "nestbot:"}

// room is a key in d's slot.
func (k Keys) room(d, name string) string { return k.Bot + "{" + d + "}:" + name }

// RecordKey is the record of room id, shared with the Nests API server.
func (k Keys) RecordKey(id string) string { return k.Record + id }

// Lock is room d's lock.
func (k Keys) Lock(d string) string { return k.room(d, "lock") }

// Replaced maps the room at c to the ID of the room that replaced it.
func (k Keys) Replaced(c nostrx.Coordinate) string { return k.room(c.D, "replaced:"+c.Author) }

// Pending is the new ID chosen for c by a recreation that did not finish.
func (k Keys) Pending(c nostrx.Coordinate) string { return k.room(c.D, "pending:"+c.Author) }

// Cooldown exists while room d is in its cool-down.
func (k Keys) Cooldown(d string) string { return k.room(d, "last") }

// Event is the last 30312 the bot published for d.
func (k Keys) Event(d string) string { return k.room(d, "event") }

// Recreating marks a restart in place of d cut off after its LiveKit room
// was deleted.
func (k Keys) Recreating(d string) string { return k.room(d, "recreating") }

// Claim is request id's claim.
func (k Keys) Claim(id string) string { return k.Bot + "{" + id + "}:claim" }

// Answer is the answer to request id while no relay has accepted it.
func (k Keys) Answer(id string) string { return k.Bot + "{" + id + "}:answer" }

// AnswerLease is held by the instance sending the answer to request id.
func (k Keys) AnswerLease(id string) string { return k.Bot + "{" + id + "}:answerlease" }

// Answers indexes pending answers by deadline (unix ms).
func (k Keys) Answers() string { return k.Bot + "answers" }

// Owned is the set of the d's whose room the bot looks after.
func (k Keys) Owned() string { return k.Bot + "owned" }

// NewRooms counts recreations under a new ID in one unix minute.
func (k Keys) NewRooms(minute int64) string {
	return k.Bot + "newrooms:" + strconv.FormatInt(minute, 10)
}

// Rate counts a requester's requests in one unix minute.
func (k Keys) Rate(pubkey string, minute int64) string {
	return k.Bot + "rate:" + pubkey + ":" + strconv.FormatInt(minute, 10)
}

// Checkpoint is the newest request's created_at seen on a relay.
func (k Keys) Checkpoint(relay string) string { return k.Bot + "checkpoint:" + relay }

// DMHelp exists while a sender was sent the help text recently.
func (k Keys) DMHelp(pubkey string) string { return k.Bot + "dmhelp:" + pubkey }

// eventKeyD returns the d of an Event key, or "".
func (k Keys) eventKeyD(key string) string {
	rest, ok := strings.CutPrefix(key, k.Bot+"{")
	if !ok {
		return ""
	}
	d, ok := strings.CutSuffix(rest, "}:event")
	if !ok || !nostrx.ValidD(d) {
		return ""
	}
	return d
}
