//go:build linux

package memtrim

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// probe lives in the executable's writable data (it has a non-zero
// initial value); Release must keep the change made to it below.
var probe = [3 * 4096]byte{1}

// rssFile reads RssFile of /proc/self/status in kB.
func rssFile(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

func TestReleaseDropsExecutablePagesAndKeepsWritableData(t *testing.T) {
	probe[4096+7] = 42 // a private change the file does not have
	before := rssFile(t)
	r, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if r.ExecutableBytes <= 0 {
		t.Fatalf("released %d bytes of the executable; want its read-only mappings", r.ExecutableBytes)
	}
	// The test binary's init touched a few MB of its own pages; most go,
	// what this test runs comes back.
	if after >= before {
		t.Fatalf("RssFile %d kB before Release, %d kB after: want less", before, after)
	}
	if probe[0] != 1 || probe[4096+7] != 42 {
		t.Fatalf("writable data changed by Release: probe[0]=%d probe[4103]=%d, want 1 and 42", probe[0], probe[4096+7])
	}
	t.Logf("RssFile %d -> %d kB; %d bytes of mappings advised", before, after, r.ExecutableBytes)
}

func TestParseMapping(t *testing.T) {
	for _, tc := range []struct {
		line     string
		ok, ropr bool
	}{
		{"00400000-013f2000 r-xp 00000000 fd:01 1234 /tmp/bot", true, true},
		{"013f2000-0276e000 r--p 00ff2000 fd:01 1234 /tmp/bot", true, true},
		{"0276e000-02800000 rw-p 0236e000 fd:01 1234 /tmp/bot", true, false},
		{"7f00-8f00 r--s 00000000 00:05 9 /dev/shm/x", true, false},
		{"02800000-0484a000 rw-p 00000000 00:00 0", true, false},
		{"garbage", false, false},
		{"8000-4000 r-xp 00000000 fd:01 1234 /tmp/bot", false, false},
		{"zz-4000 r-xp 00000000 fd:01 1234 /tmp/bot", false, false},
	} {
		m, ok := parseMapping(tc.line)
		if ok != tc.ok || (ok && m.readOnlyPrivate() != tc.ropr) {
			t.Errorf("%q: ok %v read-only private %v; want %v %v", tc.line, ok, ok && m.readOnlyPrivate(), tc.ok, tc.ropr)
		}
	}
	m, _ := parseMapping("00400000-013f2000 r-xp 00000000 fd:01 1234 /tmp/bot")
	if m.start != 0x400000 || m.end != 0x13f2000 || m.inode != 1234 {
		t.Errorf("parsed %+v", m)
	}
}

func TestParseSmapsKeepsChangedPages(t *testing.T) {
	text := `00400000-013f2000 r-xp 00000000 fd:01 1234 /tmp/bot
Size:              16328 kB
Rss:               12616 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw
013f2000-0276e000 r--p 00ff2000 fd:01 1234 /tmp/bot
Size:              19952 kB
Anonymous:           412 kB
VmFlags: rd mr mw me dw
0276e000-02800000 rw-p 0236e000 fd:01 1234 /tmp/bot
Anonymous:           520 kB
7f5b3d434000-7f5b3d4e6000 r--p 00000000 fd:01 99 /usr/lib/x.so
`
	ms := parseSmaps(text)
	if len(ms) != 4 {
		t.Fatalf("%d mappings, want 4: %+v", len(ms), ms)
	}
	for i, want := range []int64{0, 412, 520, -1} {
		if ms[i].anonymousKB != want {
			t.Errorf("mapping %d: Anonymous %d kB, want %d", i, ms[i].anonymousKB, want)
		}
	}
}
