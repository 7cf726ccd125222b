package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/quant"
)

func load(t *testing.T, path string, opts LoadOptions) *Model {
	t.Helper()
	m, err := Load(path, ref.New(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// logitsOf runs a full forward pass over batch sequences of equal length.
func logitsOf(t *testing.T, m *Model, seqs [][]int32) [][]float32 {
	t.Helper()
	a, err := m.NewActivations(len(seqs), len(seqs[0]), false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	var ids []int32
	for _, s := range seqs {
		ids = append(ids, s...)
	}
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
	v := m.Config.Vocab
	rows := make([][]float32, len(ids))
	for i := range rows {
		rows[i] = out[i*v : (i+1)*v]
	}
	return rows
}

// closeRows checks each row against the float64 reference: max |got-want| <= tol * max |want|.
func closeRows(t *testing.T, what string, got [][]float32, want [][]float64, tol float64) {
	t.Helper()
	worst := 0.0
	for i := range want {
		scale := 0.0
		for _, w := range want[i] {
			scale = math.Max(scale, math.Abs(w))
		}
		for j, w := range want[i] {
			d := math.Abs(float64(got[i][j])-w) / scale
			worst = math.Max(worst, d)
			if d > tol || math.IsNaN(float64(got[i][j])) {
				t.Fatalf("%s: row %d col %d: got %g, float64 reference %g (relative %g > %g)", what, i, j, got[i][j], w, d, tol)
			}
		}
	}
	t.Logf("%s: worst relative difference %.3g", what, worst)
}

func TestStoriesLogitsMatchFloat64(t *testing.T) {
	path := sharedData(t, "models/stories260K.gguf")
	m := load(t, path, LoadOptions{})
	c := m.Config
	if c.Dim != 64 || c.Layers != 5 || c.Heads != 8 || c.KVHeads != 4 || c.FFN != 172 || c.Vocab != 512 || c.RoPEDims != 8 {
		t.Fatalf("config %+v does not match stories260K (dim 64, 5 layers, 8/4 heads, ffn 172, vocab 512)", c)
	}
	ids := []int32{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298}
	r := newRef64(t, path)
	got := logitsOf(t, m, [][]int32{ids})
	want := r.forward(ids, 0, 0)
	closeRows(t, "stories260K", got, want, 1e-4)
	// The published greedy continuation: each next id is the argmax.
	for i := 0; i+1 < len(ids); i++ {
		if a := argmax(got[i]); a != ids[i+1] {
			t.Errorf("position %d: argmax %d, want %d (Karpathy's greedy output)", i, a, ids[i+1])
		}
	}
}

func TestTinyRandomF16(t *testing.T) {
	path := sharedData(t, "models/llama-2-tiny-random.gguf")
	m := load(t, path, LoadOptions{})
	if m.Config.Vocab != 32000 || m.Config.Dim != 8 {
		t.Fatalf("config %+v: want vocab 32000, dim 8", m.Config)
	}
	f16 := 0
	for _, tr := range m.Tensors {
		if tr.Stored == backend.F16 {
			f16++
		}
	}
	if f16 == 0 {
		t.Fatalf("no tensor kept as f16: %+v", m.Tensors)
	}
	ids := []int32{1, 15043, 3186, 29991, 0, 31999}
	got := logitsOf(t, m, [][]int32{ids})
	closeRows(t, "llama-2-tiny-random", got, newRef64(t, path).forward(ids, 0, 0), 1e-4)
}

func TestCacheAndBatchMatchFullForward(t *testing.T) {
	path := synthModel(t, synthOptions{dim: 32, layers: 2, heads: 4, kv: 2, ffn: 48, vocab: 37, typ: gguf.F32, seed: 3})
	m := load(t, path, LoadOptions{})
	rng := rand.New(rand.NewPCG(1, 2))
	seqs := make([][]int32, 3)
	for b := range seqs {
		for range 7 {
			seqs[b] = append(seqs[b], int32(rng.IntN(37)))
		}
	}
	full := logitsOf(t, m, seqs)
	r := newRef64(t, path)
	for b, s := range seqs {
		closeRows(t, "batched", full[b*7:(b+1)*7], r.forward(s, 0, 0), 1e-4)
	}
	// Incremental: 3 tokens, then 1, then 3, through a kv cache of batch 3.
	cache, err := m.NewCache(3, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Free()
	be := m.Backend()
	pos := 0
	for _, step := range []int{3, 1, 3} {
		a, err := m.NewActivations(3, step, false)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int32
		for _, s := range seqs {
			ids = append(ids, s[pos:pos+step]...)
		}
		if err := be.Write(a.IDs, ids); err != nil {
			t.Fatal(err)
		}
		if err := m.Forward(a, cache); err != nil {
			t.Fatal(err)
		}
		out := make([]float32, a.Logits.Len())
		if err := be.Read(a.Logits, out); err != nil {
			t.Fatal(err)
		}
		a.Free()
		v := m.Config.Vocab
		for b := range seqs {
			for i := 0; i < step; i++ {
				row := out[(b*step+i)*v : (b*step+i+1)*v]
				want := full[b*7+pos+i]
				for j := range row {
					if d := math.Abs(float64(row[j] - want[j])); d > 1e-5*(1+math.Abs(float64(want[j]))) {
						t.Fatalf("cache step at pos %d, seq %d: logit %d = %g, full forward %g", pos+i, b, j, row[j], want[j])
					}
				}
			}
		}
		pos += step
	}
	if cache.Len != 7 {
		t.Fatalf("cache length %d, want 7", cache.Len)
	}
}

// TestNeoXLayoutEqualsPermuted: an HF-layout model (unpermuted Q/K rows, NeoX
// RoPE) computes the same function as the GGUF one (permuted rows, normal RoPE).
func TestNeoXLayoutEqualsPermuted(t *testing.T) {
	path := synthModel(t, synthOptions{dim: 24, layers: 1, heads: 3, kv: 1, ffn: 16, vocab: 11, typ: gguf.F32, seed: 5})
	r := newRef64(t, path)
	ids := []int32{1, 5, 9, 2, 7}
	want := r.forward(ids, 0, 0)
	c := r.c
	unperm := func(w [][]float64, heads int) [][]float64 {
		rows, cols := len(w), len(w[0])
		flat := make([]float32, 0, rows*cols)
		for _, row := range w {
			for _, v := range row {
				flat = append(flat, float32(v))
			}
		}
		u := UnpermuteQK(flat, rows, cols, heads)
		out := make([][]float64, rows)
		for i := range out {
			out[i] = make([]float64, cols)
			for j := range out[i] {
				out[i][j] = float64(u[i*cols+j])
			}
		}
		return out
	}
	r.layers[0].w[Q] = unperm(r.layers[0].w[Q], c.Heads)
	r.layers[0].w[K] = unperm(r.layers[0].w[K], c.KVHeads)
	r.c.RoPELayout = backend.RoPENeoX
	got := r.forward(ids, 0, 0)
	for i := range want {
		for j := range want[i] {
			if math.Abs(got[i][j]-want[i][j]) > 1e-9*(1+math.Abs(want[i][j])) {
				t.Fatalf("pos %d logit %d: neox %g, normal %g", i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestPermuteQKMatchesLlamaCpp checks PermuteQK against convert_hf_to_gguf.py's
// permute: w.reshape(n_head, 2, rows//n_head//2, cols).swapaxes(1, 2).reshape(rows, cols),
// evaluated here as numpy would, by index arithmetic over the reshaped views.
func TestPermuteQKMatchesLlamaCpp(t *testing.T) {
	for _, tc := range []struct{ rows, cols, heads int }{{8, 3, 2}, {12, 1, 3}, {16, 5, 1}, {64, 2, 8}} {
		w := make([]float32, tc.rows*tc.cols)
		for i := range w {
			w[i] = float32(i)
		}
		got := PermuteQK(w, tc.rows, tc.cols, tc.heads)
		half := tc.rows / tc.heads / 2
		// Output element at (a, c, b, col) of shape [heads, half, 2, cols] reads input (a, b, c, col) of [heads, 2, half, cols].
		for a := 0; a < tc.heads; a++ {
			for c := 0; c < half; c++ {
				for b := 0; b < 2; b++ {
					for col := 0; col < tc.cols; col++ {
						outIdx := ((a*half+c)*2+b)*tc.cols + col
						inIdx := ((a*2+b)*half+c)*tc.cols + col
						if got[outIdx] != w[inIdx] {
							t.Fatalf("%+v: out[%d] = %g, want in[%d] = %g", tc, outIdx, got[outIdx], inIdx, w[inIdx])
						}
					}
				}
			}
		}
		back := UnpermuteQK(got, tc.rows, tc.cols, tc.heads)
		for i := range w {
			if back[i] != w[i] {
				t.Fatalf("%+v: unpermute(permute(w))[%d] = %g, want %g", tc, i, back[i], w[i])
			}
		}
	}
}

func TestQuantizeOption(t *testing.T) {
	path := sharedData(t, "models/stories260K.gguf")
	ids := []int32{1, 403, 407, 261, 378}
	for _, q := range []string{"q8_0", "q4_0", "nf4"} {
		t.Run(q, func(t *testing.T) {
			m := load(t, path, LoadOptions{Quantize: q})
			dt, _, _ := ParseQuantize(q)
			kept, quantized := 0, 0
			for _, tr := range m.Tensors {
				switch {
				case tr.Kept:
					kept++
					if tr.Shape[1] != 172 || tr.Stored != backend.F32 {
						t.Errorf("%s kept (%s) but its rows are %d long", tr.Name, tr.Stored, tr.Shape[1])
					}
				case tr.Stored == dt:
					quantized++
				}
			}
			wantKept := 5 // every ffn_down: rows of 172 values
			if kept != wantKept || quantized != 30 {
				t.Fatalf("kept %d, quantized %d; want %d kept (ffn_down, rows of 172) and 30 quantized", kept, quantized, wantKept)
			}
			// The reference sees the same rounding: quantize and dequantize its weights independently.
			r := newRef64(t, path)
			for l := range r.layers {
				for mod := Module(0); mod < NumModules; mod++ {
					w := r.layers[l].w[mod]
					if len(w[0])%dt.BlockSize() != 0 {
						continue
					}
					for i, row := range w {
						w[i] = roundTrip(t, dt, row)
					}
				}
			}
			got := logitsOf(t, m, [][]int32{ids})
			closeRows(t, q, got, r.forward(ids, 0, 0), 1e-4)
		})
	}
}

// roundTrip quantizes a row to dt and back with pkg/quant's reference routines.
func roundTrip(t *testing.T, dt backend.DType, row []float64) []float64 {
	t.Helper()
	f := make([]float32, len(row))
	for i, v := range row {
		f[i] = float32(v)
	}
	raw := make([]byte, dt.RowBytes(len(f)))
	back := make([]float32, len(f))
	var err error
	switch dt {
	case backend.Q8_0:
		err = quant.QuantizeQ8_0(raw, f)
		if err == nil {
			err = quant.DequantizeQ8_0(back, raw)
		}
	case backend.Q4_0:
		err = quant.QuantizeQ4_0(raw, f)
		if err == nil {
			err = quant.DequantizeQ4_0(back, raw)
		}
	case backend.NF4:
		err = quant.QuantizeNF4(raw, f)
		if err == nil {
			err = quant.DequantizeNF4(back, raw)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(back))
	for i, v := range back {
		out[i] = float64(v)
	}
	return out
}

func argmax(v []float32) int32 {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return int32(best)
}

// TestDequantizedAtLoad: Q4_1 and Q6_K weights (which the backends do not
// read) become f32 with Quantize none, or the asked type, and compute what
// their ggml dequantization says.
func TestDequantizedAtLoad(t *testing.T) {
	for _, typ := range []gguf.GGMLType{gguf.Q4_1, gguf.Q6_K} {
		for _, q := range []string{"none", "q8_0"} {
			t.Run(typ.String()+"/"+q, func(t *testing.T) {
				path := synthModel(t, synthOptions{dim: 256, layers: 1, heads: 4, kv: 2, ffn: 256, vocab: 9, typ: typ, seed: 6})
				m := load(t, path, LoadOptions{Quantize: q})
				want, _, _ := ParseQuantize(q)
				n := 0
				for _, tr := range m.Tensors {
					if tr.FileType == typ.String() {
						n++
						if tr.Stored != want || tr.Kept {
							t.Fatalf("%s stored as %s (kept %v), want %s", tr.Name, tr.Stored, tr.Kept, want)
						}
					}
				}
				if n != 7 {
					t.Fatalf("%d tensors of type %s, want 7", n, typ)
				}
				r := newRef64(t, path)
				if q != "none" {
					for mod := Module(0); mod < NumModules; mod++ {
						for i, row := range r.layers[0].w[mod] {
							r.layers[0].w[mod][i] = roundTrip(t, want, row)
						}
					}
				}
				ids := []int32{1, 2, 3, 4, 8}
				closeRows(t, typ.String(), logitsOf(t, m, [][]int32{ids}), r.forward(ids, 0, 0), 1e-4)
			})
		}
	}
}
