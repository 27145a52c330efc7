package rooms

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nestbot/nestbot/nostrx"
)

// Claims make each request ID processed once across restarts and
// replicas (the bot's claims.go gives the protocol). Here is their storage:
// one key per request (Keys.Claim), whose value is
//
//	w:<owner>:<lease end, unix ms>   worked on by owner, alive until the lease end
//	anything else                    the bot's own answered states, opaque here
//
// The owner's lease lives inside the value, not in a key of its own, so
// that the take-over script reads only the key it declares: on a cluster
// a script may touch only keys of its own slot. The owner renews the
// lease of every claim it holds (RenewClaim) while it lives; a claim whose
// lease ended belongs to a dead owner and is taken over. The lease end is
// compared with the Redis server's clock (TIME), never with a replica's.

// claimScript claims KEYS[1] for ARGV[1]: when nobody holds it (unless
// ARGV[4] is "0"), when ARGV[1] already holds it, or when its owner's
// lease ended. ARGV[2] is the key's expiry in ms, ARGV[3] the lease in ms.
// It returns "acquired" (the claim is new), "taken" (it existed: ARGV[1]'s
// own, or a dead owner's), "busy", "gone" (no claim and ARGV[4] is "0")
// or the value it found. Only "acquired" is a request seen for the first
// time: the counting scripts count that one, never a take-over.
var claimScript = redis.NewScript(claimLua + `
return claim()`)

// claimLua defines claim(), the claim script's body (claimScript).
const claimLua = `
local function claim()
  local t = redis.call("time")
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local mine = "w:" .. ARGV[1] .. ":"
  local val = mine .. tostring(now + tonumber(ARGV[3]))
  local v = redis.call("get", KEYS[1])
  if not v then
    if ARGV[4] == "0" then
      return "gone"
    end
    redis.call("set", KEYS[1], val, "PX", ARGV[2])
    return "acquired"
  end
  if string.sub(v, 1, #mine) == mine then
    redis.call("set", KEYS[1], val, "PX", ARGV[2])
    return "taken"
  end
  if string.sub(v, 1, 2) == "w:" then
    local leaseEnd = tonumber(string.match(v, "^w:[^:]*:(%d+)$"))
    if leaseEnd ~= nil and leaseEnd < now then
      redis.call("set", KEYS[1], val, "PX", ARGV[2])
      return "taken"
    end
    return "busy"
  end
  return v
end
`

// claimCountScript is claimScript that, when it acquires KEYS[1] new,
// also counts one request in the rate window KEYS[2] (INCR, then PEXPIRE
// ARGV[5] ms: countMinute's counter) and returns "acquired:<count>"; a
// claim taken ("taken") was counted when it was new, and is not counted
// again. KEYS[2] is in another slot than KEYS[1]: a single server only.
var claimCountScript = redis.NewScript(claimLua + `
local r = claim()
if r == "acquired" then
  local n = redis.call("incr", KEYS[2])
  redis.call("pexpire", KEYS[2], ARGV[5])
  return "acquired:" .. n
end
return r`)

// renewClaimScript moves the lease end of ARGV[1]'s claim on KEYS[1] to
// now + ARGV[2] ms, keeping the key's expiry; 0 when the claim is not
// ARGV[1]'s (any more).
var renewClaimScript = redis.NewScript(`
local mine = "w:" .. ARGV[1] .. ":"
local v = redis.call("get", KEYS[1])
if not v or string.sub(v, 1, #mine) ~= mine then
  return 0
end
local t = redis.call("time")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call("set", KEYS[1], mine .. tostring(now + tonumber(ARGV[2])), "KEEPTTL")
return 1`)

// releaseClaimScript deletes KEYS[1] when ARGV[1] holds it.
var releaseClaimScript = redis.NewScript(`
local mine = "w:" .. ARGV[1] .. ":"
local v = redis.call("get", KEYS[1])
if v and string.sub(v, 1, #mine) == mine then
  return redis.call("del", KEYS[1])
end
return 0`)

