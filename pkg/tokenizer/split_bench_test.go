package tokenizer

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSplit measures the pre-tokenizers alone on tinyshakespeare.
func BenchmarkSplit(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(dataDir(b), "datasets", "tinyshakespeare", "input.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, name := range []string{"gpt-2", "llama-bpe", "qwen2", "gpt-4o", "deepseek-llm"} {
		cfg, _ := lookupPre(name)
		sp, err := compileSplitters(cfg.exprs, modeLlama)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				splitWords(text, sp)
			}
		})
	}
}
