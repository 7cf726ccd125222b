package adapter

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/model"
)

// ggufLayout is the q/k row order llama.cpp uses for an architecture: its
// converter permutes llama-style Q/K weights (and their LoRA B) but not qwen2's.
func ggufLayout(arch string) Layout {
	if arch == model.ArchQwen2 {
		return LayoutHF
	}
	return LayoutGGUF
}

// LoadGGUF reads a llama.cpp LoRA adapter: general.type=adapter,
// adapter.type=lora, adapter.lora.alpha, and tensors blk.N.<name>.weight.lora_a
// (ggml dims [in, r], i.e. A [r, in]) and .lora_b (dims [r, out], B [out, r]).
func LoadGGUF(path string) (*Adapter, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", path, err)
	}
	defer f.Close()
	a, err := fromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", path, err)
	}
	return a, nil
}

func fromGGUF(f *gguf.File) (*Adapter, error) {
	if t, _ := f.String("general.type"); t != "adapter" {
		return nil, fmt.Errorf("%w: general.type is %q, want \"adapter\" (is this a base model? pass it as --model)", ErrFormat, t)
	}
	if t, _ := f.String("adapter.type"); t != "lora" {
		return nil, fmt.Errorf("%w: adapter.type is %q, want \"lora\"", ErrFormat, t)
	}
	a := &Adapter{Weights: map[Key]*Weight{}}
	a.Arch, _ = f.String("general.architecture")
	a.Layout = ggufLayout(a.Arch)
	alpha, hasAlpha := f.Float("adapter.lora.alpha")
	a.Alpha = alpha
	a.BaseModel, _ = f.String("general.base_model.0.name")
	type pair struct{ a, b *gguf.TensorInfo }
	pairs := map[Key]*pair{}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		k, isA, ok := parseGGUFName(ti.Name)
		if !ok {
			return nil, fmt.Errorf("tensor %q is not a block linear's lora_a/lora_b (embedding, output and norm adapters are not supported)", ti.Name)
		}
		p := pairs[k]
		if p == nil {
			p = &pair{}
			pairs[k] = p
		}
		if isA {
			p.a = ti
		} else {
			p.b = ti
		}
	}
	targets := map[string]bool{}
	for k, p := range pairs {
		if p.a == nil || p.b == nil {
			return nil, fmt.Errorf("%v has only one of lora_a and lora_b", k)
		}
		if len(p.a.Dims) != 2 || len(p.b.Dims) != 2 || p.a.Dims[1] != p.b.Dims[0] {
			return nil, fmt.Errorf("%v: lora_a dims %v and lora_b dims %v do not share a rank (want [in, r] and [r, out])", k, p.a.Dims, p.b.Dims)
		}
		if p.a.Dims[1] > 1<<16 || p.a.Dims[0] > 1<<24 || p.b.Dims[1] > 1<<24 {
			return nil, fmt.Errorf("%v: implausible lora dims %v, %v", k, p.a.Dims, p.b.Dims)
		}
		w := &Weight{Rank: int(p.a.Dims[1]), In: int(p.a.Dims[0]), Out: int(p.b.Dims[1])}
		var err error
		if w.A, err = f.TensorFloat32(p.a); err != nil {
			return nil, err
		}
		if w.B, err = f.TensorFloat32(p.b); err != nil {
			return nil, err
		}
		a.Weights[k] = w
		targets[k.Module.String()] = true
		if a.Rank == 0 || w.Rank > a.Rank {
			a.Rank = w.Rank
		}
	}
	if len(a.Weights) == 0 {
		return nil, fmt.Errorf("%w: no lora_a/lora_b tensors", ErrFormat)
	}
	if !hasAlpha || alpha == 0 {
		// llama.cpp uses scale 1 when alpha is 0: alpha = rank gives that for every weight of that rank.
		for k, w := range a.Weights {
			if w.Rank != a.Rank {
				return nil, fmt.Errorf("no adapter.lora.alpha and %v has rank %d, others %d: cannot express llama.cpp's scale 1", k, w.Rank, a.Rank)
			}
		}
		a.Alpha = float64(a.Rank)
	}
	for t := range targets {
		a.Targets = append(a.Targets, t)
	}
	sort.Strings(a.Targets)
	return a, nil
}

