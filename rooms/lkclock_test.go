package rooms

import (
	"math"
	"testing"
)

// The bounds are exact to the µs around LiveKit's ms truncation: a room
// created at LiveKit time T (µs) has creation_time_ms floor(T/1000).
func TestOffsetBounds(t *testing.T) {
	for _, c := range []struct {
		name                      string
		off, sent, created, answd int64 // µs: true offset; bot times; LiveKit creates at bot time created
	}{
		{"zero offset, mid ms", 0, 10_000_100, 10_000_400, 10_000_900},
		{"creation at the start of a LiveKit ms", 0, 10_000_999, 10_001_000, 10_001_001},
		{"creation at the end of a LiveKit ms", 0, 10_000_000, 10_000_999, 10_001_000},
		{"LiveKit ahead by 3.7 s", 3_700_250, 10_000_000, 10_000_001, 10_000_002},
		{"LiveKit behind by 41 ms", -41_003, 10_000_000, 10_000_500, 10_000_700},
		{"send, create and answer in the same µs", 1, 5_000_000, 5_000_000, 5_000_000},
	} {
		lkMs := floorDiv(c.created+c.off, 1000)
		lb, ub := offsetLower(lkMs, c.answd), offsetUpper(lkMs, c.sent)
		if !(lb < c.off && c.off < ub) {
			t.Errorf("%s: bounds (%d, %d) do not hold offset %d", c.name, lb, ub, c.off)
		}
		// Tight: within a ms plus the call's own time.
		if ub-lb > 2000+c.answd-c.sent+2 {
			t.Errorf("%s: bounds (%d, %d) wider than the call and a ms", c.name, lb, ub)
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// The decision on synthetic clocks: LiveKit's clock runs off µs ahead of
// the bot's, truncated to the ms. The offset's upper bound comes from a
// calibrating create sent at calSent and made at calMade (bot µs); a
// delete is sent at del; a room created at room (bot µs) is accepted as
// new iff IsNew says so. No room created before the delete was sent may
// pass, whatever the timings; rooms created late enough must.
func TestRecreateDecision(t *testing.T) {
	for _, c := range []struct {
		name                  string
		off, calSent, calMade int64
		del, room             int64
		want                  bool
	}{
		{"old room, created long before", 250_000, 0, 300, 5_000_000, 1_000_000, false},
		{"old room, created 1 µs before the delete", 250_000, 0, 300, 5_000_000, 4_999_999, false},
		{"old room, created the same µs as the delete", 250_000, 0, 300, 5_000_000, 5_000_000, false},
		{"new room 3 ms after the delete", 250_000, 0, 300, 5_000_000, 5_003_000, true},
		{"new room 1.5 ms after, tight calibration", 250_000, 998, 999, 5_000_000, 5_001_500, true},
		{"new room 100 µs after, in the same LiveKit ms: cannot tell", 250_000, 0, 300, 5_000_000, 5_000_100, false},
		{"negative offset, old room", -7_777_777, 0, 300, 9_000_000, 8_999_000, false},
		{"negative offset, new room", -7_777_777, 0, 300, 9_000_000, 9_002_500, true},
	} {
		calMs := floorDiv(c.calMade+c.off, 1000)
		ub := offsetUpper(calMs, c.calSent)
		p := Replaced{After: newAfter(c.del, ub)}
		r := &LiveRoom{CreatedMs: floorDiv(c.room+c.off, 1000)}
		if got := p.IsNew(r); got != c.want {
			t.Errorf("%s: IsNew = %v (After %d, created %d), want %v", c.name, got, p.After, r.CreatedMs, c.want)
		}
	}
	// Exhaustively over sub-ms phases: never a room from before the
	// delete, whatever the offset's phase and the calibration's.
	for offPhase := int64(0); offPhase < 1000; offPhase += 37 {
		off := 1_000_000 + offPhase
		for calGap := int64(0); calGap < 3000; calGap += 113 {
			ub := offsetUpper(floorDiv(calGap+off, 1000), 0)
			for del := int64(10_000_000); del < 10_002_000; del += 91 {
				p := Replaced{After: newAfter(del, ub)}
				for room := del - 2000; room < del+4000; room += 7 {
					r := &LiveRoom{CreatedMs: floorDiv(room+off, 1000)}
					if p.IsNew(r) && room < del {
						t.Fatalf("room created at %d passes for new after a delete at %d (offset %d, calibration gap %d)", room, del, off, calGap)
					}
				}
			}
		}
	}
}

// The calibration: bounds by window, the newest contradicting sample
// wins, and none is used once two windows old.
func TestLKClockCalibration(t *testing.T) {
	w := clockWindow.Microseconds()
	c := newLKClock()
	if _, ok := c.upper(0); ok {
		t.Fatal("calibrated at start")
	}
	c.observeLower(10, 100)
	if _, ok := c.upper(10); ok {
		t.Fatal("calibrated by a lower bound alone")
	}
	c.observeUpper(20, 900)
	c.observeUpper(30, 700)
	c.observeUpper(40, 800)
	if ub, ok := c.upper(50); !ok || ub != 700 {
		t.Fatalf("upper = %d, %v; want the smallest sample, 700", ub, ok)
	}
	// The next window still sees it; the one after does not.
	if ub, ok := c.upper(w + 5); !ok || ub != 700 {
		t.Fatalf("next window: upper = %d, %v", ub, ok)
	}
	c.observeUpper(w+6, 750)
	if ub, ok := c.upper(2*w + 1); !ok || ub != 750 {
		t.Fatalf("two windows on: upper = %d, %v; want only the later sample", ub, ok)
	}
	if _, ok := c.upper(3*w + 1); ok {
		t.Fatal("calibrated by samples three windows old")
	}
	// LiveKit's clock steps ahead: a lower bound at or above the upper
	// one drops the upper samples (three calls until a new one).
	c.observeUpper(4*w, 700)
	c.observeLower(4*w+1, 5_000)
	if _, ok := c.upper(4*w + 2); ok {
		t.Fatal("still calibrated after LiveKit's clock stepped ahead")
	}
	c.observeUpper(4*w+3, 5_400)
	if ub, ok := c.upper(4*w + 4); !ok || ub != 5_400 {
		t.Fatalf("after the step: upper = %d, %v", ub, ok)
	}
	// LiveKit's clock steps back: the new upper sample is below the lower
	// bound, which is dropped; the smaller upper sample holds.
	c.observeUpper(4*w+5, -2_000)
	if ub, ok := c.upper(4*w + 6); !ok || ub != -2_000 {
		t.Fatalf("after a step back: upper = %d, %v", ub, ok)
	}
}

func TestMarks(t *testing.T) {
	for _, c := range []struct {
		stored string // as State.Recreating returns it
		want   Replaced
	}{
		{"RM_old", Replaced{SID: "RM_old"}}, // an older bot's mark
		{"", Replaced{}},                    // no room was there
		{"at:1795983532689", Replaced{After: 1795983532689}},
		{"at:", Replaced{After: math.MaxInt64}},
		{"at:-5", Replaced{After: math.MaxInt64}},
		{"at:12x", Replaced{After: math.MaxInt64}},
	} {
		if got := ParseMark(c.stored); got != c.want {
			t.Errorf("ParseMark(%q) = %+v, want %+v", c.stored, got, c.want)
		}
	}
	for _, p := range []Replaced{{SID: "RM_x"}, {}, {After: 42}} {
		if got := ParseMark(p.Mark()); got != p {
			t.Errorf("round trip of %+v: %+v", p, got)
		}
	}
	old := &LiveRoom{SID: "RM_old", CreatedMs: 1000}
	fresh := &LiveRoom{SID: "RM_new", CreatedMs: 1001}
	for _, c := range []struct {
		p         Replaced
		old, newR bool
	}{
		{Replaced{SID: "RM_old"}, false, true},
		{Replaced{}, true, true},
		{Replaced{After: 1001}, false, true},
		{Replaced{After: 1002}, false, false},
		{Replaced{After: math.MaxInt64}, false, false},
	} {
		if c.p.IsNew(old) != c.old || c.p.IsNew(fresh) != c.newR || c.p.IsNew(nil) {
			t.Errorf("%+v: IsNew(old) %v, IsNew(new) %v", c.p, c.p.IsNew(old), c.p.IsNew(fresh))
		}
	}
}
