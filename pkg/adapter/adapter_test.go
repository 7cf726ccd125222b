package adapter

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/model"
)

var testCfg = model.Config{Arch: model.ArchLlama, Dim: 16, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 4, FFN: 24, Vocab: 21}

// writeBase writes a random llama base model with weights w (GGUF names →
// row-major values); missing weights are drawn at random and stored into w.
func writeBase(t *testing.T, path string, c model.Config, w map[string][]float32, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue(c.Arch)},
		{Key: c.Arch + ".embedding_length", Value: gguf.MustValue(uint32(c.Dim))},
		{Key: c.Arch + ".block_count", Value: gguf.MustValue(uint32(c.Layers))},
		{Key: c.Arch + ".feed_forward_length", Value: gguf.MustValue(uint32(c.FFN))},
		{Key: c.Arch + ".attention.head_count", Value: gguf.MustValue(uint32(c.Heads))},
		{Key: c.Arch + ".attention.head_count_kv", Value: gguf.MustValue(uint32(c.KVHeads))},
		{Key: c.Arch + ".attention.layer_norm_rms_epsilon", Value: gguf.MustValue(float32(1e-5))},
	}
	var ts []gguf.WriteTensor
	add := func(name string, shape []int, scale, off float64) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v, ok := w[name]
		if !ok {
			v = make([]float32, n)
			for i := range v {
				v[i] = float32(off + scale*(2*rng.Float64()-1))
			}
			w[name] = v
		}
		wt, err := gguf.NewTensor(name, shape, v, gguf.F32)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, wt)
	}
	add("token_embd.weight", []int{c.Vocab, c.Dim}, 1, 0)
	for l := 0; l < c.Layers; l++ {
		add(fmt.Sprintf("blk.%d.attn_norm.weight", l), []int{c.Dim}, 0.1, 1)
		add(fmt.Sprintf("blk.%d.ffn_norm.weight", l), []int{c.Dim}, 0.1, 1)
		for m := model.Module(0); m < model.NumModules; m++ {
			out, in := c.Shape(m)
			add(fmt.Sprintf("blk.%d.%s.weight", l, m.GGUFName()), []int{out, in}, 1.5/math.Sqrt(float64(in)), 0)
		}
	}
	add("output_norm.weight", []int{c.Dim}, 0.1, 1)
	add("output.weight", []int{c.Vocab, c.Dim}, 0.3, 0)
	if err := gguf.Write(path, kv, ts); err != nil {
		t.Fatal(err)
	}
}

func randomAdapter(c model.Config, rank int, alpha float64, rs bool, seed uint64) *Adapter {
	rng := rand.New(rand.NewPCG(seed, 2))
	a := &Adapter{Rank: rank, Alpha: alpha, RSLoRA: rs, Arch: c.Arch, Layout: LayoutHF, Weights: map[Key]*Weight{}, BaseModel: "test/base"}
	for l := 0; l < c.Layers; l++ {
		for m := model.Module(0); m < model.NumModules; m++ {
			out, in := c.Shape(m)
			w := &Weight{Rank: rank, In: in, Out: out, A: make([]float32, rank*in), B: make([]float32, out*rank)}
			for i := range w.A {
				w.A[i] = float32(rng.NormFloat64() * 0.3)
			}
			for i := range w.B {
				w.B[i] = float32(rng.NormFloat64() * 0.3)
			}
			a.Weights[Key{l, m}] = w
			a.Targets = append(a.Targets, m.String())
		}
	}
	a.Targets = a.Targets[:model.NumModules]
	return a
}

// hfToGGUFRow is convert_hf_to_gguf.py's permute written as a row map: the
// GGUF row (h, i, j) of [heads, hd/2, 2] holds HF row (h, j, i) of [heads, 2, hd/2].
func hfToGGUFRow(row, rows, heads int) int {
	hd := rows / heads
	h, r := row/hd, row%hd
	j, i := r/(hd/2), r%(hd/2) // HF row index decomposed as (h, j, i)
	return h*hd + i*2 + j
}

