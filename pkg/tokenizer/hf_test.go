package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/gguf"
)

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHFFromGPT2 rebuilds GPT-2's tokenizer.json from the GGUF vocabulary
// and merges, and checks that the Hugging Face loading path reproduces
// llama.cpp's test vectors (which come from the Hugging Face tokenizer).
func TestHFFromGPT2(t *testing.T) {
	rel := filepath.Join("tokenizers", "llama.cpp", "ggml-vocab-gpt-2.gguf")
	path := filepath.Join(dataDir(t), rel)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tokens, _ := f.Strings(keyTokens)
	merges, _ := f.Strings(keyMerges)
	vocab := make(map[string]int, len(tokens))
	for i, s := range tokens {
		vocab[s] = i
	}
	eot := len(tokens) - 1
	for _, mergeFormat := range []string{"strings", "pairs"} {
		t.Run(mergeFormat, func(t *testing.T) {
			var m any = merges
			if mergeFormat == "pairs" {
				pairs := make([][2]string, len(merges))
				for i, s := range merges {
					a, b, _ := strings.Cut(s, " ")
					pairs[i] = [2]string{a, b}
				}
				m = pairs
			}
			dir := t.TempDir()
			writeJSON(t, filepath.Join(dir, "tokenizer.json"), map[string]any{
				"version":       "1.0",
				"added_tokens":  []map[string]any{{"id": eot, "content": tokens[eot], "special": true}},
				"normalizer":    nil,
				"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
				"decoder":       map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
				"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": m},
			})
			tok, err := FromHF(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tok.BOS() != int32(eot) || tok.EOS() != int32(eot) || tok.AddBOS() {
				t.Fatalf("bos %d eos %d addBOS %v", tok.BOS(), tok.EOS(), tok.AddBOS())
			}
			for i, c := range readVectors(t, path) {
				got := tok.Encode(c.text, EncodeOptions{})
				if !equalIDs(got, c.ids) {
					t.Fatalf("case %d %q:\n got %v\nwant %v", i, c.text, got, c.ids)
				}
				if back := tok.Decode(got); back != c.text {
					t.Fatalf("case %d: decode %q, want %q", i, back, c.text)
				}
			}
			if got := tok.Encode("a<|endoftext|>", EncodeOptions{ParseSpecial: true}); len(got) != 2 || got[1] != int32(eot) {
				t.Fatalf("special token: %v", got)
			}
		})
	}
}

// tinyLlamaVocab is a SentencePiece-style BPE vocabulary with byte
// fallback: <unk>, <s>, </s>, the 256 byte tokens, then word pieces.
func tinyLlamaVocab() (map[string]int, []string) {
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := 0; b < 256; b++ {
		vocab[byteNames[b]] = 3 + b
	}
	for i, s := range []string{"▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "ll", "▁he", "llo", "▁hello", "▁w", "or", "▁wor", "ld", "▁world"} {
		vocab[s] = 259 + i
	}
	merges := []string{"▁ h", "l l", "▁h e", "ll o", "▁he llo", "▁ w", "o r", "▁w or", "l d", "▁wor ld"}
	return vocab, merges
}

