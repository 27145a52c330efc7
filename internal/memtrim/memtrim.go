// Package memtrim gives memory that only start-up needed back to the
// operating system once a long-running process is up.
//
// Two kinds of pages stay resident after start-up although the process
// rarely or never touches them again:
//
//   - anonymous heap pages freed by start-up's garbage (configuration
//     parsing, the first connections): Go's scavenger returns them only
//     slowly;
//   - pages of the executable itself (code, read-only data, the function
//     tables) that package initialisation touched once: for nestbot mostly
//     github.com/livekit/protocol's protobuf descriptors and their
//     registration (issue 15: about 12 MB of the idle RSS). They are clean
//     file pages, counted in the process's RSS (RssFile of
//     /proc/<pid>/status) for as long as they stay mapped.
//
// Release does both. What the process needs again comes back on first
// use: the heap from the runtime, the executable's pages from the page
// cache (a minor fault, no disk read while the file is cached).
package memtrim

import (
	"runtime/debug"
)

// Released is what Release gave back.
type Released struct {
	// ExecutableBytes is the size in bytes of the executable's read-only
	// mappings advised away (mapped size, not the resident part of it).
	ExecutableBytes int64
}

// Release returns the heap's free pages to the operating system
// (debug.FreeOSMemory: a full GC, then all free pages) and, on Linux, drops
// this process's mappings of its own executable's read-only pages
// (madvise MADV_DONTNEED on its r-xp and r--p mappings that hold no
// privately changed page; writable mappings and a PIE's relocated RELRO
// are never touched, their private changes would be lost). On other
// systems only the first is done. The error says why the
// executable's pages could not be released; the heap's were in any case.
func Release() (Released, error) {
	debug.FreeOSMemory()
	n, err := releaseExecutable()
	return Released{ExecutableBytes: n}, err
}
