package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/recipe"
)

// planKeys returns stage name → key for a recipe source.
func planKeys(t *testing.T, e *env, src string, overrides ...string) map[string]string {
	t.Helper()
	e.write(t, "k.yaml", src)
	r, ds := recipe.Load(e.dir+"/k.yaml", overrides)
	if ds.HasErrors() {
		t.Fatalf("recipe: %v", ds.Err())
	}
	p, err := Plan(context.Background(), r, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, s := range p.Stages {
		if s.Key == "" {
			t.Fatalf("stage %s has no key: %s", s.Name, s.Reason)
		}
		keys[s.Name] = s.Key
	}
	return keys
}

func TestKeysIgnoreLayoutAndComments(t *testing.T) {
	e := newEnv(t)
	a := planKeys(t, e, demoRecipe)
	b := planKeys(t, e, `# the same recipe, written differently
version: 1
name: demo
device: cpu
seed: 7          # key order and comments do not matter
model: {source: model.gguf}
stages:
  data: {fetch: {source: data.json}}
  prompts:
    format:
      format: alpaca
      input: data
      cutoff_len: 256   # the default, written out
  train:
    train:
      batch_size: 4
      max_steps: 2
      lora: {rank: 8}
      input: prompts
  eval:
    evaluate:
      adapter: train
      samples: {prompts: ["hi"]}
      gate: "perplexity < 40"
  report:
    needs: [eval]
    when: stages.eval.perplexity > 20
    evaluate: {adapter: train, samples: {prompts: ["again"]}}
`)
	for name, k := range a {
		if b[name] != k {
			t.Errorf("%s: key changed with layout only", name)
		}
	}
}

func TestKeysFollowWhatMatters(t *testing.T) {
	e := newEnv(t)
	base := planKeys(t, e, demoRecipe)
	for _, tc := range []struct {
		name      string
		overrides []string
		changed   string // stages whose key must change; the rest must not
	}{
		{"seed", []string{"seed=8"}, "train eval report"},
		{"lora rank", []string{"stages.train.train.lora.rank=16"}, "train eval report"},
		{"quantize", []string{"model.quantize=q8_0"}, "train eval report"},
		{"format cutoff", []string{"stages.prompts.format.cutoff_len=64"}, "prompts train eval report"},
		{"fetch file name", []string{"stages.data.fetch.filename=x.json"}, "data prompts train eval report"},
		{"gate", []string{"stages.eval.evaluate.gate=perplexity < 50"}, "eval report"},
		{"description", []string{"description=words"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planKeys(t, e, demoRecipe, tc.overrides...)
			var changed []string
			for _, s := range []string{"data", "prompts", "train", "eval", "report"} {
				if got[s] != base[s] {
					changed = append(changed, s)
				}
			}
			if strings.Join(changed, " ") != tc.changed {
				t.Errorf("changed keys: %q, want %q", strings.Join(changed, " "), tc.changed)
			}
		})
	}
	// The model's content is in the key of stages that use it, not of fetch.
	e.write(t, "model.gguf", "other model bytes")
	got := planKeys(t, e, demoRecipe)
	if got["data"] != base["data"] || got["prompts"] == base["prompts"] || got["train"] == base["train"] {
		t.Errorf("model change: data %v prompts %v train %v (want data unchanged, others changed)",
			got["data"] != base["data"], got["prompts"] != base["prompts"], got["train"] != base["train"])
	}
}

func TestDiff(t *testing.T) {
	seed1, seed2 := uint64(1), uint64(2)
	old := &Material{Kind: "train", Tool: "0.1.0", Seed: &seed1, Device: "cpu",
		Definition: map[string]any{"train": map[string]any{"lora": map[string]any{"rank": 8.0, "targets": []any{"q", "v"}}}},
		Inputs:     map[string]string{"prompts": "aaa"}, Files: map[string]string{"fmt.json": "111"},
		Model: &ModelRef{SHA256: strings.Repeat("a", 64), Quantize: "none"}}
	now := &Material{Kind: "train", Tool: "0.2.0", Seed: &seed2, Device: "vulkan",
		Definition: map[string]any{"train": map[string]any{"lora": map[string]any{"rank": 16.0, "targets": []any{"q", "v"}}, "max_steps": 5.0}},
		Inputs:     map[string]string{"prompts": "bbb"}, Files: map[string]string{"fmt.json": "222"},
		Model: &ModelRef{SHA256: strings.Repeat("a", 64), Quantize: "q4_0"}}
	got := strings.Join(Diff(old, now), "\n")
	want := strings.Join([]string{
		"definition changed: train.lora.rank 8 → 16",
		"definition changed: train.max_steps set to 5",
		"model quantize none → q4_0",
		"seed 1 → 2",
		"device cpu → vulkan",
		"input prompts changed",
		"file fmt.json changed",
		"tool version 0.1.0 → 0.2.0",
	}, "\n")
	if got != want {
		t.Errorf("Diff:\n%s\nwant:\n%s", got, want)
	}
	if d := Diff(old, old); len(d) != 0 {
		t.Errorf("Diff of equal materials: %v", d)
	}
	if old.Key() == now.Key() || old.Key() != old.Key() {
		t.Error("Key does not follow the material")
	}
}
