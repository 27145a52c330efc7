package stack

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Session lets programs that are not tests (cmd/nestbench) start the same
// services the tests do: it stands in for the testing.TB that StartRedis,
// StartLiveKit and StartRelay take.
//
// Fatalf panics with a *Fatal; Run recovers it and returns it as an error.
// Cleanup functions run, last registered first, when Close is called (Run
// calls it). TempDir hands out fresh directories under one root that Close
// removes. Logf writes to the writer given to NewSession.
//
// Only the methods of testing.TB that package stack calls are meaningful;
// the others are harmless no-ops or plain logging.
type Session struct {
	testing.TB // nil; present only to satisfy TB's unexported method

	log  io.Writer
	root string
	ctx  context.Context

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	dirs     int
	closed   bool
}

// Fatal is the panic value of Session.Fatalf.
type Fatal struct{ Msg string }

func (f *Fatal) Error() string { return f.Msg }

// NewSession makes a session whose temporary directories live under a new
// directory in os.TempDir. log receives Logf output (nil discards it).
func NewSession(log io.Writer) (*Session, error) {
	if log == nil {
		log = io.Discard
	}
	root, err := os.MkdirTemp("", "nestbot-stack-")
	if err != nil {
		return nil, err
	}
	return &Session{log: log, root: root, ctx: context.Background()}, nil
}

// Run calls f and turns a Fatalf inside it into an error. It does not Close.
func (s *Session) Run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if fe, ok := r.(*Fatal); ok {
				err = fe
				return
			}
			panic(r)
		}
	}()
	f()
	return nil
}

// Close runs the cleanups (stopping every service started with this
// session) and removes the temporary directories. It is idempotent.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	fns := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(s.log, "stack: cleanup: %v\n", r)
				}
			}()
			fns[i]()
		}()
	}
	_ = os.RemoveAll(s.root)
}

// Cleanup registers f to run at Close.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir returns a new directory under the session's root.
func (s *Session) TempDir() string {
	s.mu.Lock()
	s.dirs++
	dir := filepath.Join(s.root, fmt.Sprintf("%03d", s.dirs))
	s.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.Fatalf("stack: temp dir: %v", err)
	}
	return dir
}

// Fatalf marks the session failed, logs and panics with a *Fatal.
func (s *Session) Fatalf(format string, args ...any) {
	s.Fail()
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintln(s.log, msg)
	panic(&Fatal{Msg: msg})
}

// Fatal is Fatalf with Sprint formatting.
func (s *Session) Fatal(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }

// FailNow panics with a *Fatal.
func (s *Session) FailNow() { s.Fatalf("stack: failed") }

// Errorf marks the session failed and logs.
func (s *Session) Errorf(format string, args ...any) { s.Fail(); s.Logf(format, args...) }

// Error marks the session failed and logs.
func (s *Session) Error(args ...any) { s.Fail(); s.Log(args...) }

// Fail marks the session failed; service logs are then tailed at Close.
func (s *Session) Fail() { s.mu.Lock(); s.failed = true; s.mu.Unlock() }

// Failed reports whether Fail, Error or Fatal was called.
func (s *Session) Failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }

// Helper does nothing.
func (s *Session) Helper() {}

// Logf writes a line to the session's log.
func (s *Session) Logf(format string, args ...any) { fmt.Fprintf(s.log, format+"\n", args...) }

// Log writes a line to the session's log.
func (s *Session) Log(args ...any) { fmt.Fprintln(s.log, args...) }

// Name is "session".
func (s *Session) Name() string { return "session" }

// Setenv sets an environment variable for the rest of the process.
func (s *Session) Setenv(key, value string) { _ = os.Setenv(key, value) }

// Chdir is not supported and fails the session.
func (s *Session) Chdir(string) { s.Fatalf("stack: Session.Chdir is not supported") }

// Skip, SkipNow and Skipf fail the session: a program cannot skip.
func (s *Session) Skip(args ...any)                 { s.Fatal(args...) }
func (s *Session) SkipNow()                         { s.Fatalf("stack: skipped") }
func (s *Session) Skipf(format string, args ...any) { s.Fatalf(format, args...) }

// Skipped is always false.
func (s *Session) Skipped() bool { return false }

// Context is context.Background.
func (s *Session) Context() context.Context { return s.ctx }

// Output is the session's log.
func (s *Session) Output() io.Writer { return s.log }

// Attr logs the attribute.
func (s *Session) Attr(key, value string) { s.Logf("%s=%s", key, value) }

// ArtifactDir is a fresh TempDir.
func (s *Session) ArtifactDir() string { return s.TempDir() }
