package train_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lora-dev/lora/pkg/dataset/formatstage"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
	"github.com/lora-dev/lora/pkg/train"
)

// The recipe the process tests run: stories260K on 64 real Alpaca records,
// dropout on, checkpoints every 3 steps.
const killRecipe = `version: 1
name: killed
seed: 7
device: cpu
model: {source: %q}
stages:
  data:
    fetch: {source: %q}
  prompts:
    format: {input: data, format: alpaca-chatbot, cutoff_len: 96, skip_unmatched: true}
  train:
    needs: [prompts]
    train:
      lora: {rank: 4, alpha: 8, dropout: 0.1, targets: [q, k, v, o]}
      optimizer: {lr: 3.0e-3, scheduler: cosine, warmup_steps: 2}
      max_steps: 24
      micro_batch_size: 2
      batch_size: 4
      save_every: 3
`

func sharedFile(t *testing.T, rel string) string {
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
		t.Skipf("shared data %s not present", rel)
	}
	abs, _ := filepath.Abs(p)
	return abs
}

// writeRecipe writes the recipe and a 64-record slice of Alpaca next to it.
func writeRecipe(t *testing.T, dir string) string {
	t.Helper()
	model := sharedFile(t, "models/stories260K.gguf")
	raw, err := os.ReadFile(sharedFile(t, "datasets/alpaca/alpaca_5000.json"))
	if err != nil {
		t.Fatal(err)
	}
	// the first 64 records of the JSON array, cut at a record boundary
	n, end := 0, 0
	for i := 0; i < len(raw) && n < 64; i++ {
		if raw[i] == '}' && i+1 < len(raw) && (raw[i+1] == ',' || raw[i+1] == ']') {
			n, end = n+1, i+1
		}
	}
	data := filepath.Join(dir, "records.json")
	if err := os.WriteFile(data, append(append([]byte{}, raw[:end]...), ']'), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "killed.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(killRecipe, model, data)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runRecipe(t *testing.T, path, runs, cache, resume string) string {
	t.Helper()
	r, diags := recipe.Load(path, nil)
	if diags.HasErrors() {
		t.Fatalf("recipe: %v", diags.Err())
	}
	st, err := store.Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Run(context.Background(), r, pipeline.Options{Store: st, RunsDir: runs, Resume: resume,
		Fresh: []string{recipe.KindTrain}, Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return res.RunDir
}

func adapterBytes(t *testing.T, runDir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, "stages", "train", train.AdapterDir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKillProcess is the body of the child process: it runs the recipe
// until the parent kills it.
func TestKillProcess(t *testing.T) {
	path := os.Getenv("LORA_KILL_RECIPE")
	if path == "" {
		t.Skip("helper process")
	}
	runRecipe(t, path, os.Getenv("LORA_KILL_RUNS"), os.Getenv("LORA_KILL_CACHE"), "")
}

// A run killed with SIGKILL in the middle of training and resumed ends with
// an adapter byte-identical to an uninterrupted run's; and two uninterrupted
// runs (a rerun) are byte-identical too.
func TestKillNineThenResumeIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three times")
	}
	dir := t.TempDir()
	path := writeRecipe(t, dir)
	cache := filepath.Join(dir, "cache")

	want := adapterBytes(t, runRecipe(t, path, filepath.Join(dir, "a"), cache, ""))
	again := adapterBytes(t, runRecipe(t, path, filepath.Join(dir, "b"), cache, ""))
	if !bytes.Equal(want, again) {
		t.Fatal("two runs of the same recipe and seed made different adapters")
	}

	runs := filepath.Join(dir, "killed")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "LORA_KILL_RECIPE="+path, "LORA_KILL_RUNS="+runs, "LORA_KILL_CACHE="+cache)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	var runDir string
	for time.Now().Before(deadline) {
		m, _ := filepath.Glob(filepath.Join(runs, "killed", "*", "checkpoints", "train", "checkpoint-6"))
		if len(m) == 1 {
			runDir = filepath.Dir(filepath.Dir(filepath.Dir(m[0])))
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if runDir == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no checkpoint-6 appeared; child output:\n%s", out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(runDir, "stages", "train", "stage.json")); err == nil {
		t.Skip("the child finished training before the kill landed; nothing to resume")
	}
	got := adapterBytes(t, runRecipe(t, path, "", cache, runDir))
	if !bytes.Equal(want, got) {
		t.Fatalf("resumed adapter differs from the uninterrupted one")
	}
	// the resumed stage's own metrics.jsonl has every step exactly once:
	// the steps before the checkpoint come back from it
	mb, err := os.ReadFile(filepath.Join(runDir, "stages", "train", "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(mb)), "\n") {
		var rec struct {
			Step int `json:"step"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		seen[rec.Step]++
	}
	for s := 1; s <= 24; s++ {
		if seen[s] != 1 {
			t.Errorf("step %d appears %d times in the resumed stage's metrics.jsonl", s, seen[s])
		}
	}
	// the resumed stage really resumed (it did not start over)
	log, _ := os.ReadFile(filepath.Join(runDir, "logs", "train.log"))
	if !strings.Contains(string(log), "resumed from") {
		t.Errorf("train log does not show a resume:\n%s", log)
	}
}
