package quant_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/quant"
)

func openStories(t *testing.T) *gguf.File {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root not found")
		}
		dir = filepath.Dir(dir)
	}
	p := filepath.Join(dir, "..", "shared", "data", "models", "stories260K.gguf")
	f, err := gguf.Open(p)
	if os.IsNotExist(err) || err != nil && strings.Contains(err.Error(), "no such file") {
		t.Skipf("%s not present (see shared/data/SOURCES.md)", p)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Quantizing the real stories260K weights: error levels as expected for each format,
// and rows that are not a multiple of the block (ffn_down, 172) are refused.
func TestQuantizeRealWeights(t *testing.T) {
	f := openStories(t)
	type codec struct {
		name   string
		block  int
		bytes  int
		q      func([]byte, []float32) error
		dq     func([]float32, []byte) error
		maxRel float64
	}
	codecs := []codec{
		{"q8_0", quant.QK8_0, quant.Q8_0Bytes, quant.QuantizeQ8_0, quant.DequantizeQ8_0, 0.01},
		{"q4_0", quant.QK4_0, quant.Q4_0Bytes, quant.QuantizeQ4_0, quant.DequantizeQ4_0, 0.15},
		{"nf4", quant.NF4Block, quant.NF4Bytes, quant.QuantizeNF4, quant.DequantizeNF4, 0.15},
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if len(ti.Dims) != 2 {
			continue
		}
		x, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		cols := int(ti.Dims[0])
		for _, c := range codecs {
			buf := make([]byte, len(x)/c.block*c.bytes)
			err := c.q(buf, x[:len(x)/c.block*c.block])
			if cols%c.block != 0 {
				// Whole-tensor quantization would mix rows; a row-wise caller must refuse.
				if err := c.q(make([]byte, c.bytes), x[:cols]); err == nil {
					t.Errorf("%s %s: a %d-value row was accepted", ti.Name, c.name, cols)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, len(x))
			if err := c.dq(y, buf); err != nil {
				t.Fatal(err)
			}
			var se, sx float64
			for k := range x {
				d := float64(x[k] - y[k])
				se += d * d
				sx += float64(x[k]) * float64(x[k])
			}
			if rel := math.Sqrt(se / sx); rel > c.maxRel || rel == 0 {
				t.Errorf("%s %s: relative rms error %.4f (want (0, %.2f])", ti.Name, c.name, rel, c.maxRel)
			}
		}
	}
}
