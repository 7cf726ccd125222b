package tokenizer

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenText mixes scripts, digits, contractions, spacing and symbols.
const goldenText = "Hello WORLD, it's 2024! 3.14159 — naïve café 中文字符 日本語テキスト 한국어 Ελληνικά\n\n  \tindented\r\n" +
	"def f(x):\n    return x**2  # ok?\n<sentinel:7> IMGIMGABZ 🦙🦙 $100 + 12,345,678 'LL 'Re ... ¿qué? ١٢٣"

// TestPreTokenizerGolden pins the split of every named pre-tokenizer on a
// fixed text (go test -update rewrites testdata/pretokenizers.golden.json
// after an intended change; review the diff).
func TestPreTokenizerGolden(t *testing.T) {
	got := map[string][]string{}
	for _, name := range PreTokenizers() {
		cfg, _ := lookupPre(name)
		sp, err := compileSplitters(cfg.exprs, modeLlama)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text := goldenText
		if cfg.escapeSpaces {
			text = escapeSpaces(text)
		}
		got[name] = splitWords(text, sp)
	}
	data, err := json.MarshalIndent(got, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, '\n')
	path := filepath.Join("testdata", "pretokenizers.golden.json")
	if *update {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(data, want) {
		var old map[string][]string
		if err := json.Unmarshal(want, &old); err != nil {
			t.Fatal(err)
		}
		for name, pieces := range got {
			a, _ := json.Marshal(pieces)
			b, _ := json.Marshal(old[name])
			if !bytes.Equal(a, b) {
				t.Errorf("%s:\n got %s\nwant %s", name, a, b)
			}
		}
		t.Fatal("pre-tokenizer splits differ from the golden file (go test -update after an intended change)")
	}
}