func logits(t *testing.T, m *model.Model, ids []int32) []float32 {
	t.Helper()
	a, err := m.NewActivations(1, len(ids), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	be := m.Backend()
	if err := be.Write(a.IDs, ids); err != nil {
		t.Fatal(err)
	}
	if err := m.Forward(a, nil); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, a.Logits.Len())
	if err := be.Read(a.Logits, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyEqualsMerge: running the base with the adapter attached gives the
// logits of the base whose weights have W + scale·B·A merged in (computed in
// float64, q/k rows moved to the GGUF order by the row map above).
func TestApplyEqualsMerge(t *testing.T) {
	for _, rs := range []bool{false, true} {
		t.Run(fmt.Sprintf("rslora=%v", rs), func(t *testing.T) {
			dir := t.TempDir()
			c := testCfg
			weights := map[string][]float32{}
			basePath := filepath.Join(dir, "base.gguf")
			writeBase(t, basePath, c, weights, 3)
			ad := randomAdapter(c, 3, 5, rs, 4)
			scale := 5 / 3.0
			if rs {
				scale = 5 / math.Sqrt(3)
			}
			merged := map[string][]float32{}
			for name, v := range weights {
				merged[name] = append([]float32(nil), v...)
			}
			for k, w := range ad.Weights {
				name := fmt.Sprintf("blk.%d.%s.weight", k.Layer, k.Module.GGUFName())
				heads := c.Heads
				if k.Module == model.K {
					heads = c.KVHeads
				}
				for o := 0; o < w.Out; o++ {
					dst := o
					if k.Module == model.Q || k.Module == model.K {
						dst = hfToGGUFRow(o, w.Out, heads)
					}
					for i := 0; i < w.In; i++ {
						d := 0.0
						for r := 0; r < w.Rank; r++ {
							d += float64(w.B[o*w.Rank+r]) * float64(w.A[r*w.In+i])
						}
						merged[name][dst*w.In+i] = float32(float64(weights[name][dst*w.In+i]) + scale*d)
					}
				}
			}
			mergedPath := filepath.Join(dir, "merged.gguf")
			writeBase(t, mergedPath, c, merged, 99)

			ids := []int32{1, 4, 9, 16, 2, 20}
			mm, err := model.Load(mergedPath, ref.New(), model.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := logits(t, mm, ids)
			m, err := model.Load(basePath, ref.New(), model.LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			plain := logits(t, m, ids)
			if err := Apply(m, ad, 0); err != nil {
				t.Fatal(err)
			}
			got := logits(t, m, ids)
			scaleMax, moved := 0.0, 0.0
			for i := range want {
				scaleMax = math.Max(scaleMax, math.Abs(float64(want[i])))
				moved = math.Max(moved, math.Abs(float64(want[i]-plain[i])))
			}
			if moved < 1e-2*scaleMax {
				t.Fatalf("the adapter barely changes the logits (%g): the test would not see a permutation error", moved)
			}
			for i := range want {
				if d := math.Abs(float64(got[i]-want[i])) / scaleMax; d > 1e-4 {
					t.Fatalf("logit %d: adapter applied %g, merged weights %g (relative %g)", i, got[i], want[i], d)
				}
			}
		})
	}
}

func TestGGUFRoundTrip(t *testing.T) {
	c := testCfg
	ad := randomAdapter(c, 2, 16, false, 7)
	path := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := SaveGGUF(path, ad, c); err != nil {
		t.Fatal(err)
	}
	// The file as llama.cpp reads it.
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"general.type": "adapter", "adapter.type": "lora", "general.architecture": "llama"} {
		if got, _ := f.String(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if alpha, _ := f.Float("adapter.lora.alpha"); alpha != 16 {
		t.Errorf("adapter.lora.alpha = %g, want 16", alpha)
	}
	ta, _ := f.Tensor("blk.1.attn_k.weight.lora_a")
	tb, _ := f.Tensor("blk.1.attn_k.weight.lora_b")
	if ta == nil || tb == nil {
		t.Fatal("blk.1.attn_k lora tensors missing")
	}
	if !reflect.DeepEqual(ta.Dims, []uint64{16, 2}) || !reflect.DeepEqual(tb.Dims, []uint64{2, 8}) {
		t.Fatalf("dims lora_a %v, lora_b %v; want [in=16 r=2] and [r=2 out=8]", ta.Dims, tb.Dims)
	}
	b, err := f.TensorFloat32(tb)
	if err != nil {
		t.Fatal(err)
	}
	src := ad.Weights[Key{1, model.K}]
	for o := 0; o < src.Out; o++ {
		g := hfToGGUFRow(o, src.Out, c.KVHeads)
		for r := 0; r < src.Rank; r++ {
			if b[g*src.Rank+r] != src.B[o*src.Rank+r] {
				t.Fatalf("lora_b row %d (HF row %d) not permuted as llama.cpp does", g, o)
			}
		}
	}
	f.Close()

	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Layout != LayoutGGUF || back.Alpha != 16 || back.Rank != 2 || len(back.Weights) != len(ad.Weights) {
		t.Fatalf("loaded layout %v alpha %g rank %d with %d weights", back.Layout, back.Alpha, back.Rank, len(back.Weights))
	}
	hf := back.Convert(LayoutHF, c)
	for k, w := range ad.Weights {
		if !reflect.DeepEqual(hf.Weights[k], w) {
			t.Fatalf("%v differs after the round trip", k)
		}
	}
	// rsLoRA keeps its scale through llama.cpp's alpha/r.
	rs := randomAdapter(c, 4, 8, true, 8)
	if err := SaveGGUF(path, rs, c); err != nil {
		t.Fatal(err)
	}
	back, err = LoadGGUF(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back.Scale(4), rs.Scale(4); math.Abs(float64(got-want)) > 1e-6 {
		t.Fatalf("rsLoRA scale after GGUF round trip %g, want %g", got, want)
	}
}

func TestLoadGGUFErrors(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	writeBase(t, base, testCfg, map[string][]float32{}, 1)
	if _, err := LoadGGUF(base); err == nil {
		t.Fatal("a base model loaded as an adapter")
	}
	m, err := model.Load(base, ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := testCfg
	other.FFN = 32
	if err := Apply(m, randomAdapter(other, 2, 2, false, 1), 0); err == nil {
		t.Fatal("an adapter for another shape was applied")
	}
}

// TestQwen2GGUFNotPermuted: llama.cpp does not permute qwen2's Q/K (it uses
// NeoX RoPE), so neither do its adapters.
func TestQwen2GGUFNotPermuted(t *testing.T) {
	c := testCfg
	c.Arch = model.ArchQwen2
	ad := randomAdapter(c, 2, 4, false, 3)
	path := filepath.Join(t.TempDir(), "qwen2.gguf")
	if err := SaveGGUF(path, ad, c); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tb, _ := f.Tensor("blk.0.attn_q.weight.lora_b")
	b, err := f.TensorFloat32(tb)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(b, ad.Weights[Key{0, model.Q}].B) {
		t.Fatal("qwen2 lora_b rows were permuted")
	}
	back, err := LoadGGUF(path)
	if err != nil || back.Layout != LayoutHF || back.Arch != model.ArchQwen2 {
		t.Fatalf("loaded layout %v arch %q: %v", back.Layout, back.Arch, err)
	}
}
