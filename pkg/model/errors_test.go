package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/gguf"
)

func TestValidate(t *testing.T) {
	good := Config{Arch: ArchLlama, Dim: 8, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 4, FFN: 8, Vocab: 5, RoPEDims: 4, RoPETheta: 1e4, RMSEps: 1e-5}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"arch":       func(c *Config) { c.Arch = "gpt2" },
		"kv heads":   func(c *Config) { c.KVHeads = 3 },
		"zero dim":   func(c *Config) { c.Dim = 0 },
		"rope odd":   func(c *Config) { c.RoPEDims = 3 },
		"rope big":   func(c *Config) { c.RoPEDims = 8 },
		"eps":        func(c *Config) { c.RMSEps = 0 },
		"huge head":  func(c *Config) { c.HeadDim = 1 << 20 },
		"huge vocab": func(c *Config) { c.Vocab = 1 << 30 },
	} {
		c := good
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v validated", name, c)
		}
	}
}

// TestLoadErrors: damaged or foreign files fail with messages that name the file and the problem.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, kv []gguf.KV, ts []gguf.WriteTensor) string {
		p := filepath.Join(dir, name)
		if err := gguf.Write(p, kv, ts); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kv := func(arch string) []gguf.KV {
		return []gguf.KV{
			{Key: "general.architecture", Value: gguf.MustValue(arch)},
			{Key: arch + ".embedding_length", Value: gguf.MustValue(uint32(8))},
			{Key: arch + ".block_count", Value: gguf.MustValue(uint32(1))},
			{Key: arch + ".feed_forward_length", Value: gguf.MustValue(uint32(8))},
			{Key: arch + ".attention.head_count", Value: gguf.MustValue(uint32(2))},
		}
	}
	emb, err := gguf.NewTensor("token_embd.weight", []int{5, 8}, make([]float32, 40), gguf.F32)
	if err != nil {
		t.Fatal(err)
	}
	badEmb, err := gguf.NewTensor("token_embd.weight", []int{5, 7}, make([]float32, 35), gguf.F32)
	if err != nil {
		t.Fatal(err)
	}
	notGGUF := filepath.Join(dir, "text.gguf")
	os.WriteFile(notGGUF, []byte("hello, not a model at all"), 0o644)
	for _, tc := range []struct {
		path string
		want string
	}{
		{write("gpt2.gguf", kv("gpt2"), nil), "unsupported architecture \"gpt2\""},
		{write("nokeys.gguf", kv("llama")[:2], nil), "missing or invalid metadata llama.block_count, llama.feed_forward_length"},
		{write("notensors.gguf", kv("llama"), []gguf.WriteTensor{emb}), "blk.0.attn_norm.weight is missing"},
		{write("shape.gguf", kv("llama"), []gguf.WriteTensor{badEmb}), "shape"},
		{notGGUF, "text.gguf"},
		{filepath.Join(dir, "absent.gguf"), "absent.gguf"},
	} {
		_, err := Load(tc.path, ref.New(), LoadOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", filepath.Base(tc.path), err, tc.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "gpt2.gguf"), ref.New(), LoadOptions{Quantize: "q3"}); err == nil || !strings.Contains(err.Error(), "q8_0, q4_0 or nf4") {
		t.Errorf("bad quantize: %v", err)
	}
}