// Claim runs the claim script for request id on behalf of owner (a hex
// instance ID): keep is the key's expiry, lease how long the claim stays
// owner's without a renewal. allowNew false only takes over an existing
// claim. It returns "acquired" (a new claim), "taken" (owner's own claim
// again, or a dead owner's taken over), "busy", "gone" or the stored
// value. With SetWait it waits for the replicas before it returns.
func (s *RedisStore) Claim(ctx context.Context, id, owner string, keep, lease time.Duration, allowNew bool) (string, error) {
	flag := "0"
	if allowNew {
		flag = "1"
	}
	key := s.keys.Claim(id)
	args := []any{owner, keep.Milliseconds(), lease.Milliseconds(), flag}
	res, err := s.evalOn(ctx, key, claimScript, []string{key}, args...).Text()
	if err != nil {
		return "", redisErr("claim "+id, err)
	}
	return res, nil
}

// evalOn runs sc on the connection onConn gives for key, so that with
// SetWait the WAIT after it covers the script's writes; without SetWait
// on the client. Its error is the script's, or the WAIT's.
func (s *RedisStore) evalOn(ctx context.Context, key string, sc *redis.Script, keys []string, args ...any) *redis.Cmd {
	var cmd *redis.Cmd
	err := s.onConn(ctx, key, func(c *redis.Conn) error {
		var on redis.Scripter = s.rdb
		if c != nil {
			on = c
		}
		cmd = sc.Run(ctx, on, keys, args...)
		return cmd.Err()
	})
	if cmd == nil || (err != nil && cmd.Err() == nil) {
		cmd = redis.NewCmd(ctx)
		cmd.SetErr(err)
	}
	return cmd
}

// ClaimCounted is Claim that, when it acquires a new claim, also counts
// one request of pubkey in its one-minute window at now (RateAllow's
// counter) in the same script, one round trip instead of two on a
// restart's way in (issue 15). It returns Claim's result and, when it
// acquired the claim, the window's count so far, this request included;
// count 0 means not counted: on a cluster, where the two keys are in
// different slots, it is Claim alone and the caller counts with RateAllow.
// A claim "taken" (re-acquired, or taken over from a dead owner) is the
// same request, counted when its claim was new: it is never counted again.
func (s *RedisStore) ClaimCounted(ctx context.Context, id, owner string, keep, lease time.Duration, allowNew bool, pubkey string, now time.Time) (res string, count int64, err error) {
	if !s.singleServer() {
		res, err = s.Claim(ctx, id, owner, keep, lease, allowNew)
		return res, 0, err
	}
	flag := "0"
	if allowNew {
		flag = "1"
	}
	key := s.keys.Claim(id)
	keys := []string{key, s.keys.Rate(pubkey, now.Unix()/60)}
	args := []any{owner, keep.Milliseconds(), lease.Milliseconds(), flag, minuteWindowTTL.Milliseconds()}
	res, err = s.evalOn(ctx, key, claimCountScript, keys, args...).Text()
	if err != nil {
		return "", 0, redisErr("claim "+id, err)
	}
	if n, ok := strings.CutPrefix(res, "acquired:"); ok {
		count, err = strconv.ParseInt(n, 10, 64)
		if err != nil || count <= 0 {
			return "", 0, fmt.Errorf("claim %s: count %q", id, n)
		}
		return "acquired", count, nil
	}
	return res, 0, nil
}

// claimLockScript is claimCountScript that, when it acquires the claim
// KEYS[1] and the count is at most ARGV[6] (or takes it: not counted
// again, count 0), also takes the room lock KEYS[3] for token ARGV[7]
// (SET NX, ARGV[8] ms) and, when it got it, reads what LockView reads:
// KEYS[4] the replacement, KEYS[5] the cool-down (EXISTS), KEYS[6] the
// last event, KEYS[7] the recreation mark, KEYS[8] the pending choice,
// KEYS[9] the record. It returns {result}, {r, count}, {r, count, 0}
// (lock busy) or {r, count, 1, the six reads}, r "acquired" or "taken".
// Keys in several slots: a single server only.
var claimLockScript = redis.NewScript(claimLua + `
local r = claim()
if r ~= "acquired" and r ~= "taken" then
  return {r}
end
local n = 0
if r == "acquired" then
  n = redis.call("incr", KEYS[2])
  redis.call("pexpire", KEYS[2], ARGV[5])
  if n > tonumber(ARGV[6]) then
    return {r, n}
  end
end
if not redis.call("set", KEYS[3], ARGV[7], "NX", "PX", ARGV[8]) then
  return {r, n, 0}
end
return {r, n, 1, redis.call("get", KEYS[4]), redis.call("exists", KEYS[5]),
  redis.call("get", KEYS[6]), redis.call("get", KEYS[7]), redis.call("get", KEYS[8]),
  redis.call("get", KEYS[9])}`)

