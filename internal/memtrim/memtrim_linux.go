//go:build linux

package memtrim

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// releaseExecutable advises away the read-only, private mappings of the
// file /proc/self/exe names (matched by device and inode, so a binary
// replaced on disk since start is still found) that hold none of the
// process's own changes: a mapping with anonymous pages (a position-
// independent executable's RELRO segment, relocated at load and then made
// read-only) would get the file's unrelocated bytes back, so it is kept.
// It returns the mapped bytes advised.
func releaseExecutable() (int64, error) {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("memtrim: no inode for /proc/self/exe")
	}
	// Read all of smaps first: advising while reading it would change
	// what is left to read.
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	var total int64
	for _, m := range parseSmaps(string(b)) {
		if m.inode != st.Ino || m.dev != uint64(st.Dev) || !m.readOnlyPrivate() || m.anonymousKB != 0 {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("memtrim: madvise %x-%x: %w", m.start, m.end, errno)
		}
		total += int64(m.end - m.start)
	}
	return total, nil
}

// parseSmaps reads /proc/<pid>/smaps (proc(5)): a mapping's line, then
// "Key: value kB" lines about it, of which only Anonymous is kept. A
// mapping without an Anonymous line counts as having some.
func parseSmaps(text string) []mapping {
	var out []mapping
	cur := -1
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\n")
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") && !strings.Contains(k, "-") {
			if k == "Anonymous" && cur >= 0 {
				n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					out[cur].anonymousKB = n
				}
			}
			continue
		}
		if m, ok := parseMapping(line); ok {
			m.anonymousKB = -1 // until its Anonymous line says otherwise
			out = append(out, m)
			cur = len(out) - 1
		} else {
			cur = -1
		}
	}
	return out
}

// mapping is one line of /proc/<pid>/maps (proc(5)).
type mapping struct {
	start, end uintptr
	perms      string // "r-xp": read, write, execute, private or shared
	dev        uint64
	inode      uint64
	// anonymousKB is the mapping's privately changed (copy-on-write)
	// pages from smaps; -1 when unknown.
	anonymousKB int64
}

// readOnlyPrivate is true for a private mapping that cannot be written:
// its pages are the file's, so dropping them loses nothing.
func (m mapping) readOnlyPrivate() bool {
	return len(m.perms) == 4 && m.perms[0] == 'r' && m.perms[1] == '-' && m.perms[3] == 'p'
}

// parseMapping reads "start-end perms offset major:minor inode [path]".
func parseMapping(line string) (mapping, bool) {
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return mapping{}, false
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	major, minor, ok := strings.Cut(fields[3], ":")
	if !ok {
		return mapping{}, false
	}
	maj, err3 := strconv.ParseUint(major, 16, 32)
	mnr, err4 := strconv.ParseUint(minor, 16, 32)
	inode, err5 := strconv.ParseUint(fields[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || end <= start {
		return mapping{}, false
	}
	return mapping{
		start: uintptr(start), end: uintptr(end), perms: fields[1],
		dev: unix.Mkdev(uint32(maj), uint32(mnr)), inode: inode,
	}, true
}
