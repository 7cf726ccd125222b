package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/safetensors"
)

// writeHFFromGGUF converts a synthesized llama GGUF to a Hugging Face
// directory: names mapped, Q/K rows un-permuted, config.json written.
func writeHFFromGGUF(t *testing.T, path string, tied bool) string {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ConfigFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if tied && ti.Name == "output.weight" {
			continue
		}
		v, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		sh := ti.Shape()
		for l := 0; l < c.Layers; l++ {
			switch ti.Name {
			case fmt.Sprintf("blk.%d.attn_q.weight", l):
				v = UnpermuteQK(v, sh[0], sh[1], c.Heads)
			case fmt.Sprintf("blk.%d.attn_k.weight", l):
				v = UnpermuteQK(v, sh[0], sh[1], c.KVHeads)
			}
		}
		ts = append(ts, safetensors.NewF32(hfName(ti.Name), sh, v))
	}
	dir := t.TempDir()
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama",
		"hidden_size": c.Dim, "intermediate_size": c.FFN, "num_hidden_layers": c.Layers,
		"num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "rms_norm_eps": c.RMSEps,
		"rope_theta": c.RoPETheta, "vocab_size": c.Vocab, "tie_word_embeddings": tied,
		"max_position_embeddings": c.ContextLen, "torch_dtype": "float32",
	}
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestHFEqualsGGUF: the same weights in the Hugging Face layout (NeoX RoPE,
// un-permuted Q/K) give the GGUF model's logits.
func TestHFEqualsGGUF(t *testing.T) {
	path := synthModel(t, synthOptions{dim: 32, layers: 2, heads: 4, kv: 2, ffn: 40, vocab: 27, typ: gguf.F32, seed: 17})
	g := load(t, path, LoadOptions{})
	ids := []int32{1, 5, 9, 20, 3, 3, 11}
	want := logitsOf(t, g, [][]int32{ids})
	for _, tied := range []bool{false, true} {
		dir := writeHFFromGGUF(t, path, tied)
		h := load(t, dir, LoadOptions{})
		if h.Source != "hf" || h.QKPermuted || h.Config.RoPELayout != 1 {
			t.Fatalf("hf model: source %s, permuted %v, layout %v", h.Source, h.QKPermuted, h.Config.RoPELayout)
		}
		if tied != h.Config.TiedEmbeddings {
			t.Fatalf("tied %v, config says %v", tied, h.Config.TiedEmbeddings)
		}
		got := logitsOf(t, h, [][]int32{ids})
		if tied {
			// Without lm_head the embedding is the LM head: check against the float64 reference so tied.
			r := newRef64(t, path)
			r.out = r.emb
			closeRows(t, "hf tied", got, r.forward(ids, 0, 0), 1e-4)
			continue
		}
		for i := range want {
			for j := range want[i] {
				ref := want[i][j]
				if d := math.Abs(float64(got[i][j] - ref)); d > 1e-5*(1+math.Abs(float64(ref))) {
					t.Fatalf("pos %d logit %d: hf %g, gguf %g", i, j, got[i][j], ref)
				}
			}
		}
		d, err := Describe(dir, LoadOptions{Quantize: "q8_0"})
		if err != nil || d.Source != "hf" || len(d.Tensors) == 0 {
			t.Fatalf("describe hf: %v %+v", err, d)
		}
	}
}
