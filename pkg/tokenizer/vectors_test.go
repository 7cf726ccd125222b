package tokenizer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
)

// dataDir finds ../shared/data relative to the repository root.
func dataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(d); err != nil {
		t.Skipf("test data not available at %s (see shared/data/SOURCES.md): %v", d, err)
	}
	return d
}

var ggufCache sync.Map

// loadGGUF loads and caches the tokenizer of a GGUF file under shared/data.
func loadGGUF(t testing.TB, rel string) *Tokenizer {
	t.Helper()
	path := filepath.Join(dataDir(t), rel)
	if tok, ok := ggufCache.Load(path); ok {
		return tok.(*Tokenizer)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatalf("tokenizer from %s: %v", path, err)
	}
	ggufCache.Store(path, tok)
	return tok
}

type vectorCase struct {
	text string
	ids  []int32
}

// readVectors parses llama.cpp's .inp/.out test vectors.
func readVectors(t *testing.T, base string) []vectorCase {
	t.Helper()
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	outp, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
	if texts[len(texts)-1] != "" {
		t.Fatalf("%s.inp: last case is not followed by the separator", base)
	}
	texts = texts[:len(texts)-1]
	lines := strings.Split(strings.TrimSuffix(string(outp), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d inputs but %d outputs", base, len(texts), len(lines))
	}
	cases := make([]vectorCase, len(texts))
	for i, text := range texts {
		cases[i].text = text
		for _, f := range strings.Fields(lines[i]) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", base, i+1, err)
			}
			cases[i].ids = append(cases[i].ids, int32(n))
		}
	}
	return cases
}

func TestLlamaCppVectors(t *testing.T) {
	for _, name := range []string{"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"} {
		t.Run(name, func(t *testing.T) {
			rel := filepath.Join("tokenizers", "llama.cpp", name)
			tok := loadGGUF(t, rel)
			cases := readVectors(t, filepath.Join(dataDir(t), rel))
			if len(cases) != 46 {
				t.Fatalf("got %d cases, want 46", len(cases))
			}
			for i, c := range cases {
				got := tok.Encode(c.text, EncodeOptions{})
				if !equalIDs(got, c.ids) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, c.text, got, c.ids)
					continue
				}
				if back := tok.Decode(got); back != c.text {
					t.Errorf("case %d: decode gives %q, want %q", i, back, c.text)
				}
			}
		})
	}
}

// TestLlamaModelVocab runs the LLaMA vectors through the tokenizer of a
// full model file that carries the same 32000-token vocabulary.
func TestLlamaModelVocab(t *testing.T) {
	tok := loadGGUF(t, filepath.Join("models", "llama-2-tiny-random.gguf"))
	cases := readVectors(t, filepath.Join(dataDir(t), "tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf"))
	for i, c := range cases {
		if got := tok.Encode(c.text, EncodeOptions{}); !equalIDs(got, c.ids) {
			t.Errorf("case %d %q:\n got %v\nwant %v", i, c.text, got, c.ids)
		}
	}
	ids := tok.Encode("Hello", EncodeOptions{AddBOS: tok.AddBOS()})
	if len(ids) == 0 || ids[0] != 1 {
		t.Fatalf("AddBOS: %v", ids)
	}
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
