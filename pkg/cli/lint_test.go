package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/recipe"
)

func runLint(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(append([]string{"lint"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const lintGood = `version: 1
name: good
model:
  source: https://example.com/m.gguf
  sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d
stages:
  data:
    fetch: {source: https://example.com/d.json, sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d}
  prompts:
    format: {input: data, format: alpaca}
  train:
    needs: [prompts]
    train: {max_steps: 10, stop_when: loss < 1.0}
`

func TestLintExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", lintGood)
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(lintGood, "loss < 1.0", "los < 1.0", 1))
	broken := writeFile(t, dir, "broken.yaml", "version: 1\nstages: {a: [\n")
	tests := []struct {
		name string
		args []string
		code int
		want []string // substrings of stdout
	}{
		{"clean", []string{good}, 0, []string{"1 recipe ok"}},
		{"expression error", []string{bad}, 2, []string{"bad.yaml:13:39: error: unknown name los", "did you mean loss?"}},
		{"all files reported", []string{bad, broken, good}, 2, []string{"bad.yaml:13:39", "broken.yaml:", "in 3 recipes"}},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, 2, []string{"cannot read recipe"}},
		{"override fixes", []string{bad, "--set", "stages.train.train.stop_when=loss < 2"}, 0, []string{"ok"}},
		{"override unknown path", []string{good, "--set", "stages.train.train.lora.rnk=4"}, 2, []string{"--set:1:25: error:", "did you mean rank?"}},
		{"bad format flag", []string{good, "--format", "xml"}, 2, nil},
		{"shipped recipes", shipped(t), 0, []string{"0 errors"}},
		{"no args", nil, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runLint(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "\x1b[") {
				t.Error("color codes written to a non-terminal")
			}
		})
	}
}

func TestLintJSON(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", lintGood)
	broken := writeFile(t, dir, "broken.yaml", "version: 1\nstages: {a: [\n")
	code, out, _ := runLint(t, "--format", "json", good, broken)
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	var doc struct {
		Version     int `json:"version"`
		Errors      int `json:"errors"`
		Warnings    int `json:"warnings"`
		Diagnostics []struct {
			Severity string `json:"severity"`
			Code     string `json:"code"`
			Range    struct {
				File  string `json:"file"`
				Start struct{ Line, Col int }
			} `json:"range"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if doc.Version != 1 || doc.Errors != 1 || len(doc.Diagnostics) != 1 {
		t.Fatalf("unexpected document: %+v", doc)
	}
	d := doc.Diagnostics[0]
	if d.Code != "yaml-syntax" || d.Severity != "error" || d.Range.File != broken || d.Range.Start.Line < 2 {
		t.Errorf("unexpected diagnostic: %+v", d)
	}

	code, out, _ = runLint(t, "--format", "json", good)
	if code != 0 || !strings.Contains(out, `"diagnostics": []`) {
		t.Errorf("clean JSON: exit %d\n%s", code, out)
	}
}

// TestLintLocalData: lint runs the format stage's record checks on local
// data, and with the real stories260K model the tokenizing checks too.
func TestLintLocalData(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "records.jsonl", `{"instruction": "Say hi", "output": "Hi!"}
{"question": "What?", "answer": "That."}
`)
	model := filepath.Join(dir, "model.gguf")
	src := `version: 1
name: local
model: {source: MODEL}
stages:
  data:
    fetch: {source: ./records.jsonl}
  prompts:
    format: {input: data, format: alpaca-chatbot SKIP}
  train:
    needs: [prompts]
    train: {max_steps: 1}
`
	shared := filepath.Join("..", "..", "..", "shared", "data", "models", "stories260K.gguf")
	if _, err := os.Stat(shared); err == nil {
		model, _ = filepath.Abs(shared)
	} else {
		t.Log("../shared/data absent: checking records only")
		writeFile(t, dir, "model.gguf", "not a model")
	}
	p := writeFile(t, dir, "r.yaml", strings.NewReplacer("MODEL", model, " SKIP", "").Replace(src))
	code, out, _ := runLint(t, p)
	if code != 2 || !strings.Contains(out, "records.jsonl:2:") {
		t.Errorf("unmatched record not reported at records.jsonl:2 (exit %d):\n%s", code, out)
	}
	p = writeFile(t, dir, "r2.yaml", strings.NewReplacer("MODEL", model, " SKIP", ", skip_unmatched: true").Replace(src))
	code, out, _ = runLint(t, p)
	if code != 0 || !strings.Contains(out, "warning") {
		t.Errorf("skip_unmatched: want exit 0 with a warning, got %d:\n%s", code, out)
	}
}

// shipped returns the recipes in the repository's recipes/ directory.
func shipped(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join("..", "..", "recipes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped recipes: %v", err)
	}
	return files
}

// TestBuiltinFormatsMatchDataset: lint accepts exactly the format names the
// format stage implements (pkg/recipe cannot import pkg/dataset: cycle).
func TestBuiltinFormatsMatchDataset(t *testing.T) {
	got := slices.Sorted(slices.Values(recipe.BuiltinFormats))
	if want := dataset.BuiltinNames(); !slices.Equal(got, want) {
		t.Errorf("recipe.BuiltinFormats %v, dataset.BuiltinNames %v", got, want)
	}
}