// LockedView is a room lock taken, and the room read, by ClaimLocked on
// the request's way in, for Engine.Restart's first LockView (see
// CommitLater.Prefetched).
type LockedView struct {
	room nostrx.Coordinate
	lock *RoomLock
	view RoomView
}

// ClaimLocked is ClaimCounted that, on a single server, when it acquires
// the claim and the count is at most limit (or takes it: "taken", count
// 0, not counted again), also takes room c.D's lock
// for ttl and reads LockView's view of c, in the same script: the claim
// and the lock in one round trip on a restart's way in (issue 15). The
// lock is taken only for a request that is this instance's and within
// its rate, so a duplicate or a refused request never holds a room. pre
// is nil when the lock was not taken (another holder, over the limit, not
// acquired, a cluster): then Engine takes it as before. A pre not nil
// must be handed to Engine (CommitLater.Prefetched) or Unlocked.
func (s *RedisStore) ClaimLocked(ctx context.Context, id, owner string, keep, lease time.Duration, allowNew bool, pubkey string, now time.Time, limit int, c nostrx.Coordinate, ttl time.Duration) (res string, count int64, pre *LockedView, err error) {
	if !s.singleServer() {
		res, count, err = s.ClaimCounted(ctx, id, owner, keep, lease, allowNew, pubkey, now)
		return res, count, nil, err
	}
	flag := "0"
	if allowNew {
		flag = "1"
	}
	key := s.keys.Claim(id)
	l := s.newRoomLock(c.D)
	keys := []string{key, s.keys.Rate(pubkey, now.Unix()/60), l.key, s.keys.Replaced(c), s.keys.Cooldown(c.D),
		s.keys.Event(c.D), s.recreatingKey(c.D), s.keys.Pending(c), s.keys.RecordKey(c.D)}
	args := []any{owner, keep.Milliseconds(), lease.Milliseconds(), flag, minuteWindowTTL.Milliseconds(), limit, l.token, leaseTTL(ttl).Milliseconds()}
	out, err := s.evalOn(ctx, key, claimLockScript, keys, args...).Slice()
	if err != nil {
		return "", 0, nil, redisErr("claim "+id, err)
	}
	if len(out) == 0 {
		return "", 0, nil, fmt.Errorf("claim %s: empty reply", id)
	}
	res, _ = out[0].(string)
	if (res != "acquired" && res != "taken") || len(out) == 1 {
		return res, 0, nil, nil
	}
	count, _ = out[1].(int64)
	if res == "acquired" && count <= 0 {
		return "", 0, nil, fmt.Errorf("claim %s: count %v", id, out[1])
	}
	if len(out) < 3 || out[2] != int64(1) {
		return res, count, nil, nil
	}
	if len(out) != 9 {
		return "", 0, nil, fmt.Errorf("claim %s: %d values in the reply, want 9", id, len(out))
	}
	l.hold(ttl)
	str := func(v any) *redis.StringCmd {
		if v == nil {
			return redis.NewStringResult("", redis.Nil)
		}
		sv, ok := v.(string)
		if !ok {
			return redis.NewStringResult("", fmt.Errorf("unexpected %T", v))
		}
		return redis.NewStringResult(sv, nil)
	}
	var v RoomView
	v.Replacement, v.ReplacementErr = decodeString(str(out[3]), "replacement of "+c.String())
	if n, ok := out[4].(int64); ok {
		v.Cooling = n > 0
	} else {
		v.CoolingErr = fmt.Errorf("cool-down of %s: %w: unexpected %T", c.D, ErrUnavailable, out[4])
	}
	v.Last, v.LastErr = decodeEvent(str(out[5]), c.D)
	v.RecreatingMark, v.Recreating, v.RecreatingErr = decodeMark(str(out[6]), c.D)
	v.Pending, v.PendingErr = decodeString(str(out[7]), "pending replacement of "+c.String())
	v.Record, v.RecordErr = decodeRecord(str(out[8]), c.D)
	return res, count, &LockedView{room: c, lock: l, view: v}, nil
}

