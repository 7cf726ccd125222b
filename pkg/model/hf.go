package model

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/hf"
	"github.com/lora-dev/lora/pkg/safetensors"
)

// hfDir accepts a model directory, its config.json or a .safetensors file in it.
func hfDir(path string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return filepath.Dir(path)
	}
	return path
}

// ConfigFromHF converts a Hugging Face config.json to a Config (RoPENeoX:
// Hugging Face weights are not permuted).
func ConfigFromHF(hc *hf.Config, name string) (Config, error) {
	c := Config{
		Arch: hc.ModelType, Dim: hc.HiddenSize, Layers: hc.NumHiddenLayers, Heads: hc.NumAttentionHeads,
		KVHeads: hc.NumKeyValueHeads, HeadDim: hc.HeadDim, FFN: hc.IntermediateSize, Vocab: hc.VocabSize,
		ContextLen: hc.MaxPositionEmbeddings, RoPETheta: float32(hc.RopeTheta), RoPEDims: hc.HeadDim,
		RoPELayout: backend.RoPENeoX, RMSEps: float32(hc.RMSNormEps),
		TiedEmbeddings: hc.TieWordEmbeddings, QKVBias: hc.AttentionBias,
	}
	if len(hc.RopeScaling) > 0 {
		return c, fmt.Errorf("%s: rope_scaling %v is not supported (plain RoPE only)", name, hc.RopeScaling)
	}
	if hc.OutputBias {
		return c, fmt.Errorf("%s: attention_bias on o_proj is not supported", name)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// loadHF loads a Hugging Face model directory (config.json, model.safetensors
// or a sharded index). be nil describes it without reading data.
func loadHF(path string, be backend.Backend, opts LoadOptions) (*Model, error) {
	dir := hfDir(path)
	hm, err := hf.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	defer hm.Close()
	c, err := ConfigFromHF(hm.Config, filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	if _, _, ok := hm.Weights.Tensor("lm_head.weight"); !ok {
		c.TiedEmbeddings = true
	}
	m, err := build(c, &hfSource{w: hm.Weights}, be, opts, be == nil)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	m.Source = "hf"
	return m, nil
}

func describeHF(path string, opts LoadOptions) (*Model, error) { return loadHF(path, nil, opts) }

// hfSource serves Hugging Face tensors under their GGUF names.
type hfSource struct{ w *hf.Weights }

// hfName maps a GGUF tensor name to its Hugging Face name.
func hfName(name string) string {
	switch name {
	case "token_embd.weight":
		return "model.embed_tokens.weight"
	case "output_norm.weight":
		return "model.norm.weight"
	case "output.weight":
		return "lm_head.weight"
	}
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return name
	}
	num, stem, _ := strings.Cut(rest, ".")
	base, suffix, _ := strings.Cut(stem, ".")
	switch base {
	case "attn_norm":
		return "model.layers." + num + ".input_layernorm." + suffix
	case "ffn_norm":
		return "model.layers." + num + ".post_attention_layernorm." + suffix
	}
	if mod, ok := ParseModule(base); ok {
		return "model.layers." + num + "." + mod.HFPath() + "." + suffix
	}
	return name
}

func (s *hfSource) has(name string) bool { _, _, ok := s.w.Tensor(hfName(name)); return ok }

func (s *hfSource) get(name string) (*srcTensor, error) {
	hn := hfName(name)
	ti, f, ok := s.w.Tensor(hn)
	if !ok {
		return nil, fmt.Errorf("tensor %s is missing", hn)
	}
	st := &srcTensor{shape: append([]int(nil), ti.Shape...), fileType: strings.ToLower(string(ti.DType))}
	switch ti.DType {
	case safetensors.F32:
		st.stored, st.storable = backend.F32, true
	case safetensors.F16:
		st.stored, st.storable = backend.F16, true
	}
	st.raw = func() ([]byte, error) { return f.TensorData(ti) }
	st.f32 = func() ([]float32, error) { return f.TensorFloat32(ti) }
	return st, nil
}
