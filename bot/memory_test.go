package bot

import (
	"testing"
	"time"
)

func TestIdleTrimReleasesOnceAfterABurst(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tick := func(i int) time.Time { return t0.Add(time.Duration(i) * idleTrimAfter) }
	var tr idleTrim
	steps := []struct {
		jobs uint64
		want bool
		why  string
	}{
		{0, false, "no job since start: nothing to give back"},
		{5, false, "jobs during the tick: busy"},
		{9, false, "still busy"},
		{9, true, "a whole tick without a job after a burst"},
		{9, false, "released already; no job since"},
		{12, false, "busy again"},
		{12, false, "idle again, but within idleTrimEvery of the last release"},
	}
	for i, st := range steps {
		if got := tr.due(tick(i+1), st.jobs); got != st.want {
			t.Fatalf("tick %d (jobs %d): due %v, want %v: %s", i+1, st.jobs, got, st.want, st.why)
		}
	}
	// Once idleTrimEvery has passed since the release, the idle bot
	// releases the second burst's pages.
	if !tr.due(tick(4).Add(idleTrimEvery), 12) {
		t.Fatal("idle after a second burst, idleTrimEvery after the first release: want a release")
	}
}

func TestSeenSetKeysHexIDsByTheirBytes(t *testing.T) {
	s := newSeenSet(10)
	id := "5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36"
	if !s.Add(id) || !s.Contains(id) || s.Add(id) {
		t.Fatal("a hex id is not remembered once")
	}
	// Other strings never collide with an id, nor with each other.
	upper := "5C83DA77AF1DEC6D7289834998AD7AAFBD9E2191396D75EC3CC27F5A77226F36"
	for _, other := range []string{upper, id[:63], id + "0", "", "junk"} {
		if s.Contains(other) {
			t.Fatalf("%q taken for %q", other, id)
		}
		if !s.Add(other) || !s.Contains(other) {
			t.Fatalf("%q not remembered", other)
		}
	}
	if s.Len() != 6 {
		t.Fatalf("len %d, want 6", s.Len())
	}
	if keyOf(id) == keyOf(upper) {
		t.Fatal("an upper-case id has the same key as the id")
	}
}
