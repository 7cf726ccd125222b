package recipe

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/diag"
)

const base = `version: 1
name: t
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
    train:
      max_steps: 10
`

// TestExprPositions puts a misspelt name into stop_when written in every
// YAML scalar style and checks the error lands on the name's own line:col.
func TestExprPositions(t *testing.T) {
	tests := []struct {
		name, yaml string
		line, col  int
	}{
		{"plain", "      stop_when: step > 3 && los < 1\n", 15, 30},
		{"double quoted", "      stop_when: \"step > 3 && los < 1\"\n", 15, 31},
		{"double quoted escapes", "      stop_when: \"step > 3 \\t&& los < 1\"\n", 15, 33},
		{"single quoted", "      stop_when: 'step > 3 && los < 1'\n", 15, 31},
		{"single quoted doubled quote", "      stop_when: 'step > 3 && '''' != \"x\" && los < 1'\n", 15, 46},
		{"literal block", "      stop_when: |\n        step > 3 &&\n          los < 1\n", 17, 11},
		{"folded block", "      stop_when: >-\n        step > 3\n        && los < 1\n", 17, 12},
		{"multi-line plain", "      stop_when: step > 3\n        && los < 1\n", 16, 12},
		{"unicode before", "      stop_when: 'step > 3 && \"é€\" != \"\" && los < 1'\n", 15, 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ds := Parse("r.yaml", []byte(base+tt.yaml), nil)
			if len(ds) != 1 || ds[0].Code != "unknown-name" {
				t.Fatalf("want one unknown-name, got %v", ds)
			}
			if got := ds[0].Range.Start; got != (diag.Pos{Line: tt.line, Col: tt.col}) {
				t.Errorf("at %v, want %d:%d", got, tt.line, tt.col)
			}
			if r := ds[0].Range; r.End.Line == r.Start.Line && r.End.Col-r.Start.Col != 3 {
				t.Errorf("range %v spans %d characters, want 3 (los)", r, r.End.Col-r.Start.Col)
			}
		})
	}
}

func TestDefaultsAndResolution(t *testing.T) {
	r, ds := Parse("r.yaml", []byte(base+`  eval:
    needs: [train]
    evaluate: {heldout: prompts, samples: {prompts: [hi]}}
`), nil)
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	tr := r.Stage("train").Train
	if tr.Input != "prompts" || tr.LoRA.Rank != 8 || tr.LoRA.Alpha != 16 || tr.LoRA.Dropout != 0.05 ||
		tr.Optimizer.LR != 3e-4 || tr.Optimizer.Betas != [2]float64{0.9, 0.999} || tr.Optimizer.Eps != 1e-8 ||
		tr.MicroBatchSize != 4 || tr.BatchSize != 128 || !tr.Halt.OnNaN || tr.Epochs != 0 || tr.MaxSteps != 10 {
		t.Errorf("train defaults wrong: %+v", tr)
	}
	if got := fmt.Sprint(tr.LoRA.Targets); got != "[q v]" {
		t.Errorf("targets %s, want [q v]", got)
	}
	f := r.Stage("prompts").Format
	if f.TrainOn != "response" || !f.AddEOS || f.CutoffLen != 256 || f.ResponseField != "output" || f.Overflow != "truncate" {
		t.Errorf("format defaults wrong: %+v", f)
	}
	if r.Stage("eval").Evaluate.Adapter != "train" {
		t.Errorf("evaluate.adapter not defaulted to the needed train stage")
	}
	if r.Device != "auto" || r.Seed != 1234 || r.Model.Quantize != "none" {
		t.Errorf("top-level defaults wrong: %+v", r)
	}
	if got := fmt.Sprint(r.Stage("eval").Inputs()); got != "[train prompts]" {
		t.Errorf("eval inputs %s", got)
	}
	// epochs default only without max_steps
	r, _ = Parse("r.yaml", []byte(strings.Replace(base, "max_steps: 10", "batch_size: 8", 1)), nil)
	if r.Stage("train").Train.Epochs != 3 {
		t.Errorf("epochs default: %v", r.Stage("train").Train.Epochs)
	}
}

func TestOrder(t *testing.T) {
	src := `version: 1
model: {source: https://x/m.gguf, sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d}
stages:
  eval:
    needs: [train]
    evaluate: {samples: {prompts: [hi]}}
  train:
    train: {input: prompts, max_steps: 1}
  text:
    fetch: {source: https://x/t.txt, sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d}
  prompts:
    format: {input: data, format: alpaca}
  data:
    fetch: {source: https://x/d.json, sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d}
`
	r, ds := Parse("order.yaml", []byte(src), nil)
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	order, err := r.Order()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range order {
		names = append(names, s.Name)
	}
	// text is ready first in file order; data must precede prompts, prompts train, train eval
	if got := strings.Join(names, " "); got != "text data prompts train eval" {
		t.Errorf("order %q", got)
	}
	if r.Name != "order" {
		t.Errorf("name from file: %q", r.Name)
	}
}

