package testlog

import (
	"strings"
	"sync"
	"testing"
)

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("x\n"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
}

func TestBufferLines(t *testing.T) {
	var b Buffer
	b.Write([]byte("level=INFO msg=a room=1\nlevel=WARN msg=a room=2\nlevel=WARN msg=b\n"))
	for _, c := range []struct {
		subs []string
		want int
	}{
		{[]string{"msg=a"}, 2},
		{[]string{"msg=a", "level=WARN"}, 1},
		{[]string{"msg=c"}, 0},
	} {
		if got := b.Lines(c.subs...); got != c.want {
			t.Errorf("Lines(%q) = %d, want %d", c.subs, got, c.want)
		}
	}
}
