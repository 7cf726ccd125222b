package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lora-dev/lora/pkg/gguf"
)

// Description is what a model file holds and how Load would store it,
// without reading the weights.
type Description struct {
	Config  Config
	Source  string // "gguf" or "hf"
	Tensors []TensorReport
	// Params counts every weight value (tied embeddings once).
	Params int64
	// WeightBytes is the backend memory the stored weights take.
	WeightBytes int64
}

// Describe reads a model's configuration and tensor list and applies Load's
// storage policy for opts, without reading or uploading tensor data.
func Describe(path string, opts LoadOptions) (*Description, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	var m *Model
	d := &Description{}
	if st.IsDir() || filepath.Base(path) == "config.json" || strings.HasSuffix(path, ".safetensors") {
		m, err = describeHF(path, opts)
		d.Source = "hf"
	} else {
		var f *gguf.File
		if f, err = gguf.Open(path); err != nil {
			return nil, fmt.Errorf("model %s: %w", path, err)
		}
		defer f.Close()
		var c Config
		if c, err = ConfigFromGGUF(f); err != nil {
			return nil, fmt.Errorf("model %s: %w", path, err)
		}
		m, err = build(c, &ggufSource{f: f}, nil, opts, true)
		d.Source = "gguf"
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	d.Config, d.Tensors = m.Config, m.Tensors
	for _, t := range m.Tensors {
		n := int64(1)
		for _, s := range t.Shape {
			n *= int64(s)
		}
		d.Params += n
		d.WeightBytes += t.Bytes()
	}
	return d, nil
}

// TrainPlan is the shape of a LoRA run for memory estimates.
type TrainPlan struct {
	Rank    int
	Targets []Module // adapted modules (in every layer)
	Batch   int      // sequences per micro-batch (the step's forward/backward)
	Seq     int      // tokens per sequence (cutoff length)
	Dropout bool     // LoRA dropout > 0 keeps the dropped inputs
}

// MemoryEstimate is the device memory, in bytes, a LoRA run needs.
type MemoryEstimate struct {
	Weights     int64 `json:"weights"`     // frozen base, as stored
	Adapter     int64 `json:"adapter"`     // A and B, f32
	Gradients   int64 `json:"gradients"`   // dA and dB, f32
	Optimizer   int64 `json:"optimizer"`   // AdamW first and second moments, f32
	Activations int64 `json:"activations"` // saved activations and backward scratch for one micro-batch
	Total       int64 `json:"total"`
	// TrainableParams is the number of LoRA values.
	TrainableParams int64 `json:"trainable_params"`
}

// EstimateMemory predicts the memory of a LoRA run on a model of config c
// whose weights take weightBytes: it counts exactly what Model.SetLoRA,
// EnableGrads and NewActivations(batch, seq, true) allocate, plus AdamW's
// two moments per trainable value.
func EstimateMemory(c Config, weightBytes int64, p TrainPlan) (MemoryEstimate, error) {
	if p.Batch <= 0 || p.Seq <= 0 || p.Rank < 0 {
		return MemoryEstimate{}, fmt.Errorf("memory estimate: batch %d and sequence length %d must be positive, rank %d not negative", p.Batch, p.Seq, p.Rank)
	}
	e := MemoryEstimate{Weights: weightBytes}
	n := int64(p.Batch) * int64(p.Seq)
	L := int64(c.Layers)
	dim, qd, kvd, ffn, V := int64(c.Dim), int64(c.QDim()), int64(c.KVDim()), int64(c.FFN), int64(c.Vocab)
	r := int64(p.Rank)
	var vals int64                     // f32/i32 activation values
	vals += 2*n + int64(p.Seq) + 2 + n // ids, labels, pos, seed, scale, loss
	vals += 2 * n * V                  // logits, dlogits
	vals += (L + 2) * n * dim          // residual stream per layer + final, final normed
	perLayer := 3*n*dim + 2*n*qd + 2*n*kvd + 3*n*ffn + int64(p.Batch)*int64(c.Heads)*int64(p.Seq)*int64(p.Seq)
	vals += L * perLayer
	vals += 2*n*dim + 2*n*qd + 2*n*kvd + 3*n*ffn // backward scratch
	ins := map[int]bool{}
	seen := map[Module]bool{}
	for _, mod := range p.Targets {
		if seen[mod] {
			continue
		}
		seen[mod] = true
		out, in := c.Shape(mod)
		vals += L * n * r // t
		if p.Dropout {
			vals += L * n * int64(in) // dropped input
		}
		ins[in] = true
		e.TrainableParams += L * r * int64(in+out)
	}
	if len(seen) > 0 && r > 0 {
		vals += 2 * n * r // rank scratch, backward dt
		for in := range ins {
			vals += n * int64(in)
		}
	}
	e.Activations = 4 * vals
	e.Adapter = 4 * e.TrainableParams
	e.Gradients = e.Adapter
	e.Optimizer = 2 * e.Adapter
	e.Total = e.Weights + e.Adapter + e.Gradients + e.Optimizer + e.Activations
	return e, nil
}

// WeightBytes sums the backend memory of the stored weights of a loaded model.
func (m *Model) WeightBytes() int64 {
	var b int64
	for _, t := range m.Tensors {
		b += t.Bytes()
	}
	return b
}

// Bytes is the backend memory the tensor takes as stored.
func (t TensorReport) Bytes() int64 {
	if len(t.Shape) == 0 {
		return 0
	}
	rows := int64(1)
	for _, s := range t.Shape[:len(t.Shape)-1] {
		rows *= int64(s)
	}
	return rows * int64(t.Stored.RowBytes(t.Shape[len(t.Shape)-1]))
}
