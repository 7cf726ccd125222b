package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// Model is a LLaMA-family transformer whose weights live on a backend.
type Model struct {
	Config Config
	be     backend.Backend

	Embed  backend.Tensor // [vocab, dim], any storage type
	Norm   backend.Tensor // final RMSNorm weight [dim], F32
	Output backend.Tensor // LM head [vocab, dim]; the same tensor as Embed when tied
	Layers []Layer

	// QKPermuted is true when the Q and K weight rows are in llama.cpp's
	// interleaved order (GGUF llama files, RoPENormal): Hugging Face and PEFT
	// tensors for q_proj/k_proj must be permuted to match (see PermuteQK).
	QKPermuted bool
	// Source describes where the weights came from ("gguf" or "hf").
	Source string
	// Tensors lists every weight as loaded: name, shape, file type and the
	// storage type on the backend; Kept marks tensors that stayed in their
	// original type although quantization was asked for.
	Tensors []TensorReport
}

// TensorReport describes how one weight was stored.
type TensorReport struct {
	Name     string
	Shape    []int // row-major, [out, in] for matrices
	FileType string
	Stored   backend.DType
	Kept     bool   // quantization was asked for but the row length is not a multiple of the block
	Why      string // reason for Kept
}

// Layer is one transformer block.
type Layer struct {
	AttnNorm, FFNNorm backend.Tensor // [dim], F32
	Linear            [NumModules]*Linear
	Bias              [3]backend.Tensor // q, k, v biases (nil when absent)
}

// Linear is a frozen weight with an optional LoRA adapter.
type Linear struct {
	W       backend.Tensor // [Out, In], any storage type
	Out, In int
	LoRA    *LoRA
}

// LoRA is a low-rank adapter on a linear: y = x·Wᵀ + Scale·(drop(x)·Aᵀ)·Bᵀ.
type LoRA struct {
	A, B    backend.Tensor // A [Rank, In], B [Out, Rank], F32
	Rank    int
	Scale   float32 // alpha/r, or alpha/sqrt(r) with rsLoRA
	Dropout float32 // probability on the LoRA input while training

	// GradA and GradB, when non-nil, receive gradients from Backward
	// (accumulated: the caller zeroes them between optimizer steps).
	GradA, GradB backend.Tensor
}

// Scale returns the LoRA scaling factor for alpha and rank.
func Scale(alpha float64, rank int, rsLoRA bool) float32 {
	if rsLoRA {
		return float32(alpha / math.Sqrt(float64(rank)))
	}
	return float32(alpha / float64(rank))
}

// Backend is the backend the weights live on.
func (m *Model) Backend() backend.Backend { return m.be }

// Close frees every weight (and adapter) tensor on the backend.
func (m *Model) Close() {
	seen := map[backend.Tensor]bool{}
	free := func(t backend.Tensor) {
		if t != nil && !seen[t] {
			seen[t] = true
			m.be.Free(t)
		}
	}
	free(m.Embed)
	free(m.Norm)
	free(m.Output)
	for i := range m.Layers {
		l := &m.Layers[i]
		free(l.AttnNorm)
		free(l.FFNNorm)
		for _, b := range l.Bias {
			free(b)
		}
		for _, lin := range l.Linear {
			if lin == nil {
				continue
			}
			free(lin.W)
			if lin.LoRA != nil {
				free(lin.LoRA.A)
				free(lin.LoRA.B)
				free(lin.LoRA.GradA)
				free(lin.LoRA.GradB)
			}
		}
	}
	m.Layers = nil
}

