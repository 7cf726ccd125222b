package tokenizer

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStories260K(t *testing.T) {
	tok := loadGGUF(t, filepath.Join("models", "stories260K.gguf"))
	if tok.VocabSize() != 512 || tok.Model() != ModelLlama {
		t.Fatalf("vocab %d model %q, want 512 llama", tok.VocabSize(), tok.Model())
	}
	if tok.BOS() != 1 || tok.EOS() != 2 || !tok.AddBOS() || tok.AddEOS() {
		t.Fatalf("bos %d eos %d addBOS %v addEOS %v", tok.BOS(), tok.EOS(), tok.AddBOS(), tok.AddEOS())
	}
	if !tok.IsEOG(2) || tok.IsEOG(1) || tok.IsEOG(403) {
		t.Fatal("IsEOG: want EOS (2) only")
	}
	gpt2 := loadGGUF(t, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-gpt-2.gguf"))
	if !gpt2.IsEOG(50256) || !gpt2.IsControl(50256) || gpt2.IsEOG(11) {
		t.Fatal("gpt-2: <|endoftext|> (50256) should be a control, end-of-generation token")
	}
	const text = "Once upon a time"
	ids := tok.Encode(text, EncodeOptions{AddBOS: tok.AddBOS()})
	// The ids of the greedy continuation recorded in shared/data/SOURCES.md.
	want := []int32{1, 403, 407, 261, 378}
	if !equalIDs(ids, want) {
		t.Fatalf("Encode(%q) = %v, want %v", text, ids, want)
	}
	if got := tok.Decode(ids); got != text {
		t.Fatalf("Decode = %q, want %q", got, text)
	}
	// The expected greedy output decodes and re-encodes to itself.
	data, err := os.ReadFile(filepath.Join(dataDir(t), "models", "stories260K.greedy-t0.expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	story := strings.TrimSuffix(string(data), "\n")
	if got := tok.Decode(tok.Encode(story, EncodeOptions{AddBOS: true, AddEOS: true})); got != story {
		t.Fatalf("story round trip:\n got %q\nwant %q", got, story)
	}
}

func TestSpecialTokens(t *testing.T) {
	tok := loadGGUF(t, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf"))
	plain := tok.Encode("<s>Hi</s>", EncodeOptions{})
	for _, id := range plain {
		if tok.IsControl(id) {
			t.Fatalf("without ParseSpecial, %v holds control token %d", plain, id)
		}
	}
	if got := tok.Decode(plain); got != "<s>Hi</s>" {
		t.Fatalf("plain decode %q", got)
	}
	parsed := tok.Encode("<s>Hi</s>", EncodeOptions{ParseSpecial: true})
	want := append(append([]int32{1}, tok.Encode("Hi", EncodeOptions{})...), 2)
	if !equalIDs(parsed, want) {
		t.Fatalf("ParseSpecial: got %v, want %v", parsed, want)
	}
	if got := tok.Decode(parsed); got != "Hi" {
		t.Fatalf("Decode skips control tokens: got %q", got)
	}
	if got := tok.DecodeWith(parsed, DecodeOptions{Special: true}); got != "<s>Hi</s>" {
		t.Fatalf("DecodeWith Special: got %q", got)
	}
	if got := tok.DecodeWith(tok.Encode("Hi", EncodeOptions{}), DecodeOptions{KeepSpacePrefix: true}); got != " Hi" {
		t.Fatalf("KeepSpacePrefix: got %q", got)
	}
	if got := tok.TokenText(13); got != "\n" { // <0x0A>
		t.Fatalf("TokenText(13) = %q, want newline", got)
	}
	if got := tok.TokenText(-1) + tok.TokenText(1<<30); got != "" {
		t.Fatalf("TokenText out of range = %q", got)
	}
	if got := tok.Encode("", EncodeOptions{AddBOS: true, AddEOS: true}); !equalIDs(got, []int32{1, 2}) {
		t.Fatalf("empty text: %v", got)
	}
}

// TestSPMWordCut checks that cutting SentencePiece input into words (the
// fast path) gives exactly the ids of the single-piece merge loop.
func TestSPMWordCut(t *testing.T) {
	d := dataDir(t)
	tok := loadGGUF(t, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf"))
	if !tok.spmCut {
		t.Fatal("LLaMA vocabulary should allow word cutting")
	}
	shakespeare, err := os.ReadFile(filepath.Join(d, "datasets", "tinyshakespeare", "input.txt"))
	if err != nil {
		t.Fatal(err)
	}
	inp, err := os.ReadFile(filepath.Join(d, "tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf.inp"))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(3))
	texts := []string{string(shakespeare[:30000]), string(inp), strings.Repeat("▁ ▁▁a  b\xe2▁\xe2\x96 c", 50)}
	for i := 0; i < 20; i++ {
		texts = append(texts, randomText(r, 400)+"\xe2\x96\xe2▁▁x")
	}
	for i, text := range texts {
		esc := escapeSpaces(" " + text)
		if got, want := tok.spm(esc, nil), tok.spmRun(esc, nil); !equalIDs(got, want) {
			t.Fatalf("text %d: word-cut ids differ from the single-piece ids (%d vs %d tokens)", i, len(got), len(want))
		}
	}
}

func TestCleanSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"Hello , world .":   "Hello, world.",
		"a ' b":             "a'b",
		"I 'm here , ok ?":  "I'm here, ok?",
		"we 're , they 've": "we're, they've",
		"don 't 'll":        "don 't 'll",
		"":                  "",
	} {
		if got := cleanSpaces(in); got != want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeCleanSpaces(t *testing.T) {
	tok := loadGGUF(t, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-gpt-2.gguf"))
	ids := tok.Encode("Hello , world . I 'm", EncodeOptions{})
	if got := tok.Decode(ids); got != "Hello , world . I 'm" {
		t.Fatalf("Decode = %q", got)
	}
	if got := tok.DecodeWith(ids, DecodeOptions{CleanSpaces: true}); got != "Hello, world. I'm" {
		t.Fatalf("CleanSpaces = %q", got)
	}
	spm := loadGGUF(t, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf"))
	ids = spm.Encode("a , b", EncodeOptions{})
	if got := spm.DecodeWith(ids, DecodeOptions{CleanSpaces: true}); got != "a , b" {
		t.Fatalf("llama vocabularies keep their spaces: %q", got)
	}
}

// TestNameAttributes checks llama.cpp's Phi-3 rule: special tokens swallow
// the whitespace after them, so "<|user|>\n hi" encodes like "<|user|>hi".
func TestNameAttributes(t *testing.T) {
	v := Vocab{
		Model:  ModelLlama,
		Tokens: []string{"<unk>", "<s>", "</s>", "<|user|>", "▁", "h", "i", "▁h", "▁hi", "<0x0A>"},
		Scores: []float32{0, 0, 0, 0, -1, -2, -3, -4, -5, 0},
		Types:  []int32{TypeUnknown, TypeControl, TypeControl, TypeUserDefined, 1, 1, 1, 1, 1, TypeByte},
		UNK:    0, BOS: 1, EOS: 2, PAD: NoToken, AddSpacePrefix: true,
	}
	plain, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	v.Name = "Phi-3-mini-4k-instruct"
	phi, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := phi.Encode("<|user|>\n hi", EncodeOptions{}), []int32{3, 8}; !equalIDs(got, want) {
		t.Errorf("phi-3: got %v, want %v", got, want)
	}
	if got, want := plain.Encode("<|user|>\n hi", EncodeOptions{}), []int32{3, 4, 9, 8}; !equalIDs(got, want) {
		t.Errorf("plain: got %v, want %v", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	base := Vocab{Model: ModelLlama, Tokens: []string{"<unk>", "a"}, BOS: NoToken, EOS: NoToken, UNK: 0, PAD: NoToken}
	for name, mod := range map[string]func(*Vocab){
		"model":     func(v *Vocab) { v.Model = "bert" },
		"pre":       func(v *Vocab) { v.Model, v.Pre = ModelGPT2, "nope" },
		"empty":     func(v *Vocab) { v.Tokens = nil },
		"duplicate": func(v *Vocab) { v.Tokens = []string{"a", "a"} },
		"scores":    func(v *Vocab) { v.Scores = []float32{1} },
		"types":     func(v *Vocab) { v.Types = []int32{1} },
		"addBOS":    func(v *Vocab) { v.AddBOS = true },
	} {
		v := base
		mod(&v)
		if _, err := New(v); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(base); err != nil {
		t.Fatalf("base vocab: %v", err)
	}
}

// FuzzRoundTrip checks that decoding inverts encoding for valid UTF-8, on
// both real vocabularies, and that nothing panics on any input.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", " ", "Hello world", "\n\n\t x", "🦙 llama's 1234", "\xff\xfe", "<s>", "▁x", "  a  "} {
		f.Add(s)
	}
	spm := loadGGUF(f, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf"))
	bpe := loadGGUF(f, filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-gpt-2.gguf"))
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range []*Tokenizer{spm, bpe} {
			ids := tok.Encode(s, EncodeOptions{AddBOS: true, ParseSpecial: true})
			got := tok.Decode(ids)
			if !utf8.ValidString(s) || strings.Contains(s, "▁") || strings.Contains(s, "<") {
				continue // invalid UTF-8 becomes U+FFFD; ▁ decodes as a space; control tokens vanish
			}
			if got != s {
				t.Fatalf("%s: %q -> %v -> %q", tok.Model(), s, ids, got)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(dataDir(b), "datasets", "tinyshakespeare", "input.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, tc := range []struct{ name, rel string }{
		{"spm", filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf")},
		{"gpt2", filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-gpt-2.gguf")},
	} {
		tok := loadGGUF(b, tc.rel)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.Encode(text, EncodeOptions{AddBOS: true})
			}
		})
	}
}
