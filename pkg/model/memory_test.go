package model

import (
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/gguf"
)

// counting wraps a backend and sums the bytes of every tensor it creates.
type counting struct {
	backend.Backend
	bytes int64
}

func (c *counting) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	t, err := c.Backend.Alloc(dt, shape...)
	if err == nil {
		c.bytes += int64(4 * t.Len())
	}
	return t, err
}

func (c *counting) FromBytes(dt backend.DType, shape []int, raw []byte) (backend.Tensor, error) {
	t, err := c.Backend.FromBytes(dt, shape, raw)
	if err == nil {
		c.bytes += int64(len(raw))
	}
	return t, err
}

// TestEstimateMemoryCountsAllocations holds the estimator to what the model
// really allocates, piece by piece.
func TestEstimateMemoryCountsAllocations(t *testing.T) {
	path := synthModel(t, synthOptions{dim: 64, layers: 2, heads: 4, kv: 2, ffn: 96, vocab: 50, typ: gguf.F32, seed: 1})
	for _, tc := range []struct {
		quant   string
		targets []Module
		rank    int
		dropout bool
	}{
		{"none", []Module{Q, V}, 4, false},
		{"q4_0", []Module{Q, K, V, O, Gate, Up, Down}, 8, true},
		{"nf4", []Module{Down}, 2, true},
	} {
		cb := &counting{Backend: ref.New()}
		m, err := Load(path, cb, LoadOptions{Quantize: tc.quant})
		if err != nil {
			t.Fatal(err)
		}
		weights := cb.bytes
		d, err := Describe(path, LoadOptions{Quantize: tc.quant})
		if err != nil {
			t.Fatal(err)
		}
		if d.WeightBytes != weights || m.WeightBytes() != weights {
			t.Fatalf("%s: Describe says %d weight bytes, the model %d, the backend got %d", tc.quant, d.WeightBytes, m.WeightBytes(), weights)
		}
		for l := range m.Layers {
			for _, mod := range tc.targets {
				out, in := m.Config.Shape(mod)
				drop := float32(0)
				if tc.dropout {
					drop = 0.1
				}
				if _, err := m.SetLoRA(l, mod, tc.rank, 1, drop, make([]float32, tc.rank*in), make([]float32, out*tc.rank)); err != nil {
					t.Fatal(err)
				}
			}
		}
		adapterBytes := cb.bytes - weights
		if err := m.EnableGrads(); err != nil {
			t.Fatal(err)
		}
		gradBytes := cb.bytes - weights - adapterBytes
		before := cb.bytes
		a, err := m.NewActivations(3, 7, true)
		if err != nil {
			t.Fatal(err)
		}
		actBytes := cb.bytes - before
		e, err := EstimateMemory(m.Config, d.WeightBytes, TrainPlan{Rank: tc.rank, Targets: tc.targets, Batch: 3, Seq: 7, Dropout: tc.dropout})
		if err != nil {
			t.Fatal(err)
		}
		if e.Weights != weights || e.Adapter != adapterBytes || e.Gradients != gradBytes || e.Activations != actBytes || e.Optimizer != 2*adapterBytes {
			t.Fatalf("%s: estimate %+v; allocated weights %d, adapter %d, gradients %d, activations %d", tc.quant, e, weights, adapterBytes, gradBytes, actBytes)
		}
		a.Free()
		m.Close()
	}
}

func TestDescribeStoriesQuantized(t *testing.T) {
	d, err := Describe(sharedData(t, "models/stories260K.gguf"), LoadOptions{Quantize: "q4_0"})
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, tr := range d.Tensors {
		if tr.Kept {
			kept++
		}
	}
	// 260K parameters: the model's name.
	if kept != 5 || d.Params < 250_000 || d.Params > 300_000 {
		t.Fatalf("kept %d tensors (want the 5 ffn_down), %d params (want about 260K)", kept, d.Params)
	}
}