func TestHFLlamaStyle(t *testing.T) {
	vocab, merges := tinyLlamaVocab()
	id := func(s string) int32 { return int32(vocab[s]) }
	added := []map[string]any{
		{"id": 0, "content": "<unk>", "special": true},
		{"id": 1, "content": "<s>", "special": true},
		{"id": 2, "content": "</s>", "special": true},
	}
	normalizerStyle := map[string]any{
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"},
		}},
		"pre_tokenizer": nil,
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			}},
	}
	metaspaceStyle := map[string]any{
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false},
		"decoder":       map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false},
	}
	for name, style := range map[string]map[string]any{"normalizer": normalizerStyle, "metaspace": metaspaceStyle} {
		t.Run(name, func(t *testing.T) {
			for _, fallback := range []bool{true, false} {
				doc := map[string]any{
					"added_tokens": added,
					"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": merges,
						"unk_token": "<unk>", "byte_fallback": fallback, "fuse_unk": true},
				}
				for k, v := range style {
					doc[k] = v
				}
				dir := t.TempDir()
				writeJSON(t, filepath.Join(dir, "tokenizer.json"), doc)
				if name == "metaspace" {
					writeJSON(t, filepath.Join(dir, "tokenizer_config.json"), map[string]any{
						"add_bos_token": true, "add_eos_token": false,
						"bos_token": map[string]any{"content": "<s>"}, "eos_token": "</s>", "unk_token": "<unk>",
					})
				}
				tok, err := FromHF(filepath.Join(dir, "tokenizer.json"))
				if err != nil {
					t.Fatal(err)
				}
				if !tok.AddBOS() || tok.BOS() != 1 || tok.EOS() != 2 || tok.UNK() != 0 {
					t.Fatalf("specials: addBOS %v bos %d eos %d unk %d", tok.AddBOS(), tok.BOS(), tok.EOS(), tok.UNK())
				}
				got := tok.Encode("hello world é€", EncodeOptions{AddBOS: true})
				want := []int32{1, id("▁hello"), id("▁world"), id("▁")}
				if fallback {
					want = append(want, id("<0xC3>"), id("<0xA9>"), id("<0xE2>"), id("<0x82>"), id("<0xAC>"))
				} else {
					want = append(want, 0) // é€: two unknown characters fused into one <unk>
				}
				if !equalIDs(got, want) {
					t.Fatalf("fallback %v: got %v, want %v", fallback, got, want)
				}
				if fallback {
					if back := tok.Decode(got); back != "hello world é€" {
						t.Fatalf("decode %q", back)
					}
				}
				// After a special token the text gets the dummy prefix in the
				// normalizer style (Prepend runs per piece) but not with
				// Metaspace prepend_scheme "first".
				got = tok.Encode("<s>hello", EncodeOptions{ParseSpecial: true})
				want = []int32{1, id("▁hello")}
				if name == "metaspace" {
					want = []int32{1, id("h"), id("e"), id("llo")}
				}
				if !equalIDs(got, want) {
					t.Fatalf("after special: got %v, want %v", got, want)
				}
			}
		})
	}
}

func TestHFSplitPreTokenizer(t *testing.T) {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune[b])] = b
	}
	vocab["ab"] = 256
	dir := t.TempDir()
	writeJSON(t, filepath.Join(dir, "tokenizer.json"), map[string]any{
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\p{N}{1,3}`}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "Split", "pattern": map[string]any{"String": "-"}, "behavior": "Removed"},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
		}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"a b"}},
	})
	tok, err := FromHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("ab12345-ab", EncodeOptions{})
	// pieces: "ab" "123" "45" "ab"; the '-' is removed
	want := []int32{256, '1', '2', '3', '4', '5', 256}
	if !equalIDs(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSplitBehavior(t *testing.T) {
	re, err := compileRegex(`-`, modeUnicode)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		behavior string
		invert   bool
		want     string
	}{
		{"Isolated", false, "a|-|b|-|-|c"},
		{"Removed", false, "a|b|c"},
		{"MergedWithPrevious", false, "a-|b--|c"},
		{"MergedWithNext", false, "a|-b|-|-c"},
		{"Contiguous", false, "a|-|b|--|c"},
		{"Removed", true, "-|-|-"}, // each match is its own span, as in the tokenizers library
	} {
		got := strings.Join(splitBehavior("a-b--c", re, tc.behavior, tc.invert), "|")
		if got != tc.want {
			t.Errorf("%s invert=%v: got %q, want %q", tc.behavior, tc.invert, got, tc.want)
		}
	}
}

func TestHFErrors(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{
		"wordpiece":  `{"model":{"type":"WordPiece","vocab":{"a":0}}}`,
		"notjson":    `{"model":`,
		"badmerge":   `{"model":{"type":"BPE","vocab":{"a":0},"merges":["ab"]}}`,
		"negative":   `{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}}`,
		"normalizer": `{"normalizer":{"type":"Precompiled"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`,
		"pretok":     `{"pre_tokenizer":{"type":"Split","pattern":{"Regex":"(?<=a)"},"behavior":"Isolated"},"model":{"type":"BPE","vocab":{"a":0},"merges":[]}}`,
		"huge":       `{"model":{"type":"BPE","vocab":{"a":99999999},"merges":[]}}`,
	} {
		p := filepath.Join(dir, name+".json")
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := FromHF(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v should name %s", name, err, p)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path: no error")
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer.json") {
		t.Errorf("directory without tokenizer.json: %v", err)
	}
}

func TestLoadDetectsKind(t *testing.T) {
	d := dataDir(t)
	tok, err := Load(filepath.Join(d, "models", "stories260K.gguf"))
	if err != nil || tok.Model() != ModelLlama {
		t.Fatalf("gguf: %v %v", tok, err)
	}
	vocab, merges := tinyLlamaVocab()
	p := filepath.Join(t.TempDir(), "custom-name.bin")
	writeJSON(t, p, map[string]any{"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": merges}})
	if tok, err = Load(p); err != nil || tok.VocabSize() != len(vocab) {
		t.Fatalf("json: %v", err)
	}
}