func TestOverrides(t *testing.T) {
	r, ds := Parse("r.yaml", []byte(base), []string{
		"stages.train.train.lora.rank=16",
		"stages.train.train.optimizer.betas=[0.8, 0.99]",
		"seed=99",
		"stages.train.train.stop_when=loss < 2",
		"model.quantize=q4_0",
	})
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	tr := r.Stage("train").Train
	if tr.LoRA.Rank != 16 || tr.Optimizer.Betas != [2]float64{0.8, 0.99} || r.Seed != 99 || tr.StopWhen.Src != "loss < 2" || r.Model.Quantize != "q4_0" {
		t.Errorf("overrides not applied: %+v %+v", tr, r)
	}
	if len(r.Overrides) != 5 || r.Overrides[0] != (Override{Path: "stages.train.train.lora.rank", Value: "16"}) {
		t.Errorf("overrides not recorded: %+v", r.Overrides)
	}
	for _, tt := range []struct{ set, code string }{
		{"stages.train.train.lora.rnk=1", "unknown-key"},
		{"stages.nope.train.max_steps=1", "unknown-key"},
		{"seed.x=1", "unknown-key"},
		{"novalue", "bad-override"},
		{"stages.train.train.lora.rank=[1", "yaml-syntax"},
		{"stages.train.train.stop_when=los < 2", "unknown-name"},
	} {
		_, ds := Parse("r.yaml", []byte(base), []string{tt.set})
		if len(ds) != 1 || ds[0].Code != tt.code || ds[0].Range.File != SetFile || ds[0].Range.Start.Line != 1 {
			t.Errorf("--set %s: got %v, want one %s at --set:1", tt.set, ds, tt.code)
		}
	}
}

func TestCompileGate(t *testing.T) {
	g, err := CompileGate(GateStopWhen, "loss < 1.0 && step >= 10")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  TrainEnv
		want bool
	}{
		{TrainEnv{Loss: 0.5, Step: 10}, true},
		{TrainEnv{Loss: 0.5, Step: 9}, false},
		{TrainEnv{Loss: 1.5, Step: 20}, false},
		{TrainEnv{Loss: math.NaN(), Step: 20}, false},
	} {
		if got, err := g.Eval(tt.env); err != nil || got != tt.want {
			t.Errorf("Eval(%+v) = %v, %v; want %v", tt.env, got, err, tt.want)
		}
	}
	if _, err := g.Eval(EvalEnv{}); err == nil {
		t.Error("Eval with the wrong environment type succeeded")
	}
	w, err := CompileGate(GateWhen, `stages.eval.perplexity > 20 && params.device != "cpu"`)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := w.Eval(WhenEnv{Stages: map[string]StageMetrics{"eval": {Perplexity: 30}}, Params: Params{Device: "vulkan"}})
	if err != nil || !ok {
		t.Errorf("when: %v %v", ok, err)
	}
	for _, tt := range []struct{ kind, src, msg string }{
		{GateEval, "perplexty < 3", "did you mean perplexity"},
		{GateEval, "perplexity", "must be true or false"},
		{GateStopWhen, "now() != nil", "not allowed"},
		{GateStopWhen, "date('2024-01-01') != nil", "not allowed"},
		{GateStopWhen, "loss <", ""},
		{GateStopWhen, "  ", "empty"},
		{"nope", "true", "unknown gate kind"},
	} {
		_, err := CompileGate(tt.kind, tt.src)
		if err == nil {
			t.Errorf("%s %q compiled", tt.kind, tt.src)
			continue
		}
		var e *ExprError
		full := err.Error()
		if asExpr(err, &e) && e.Hint != "" {
			full += " " + e.Hint
		}
		if !strings.Contains(full, tt.msg) {
			t.Errorf("%s %q: error %q lacks %q", tt.kind, tt.src, full, tt.msg)
		}
	}
}

func asExpr(err error, e **ExprError) bool {
	x, ok := err.(*ExprError)
	*e = x
	return ok
}

func TestEditDistanceAndSuggest(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "abc", 3}, {"kitten", "sitting", 3}, {"shceduler", "scheduler", 1}, {"rank", "rank", 0}} {
		if got := editDistance(tt.a, tt.b); got != tt.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
	}
	allowed := []string{"lr", "scheduler", "warmup_steps", "betas"}
	for in, want := range map[string]string{"learning_rate": "lr", "schedular": "scheduler", "warmup_step": "warmup_steps", "zzz": ""} {
		if got := suggest(in, allowed); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse: hostile input never panics, and a recipe without errors
// always orders.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base), "seed=3")
	f.Add([]byte("version: 1\nstages: {a: [\n"), "stages.a.train.lora.rank=[1")
	f.Add([]byte("version: 1\nx: &a [*a]\n"), "x.0=1")
	f.Add([]byte("version: 1\nmodel: {<<: {source: x}}\n"), "model.source=")
	f.Add([]byte("version: 1\nstages:\n 00:\n    train: 0"), "stages.00.train.max_steps=2")
	f.Fuzz(func(t *testing.T, src []byte, set string) {
		r, ds := Parse("f.yaml", src, []string{set})
		if r != nil && !ds.HasErrors() {
			if _, err := r.Order(); err != nil {
				t.Errorf("valid recipe does not order: %v", err)
			}
		}
	})
}

func TestByteOrderMark(t *testing.T) {
	r, ds := Parse("bom.yaml", append([]byte("\xef\xbb\xbf"), base...), nil)
	if ds.HasErrors() || r.Name != "t" {
		t.Errorf("a BOM broke parsing: %v", ds)
	}
}

func TestUnusedStage(t *testing.T) {
	src := base + `  extra:
    fetch: {source: https://example.com/x.json, sha256: 270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d}
`
	_, ds := Parse("r.yaml", []byte(src), nil)
	if len(ds) != 1 || ds[0].Code != "unused-stage" || ds[0].Severity != diag.Warning || ds[0].Range.Start != (diag.Pos{Line: 15, Col: 3}) {
		t.Errorf("want one unused-stage warning at 15:3, got %v", ds)
	}
	// with an error elsewhere the warning is left out (it is usually a consequence)
	_, ds = Parse("r.yaml", []byte(strings.Replace(src, "input: data", "input: dat", 1)), nil)
	for _, d := range ds {
		if d.Code == "unused-stage" {
			t.Errorf("unused-stage reported next to errors: %v", ds)
		}
	}
}
