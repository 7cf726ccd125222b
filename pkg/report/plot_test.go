package report

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestLossPlotWritesPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	train := []Point{{1, 3}, {2, 2.5}, {3, 2.2}, {4, 2.0}}
	eval := []Point{{2, 2.7}, {4, 2.3}}
	if err := LossPlot(path, "alpaca-chat", train, eval); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 200 {
		t.Fatalf("tiny image %v", b)
	}
	// the plot is not blank: some pixel has the train-curve blue
	found := false
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y && !found; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 < 60 && g>>8 > 100 && g>>8 < 140 && b>>8 > 160 {
				found = true
				break
			}
		}
	}
	if !found {
		t.Error("no train curve pixels in the plot")
	}
}