// Unlock releases the lock pre holds (nil: nothing).
func (pre *LockedView) Unlock() {
	if pre != nil {
		pre.lock.Unlock()
	}
}

// RenewClaim extends owner's lease on request id's claim by lease from
// now. It reports false when owner no longer holds the claim.
func (s *RedisStore) RenewClaim(ctx context.Context, id, owner string, lease time.Duration) (bool, error) {
	n, err := renewClaimScript.Run(ctx, s.rdb, []string{s.keys.Claim(id)}, owner, lease.Milliseconds()).Int()
	if err != nil {
		return false, redisErr("renew claim "+id, err)
	}
	return n == 1, nil
}

// RenewClaims is RenewClaim for many claims in one pipelined round trip
// (one per node on a cluster), so that a slow Redis delays every renewal
// by one timeout, not one per claim. held[i] is false when owner no
// longer holds ids[i]; a claim whose renewal failed is reported held.
func (s *RedisStore) RenewClaims(ctx context.Context, ids []string, owner string, lease time.Duration) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(ids))
	for i, id := range ids {
		cmds[i] = renewClaimScript.Eval(ctx, pipe, []string{s.keys.Claim(id)}, owner, lease.Milliseconds())
	}
	_, err := pipe.Exec(ctx)
	held := make([]bool, len(ids))
	for i, c := range cmds {
		n, cerr := c.Int()
		held[i] = cerr != nil || n == 1
	}
	if err != nil {
		return held, redisErr("renew claims", err)
	}
	return held, nil
}

// SetClaim stores one of the bot's answered states as request id's claim.
// With SetWait it waits for the replicas, so that a failover right after
// does not bring back the working state and a second answer.
func (s *RedisStore) SetClaim(ctx context.Context, id, value string, ttl time.Duration) error {
	key := s.keys.Claim(id)
	err := s.onConn(ctx, key, func(c *redis.Conn) error {
		if c == nil {
			return s.rdb.Set(ctx, key, value, ttl).Err()
		}
		return c.Set(ctx, key, value, ttl).Err()
	})
	if err != nil {
		return redisErr("set claim "+id, err)
	}
	return nil
}

// ReleaseClaim drops owner's claim on request id, so another instance may
// take the request at once; a claim owner no longer holds stays.
func (s *RedisStore) ReleaseClaim(ctx context.Context, id, owner string) error {
	if err := releaseClaimScript.Run(ctx, s.rdb, []string{s.keys.Claim(id)}, owner).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("release claim "+id, err)
	}
	return nil
}

// RateAllow counts one request of pubkey against its one-minute window at
// now, across replicas, and reports whether it is within limit.
func (s *RedisStore) RateAllow(ctx context.Context, pubkey string, now time.Time, limit int) (bool, error) {
	n, err := s.countMinute(ctx, s.keys.Rate(pubkey, now.Unix()/60), "rate limit")
	if err != nil {
		return false, err
	}
	return n <= int64(limit), nil
}

// Checkpoint returns the newest created_at saved for relay, 0 for none.
func (s *RedisStore) Checkpoint(ctx context.Context, relay string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.keys.Checkpoint(relay)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, redisErr("checkpoint of "+relay, err)
	}
	return n, nil
}

// SetCheckpoint saves the newest created_at seen on relay for ttl.
func (s *RedisStore) SetCheckpoint(ctx context.Context, relay string, n int64, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.keys.Checkpoint(relay), n, ttl).Err(); err != nil {
		return redisErr("save checkpoint of "+relay, err)
	}
	return nil
}

// FirstHelp reports whether sender was not sent the help text within
// every, and marks it sent, across replicas.
func (s *RedisStore) FirstHelp(ctx context.Context, sender string, every time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.DMHelp(sender), 1, every).Result()
	if err != nil {
		return false, fmt.Errorf("help limit: %w", redisErr("dmhelp", err))
	}
	return ok, nil
}
