package rooms

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Replaced says which rooms a recreation's create must not return: the
// rooms that existed before its delete. It is the value of the recreating
// mark (see Engine.markRecreating) and what Recreate's gone callback gets.
//
// Exactly one of two forms:
//   - After > 0 (LiveKit's clock, ms since the Unix epoch): a room whose
//     creation_time_ms is at least After was created after the delete was
//     sent; see LiveKitRooms.Recreate for why.
//   - After == 0: SID is the room that was deleted ("" when there was
//     none); a room with another SID was made after the delete.
type Replaced struct {
	SID   string
	After int64
}

// IsNew reports whether r is a room LiveKit made after the delete p
// describes.
func (p Replaced) IsNew(r *LiveRoom) bool {
	if r == nil {
		return false
	}
	if p.After != 0 {
		return r.CreatedMs >= p.After
	}
	return r.SID != p.SID
}

// markPrefix starts a mark of the After form; the SID form is the SID
// itself, as marks were before, so that a mark written by an older bot
// (up to ~3 minutes old across an upgrade) reads as it was meant.
const markPrefix = "at:"

// Mark is p as the recreating mark's value: "at:<ms>" or the SID.
func (p Replaced) Mark() string {
	if p.After != 0 {
		return markPrefix + strconv.FormatInt(p.After, 10)
	}
	return p.SID
}

// ParseMark reads a recreating mark's value (as State.Recreating returns
// it). An "at:" mark that does not parse accepts no room as new: the
// restart then recreates the room, which is always safe.
func ParseMark(v string) Replaced {
	rest, ok := strings.CutPrefix(v, markPrefix)
	if !ok {
		return Replaced{SID: v}
	}
	n, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || n <= 0 {
		return Replaced{After: math.MaxInt64}
	}
	return Replaced{After: n}
}

// clockWindow is how long a calibration sample of LiveKit's clock counts:
// samples are kept in two windows of this length (the current and the
// previous one), so each lasts between one and two of them. A step of
// LiveKit's clock is followed once the samples taken before it are gone,
// or at once when a sample contradicts them (see lkClock).
const clockWindow = 30 * time.Second

// lkClock learns how far LiveKit's clock (creation_time_ms of the rooms
// it makes) is ahead of the bot's, so that Recreate can tell a room made
// after its delete from one made before without listing the room first.
//
// The bot's clock here is monotonic (µs since the LiveKitRooms was made),
// so a step of the bot's wall clock changes nothing; off is LiveKit's
// wall clock in µs minus it. A CreateRoom sent at s and answered at r
// (bot clock) that returned a room with creation_time_ms C tells:
//   - always, whatever room it returned: the room was created before the
//     answer, so off > C*1000 - r (a lower bound, see offsetLower);
//   - when the room is known to have been made by that call (its SID
//     differs from the room listed or deleted just before): it was
//     created after s, and LiveKit truncated its clock to the ms, so
//     off < (C+1)*1000 - s (an upper bound, see offsetUpper).
//
// The upper bound (the smallest sample) makes the threshold of
// Recreate's check; the lower bound (the largest) only checks it: when
// a lower bound reaches the upper one, LiveKit's clock has stepped
// forward (or a sample was wrong) and the upper samples are dropped.
type lkClock struct {
	epoch time.Time
	mu    sync.Mutex
	w     [2]clockSamples // by window number % 2
}

// clockSamples are one window's bounds of the offset, in µs.
type clockSamples struct {
	n            int64 // window number; the slot is stale when it differs
	lb, ub       int64
	hasLB, hasUB bool
}

func newLKClock() *lkClock { return &lkClock{epoch: time.Now()} }

// now is the bot's clock: µs since c was made, monotonic, truncated.
func (c *lkClock) now() int64 { return time.Since(c.epoch).Microseconds() }

// offsetLower is the lower bound of LiveKit's clock offset (µs) that a
// create answered at answeredUs (bot clock, truncated to the µs, so the
// real answer came before answeredUs+1) returning a room created at
// createdMs (LiveKit's clock) gives: the room existed before the answer.
func offsetLower(createdMs, answeredUs int64) int64 {
	return createdMs*1000 - (answeredUs + 1)
}

// offsetUpper is the upper bound of the offset (µs) that a create sent
// at sentUs (bot clock, truncated, so sent no earlier than sentUs) that
// made a room at createdMs gives: the room was made after sentUs, at a
// LiveKit time below createdMs+1 ms.
func offsetUpper(createdMs, sentUs int64) int64 {
	return (createdMs+1)*1000 - sentUs
}

// newAfter is the Replaced.After of a delete sent after deleteUs (bot
// clock, truncated: the call began before deleteUs+1) when the offset is
// below ub: the first LiveKit ms at or after the delete's sending on
// LiveKit's clock. A room created at After or later was created, on any
// clock, after the delete left the bot.
func newAfter(deleteUs, ub int64) int64 {
	t := deleteUs + 1 + ub // > LiveKit's clock when the delete was sent
	return ceilDiv(t, 1000)
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) == (b < 0) {
		q++
	}
	return q
}

// slot returns the window of nowUs, reset when it held an older one.
func (c *lkClock) slot(nowUs int64) *clockSamples {
	n := nowUs / clockWindow.Microseconds()
	s := &c.w[n%2]
	if s.n != n {
		*s = clockSamples{n: n}
	}
	return s
}

// bounds combines the current and the previous window.
func (c *lkClock) bounds(nowUs int64) (lb, ub int64, hasLB, hasUB bool) {
	n := nowUs / clockWindow.Microseconds()
	for i := range c.w {
		s := &c.w[i]
		if s.n != n && s.n != n-1 {
			continue
		}
		if s.hasLB && (!hasLB || s.lb > lb) {
			lb, hasLB = s.lb, true
		}
		if s.hasUB && (!hasUB || s.ub < ub) {
			ub, hasUB = s.ub, true
		}
	}
	return lb, ub, hasLB, hasUB
}

// upper returns the offset's upper bound to judge a recreation by, or
// false when there is none recent or the bounds contradict each other.
func (c *lkClock) upper(nowUs int64) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lb, ub, hasLB, hasUB := c.bounds(nowUs)
	return ub, hasUB && (!hasLB || lb < ub)
}

// observeLower adds a lower-bound sample; when it reaches the upper
// bound, the upper samples are dropped (LiveKit's clock moved ahead).
func (c *lkClock) observeLower(nowUs, lb int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slot(nowUs)
	if !s.hasLB || lb > s.lb {
		s.lb, s.hasLB = lb, true
	}
	if _, ub, _, hasUB := c.bounds(nowUs); hasUB && lb >= ub {
		for i := range c.w {
			c.w[i].hasUB = false
		}
	}
}

// observeUpper adds an upper-bound sample; when it is at or below the
// lower bound, the lower samples are dropped (LiveKit's clock moved
// back): the newest sample wins either way.
func (c *lkClock) observeUpper(nowUs, ub int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slot(nowUs)
	if !s.hasUB || ub < s.ub {
		s.ub, s.hasUB = ub, true
	}
	if lb, _, hasLB, _ := c.bounds(nowUs); hasLB && lb >= ub {
		for i := range c.w {
			c.w[i].hasLB = false
		}
	}
}
