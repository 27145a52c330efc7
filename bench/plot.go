package bench

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// PlotCDFs draws, for every run of res, the empirical distribution (CDF)
// of the end-to-end latency of each scenario (restart in place, recreate,
// each throughput level, soak, flood) on one log-scaled time axis, with
// the run's floor as a vertical line, and writes it as SVG next to
// jsonPath: <jsonPath without .json>.<n>-<variant>.svg. It returns the
// files written.
func PlotCDFs(jsonPath string, res *Results) ([]string, error) {
	base := strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath))
	var files []string
	for i := range res.Runs {
		r := &res.Runs[i]
		p, err := cdfPlot(r)
		if err != nil {
			return files, err
		}
		name := fmt.Sprintf("%s.%d-%s.svg", base, i+1, strings.ReplaceAll(r.Variant, "/", "_"))
		if err := p.Save(8*vg.Inch, 5*vg.Inch, name); err != nil {
			return files, fmt.Errorf("plot %s: %w", name, err)
		}
		files = append(files, name)
	}
	return files, nil
}

func cdfPlot(r *Run) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("nestbot %s (round %d): end-to-end latency, load average %.1f–%.1f", r.Variant, r.Round, r.LoadAvg[0], r.LoadAvg[1])
	p.X.Label.Text = "ms (log scale)"
	p.Y.Label.Text = "fraction of requests answered within"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Millimeter
	p.Legend.YOffs = 2 * vg.Millimeter

	type series struct {
		name string
		l    *Latency
	}
	all := []series{
		{fmt.Sprintf("restart in place, c=1 (p50 %.1f)", r.InPlace.P50), &r.InPlace},
		{fmt.Sprintf("recreate new ID, c=1 (p50 %.1f)", r.Recreate.P50), &r.Recreate},
	}
	for i := range r.Throughput {
		t := &r.Throughput[i]
		all = append(all, series{fmt.Sprintf("in place, c=%d (p50 %.1f)", t.Concurrency, t.P50), t})
	}
	if r.Soak.OK > 0 {
		all = append(all, series{fmt.Sprintf("soak %d, c=%d (p50 %.1f)", r.Soak.N, r.Soak.Concurrency, r.Soak.P50), &r.Soak.Latency})
	}
	if r.Flood.OK > 0 {
		all = append(all, series{fmt.Sprintf("in place under flood (p50 %.1f)", r.Flood.P50), &r.Flood.Latency})
	}
	lo, hi := 0.0, 0.0
	for k, s := range all {
		if len(s.l.Samples) == 0 {
			continue
		}
		xs := slices.Clone(s.l.Samples)
		slices.Sort(xs)
		pts := make(plotter.XYs, len(xs))
		for j, x := range xs {
			pts[j] = plotter.XY{X: max(x, 0.01), Y: float64(j+1) / float64(len(xs))}
		}
		if lo == 0 || xs[0] < lo {
			lo = xs[0]
		}
		hi = max(hi, xs[len(xs)-1])
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = palette[k%len(palette)]
		line.Width = vg.Points(1.5)
		line.StepStyle = plotter.PostStep
		p.Add(line)
		p.Legend.Add(s.name, line)
	}
	if f := r.Floor.Ms; f > 0 {
		fl, err := plotter.NewLine(plotter.XYs{{X: f, Y: 0}, {X: f, Y: 1}})
		if err != nil {
			return nil, err
		}
		fl.Color = color.Black
		fl.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(fl)
		p.Legend.Add(fmt.Sprintf("floor %.2f ms", f), fl)
		lo = min(lo, f)
		if lo == 0 {
			lo = f
		}
	}
	if lo > 0 && hi > lo {
		p.X.Min, p.X.Max = lo*0.8, hi*1.2
	}
	p.Legend.ThumbnailWidth = 0.4 * vg.Inch
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	return p, nil
}

// palette tells the scenarios apart (colour-blind safe, Okabe–Ito).
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255},
	color.RGBA{213, 94, 0, 255},
	color.RGBA{0, 158, 115, 255},
	color.RGBA{204, 121, 167, 255},
	color.RGBA{230, 159, 0, 255},
	color.RGBA{86, 180, 233, 255},
	color.RGBA{120, 120, 120, 255},
}
