package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// previewAsset finds ../shared/data/rel from the repository root, or skips.
func previewAsset(t *testing.T, rel string) string {
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

func TestPreview(t *testing.T) {
	model := previewAsset(t, "models/stories260K.gguf")
	dir := t.TempDir()
	t.Setenv("LORA_CACHE", filepath.Join(dir, "cache"))
	os.WriteFile(filepath.Join(dir, "data.jsonl"), []byte(
		`{"instruction": "Say hi", "output": "Hi there."}`+"\n"+
			`{"instruction": "Add", "input": "2 and 2", "output": "4"}`+"\n"+
			`{"instruction": "Nothing to say", "output": ""}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "story.txt"), []byte("Once upon a time there was a cat.\nThe cat sat on a mat.\n\n\nThe end.\n"), 0o644)
	recipePath := filepath.Join(dir, "r.yaml")
	os.WriteFile(recipePath, []byte(`version: 1
name: preview-test
model:
  source: `+model+`
stages:
  data:
    fetch: {source: ./data.jsonl}
  prompts:
    format: {input: data, format: alpaca-chatbot, skip_unmatched: true}
  text:
    fetch: {source: ./story.txt}
  chunks:
    chunk: {input: text, cutoff_len: 12, overlap_len: 4, newline_favor_len: 10}
`), 0o644)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(append([]string{"preview", recipePath}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run("--stage", "prompts", "-n", "5")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"stage prompts (format): 2 examples from 3 records",
		"1 unmatched skipped",
		"legend: «trained text»",
		"── example 1 of 2 ·",
		// " Hi" is one token: the space before the answer is trained with it.
		"<s>User: Say hi\nAssistant:« Hi there.</s>»",
		"<s>User: Add: 2 and 2\nAssistant: «4</s>»",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("color codes in output that is not a terminal")
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
		t.Error("preview wrote a runs directory")
	}

	code, out, errs = run("--stage", "prompts", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("jsonl: exit %d\n%s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(errs, "2 examples from 3 records") {
		t.Fatalf("jsonl: %d lines\n%s\nstderr %s", len(lines), out, errs)
	}
	var obj struct {
		Text     string  `json:"text"`
		Trained  string  `json:"trained_text"`
		InputIDs []int32 `json:"input_ids"`
		Labels   []int32 `json:"labels"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &obj); err != nil {
		t.Fatal(err)
	}
	if obj.Text != "<s>User: Say hi\nAssistant: Hi there.</s>" || obj.Trained != " Hi there.</s>" || len(obj.InputIDs) != len(obj.Labels) || obj.Labels[0] != -100 {
		t.Errorf("jsonl object %+v", obj)
	}

	code, out, _ = run("--stage", "chunks", "-n", "10", "--color", "always")
	if code != 0 || !strings.Contains(out, "stage chunks (chunk): ") || !strings.Contains(out, "\x1b[2m<s>\x1b[0m«Once upon") || !strings.Contains(out, "«The end.\n»") {
		t.Errorf("chunks: exit %d\n%q", code, out)
	}

	// Without skip_unmatched the stage fails at the record, named in the
	// file the recipe wrote (not the stage's copy of it).
	code, _, errs = run("--stage", "prompts", "--set", "stages.prompts.format.skip_unmatched=false")
	if code != ExitFailed || !strings.Contains(errs, "./data.jsonl:3:1: error: record 2 has fields {instruction}") {
		t.Errorf("unmatched: exit %d\n%s", code, errs)
	}

	for _, args := range [][]string{
		{"--stage", "data"},
		{"--stage", "nope"},
		{},
		{"--stage", "prompts", "--format", "xml"},
	} {
		if code, _, _ := run(args...); code != ExitInvalid {
			t.Errorf("%v: exit %d, want %d", args, code, ExitInvalid)
		}
	}
}
