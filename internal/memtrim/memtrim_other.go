//go:build !linux

package memtrim

// releaseExecutable does nothing where /proc/self/maps does not exist.
func releaseExecutable() (int64, error) { return 0, nil }
