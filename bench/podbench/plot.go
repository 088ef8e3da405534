package main

import (
	"image/color"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// writePlot draws the startup latency distributions: a box (median,
// quartiles, whiskers) and every sample, per pod and tool, on a log scale.
func writePlot(r *results, file string) error {
	series := []struct {
		label, metric, tool string
	}{
		{"1 container\npodrun run", mStart1, podrunTool},
		{"1 container\npodrun apply", mDStart1, podrunTool},
		{"1 container\npodman", mStart1, podmanTool},
		{"init+2 sidecars+app\nrun: running", mSidecarsRunning, podrunTool},
		{"init+2 sidecars+app\nrun: Ready", mSidecarsReady, podrunTool},
		{"init+2 sidecars+app\napply: running", mDSidecarsRunning, podrunTool},
		{"init+2 sidecars+app\napply: Ready (API)", mDSidecarsReady, podrunTool},
		{"init+3 plain ctrs\npodman: running", mSidecarsRunning, podmanTool},
	}
	p := plot.New()
	p.Title.Text = "Pod startup latency: command → containers running (each dot is a run)"
	p.Y.Label.Text = "ms (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	rng := rand.New(rand.NewPCG(1, 2)) // fixed jitter: the same data draws the same picture
	var names []string
	for _, s := range series {
		v := r.Samples[s.metric][s.tool]
		if len(v) == 0 {
			continue
		}
		x := float64(len(names))
		names = append(names, s.label)
		box, err := plotter.NewBoxPlot(vg.Points(36), x, plotter.Values(v))
		if err != nil {
			return err
		}
		col := color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
		if s.tool == podmanTool {
			col = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
		}
		box.BoxStyle.Color = col
		pts := make(plotter.XYs, len(v))
		for i, y := range v {
			pts[i] = plotter.XY{X: x + (rng.Float64()-0.5)*0.3, Y: y}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: color.NRGBA{R: col.R, G: col.G, B: col.B, A: 0x90}, Radius: vg.Points(2), Shape: draw.CircleGlyph{}}
		p.Add(box, sc)
	}
	if len(names) == 0 {
		slog.Info("no startup samples: no plot")
		return nil
	}
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	return p.Save(vg.Length(140*len(names))+vg.Points(80), 11*vg.Centimeter, file)
}

// logTicks labels 1, 2 and 5 times each power of ten: the spread here is
// often less than a decade, where plot.LogTicks would label nothing.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for p := math.Pow10(int(math.Floor(math.Log10(lo)))); p <= hi; p *= 10 {
		for i := 1; i < 10; i++ {
			v := p * float64(i)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if i == 1 || i == 2 || i == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
