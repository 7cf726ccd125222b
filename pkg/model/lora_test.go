package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
)

// attachRandomLoRA puts a random adapter (non-zero B) on every module of every
// layer of both the model and the float64 reference.
func attachRandomLoRA(t *testing.T, m *Model, r *ref64, rank int, alpha float64, dropout float32, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	for l := range m.Layers {
		for mod := Module(0); mod < NumModules; mod++ {
			out, in := m.Config.Shape(mod)
			a := make([]float32, rank*in)
			b := make([]float32, out*rank)
			for i := range a {
				a[i] = float32((2*rng.Float64() - 1) / math.Sqrt(float64(in)))
			}
			for i := range b {
				b[i] = float32(0.5 * (2*rng.Float64() - 1))
			}
			scale := Scale(alpha, rank, false)
			if _, err := m.SetLoRA(l, mod, rank, scale, dropout, a, b); err != nil {
				t.Fatal(err)
			}
			lo := &ref64LoRA{scale: float64(scale), dropout: float64(dropout)}
			for i := 0; i < rank; i++ {
				row := make([]float64, in)
				for j := range row {
					row[j] = float64(a[i*in+j])
				}
				lo.a = append(lo.a, row)
			}
			for i := 0; i < out; i++ {
				row := make([]float64, rank)
				for j := range row {
					row[j] = float64(b[i*rank+j])
				}
				lo.b = append(lo.b, row)
			}
			r.layers[l].lora[mod] = lo
		}
	}
}

func TestLoRAForwardMatchesFloat64(t *testing.T) {
	for _, o := range []synthOptions{
		{arch: ArchLlama, dim: 16, layers: 2, heads: 4, kv: 2, ffn: 24, vocab: 19, typ: gguf.F32, seed: 1},
		{arch: ArchQwen2, dim: 16, layers: 1, heads: 2, kv: 1, ffn: 20, vocab: 13, typ: gguf.F16, bias: true, tied: true, seed: 2},
		{arch: ArchLlama, dim: 64, layers: 1, heads: 4, kv: 4, ffn: 96, vocab: 17, typ: gguf.Q4_0, ropeDims: 8, seed: 4},
	} {
		t.Run(o.arch+"/"+o.typ.String(), func(t *testing.T) {
			path := synthModel(t, o)
			m := load(t, path, LoadOptions{})
			r := newRef64(t, path)
			attachRandomLoRA(t, m, r, 3, 6, 0, 9)
			ids := []int32{0, 3, 5, 1, 8, 2}
			closeRows(t, "lora forward", logitsOf(t, m, [][]int32{ids}), r.forward(ids, 0, 0), 1e-4)
		})
	}
}

// TestBackwardFiniteDifferences checks the LoRA gradients of the whole model
// (through attention, RoPE, SwiGLU, norms, quantized linears and dropout)
// against central differences of an independent float64 loss.
func TestBackwardFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name    string
		o       synthOptions
		dropout float32
	}{
		{"f32-gqa", synthOptions{dim: 16, layers: 2, heads: 4, kv: 2, ffn: 24, vocab: 19, typ: gguf.F32, seed: 21}, 0},
		{"q8_0-dropout", synthOptions{dim: 32, layers: 1, heads: 2, kv: 1, ffn: 64, vocab: 11, typ: gguf.Q8_0, seed: 22}, 0.25},
		{"qwen2-bias", synthOptions{arch: ArchQwen2, dim: 8, layers: 1, heads: 2, kv: 2, ffn: 12, vocab: 7, typ: gguf.F32, bias: true, seed: 23}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := synthModel(t, tc.o)
			m := load(t, path, LoadOptions{})
			r := newRef64(t, path)
			attachRandomLoRA(t, m, r, 2, 4, tc.dropout, 31)
			if err := m.EnableGrads(); err != nil {
				t.Fatal(err)
			}
			const batch, seq = 2, 5
			rng := rand.New(rand.NewPCG(5, 6))
			ids := make([]int32, batch*seq)
			labels := make([]int32, batch*seq)
			scored := 0
			for i := range ids {
				ids[i] = int32(rng.IntN(tc.o.vocab))
				labels[i] = int32(rng.IntN(tc.o.vocab))
				if i%4 == 3 {
					labels[i] = IgnoreLabel
				} else {
					scored++
				}
			}
			const seed = 77
			a, err := m.NewActivations(batch, seq, true)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Free()
			be := m.Backend()
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(be.Write(a.IDs, ids))
			must(be.Write(a.Labels, labels))
			must(be.Write(a.Seed, []int32{seed}))
			must(be.Fill(a.LossScale, float32(1/float64(scored))))
			must(m.Forward(a, nil))
			must(m.Loss(a))
			must(m.Backward(a))

			loss64 := func() float64 {
				total := 0.0
				for b := 0; b < batch; b++ {
					lg := r.forward(ids[b*seq:(b+1)*seq], b*seq, seed)
					for i := range lg {
						if lab := labels[b*seq+i]; lab != IgnoreLabel {
							total += nll64(lg[i], lab)
						}
					}
				}
				return total / float64(scored)
			}
			// Forward loss agrees first.
			lossRows := make([]float32, batch*seq)
			must(be.Read(a.Loss, lossRows))
			sum := 0.0
			for _, v := range lossRows {
				sum += float64(v)
			}
			if l64 := loss64(); math.Abs(sum/float64(scored)-l64) > 1e-4*math.Abs(l64) {
				t.Fatalf("loss %g, float64 reference %g", sum/float64(scored), l64)
			}
			checked := 0
			for _, ad := range m.LoRAs() {
				lo := r.layers[ad.Layer].lora[ad.Module]
				for _, which := range []string{"A", "B"} {
					grad := ad.LoRA.GradA
					mat := lo.a
					if which == "B" {
						grad, mat = ad.LoRA.GradB, lo.b
					}
					g := make([]float32, grad.Len())
					must(be.Read(grad, g))
					cols := len(mat[0])
					// Probe a few entries of each matrix.
					for _, idx := range []int{0, len(g) / 2, len(g) - 1} {
						i, j := idx/cols, idx%cols
						const h = 1e-5
						old := mat[i][j]
						mat[i][j] = old + h
						up := loss64()
						mat[i][j] = old - h
						down := loss64()
						mat[i][j] = old
						fd := (up - down) / (2 * h)
						if d := math.Abs(float64(g[idx]) - fd); d > 2e-3*math.Abs(fd)+2e-5 {
							t.Errorf("layer %d %v grad%s[%d,%d]: backward %g, finite difference %g", ad.Layer, ad.Module, which, i, j, g[idx], fd)
						}
						checked++
					}
				}
			}
			t.Logf("%d gradient entries checked", checked)
		})
	}
}
