//go:build faults

package e2e

import (
	"bufio"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"

	"github.com/nestbot/nestbot/internal/flood"
)

// Hostile input (issue 9): what strangers send must never take the bot
// down. These tests run `nestbot run` as a process, so that "still up" is
// the process itself, not a goroutine of the test.

// scrape reads /metrics of a bot process and sums the samples of name
// whose labels contain every pair of want (Prometheus text format).
func scrape(t *testing.T, addr, name string, want map[string]string) float64 {
	t.Helper()
	code, body := httpGet("http://" + addr + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, truncate(body, 200))
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another series whose name starts with name
		}
		ok := true
		for k, v := range want {
			if !strings.Contains(rest, k+`="`+v+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += n
	}
	return sum
}

// alive fails the test when the bot process has exited.
func (p *botProc) alive(t *testing.T, when string) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("the bot process exited %s:\n%s", when, tail(p.log(), 40))
	default:
	}
	if err := syscall.Kill(p.pid(), 0); err != nil {
		t.Fatalf("the bot process is gone %s: %v", when, err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestFaultPoisonedDMs: every poisoned direct message of internal/flood
// (the NIP-04 payloads that crashed the bot, and NIP-17 wraps broken at
// each layer) is published to the bot's relay, then a real restart request.
// The process is still up, the request is answered, every NIP-04 poison
// was dropped as malformed, and nothing needed the panic guard. Then the
// bot is restarted: the relay still holds the poisons and the new process
// reads them again (they are within max_dm_age); it stays up too and
// answers the next request.
func TestFaultPoisonedDMs(t *testing.T) {
	w := newWorld(t, 1)
	cfg := w.cfg
	cfg.HTTP.Listen = freeAddr(t)
	a := w.startBotProc(cfg, "bot-a")

	poisons, err := flood.PoisonDMs(w.botPub())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range poisons {
		w.publish(p.Event)
	}
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	ex := w.ask(host, coord(host.pk, id), "restart")
	if r := restartResult(t, ex.Payload); r.RoomID != id {
		t.Fatalf("after the poisons: %+v", r)
	}
	nip04 := float64(len(flood.PoisonNIP04))
	waitFor(t, "every NIP-04 poison dropped as malformed", func() bool {
		return scrape(t, cfg.HTTP.Listen, "nestbot_events_dropped_total", map[string]string{"reason": "malformed"}) >= nip04
	})
	a.alive(t, "after the poisons")
	if n := scrape(t, cfg.HTTP.Listen, "nestbot_panics_total", nil); n != 0 {
		t.Fatalf("%v panics recovered: validation should have stopped every poison before a library call", n)
	}

	// A restarted bot reads the same poisons again from the relay.
	a.stop()
	cfg.HTTP.Listen = freeAddr(t)
	b := w.startBotProc(cfg, "bot-b")
	waitFor(t, "the restarted bot read the poisons again", func() bool {
		return scrape(t, cfg.HTTP.Listen, "nestbot_events_dropped_total", map[string]string{"reason": "malformed"}) >= nip04
	})
	st := w.ask(host, coord(host.pk, id), "status")
	if st.Payload.Error != nil {
		t.Fatalf("status after the restart: %s %s", st.Payload.Error.Code, st.Payload.Error.Message)
	}
	b.alive(t, "after reading the poisons again")
	if strings.Contains(a.log()+b.log(), "goroutine ") {
		t.Fatal("a goroutine dump in the bot's log")
	}
	t.Logf("FIGURES poisoned-dms: poisons=%d (nip04=%d nip17=%d) crashes=0 panics_recovered=0 real_requests_answered=2 restarts_survived=1",
		len(poisons), len(flood.PoisonNIP04), len(poisons)-len(flood.PoisonNIP04))
}
