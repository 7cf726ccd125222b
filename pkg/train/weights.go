package train

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend"
)

// layout is the q/k row order of the model's weights (and so of the
// trainer's tensors).
func (t *Trainer) layout() adapter.Layout {
	if t.M.QKPermuted {
		return adapter.LayoutGGUF
	}
	return adapter.LayoutHF
}

// state reads the trainable tensors (which = p, m or v) back from the device
// as an adapter in the model's layout (moments use the same shape).
func (t *Trainer) state(which byte) (*adapter.Adapter, error) {
	w := &adapter.Adapter{Rank: t.Opts.Rank, Alpha: t.Opts.Alpha, RSLoRA: t.Opts.RSLoRA, Dropout: t.Opts.Dropout,
		Arch: t.M.Config.Arch, Layout: t.layout(), Weights: map[adapter.Key]*adapter.Weight{}}
	seen := map[string]bool{}
	for _, p := range t.params {
		src := pick3(p, which)
		buf := make([]float32, src.Len())
		if err := t.be.Read(src, buf); err != nil {
			return nil, fmt.Errorf("read %s: %w", p.name, err)
		}
		k := adapter.Key{Layer: p.layer, Module: p.mod}
		lw := w.Weights[k]
		if lw == nil {
			lin := t.M.Layers[p.layer].Linear[p.mod]
			lw = &adapter.Weight{Rank: t.Opts.Rank, In: lin.In, Out: lin.Out}
			w.Weights[k] = lw
		}
		if p.isB {
			lw.B = buf
		} else {
			lw.A = buf
		}
		if !seen[p.mod.String()] {
			seen[p.mod.String()] = true
			w.Targets = append(w.Targets, p.mod.String())
		}
	}
	return w, nil
}

func pick3(p param, which byte) backend.Tensor {
	switch which {
	case 'm':
		return p.m
	case 'v':
		return p.v
	}
	return p.p
}

// Adapter returns the current adapter weights, in the model's layout.
func (t *Trainer) Adapter() (*adapter.Adapter, error) { return t.state('p') }

// load writes host tensors (which = p, m or v) to the device; w must be in
// the model's layout.
func (t *Trainer) load(which byte, w *adapter.Adapter) error {
	if w.Layout != t.layout() {
		w = w.Convert(t.layout(), t.M.Config)
	}
	for _, p := range t.params {
		dst := pick3(p, which)
		lw := w.Weights[adapter.Key{Layer: p.layer, Module: p.mod}]
		if lw == nil {
			return fmt.Errorf("%s is missing", p.name)
		}
		src := lw.A
		if p.isB {
			src = lw.B
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