// parseGGUFName splits "blk.N.attn_q.weight.lora_a".
func parseGGUFName(name string) (k Key, isA bool, ok bool) {
	rest, found := strings.CutPrefix(name, "blk.")
	if !found {
		return k, false, false
	}
	switch {
	case strings.HasSuffix(rest, ".weight.lora_a"):
		isA, rest = true, strings.TrimSuffix(rest, ".weight.lora_a")
	case strings.HasSuffix(rest, ".weight.lora_b"):
		rest = strings.TrimSuffix(rest, ".weight.lora_b")
	default:
		return k, false, false
	}
	num, stem, found := strings.Cut(rest, ".")
	if !found {
		return k, false, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 1<<16 {
		return k, false, false
	}
	mod, found := model.ParseModule(stem)
	if !found || mod.GGUFName() != stem {
		return k, false, false
	}
	return Key{Layer: n, Module: mod}, isA, true
}

// SaveGGUF writes a as a llama.cpp LoRA adapter for a base of config c, as
// convert_lora_to_gguf.py does (F32 tensors, q/k lora_b rows in llama.cpp's
// order for llama-style architectures), atomically. llama.cpp scales by
// alpha/r; an rsLoRA adapter is written with alpha·sqrt(r) so the product
// keeps its scale alpha/sqrt(r).
func SaveGGUF(path string, a *Adapter, c model.Config) error {
	if err := a.check(c); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	alpha := a.Alpha
	if a.RSLoRA {
		for k, w := range a.Weights {
			if w.Rank != a.Rank {
				return fmt.Errorf("saving %s: rsLoRA with per-module ranks (%v has %d, not %d) cannot be expressed by one adapter.lora.alpha", path, k, w.Rank, a.Rank)
			}
		}
		alpha *= math.Sqrt(float64(a.Rank))
	}
	conv := a.Convert(ggufLayout(c.Arch), c)
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue(ggufArch(c.Arch))},
		{Key: "general.type", Value: gguf.MustValue("adapter")},
		{Key: "adapter.type", Value: gguf.MustValue("lora")},
		{Key: "adapter.lora.alpha", Value: gguf.MustValue(float32(alpha))},
	}
	if a.Name != "" {
		kv = append(kv, gguf.KV{Key: "general.name", Value: gguf.MustValue(a.Name)})
	}
	if a.BaseModel != "" {
		kv = append(kv, gguf.KV{Key: "general.base_model.count", Value: gguf.MustValue(uint32(1))},
			gguf.KV{Key: "general.base_model.0.name", Value: gguf.MustValue(a.BaseModel)})
	}
	var ts []gguf.WriteTensor
	for _, k := range conv.Keys() {
		w := conv.Weights[k]
		base := fmt.Sprintf("blk.%d.%s.weight", k.Layer, k.Module.GGUFName())
		ta, err := gguf.NewTensor(base+".lora_a", []int{w.Rank, w.In}, w.A, gguf.F32)
		if err != nil {
			return err
		}
		tb, err := gguf.NewTensor(base+".lora_b", []int{w.Out, w.Rank}, w.B, gguf.F32)
		if err != nil {
			return err
		}
		ts = append(ts, ta, tb)
	}
	if err := gguf.Write(path, kv, ts); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// ggufArch is the llama.cpp architecture name of a base: llama.cpp has no
// "mistral" architecture (convert_hf_to_gguf.py writes Mistral models as
// llama), and it refuses an adapter whose architecture differs from the base's.
func ggufArch(arch string) string {
	if arch == model.ArchMistral {
		return model.ArchLlama
	}
	return arch
}
