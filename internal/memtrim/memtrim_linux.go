//go:build linux

package memtrim

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// releaseExecutable advises away the read-only, private mappings of the
// file /proc/self/exe names (matched by device and inode, so a binary
// replaced on disk since start is still found). It returns the mapped
// bytes advised.
func releaseExecutable() (int64, error) {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("memtrim: no inode for /proc/self/exe")
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMapping(sc.Text())
		if !ok || m.inode != st.Ino || m.dev != uint64(st.Dev) || !m.readOnlyPrivate() {
			continue
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("memtrim: madvise %x-%x: %w", m.start, m.end, errno)
		}
		total += int64(m.end - m.start)
	}
	if err := sc.Err(); err != nil {
		return total, fmt.Errorf("memtrim: /proc/self/maps: %w", err)
	}
	return total, nil
}

// mapping is one line of /proc/<pid>/maps (proc(5)).
type mapping struct {
	start, end uintptr
	perms      string // "r-xp": read, write, execute, private or shared
	dev        uint64
	inode      uint64
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
