package gguf_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lora-dev/lora/pkg/gguf"
)

// Write a tiny GGUF LoRA adapter and read it back.
func Example() {
	dir, err := os.MkdirTemp("", "gguf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "adapter.gguf")

	a, err := gguf.NewTensor("blk.0.attn_q.weight.lora_a", []int{2, 32}, make([]float32, 64), gguf.F32)
	if err != nil {
		log.Fatal(err)
	}
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue("llama")},
		{Key: "general.type", Value: gguf.MustValue("adapter")},
		{Key: "adapter.type", Value: gguf.MustValue("lora")},
		{Key: "adapter.lora.alpha", Value: gguf.MustValue(float32(16))},
	}
	if err := gguf.Write(path, kv, []gguf.WriteTensor{a}); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	typ, _ := f.String("general.type")
	alpha, _ := f.Float("adapter.lora.alpha")
	t, _ := f.Tensor("blk.0.attn_q.weight.lora_a")
	fmt.Println(f.Version, typ, alpha, t.Type, t.Dims, t.Shape())
	// Output: 3 adapter 16 f32 [32 2] [2 32]
}
