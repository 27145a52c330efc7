package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// WriteJSON writes res to path, creating its directory.
func WriteJSON(path string, res *Results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// PrintTable writes res as a Markdown table, one column per variant.
func PrintTable(w io.Writer, res *Results) {
	fmt.Fprintf(w, "machine: %d cores, %s, %s, linux %s\n", res.Machine.NProc, res.Machine.CPU, res.Machine.GoVersion, res.Machine.Kernel)
	fmt.Fprintf(w, "bot limits: %s\n\n", res.Settings.BotLimits)
	head := "| figure |"
	sep := "| --- |"
	for _, r := range res.Runs {
		name := r.Variant
		if r.Round > 1 || len(res.Runs) > 2 {
			name += fmt.Sprintf(" #%d", r.Round)
		}
		if r.Profile != "" {
			name += " (pprof)"
		}
		head += " " + name + " |"
		sep += " ---: |"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	row := func(label string, f func(r *Run) string) {
		line := "| " + label + " |"
		for i := range res.Runs {
			line += " " + f(&res.Runs[i]) + " |"
		}
		fmt.Fprintln(w, line)
	}
	dist := func(l *Latency) string {
		if l.OK == 0 {
			return "no answers"
		}
		return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", l.P50, l.P90, l.P99, l.Max)
	}
	errs := func(l *Latency) string {
		s := fmt.Sprintf("%d/%d", l.N-l.OK, l.N)
		if len(l.Errors) > 0 {
			var ks []string
			for k, v := range l.Errors {
				ks = append(ks, fmt.Sprintf("%s=%d", k, v))
			}
			sort.Strings(ks)
			s += " (" + strings.Join(ks, ", ") + ")"
		}
		return s
	}
	pq := func(v [2]float64) string { return fmt.Sprintf("%.2f / %.2f", v[0], v[1]) }
	row("load average (1 min) at start / end", func(r *Run) string { return fmt.Sprintf("%.2f / %.2f", r.LoadAvg[0], r.LoadAvg[1]) })
	row("floor: 2 relay hops + LK delete + create + Redis, ms", func(r *Run) string {
		f := r.Floor
		return fmt.Sprintf("%.2f = %.2f + %.2f + %.2f + %.2f", f.Ms, f.RelayHops, f.LKDelete, f.LKCreate, f.Redis)
	})
	row("p50 / floor: in place, recreate", func(r *Run) string { return fmt.Sprintf("%.2f, %.2f", r.Floor.InPlace, r.Floor.Recreate) })
	row("Redis PING, ms p50 / p99", func(r *Run) string { return pq(r.Deps.RedisPing) })
	row("LiveKit ListRooms / DeleteRoom / CreateRoom, ms p50", func(r *Run) string {
		return fmt.Sprintf("%.2f / %.2f / %.2f", r.Deps.LKList[0], r.Deps.LKDelete[0], r.Deps.LKCreate[0])
	})
	row("one relay hop (publish → event back), ms p50 / p90 / p99 / max", func(r *Run) string { return dist(&r.RelayHop) })
	row("one relay hop: relay1's CPU ms per hop / idle relays' CPU ms per s", func(r *Run) string {
		if r.RelayHop.CPU == nil {
			return "-"
		}
		return fmt.Sprintf("%.3f / %.1f", r.RelayHop.CPU["relay1"], r.Idle["relay1"]+r.Idle["relay2"])
	})
	bot := func(l *Latency) string {
		if l.BotP50 == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f / %.2f / %.2f", l.BotP50, l.BotP90, l.BotP99)
	}
	row("restart in place, e2e ms p50 / p90 / p99 / max", func(r *Run) string { return dist(&r.InPlace) })
	row("restart in place, bot's own ms p50 / p90 / p99", func(r *Run) string { return bot(&r.InPlace) })
	row("restart in place, errors", func(r *Run) string { return errs(&r.InPlace) })
	row("restart in place, bot CPU ms/restart", func(r *Run) string { return fmt.Sprintf("%.3f", r.InPlace.CPUPerReq) })
	cpu := func(l *Latency) string {
		if l.CPU == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f = %.2f", l.CPU["nestbot"], l.CPU["livekit"], l.CPU["relays"], l.CPU["redis"], l.CPU["stack"])
	}
	calls := func(l *Latency) string {
		c := l.Calls
		if c == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f (D %.2f C %.2f L %.2f) / %.2f / %.2f", c.LiveKit, c.LiveKitByMethod["DeleteRoom"], c.LiveKitByMethod["CreateRoom"], c.LiveKitByMethod["ListRooms"], c.RedisRoundTrips, c.RelayREQs)
	}
	stages := func(l *Latency) string {
		if len(l.Stages) == 0 {
			return "-"
		}
		var parts []string
		for _, st := range stageOrder {
			parts = append(parts, fmt.Sprintf("%.2f", l.Stages[st]))
		}
		return strings.Join(parts, " / ")
	}
	relays := func(l *Latency) string {
		if _, ok := l.CPU["relays_bot"]; !ok {
			return "-"
		}
		return fmt.Sprintf("%.2f = %.2f + %.2f + %.2f", l.CPU["relays"], l.CPU["relays_client"], l.CPU["relays_idle"], l.CPU["relays_bot"])
	}
	const relaysLabel = "relays' CPU ms/restart = requester's own + idle + the bot's"
	const stagesLabel = "bot's steps, mean ms: queue / claim / work / build / store / send"
	const cpuLabel = "CPU ms/restart: nestbot / LiveKit / relays / Redis = stack"
	const callsLabel = "per restart: LiveKit calls (Delete, Create, List) / Redis round trips / relay REQs"
	row("restart in place, "+cpuLabel, func(r *Run) string { return cpu(&r.InPlace) })
	row("restart in place, "+relaysLabel, func(r *Run) string { return relays(&r.InPlace) })
	row("restart in place, "+callsLabel, func(r *Run) string { return calls(&r.InPlace) })
	row("restart in place, "+stagesLabel, func(r *Run) string { return stages(&r.InPlace) })
	row("recreate new ID, e2e ms p50 / p90 / p99 / max", func(r *Run) string { return dist(&r.Recreate) })
	row("recreate new ID, bot's own ms p50 / p90 / p99", func(r *Run) string { return bot(&r.Recreate) })
	row("recreate new ID, errors", func(r *Run) string { return errs(&r.Recreate) })
	row("recreate new ID, bot CPU ms/restart", func(r *Run) string { return fmt.Sprintf("%.3f", r.Recreate.CPUPerReq) })
	row("recreate new ID, "+cpuLabel, func(r *Run) string { return cpu(&r.Recreate) })
	row("recreate new ID, "+relaysLabel, func(r *Run) string { return relays(&r.Recreate) })
	row("recreate new ID, "+callsLabel, func(r *Run) string { return calls(&r.Recreate) })
	row("recreate new ID, "+stagesLabel, func(r *Run) string { return stages(&r.Recreate) })
	for i := range res.Settings.Concurrency {
		c := res.Settings.Concurrency[i]
		row(fmt.Sprintf("throughput c=%d, restarts/s (errors)", c), func(r *Run) string {
			if i >= len(r.Throughput) {
				return "-"
			}
			t := &r.Throughput[i]
			return fmt.Sprintf("%.0f (%d)", t.PerSecond, t.N-t.OK)
		})
		row(fmt.Sprintf("throughput c=%d, e2e ms p50 / p99", c), func(r *Run) string {
			if i >= len(r.Throughput) {
				return "-"
			}
			t := &r.Throughput[i]
			return fmt.Sprintf("%.2f / %.2f", t.P50, t.P99)
		})
		row(fmt.Sprintf("throughput c=%d, %s", c, cpuLabel), func(r *Run) string {
			if i >= len(r.Throughput) {
				return "-"
			}
			return cpu(&r.Throughput[i])
		})
		row(fmt.Sprintf("throughput c=%d, %s", c, relaysLabel), func(r *Run) string {
			if i >= len(r.Throughput) {
				return "-"
			}
			return relays(&r.Throughput[i])
		})
		row(fmt.Sprintf("throughput c=%d, %s", c, stagesLabel), func(r *Run) string {
			if i >= len(r.Throughput) {
				return "-"
			}
			return stages(&r.Throughput[i])
		})
	}
	if res.Settings.Soak > 0 {
		row(fmt.Sprintf("soak: %d restarts at c=%d, errors", res.Settings.Soak, res.Settings.SoakConcurrency), func(r *Run) string { return errs(&r.Soak.Latency) })
		row("soak: bot CPU ms/restart", func(r *Run) string { return fmt.Sprintf("%.3f", r.Soak.CPUPerReq) })
		row("soak: restarts/s", func(r *Run) string { return fmt.Sprintf("%.0f", r.Soak.PerSecond) })
		row("soak: "+cpuLabel, func(r *Run) string { return cpu(&r.Soak.Latency) })
		row("soak: "+relaysLabel, func(r *Run) string { return relays(&r.Soak.Latency) })
		row("soak: "+callsLabel, func(r *Run) string { return calls(&r.Soak.Latency) })
		row("soak: "+stagesLabel, func(r *Run) string { return stages(&r.Soak.Latency) })
	}
	row("RSS idle, MB", func(r *Run) string { return fmt.Sprintf("%.1f", r.Soak.IdleRSS) })
	if res.Settings.Soak > 0 {
		row("RSS peak during soak (sampled / VmHWM), MB", func(r *Run) string { return fmt.Sprintf("%.1f / %.1f", r.Soak.PeakRSS, r.Soak.HWM) })
		row("RSS 2 s after soak, MB (× idle)", func(r *Run) string { return fmt.Sprintf("%.1f (%.2f×)", r.Soak.AfterRSS, r.Soak.AfterRatio) })
		row(fmt.Sprintf("RSS %s after soak, MB (× idle)", settleTime), func(r *Run) string {
			return fmt.Sprintf("%.1f (%.2f×)", r.Soak.SettledRSS, r.Soak.SettledRatio)
		})
	}
	if res.Settings.Flood > 0 {
		row(fmt.Sprintf("flood: junk sent, events/s (target %d)", res.Settings.Flood), func(r *Run) string {
			return fmt.Sprintf("%d, %.0f/s", r.Flood.JunkSent, r.Flood.JunkPerSec)
		})
		row("flood: restart in place, e2e ms p50 / p90 / p99 / max", func(r *Run) string { return dist(&r.Flood.Latency) })
		row("flood: restart in place, bot's own ms p50 / p90 / p99", func(r *Run) string { return bot(&r.Flood.Latency) })
		row("flood: restart in place, errors", func(r *Run) string { return errs(&r.Flood.Latency) })
		row("flood: bot CPU ms per restart, junk included", func(r *Run) string { return fmt.Sprintf("%.3f", r.Flood.CPUPerReq) })
		row("flood: RSS peak, MB", func(r *Run) string { return fmt.Sprintf("%.1f", r.Flood.PeakRSS) })
	}
	row("bot log warnings / errors", func(r *Run) string { return fmt.Sprintf("%d / %d", r.BotLog.Warn, r.BotLog.Error) })
	if res.Settings.Flood > 0 {
		row("flood: bot log warnings (overload reports) / errors", func(r *Run) string {
			return fmt.Sprintf("%d / %d", r.BotLog.FloodWarn, r.BotLog.FloodError)
		})
	}
	fmt.Fprintln(w)
	for _, r := range res.Runs {
		fmt.Fprintf(w, "targets, %s #%d (bot %s, tags %q, cgo %s; load average %.2f–%.2f):\n", r.Variant, r.Round, r.Bot.Path, r.Bot.Tags, r.Bot.CGO, r.LoadAvg[0], r.LoadAvg[1])
		for _, t := range r.Targets {
			mark := "MET "
			if !t.Met {
				mark = "MISS"
			}
			fmt.Fprintf(w, "  %s %-34s want %-18s got %.2f\n", mark, t.Name, t.Want, t.Got)
		}
		if len(r.BotEnv) > 0 {
			fmt.Fprintf(w, "  bot environment: %s\n", strings.Join(r.BotEnv, " "))
		}
		if r.Profile != "" {
			fmt.Fprintf(w, "  CPU profile: %s, heap profile at exit: %s\n", r.Profile, r.HeapProfile)
		}
	}
}
