// Package model is the LLaMA-family transformer, written once over backend.Backend.
package model

import (
	"errors"
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
)

// Architectures this package runs.
const (
	ArchLlama   = "llama"
	ArchMistral = "mistral"
	ArchQwen2   = "qwen2"
)

// Archs lists the supported architectures, for error messages.
var Archs = []string{ArchLlama, ArchMistral, ArchQwen2}

// ErrArch reports an architecture this package does not run.
var ErrArch = errors.New("unsupported architecture")

// Config describes a LLaMA-family model's shape and numerics.
type Config struct {
	Arch       string `json:"arch"`           // llama, mistral or qwen2
	Dim        int    `json:"dim"`            // hidden size (embedding length)
	Layers     int    `json:"layers"`         // transformer blocks
	Heads      int    `json:"heads"`          // query heads
	KVHeads    int    `json:"kv_heads"`       // key/value heads (grouped-query attention when < Heads)
	HeadDim    int    `json:"head_dim"`       // per-head dimension (usually Dim/Heads)
	FFN        int    `json:"ffn"`            // feed-forward (intermediate) size
	Vocab      int    `json:"vocab"`          // vocabulary size (rows of the embedding table)
	ContextLen int    `json:"context_length"` // trained context length (0 when unknown)

	RoPETheta  float32            `json:"rope_theta"`  // rotary base frequency
	RoPEDims   int                `json:"rope_dims"`   // leading dims of each head that rotate
	RoPELayout backend.RoPELayout `json:"rope_layout"` // pairing of rotated dims: 0 normal, 1 neox (see backend.RoPELayout)
	RMSEps     float32            `json:"rms_eps"`     // RMSNorm epsilon

	TiedEmbeddings bool `json:"tied_embeddings"` // the LM head reuses the token embedding table
	QKVBias        bool `json:"qkv_bias"`        // q, k and v projections carry biases (qwen2)
}

// QDim is the width of the query projection output.
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the key and value projection outputs.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Shape returns the [out, in] shape of module m's weight.
func (c Config) Shape(m Module) (out, in int) {
	switch m {
	case Q:
		return c.QDim(), c.Dim
	case K, V:
		return c.KVDim(), c.Dim
	case O:
		return c.Dim, c.QDim()
	case Gate, Up:
		return c.FFN, c.Dim
	case Down:
		return c.Dim, c.FFN
	}
	return 0, 0
}

// Validate checks that the numbers describe a model this package can run.
func (c Config) Validate() error {
	ok := false
	for _, a := range Archs {
		if c.Arch == a {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w %q (supported: llama, mistral, qwen2)", ErrArch, c.Arch)
	}
	switch {
	case c.Dim <= 0, c.Layers <= 0, c.Heads <= 0, c.KVHeads <= 0, c.HeadDim <= 0, c.FFN <= 0, c.Vocab <= 0:
		return fmt.Errorf("config: dimensions must be positive (dim %d, layers %d, heads %d, kv heads %d, head dim %d, ffn %d, vocab %d)",
			c.Dim, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("config: %d heads is not a multiple of %d kv heads", c.Heads, c.KVHeads)
	case c.RoPEDims <= 0 || c.RoPEDims > c.HeadDim || c.RoPEDims%2 != 0:
		return fmt.Errorf("config: rope dimension %d must be even and in 2..head dim %d", c.RoPEDims, c.HeadDim)
	case c.Dim > 1<<20 || c.FFN > 1<<22 || c.Vocab > 1<<24 || c.Layers > 1<<12 || c.Heads > 1<<12 || c.HeadDim > 1<<14:
		return fmt.Errorf("config: implausibly large dimensions (dim %d, ffn %d, vocab %d, layers %d, heads %d, head dim %d)",
			c.Dim, c.FFN, c.Vocab, c.Layers, c.Heads, c.HeadDim)
	case !(c.RMSEps > 0), !(c.RoPETheta > 0):
		return fmt.Errorf("config: rms eps %g and rope theta %g must be positive", c.RMSEps, c.RoPETheta)
	}
	return nil
}

// Module names one of the seven linear layers of a block.
type Module int

// The linear layers of a block, in forward order.
const (
	Q Module = iota
	K
	V
	O
	Gate
	Up
	Down
	NumModules
)

var hfNames = [NumModules]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
var ggufNames = [NumModules]string{"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}

// String is the Hugging Face (PEFT target_modules) name, e.g. "q_proj".
func (m Module) String() string {
	if m >= 0 && m < NumModules {
		return hfNames[m]
	}
	return fmt.Sprintf("module(%d)", int(m))
}

// GGUFName is the llama.cpp tensor name stem, e.g. "attn_q".
func (m Module) GGUFName() string {
	if m >= 0 && m < NumModules {
		return ggufNames[m]
	}
	return m.String()
}

// HFPath is the module's path inside a Hugging Face block, e.g. "self_attn.q_proj".
func (m Module) HFPath() string {
	if m <= O {
		return "self_attn." + hfNames[m]
	}
	return "mlp." + hfNames[m]
}

// ParseModule accepts a PEFT name ("q_proj"), a GGUF stem ("attn_q") or a short
// name ("q", "gate").
func ParseModule(s string) (Module, bool) {
	for i := Module(0); i < NumModules; i++ {
		if s == hfNames[i] || s == ggufNames[i] || s+"_proj" == hfNames[i] {
			return i, true
		}
	}
	return 0, false
}
