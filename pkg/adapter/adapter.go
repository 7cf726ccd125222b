// Package adapter reads, writes and applies LoRA adapters (PEFT directories and GGUF LoRA files).
package adapter

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/lora-dev/lora/pkg/model"
)

// Layout says how the rows of q_proj/k_proj lora_B matrices are ordered.
type Layout int

const (
	// LayoutHF is the Hugging Face / PEFT order (RoPE pairs i and i+d/2).
	LayoutHF Layout = iota
	// LayoutGGUF is llama.cpp's order for llama-style GGUF files: rows permuted
	// by convert_hf_to_gguf.py's permute (see model.PermuteQK).
	LayoutGGUF
)

// Key names one adapted linear.
type Key struct {
	Layer  int
	Module model.Module
}

func (k Key) String() string { return fmt.Sprintf("layer %d %s", k.Layer, k.Module) }

// Weight is one LoRA pair: A [Rank, In] and B [Out, Rank], row-major float32.
type Weight struct {
	A, B          []float32
	Rank, In, Out int
}

// Adapter is a LoRA adapter held in host memory.
type Adapter struct {
	Rank      int     // r from the config (a weight may differ via PEFT rank_pattern)
	Alpha     float64 // lora_alpha
	RSLoRA    bool    // scale alpha/sqrt(r) instead of alpha/r
	Dropout   float64 // lora_dropout (used only while training)
	Targets   []string
	BaseModel string // base_model_name_or_path
	Name      string // the adapter's name (GGUF general.name), optional
	Arch      string // base architecture, when known
	// Layout of the q/k lora_B rows in Weights.
	Layout  Layout
	Weights map[Key]*Weight
}

// Scale is the factor on the LoRA product for a weight of rank r.
func (a *Adapter) Scale(r int) float32 { return model.Scale(a.Alpha, r, a.RSLoRA) }

// Keys returns the adapted linears in layer, then module order.
func (a *Adapter) Keys() []Key {
	keys := make([]Key, 0, len(a.Weights))
	for k := range a.Weights {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Layer != keys[j].Layer {
			return keys[i].Layer < keys[j].Layer
		}
		return keys[i].Module < keys[j].Module
	})
	return keys
}

// Params is the number of trainable values (A and B of every weight).
func (a *Adapter) Params() int {
	n := 0
	for _, w := range a.Weights {
		n += len(w.A) + len(w.B)
	}
	return n
}

// ErrFormat reports a file or directory that is not a LoRA adapter this package reads.
var ErrFormat = errors.New("not a LoRA adapter")

// Load reads a PEFT directory (adapter_config.json + adapter_model.safetensors),
// or a GGUF LoRA adapter file.
func Load(path string) (*Adapter, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	if st.IsDir() {
		return LoadPEFT(path)
	}
	switch filepath.Base(path) {
	case "adapter_config.json", "adapter_model.safetensors":
		return LoadPEFT(filepath.Dir(path))
	}
	return LoadGGUF(path)
}

// Convert returns the weights' q/k lora_B rows in layout to, for a model of
// config c (its head counts define the permutation).
func (a *Adapter) Convert(to Layout, c model.Config) *Adapter {
	if a.Layout == to {
		return a
	}
	out := *a
	out.Layout = to
	out.Weights = make(map[Key]*Weight, len(a.Weights))
	for k, w := range a.Weights {
		nw := *w
		if k.Module == model.Q || k.Module == model.K {
			heads := c.Heads
			if k.Module == model.K {
				heads = c.KVHeads
			}
			if to == LayoutGGUF {
				nw.B = model.PermuteQK(w.B, w.Out, w.Rank, heads)
			} else {
				nw.B = model.UnpermuteQK(w.B, w.Out, w.Rank, heads)
			}
		}
		out.Weights[k] = &nw
	}
	return &out
}

// check validates the adapter against a model config.
func (a *Adapter) check(c model.Config) error {
	if len(a.Weights) == 0 {
		return fmt.Errorf("adapter has no LoRA weights")
	}
	if a.Arch != "" && a.Arch != c.Arch && !(a.Arch == model.ArchMistral && c.Arch == model.ArchLlama) && !(a.Arch == model.ArchLlama && c.Arch == model.ArchMistral) {
		return fmt.Errorf("adapter is for a %s model, the base is %s", a.Arch, c.Arch)
	}
	for _, k := range a.Keys() {
		w := a.Weights[k]
		if k.Layer < 0 || k.Layer >= c.Layers {
			return fmt.Errorf("adapter targets layer %d but the base has %d layers (wrong base model?)", k.Layer, c.Layers)
		}
		out, in := c.Shape(k.Module)
		if w.In != in || w.Out != out {
			return fmt.Errorf("adapter %v is %d×%d, the base's weight is %d×%d (wrong base model?)", k, w.Out, w.In, out, in)
		}
		if w.Rank <= 0 || len(w.A) != w.Rank*w.In || len(w.B) != w.Out*w.Rank {
			return fmt.Errorf("adapter %v: inconsistent rank %d", k, w.Rank)
		}
		for _, v := range w.A {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("adapter %v: lora_A holds NaN or Inf", k)
			}
		}
		for _, v := range w.B {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("adapter %v: lora_B holds NaN or Inf", k)
			}
		}
	}
	return nil
}

// Apply attaches every weight of a to m (replacing adapters already there),
// permuting q/k rows to the model's layout. dropout is the LoRA dropout to use
// when training (0 for inference).
func Apply(m *model.Model, a *Adapter, dropout float32) error {
	if err := a.check(m.Config); err != nil {
		return fmt.Errorf("applying adapter: %w", err)
	}
	want := LayoutHF
	if m.QKPermuted {
		want = LayoutGGUF
	}
	conv := a.Convert(want, m.Config)
	for _, k := range conv.Keys() {
		w := conv.Weights[k]
		if _, err := m.SetLoRA(k.Layer, k.Module, w.Rank, a.Scale(w.Rank), dropout, w.A, w.B); err != nil {
			return fmt.Errorf("applying adapter: %w", err)
		}
	}
	return nil
}

// FromModel reads the adapters attached to m back into host memory, in the
// model's layout; alpha, rsLoRA and the rest of the metadata come from meta.
func FromModel(m *model.Model, meta Adapter) (*Adapter, error) {
	a := meta
	a.Arch = m.Config.Arch
	a.Layout = LayoutHF
	if m.QKPermuted {
		a.Layout = LayoutGGUF
	}
	a.Weights = map[Key]*Weight{}
	be := m.Backend()
	seen := map[string]bool{}
	a.Targets = nil
	for _, ad := range m.LoRAs() {
		w := &Weight{Rank: ad.LoRA.Rank, In: ad.Linear.In, Out: ad.Linear.Out}
		w.A = make([]float32, w.Rank*w.In)
		w.B = make([]float32, w.Out*w.Rank)
		if err := be.Read(ad.LoRA.A, w.A); err != nil {
			return nil, err
		}
		if err := be.Read(ad.LoRA.B, w.B); err != nil {
			return nil, err
		}
		a.Weights[Key{ad.Layer, ad.Module}] = w
		if !seen[ad.Module.String()] {
			seen[ad.Module.String()] = true
			a.Targets = append(a.Targets, ad.Module.String())
		}
		if a.Rank == 0 {
			a.Rank = w.Rank
		}
	}
	sort.Strings(a.Targets)
	if len(a.Weights) == 0 {
		return nil, fmt.Errorf("the model has no adapters attached")
	}
	return &a, nil
}
