// Package report draws loss plots and writes run reports.
package report

import (
	"bytes"
	"fmt"
	"image/color"

	"github.com/lora-dev/lora/pkg/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Point is one (step, value) sample of a curve.
type Point struct {
	Step  float64
	Value float64
}

// LossPlot draws train and eval loss against step into a PNG at path,
// written atomically. Either curve may be empty.
func LossPlot(path, title string, train, eval []Point) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss"
	p.Add(plotter.NewGrid())
	add := func(name string, pts []Point, c color.Color, dots bool) error {
		if len(pts) == 0 {
			return nil
		}
		xy := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			xy[i].X, xy[i].Y = pt.Step, pt.Value
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		l.Color = c
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(name, l)
		if dots {
			s, err := plotter.NewScatter(xy)
			if err != nil {
				return err
			}
			s.Color = c
			p.Add(s)
		}
		return nil
	}
	if err := add("train loss", train, color.RGBA{R: 31, G: 119, B: 180, A: 255}, false); err != nil {
		return err
	}
	if err := add("eval loss", eval, color.RGBA{R: 214, G: 39, B: 40, A: 255}, true); err != nil {
		return err
	}
	p.Legend.Top = true
	w, err := p.WriterTo(8*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}
