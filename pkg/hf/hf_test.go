package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/safetensors"
)

// A TinyLlama-1.1B style config (values from its published config.json, vocab cut).
const llamaConfig = `{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "vocab_size": 32000
}`

// A Qwen2-0.5B style config.
const qwen2Config = `{
  "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": [151645, 151643],
  "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768,
  "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_sliding_window": false, "vocab_size": 151936
}`

// A Mistral-7B style config without model_type (derived from architectures).
const mistralConfig = `{
  "architectures": ["MistralForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rope_theta": 1e6,
  "sliding_window": 4096, "vocab_size": 32000, "head_dim": 128
}`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("config.json", []byte(llamaConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		ModelType: "llama", Architectures: []string{"LlamaForCausalLM"}, HiddenSize: 2048,
		IntermediateSize: 5632, NumHiddenLayers: 22, NumAttentionHeads: 32, NumKeyValueHeads: 4,
		HeadDim: 64, RMSNormEps: 1e-5, RopeTheta: 10000, VocabSize: 32000, MaxPositionEmbeddings: 2048,
		TorchDType: "bfloat16", BOSTokenID: c.BOSTokenID, EOSTokenIDs: []int{2},
	}
	if !reflect.DeepEqual(c, want) || c.BOSTokenID == nil || *c.BOSTokenID != 1 {
		t.Errorf("llama:\n got %+v\nwant %+v", c, want)
	}

	c, err = ParseConfig("config.json", []byte(qwen2Config))
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelType != "qwen2" || !c.AttentionBias || c.OutputBias || !c.TieWordEmbeddings || c.HeadDim != 64 ||
		c.RopeTheta != 1e6 || c.RMSNormEps != 1e-6 || c.SlidingWindow != 0 || !reflect.DeepEqual(c.EOSTokenIDs, []int{151645, 151643}) {
		t.Errorf("qwen2: %+v", c)
	}

	c, err = ParseConfig("config.json", []byte(mistralConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.ModelType != "mistral" || c.HeadDim != 128 || c.SlidingWindow != 4096 || c.RMSNormEps != 1e-6 || c.TieWordEmbeddings || c.BOSTokenID != nil {
		t.Errorf("mistral: %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	edit := func(base string, kv map[string]any) string {
		var m map[string]any
		if err := json.Unmarshal([]byte(base), &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range kv {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []struct{ name, json, msg string }{
		{"gpt2", edit(llamaConfig, map[string]any{"model_type": "gpt2"}), `model_type "gpt2" is not supported; supported model types: llama, mistral, qwen2`},
		{"no type", edit(llamaConfig, map[string]any{"model_type": nil, "architectures": nil}), "supported model types: llama, mistral, qwen2"},
		{"missing", edit(llamaConfig, map[string]any{"hidden_size": nil}), `required field "hidden_size" is missing`},
		{"string", edit(llamaConfig, map[string]any{"hidden_size": "2048"}), `field "hidden_size" is a JSON string`},
		{"zero", edit(llamaConfig, map[string]any{"num_hidden_layers": 0}), `"num_hidden_layers" is 0`},
		{"gqa", edit(llamaConfig, map[string]any{"num_key_value_heads": 5}), "not a multiple of num_key_value_heads"},
		{"heads", edit(llamaConfig, map[string]any{"num_attention_heads": 3, "num_key_value_heads": 3}), "set head_dim"},
		{"eps", edit(llamaConfig, map[string]any{"rms_norm_eps": -1}), "rms_norm_eps"},
		{"dtype", edit(llamaConfig, map[string]any{"torch_dtype": "int8"}), "torch_dtype"},
		{"eos", edit(llamaConfig, map[string]any{"eos_token_id": "x"}), "eos_token_id"},
		{"syntax", `{"model_type": "llama",`, "config.json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("dir/config.json", []byte(c.json))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "dir/config.json") {
				t.Errorf("error %q: want it to name dir/config.json and mention %q", err, c.msg)
			}
		})
	}
}

// tinyDir writes a tiny llama model directory; shards > 1 splits the weights.
func tinyDir(t *testing.T, shards int) (string, map[string][]float32) {
	t.Helper()
	dir := t.TempDir()
	cfg := `{"model_type":"llama","hidden_size":4,"intermediate_size":8,"num_hidden_layers":1,
		"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":6,"tie_word_embeddings":true}`
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{}`), 0o644))
	shapes := map[string][]int{
		"model.embed_tokens.weight":              {6, 4},
		"model.layers.0.self_attn.q_proj.weight": {4, 4},
		"model.layers.0.self_attn.k_proj.weight": {2, 4},
		"model.layers.0.input_layernorm.weight":  {4},
		"model.layers.0.mlp.down_proj.weight":    {4, 8},
		"model.norm.weight":                      {4},
	}
	vals := map[string][]float32{}
	var ts []safetensors.Tensor
	k := float32(0)
	for _, n := range sortedKeys(shapes) {
		s := shapes[n]
		size := 1
		for _, d := range s {
			size *= d
		}
		v := make([]float32, size)
		for i := range v {
			v[i] = k
			k += 0.5
		}
		vals[n] = v
		ts = append(ts, safetensors.NewF32(n, s, v))
	}
	if shards <= 1 {
		must(t, safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, map[string]string{"format": "pt"}))
		return dir, vals
	}
	wm := map[string]string{}
	for i := 0; i < shards; i++ {
		var part []safetensors.Tensor
		name := "model-0000" + string(rune('1'+i)) + "-of-0000" + string(rune('0'+shards)) + ".safetensors"
		for j := i; j < len(ts); j += shards {
			part = append(part, ts[j])
			wm[ts[j].Name] = name
		}
		must(t, safetensors.Write(filepath.Join(dir, name), part, nil))
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": wm})
	must(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644))
	return dir, vals
}

func sortedKeys(m map[string][]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenSingleAndSharded(t *testing.T) {
	for _, shards := range []int{1, 2, 3} {
		dir, vals := tinyDir(t, shards)
		m, err := Open(dir)
		if err != nil {
			t.Fatalf("%d shards: %v", shards, err)
		}
		if len(m.Weights.Files) != shards {
			t.Errorf("%d shards: opened %d files", shards, len(m.Weights.Files))
		}
		if m.TokenizerPath != filepath.Join(dir, "tokenizer.json") || m.TokenizerModelPath != "" {
			t.Errorf("tokenizer paths %q %q", m.TokenizerPath, m.TokenizerModelPath)
		}
		if m.Config.HeadDim != 2 || !m.Config.TieWordEmbeddings {
			t.Errorf("config %+v", m.Config)
		}
		if got := m.Weights.Names(); len(got) != len(vals) {
			t.Errorf("names %v", got)
		}
		for name, want := range vals {
			got, shape, err := m.Weights.Float32(name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%d shards: %s = %v, want %v (shape %v)", shards, name, got, want, shape)
			}
		}
		if _, _, err := m.Weights.Float32("lm_head.weight"); err == nil {
			t.Error("missing tensor gave no error")
		}
		must(t, m.Close())
	}
}

func TestOpenErrors(t *testing.T) {
	dir, _ := tinyDir(t, 2)
	idxPath := filepath.Join(dir, "model.safetensors.index.json")
	orig, _ := os.ReadFile(idxPath)
	setIdx := func(s string) { must(t, os.WriteFile(idxPath, []byte(s), 0o644)) }

	setIdx(`{"weight_map": {"model.norm.weight": "../../etc/passwd"}}`)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a file name in the model directory") {
		t.Errorf("path traversal: %v", err)
	}
	setIdx(`{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors", "lm_head.weight": "model-00001-of-00002.safetensors"}}`)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), `tensor "lm_head.weight" is mapped to`) {
		t.Errorf("missing tensor: %v", err)
	}
	setIdx(`{"weight_map": {}}`)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "weight_map is missing or empty") {
		t.Errorf("empty map: %v", err)
	}
	setIdx(string(orig))
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}

	empty := t.TempDir()
	must(t, os.WriteFile(filepath.Join(empty, "config.json"), []byte(llamaConfig), 0o644))
	must(t, os.WriteFile(filepath.Join(empty, "pytorch_model.bin"), []byte("x"), 0o644))
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "convert them to safetensors") {
		t.Errorf("bin weights: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no config: %v", err)
	}
}
