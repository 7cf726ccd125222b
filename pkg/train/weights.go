package train

import (
	"fmt"
	"sort"

	"github.com/lora-dev/lora/pkg/model"
)

// Site names one adapted linear: a module of a layer.
type Site struct {
	Layer  int
	Module model.Module
}

// Weights are LoRA adapter weights on the host, in the model's layout (for a
// GGUF llama base, q/k B rows are in llama.cpp's permuted order; the adapter
// writers un-permute them for PEFT).
type Weights struct {
	Rank   int
	Alpha  float64
	RSLoRA bool
	A, B   map[Site][]float32 // A [rank, in], B [out, rank], row-major
}

// Get returns the A and B of a site.
func (w *Weights) Get(layer int, mod model.Module) (a, b []float32, ok bool) {
	s := Site{layer, mod}
	a, okA := w.A[s]
	b, okB := w.B[s]
	return a, b, okA && okB
}

// Sites lists the adapted sites in a fixed order (layer, then module).
func (w *Weights) Sites() []Site {
	out := make([]Site, 0, len(w.A))
	for s := range w.A {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Layer != out[j].Layer {
			return out[i].Layer < out[j].Layer
		}
		return out[i].Module < out[j].Module
	})
	return out
}

// Targets lists the adapted modules (sorted, unique).
func (w *Weights) Targets() []model.Module {
	seen := map[model.Module]bool{}
	var out []model.Module
	for _, s := range w.Sites() {
		if !seen[s.Module] {
			seen[s.Module] = true
			out = append(out, s.Module)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// state reads the trainable tensors (which = p, m or v) back from the device.
func (t *Trainer) state(which byte) (*Weights, error) {
	w := &Weights{Rank: t.Opts.Rank, Alpha: t.Opts.Alpha, RSLoRA: t.Opts.RSLoRA, A: map[Site][]float32{}, B: map[Site][]float32{}}
	for _, p := range t.params {
		src := p.p
		switch which {
		case 'm':
			src = p.m
		case 'v':
			src = p.v
		}
		buf := make([]float32, src.Len())
		if err := t.be.Read(src, buf); err != nil {
			return nil, fmt.Errorf("read %s: %w", p.name, err)
		}
		if p.isB {
			w.B[Site{p.layer, p.mod}] = buf
		} else {
			w.A[Site{p.layer, p.mod}] = buf
		}
	}
	return w, nil
}

// Adapter returns the current adapter weights.
func (t *Trainer) Adapter() (*Weights, error) { return t.state('p') }

// load writes host tensors (which = p, m or v) to the device.
func (t *Trainer) load(which byte, w *Weights) error {
	for _, p := range t.params {
		dst := p.p
		switch which {
		case 'm':
			dst = p.m
		case 'v':
			dst = p.v
		}
		src := w.A[Site{p.layer, p.mod}]
		if p.isB {
			src = w.B[Site{p.layer, p.mod}]
		}
		if len(src) != dst.Len() {
			return fmt.Errorf("%s: have %d values, want %d", p.name, len(src), dst.Len())
		}
		if err := t.be.Write(dst, src); err != nil {
			return err
		}
	}
	return nil
}
