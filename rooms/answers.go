package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Answers pending delivery (the bot's pending.go gives the protocol): an
// answer no relay has said OK to is kept here until one does, so that any
// replica sends it again after a restart. Its hash and its sending lease
// share the request's hash tag (Keys.Answer, Keys.AnswerLease); the index
// of pending ids (Keys.Answers) is one key of its own, written beside them,
// not in one transaction with them.

// PendingAnswer is one answer waiting for a relay's OK.
type PendingAnswer struct {
	ID       string            // the request id it answers
	Event    string            // the signed event, JSON
	Relays   []string          // where it is to be sent
	Deadline time.Time         // given up after this
	Refused  map[string]string // relay URL → refusal class, relays that refused it for good
}

// answerRefused prefixes the hash fields of relays that refused for good.
const answerRefused = "refused:"

// AddAnswer stores a as pending unless an answer to a.ID already is (then
// the stored one, with its deadline and refusals, stays), and returns the
// answer now stored, read in the same transaction: the caller sends that
// one, without a second round trip to read it (issue 15). The hash lives
// until an hour after the deadline.
func (s *RedisStore) AddAnswer(ctx context.Context, a PendingAnswer) (*PendingAnswer, error) {
	stored, _, err := s.addAnswer(ctx, a, "", 0, "", 0)
	return stored, err
}

// AddAnswered is AddAnswer that also sets request a.ID's claim to claim
// (one of the bot's answered states, kept for claimTTL: SetClaim) in the
// same transaction, one round trip instead of two on the answer's way out
// (issue 15). The claim and the answer share the request's hash tag
// (Keys.Claim, Keys.Answer), so the transaction holds on a cluster too;
// only the index, in another slot there, is written after. With SetWait
// it waits for the replicas before it returns, as SetClaim does, so that a
// failover right after does not bring back the working state.
//
// With owner not "", it also takes or renews owner's sending lease on the
// answer for lease (LeaseAnswer, whose key shares the hash tag) in the
// same transaction, and reports whether owner holds it: the sender needs
// no round trip of its own for it.
func (s *RedisStore) AddAnswered(ctx context.Context, a PendingAnswer, claim string, claimTTL time.Duration, owner string, lease time.Duration) (stored *PendingAnswer, leased bool, err error) {
	if claim == "" {
		return nil, false, fmt.Errorf("pending answer %s: empty claim", a.ID)
	}
	return s.addAnswer(ctx, a, claim, claimTTL, owner, lease)
}

// addAnswer is AddAnswer and AddAnswered; claim "" leaves the claim alone,
// owner "" the lease.
func (s *RedisStore) addAnswer(ctx context.Context, a PendingAnswer, claim string, claimTTL time.Duration, owner string, lease time.Duration) (*PendingAnswer, bool, error) {
	q, err := s.answerOps(a, claim, claimTTL, owner, lease)
	if err != nil {
		return nil, false, err
	}
	write := func(pipe redis.Pipeliner) error {
		q.queue(ctx, pipe)
		_, err := pipe.Exec(ctx)
		return err
	}
	what := "store pending answer " + a.ID
	if claim == "" {
		err = write(s.rdb.TxPipeline())
	} else {
		what = "store answer " + a.ID
		err = s.onConn(ctx, s.keys.Claim(a.ID), func(c *redis.Conn) error {
			if c == nil {
				return write(s.rdb.TxPipeline())
			}
			return write(c.TxPipeline())
		})
	}
	if err != nil {
		return nil, false, redisErr(what, err)
	}
	return q.result(ctx)
}

// answerWrite is the writes of addAnswer, queued on a transaction by
// queue and read back by result once it ran.
type answerWrite struct {
	s        *RedisStore
	a        PendingAnswer
	relays   []byte
	claim    string
	claimTTL time.Duration
	owner    string
	lease    time.Duration
	stored   *redis.MapStringStringCmd
	leaseCmd *redis.Cmd
}

func (s *RedisStore) answerOps(a PendingAnswer, claim string, claimTTL time.Duration, owner string, lease time.Duration) (*answerWrite, error) {
	relays, err := json.Marshal(a.Relays)
	if err != nil {
		return nil, fmt.Errorf("pending answer %s: %w", a.ID, err)
	}
	return &answerWrite{s: s, a: a, relays: relays, claim: claim, claimTTL: claimTTL, owner: owner, lease: lease}, nil
}

func (q *answerWrite) index() redis.Z {
	return redis.Z{Score: float64(q.a.Deadline.UnixMilli()), Member: q.a.ID}
}

// queue adds the writes to pipe, a transaction: the claim (when set), the
// answer's hash unless one is stored, its read-back, the lease (when an
// owner is set) and, on a single server, the index.
func (q *answerWrite) queue(ctx context.Context, pipe redis.Pipeliner) {
	s, a := q.s, q.a
	key := s.keys.Answer(a.ID)
	if q.claim != "" {
		pipe.Set(ctx, s.keys.Claim(a.ID), q.claim, q.claimTTL)
	}
	pipe.HSetNX(ctx, key, "event", a.Event)
	pipe.HSetNX(ctx, key, "relays", q.relays)
	pipe.HSetNX(ctx, key, "deadline", a.Deadline.UnixMilli())
	pipe.PExpireAt(ctx, key, a.Deadline.Add(time.Hour))
	q.stored = pipe.HGetAll(ctx, key)
	if q.owner != "" {
		// EVAL, not EVALSHA: a script the server does not have
		// would fail inside the transaction.
		q.leaseCmd = leaseAnswerScript.Eval(ctx, pipe, []string{s.keys.AnswerLease(a.ID)}, q.owner, q.lease.Milliseconds())
	}
	if s.singleServer() {
		// One server: the index goes in the same transaction, one round
		// trip on the answer's way out instead of two (issue 15). On a
		// cluster it is in another slot, so it is written after.
		pipe.ZAddNX(ctx, s.keys.Answers(), q.index())
	}
}

// result reads what the transaction with q's writes returned, after
// writing the index on a cluster.
func (q *answerWrite) result(ctx context.Context) (*PendingAnswer, bool, error) {
	s, a := q.s, q.a
	if !s.singleServer() {
		if err := s.rdb.ZAddNX(ctx, s.keys.Answers(), q.index()).Err(); err != nil {
			return nil, false, redisErr("index pending answer "+a.ID, err)
		}
	}
	got, err := parseAnswer(a.ID, q.stored.Val())
	if err != nil {
		return nil, false, err
	}
	if got == nil {
		return nil, false, fmt.Errorf("pending answer %s: not stored", a.ID)
	}
	leased := false
	if q.leaseCmd != nil {
		n, err := q.leaseCmd.Int()
		if err != nil {
			return nil, false, redisErr("lease pending answer "+a.ID, err)
		}
		leased = n == 1
	}
	return got, leased, nil
}

// Answer reads the pending answer to request id; nil when none is pending.
func (s *RedisStore) Answer(ctx context.Context, id string) (*PendingAnswer, error) {
	h, err := s.rdb.HGetAll(ctx, s.keys.Answer(id)).Result()
	if err != nil {
		return nil, redisErr("pending answer "+id, err)
	}
	return parseAnswer(id, h)
}

// parseAnswer reads the pending answer to id from its hash h; nil when h
// holds no event (none pending).
func parseAnswer(id string, h map[string]string) (*PendingAnswer, error) {
	if h["event"] == "" {
		return nil, nil
	}
	ms, err := strconv.ParseInt(h["deadline"], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("pending answer %s: deadline %q: %w", id, h["deadline"], err)
	}
	a := &PendingAnswer{ID: id, Event: h["event"], Deadline: time.UnixMilli(ms), Refused: map[string]string{}}
	if err := json.Unmarshal([]byte(h["relays"]), &a.Relays); err != nil {
		return nil, fmt.Errorf("pending answer %s: relays: %w", id, err)
	}
	for f, v := range h {
		if url, ok := strings.CutPrefix(f, answerRefused); ok {
			a.Refused[url] = v
		}
	}
	return a, nil
}

// RefuseAnswer notes that relay refused the answer to id for good (class is
// the refusal's class, e.g. "blocked").
func (s *RedisStore) RefuseAnswer(ctx context.Context, id, relay, class string) error {
	if err := s.rdb.HSet(ctx, s.keys.Answer(id), answerRefused+relay, class).Err(); err != nil {
		return redisErr("note refusal of answer "+id, err)
	}
	return nil
}

// RemoveAnswer drops the answer to id: delivered or given up.
func (s *RedisStore) RemoveAnswer(ctx context.Context, id string) error {
	if s.singleServer() {
		// One server: both in one pipeline, one round trip (issue 15).
		pipe := s.rdb.Pipeline()
		del := pipe.Del(ctx, s.keys.Answer(id), s.keys.AnswerLease(id))
		rem := pipe.ZRem(ctx, s.keys.Answers(), id)
		_, _ = pipe.Exec(ctx)
		if err := del.Err(); err != nil {
			return redisErr("remove pending answer "+id, err)
		}
		if err := rem.Err(); err != nil {
			return redisErr("unindex pending answer "+id, err)
		}
		return nil
	}
	if err := s.rdb.Del(ctx, s.keys.Answer(id), s.keys.AnswerLease(id)).Err(); err != nil {
		return redisErr("remove pending answer "+id, err)
	}
	if err := s.rdb.ZRem(ctx, s.keys.Answers(), id).Err(); err != nil {
		return redisErr("unindex pending answer "+id, err)
	}
	return nil
}

// DeliveredAnswer sets request id's claim to claim (the bot's delivered
// state, kept for claimTTL: SetClaim) and drops its pending answer and
// sending lease (RemoveAnswer) in one transaction: one round trip after
// a relay's OK instead of two (issue 15). The claim, the answer and the
// lease share the request's hash tag; the index is in the same
// transaction on a single server and removed after it on a cluster.
// With SetWait it waits for the replicas, as SetClaim does.
func (s *RedisStore) DeliveredAnswer(ctx context.Context, id, claim string, claimTTL time.Duration) error {
	single := s.singleServer()
	write := func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, s.keys.Claim(id), claim, claimTTL)
		pipe.Del(ctx, s.keys.Answer(id), s.keys.AnswerLease(id))
		if single {
			pipe.ZRem(ctx, s.keys.Answers(), id)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := s.onConn(ctx, s.keys.Claim(id), func(c *redis.Conn) error {
		if c == nil {
			return write(s.rdb.TxPipeline())
		}
		return write(c.TxPipeline())
	})
	if err != nil {
		return redisErr("answer "+id+" delivered", err)
	}
	if !single {
		if err := s.rdb.ZRem(ctx, s.keys.Answers(), id).Err(); err != nil {
			return redisErr("unindex pending answer "+id, err)
		}
	}
	return nil
}

// leaseAnswerScript takes or renews the sending lease KEYS[1] for ARGV[1]
// for ARGV[2] ms.
var leaseAnswerScript = redis.NewScript(`
local v = redis.call("get", KEYS[1])
if v == false or v == ARGV[1] then
  redis.call("set", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
return 0`)

// unleaseAnswerScript gives the lease KEYS[1] back if ARGV[1] holds it.
var unleaseAnswerScript = redis.NewScript(`
if redis.call("get", KEYS[1]) == ARGV[1] then
  return redis.call("del", KEYS[1])
end
return 0`)

// LeaseAnswer takes or renews owner's lease on sending the answer to id,
// reporting false when another owner holds it.
func (s *RedisStore) LeaseAnswer(ctx context.Context, id, owner string, lease time.Duration) (bool, error) {
	n, err := leaseAnswerScript.Run(ctx, s.rdb, []string{s.keys.AnswerLease(id)}, owner, lease.Milliseconds()).Int()
	if err != nil {
		return false, redisErr("lease pending answer "+id, err)
	}
	return n == 1, nil
}

// ReleaseAnswer gives owner's sending lease on the answer to id back.
func (s *RedisStore) ReleaseAnswer(ctx context.Context, id, owner string) error {
	if err := unleaseAnswerScript.Run(ctx, s.rdb, []string{s.keys.AnswerLease(id)}, owner).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return redisErr("release pending answer "+id, err)
	}
	return nil
}

// DueAnswers lists at most n pending request ids, the earliest deadline
// first, and how many are pending in all.
func (s *RedisStore) DueAnswers(ctx context.Context, n int) (ids []string, total int64, err error) {
	pipe := s.rdb.Pipeline()
	card := pipe.ZCard(ctx, s.keys.Answers())
	rng := pipe.ZRange(ctx, s.keys.Answers(), 0, int64(n)-1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, redisErr("pending answers", err)
	}
	return rng.Val(), card.Val(), nil
}