// SetLoRA attaches an adapter with host weights a [rank*in] and b [out*rank]
// (row-major, F32) to module mod of layer layer, replacing any previous one.
// The b rows must already be in the model's layout (see PermuteQK).
func (m *Model) SetLoRA(layer int, mod Module, rank int, scale, dropout float32, a, b []float32) (*LoRA, error) {
	if layer < 0 || layer >= len(m.Layers) || mod < 0 || mod >= NumModules {
		return nil, fmt.Errorf("lora: no module %v in layer %d (model has %d layers)", mod, layer, len(m.Layers))
	}
	lin := m.Layers[layer].Linear[mod]
	if rank <= 0 || len(a) != rank*lin.In || len(b) != lin.Out*rank {
		return nil, fmt.Errorf("lora: layer %d %v: A has %d values and B %d, want rank %d × in %d and out %d × rank %d",
			layer, mod, len(a), len(b), rank, lin.In, lin.Out, rank)
	}
	if dropout < 0 || dropout >= 1 {
		return nil, fmt.Errorf("lora: dropout %g outside [0, 1)", dropout)
	}
	ta, err := m.be.Alloc(backend.F32, rank, lin.In)
	if err != nil {
		return nil, err
	}
	tb, err := m.be.Alloc(backend.F32, lin.Out, rank)
	if err != nil {
		m.be.Free(ta)
		return nil, err
	}
	if err := errors.Join(m.be.Write(ta, a), m.be.Write(tb, b)); err != nil {
		m.be.Free(ta)
		m.be.Free(tb)
		return nil, err
	}
	m.RemoveLoRA(layer, mod)
	lin.LoRA = &LoRA{A: ta, B: tb, Rank: rank, Scale: scale, Dropout: dropout}
	return lin.LoRA, nil
}

// RemoveLoRA detaches and frees the adapter on a module, if any.
func (m *Model) RemoveLoRA(layer int, mod Module) {
	lin := m.Layers[layer].Linear[mod]
	if l := lin.LoRA; l != nil {
		for _, t := range []backend.Tensor{l.A, l.B, l.GradA, l.GradB} {
			if t != nil {
				m.be.Free(t)
			}
		}
		lin.LoRA = nil
	}
}

// maxRank is the largest LoRA rank attached anywhere (0 when none).
func (m *Model) maxRank() int {
	r := 0
	for i := range m.Layers {
		for _, lin := range m.Layers[i].Linear {
			if lin.LoRA != nil && lin.LoRA.Rank > r {
				r = lin.LoRA.Rank
			}
		}
	}
	return r
}

// PermuteQK reorders the rows of a [rows, cols] row-major matrix from the
// Hugging Face layout to llama.cpp's, exactly as convert_hf_to_gguf.py's
// permute(weights, n_head) does: rows are viewed as [heads, 2, rows/heads/2]
// and the two middle axes swapped. For K pass the number of KV heads.
func PermuteQK(w []float32, rows, cols, heads int) []float32 {
	return permuteRows(w, rows, cols, heads, false)
}

// UnpermuteQK is the inverse of PermuteQK (llama.cpp layout → Hugging Face).
func UnpermuteQK(w []float32, rows, cols, heads int) []float32 {
	return permuteRows(w, rows, cols, heads, true)
}

func permuteRows(w []float32, rows, cols, heads int, inverse bool) []float32 {
	out := make([]float32, len(w))
	hd := rows / heads
	half := hd / 2
	for h := 0; h < heads; h++ {
		for j := 0; j < 2; j++ {
			for i := 0; i < half; i++ {
				hf := h*hd + j*half + i // row in the HF layout
				gg := h*hd + 2*i + j    // row in the GGUF layout
				src, dst := hf, gg
				if inverse {
					src, dst = gg, hf
				}
				copy(out[dst*cols:(dst+1)*cols], w[src*cols:(src+1)*cols])
			}
		}
	}
	return out
}

// Adapted names one LoRA attached to the model.
type Adapted struct {
	Layer  int
	Module Module
	LoRA   *LoRA
	Linear *Linear
}

// LoRAs lists the attached adapters in layer, then module order.
func (m *Model) LoRAs() []Adapted {
	var out []Adapted
	for l := range m.Layers {
		for mod, lin := range m.Layers[l].Linear {
			if lin.LoRA != nil {
				out = append(out, Adapted{Layer: l, Module: Module(mod), LoRA: lin.LoRA, Linear: lin})
			}
		}
	}
	return out
}

// EnableGrads allocates zeroed GradA/GradB tensors for every attached adapter
// that lacks them, so that Backward accumulates into them.
func (m *Model) EnableGrads() error {
	for _, ad := range m.LoRAs() {
		lo := ad.LoRA
		if lo.GradA == nil {
			t, err := m.be.Alloc(backend.F32, lo.A.Shape()...)
			if err != nil {
				return fmt.Errorf("lora gradients: %w", err)
			}
			lo.GradA = t
		}
		if lo.GradB == nil {
			t, err := m.be.Alloc(backend.F32, lo.B.Shape()...)
			if err != nil {
				return fmt.Errorf("lora gradients: %w", err)
			}
			lo.GradB = t
		}
	}
	return nil
}
