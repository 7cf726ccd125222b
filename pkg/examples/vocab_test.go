package examples_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/tokenizer"
)

func sharedData(t *testing.T, rel string) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root not found")
		}
		dir = filepath.Dir(dir)
	}
	p := filepath.Join(dir, "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test asset %s absent (../shared/data from the repository root)", rel)
	}
	return p
}

// TestEncodeOffsetsRealVocabularies checks the token spans of Encode on
// llama.cpp's 46 tokenizer test strings (spaces, tabs, newlines, emoji,
// CJK, code) with a SentencePiece and a byte-level BPE vocabulary: each
// token's span of the text is exactly its bytes, except the SentencePiece
// dummy space of the first token, which covers no text.
func TestEncodeOffsetsRealVocabularies(t *testing.T) {
	for _, name := range []string{"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"} {
		t.Run(name, func(t *testing.T) {
			p := sharedData(t, "tokenizers/llama.cpp/"+name)
			tk, err := tokenizer.Load(p)
			if err != nil {
				t.Fatal(err)
			}
			inp, err := os.ReadFile(p + ".inp")
			if err != nil {
				t.Fatal(err)
			}
			cases := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
			cases = cases[:len(cases)-1]
			if len(cases) != 46 {
				t.Fatalf("%d cases", len(cases))
			}
			tok := examples.FromTokenizer(tk)
			for i, text := range cases {
				toks := examples.Encode(tok, text)
				for k, id := range toks.IDs {
					span := text[toks.Start(k):toks.Ends[k]]
					piece := tk.TokenText(id)
					if span != piece && !(k == 0 && " "+span == piece) {
						t.Errorf("case %d %q: token %d (%q) spans %q", i, text, k, piece, span)
						break
					}
				}
				if n := len(toks.Ends); n > 0 && toks.Ends[n-1] != len(text) {
					t.Errorf("case %d: tokens end at %d of %d", i, toks.Ends[n-1], len(text))
				}
			}
		})
	}
}
