// Package evaluate measures a trained adapter: perplexity, held-out loss, samples and a gate.
package evaluate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/device"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/tokenizer"
	"github.com/lora-dev/lora/pkg/train"
)

// Files an evaluate stage writes.
const (
	ReportFile  = "report.md"
	ResultFile  = "eval.json"
	SamplesFile = "samples.jsonl"
)

func init() { pipeline.Register(recipe.KindEvaluate, stageKind{}) }

type stageKind struct{}

// Sample is one generated text.
type Sample struct {
	Prompt      string  `json:"prompt"`
	Model       string  `json:"model"` // "adapter" or "base"
	Text        string  `json:"text"`
	Tokens      int     `json:"tokens"`
	Temperature float64 `json:"temperature"`
	Seed        uint64  `json:"seed"`
}

// Result is what an evaluation measured. NaN fields were not measured.
type Result struct {
	Perplexity        float64  `json:"perplexity"`
	PerplexityWindows float64  `json:"perplexity_window_mean"`
	Tokens            int      `json:"tokens"`
	HeldoutLoss       float64  `json:"heldout_loss"`
	HeldoutPerplexity float64  `json:"heldout_perplexity"`
	HeldoutTokens     int      `json:"heldout_tokens"`
	BasePerplexity    float64  `json:"base_perplexity"`
	BaseHeldoutLoss   float64  `json:"base_heldout_loss"`
	Samples           []Sample `json:"-"`
	Gate              string   `json:"gate,omitempty"`
	Passed            bool     `json:"passed"`
	Adapter           string   `json:"adapter"`
	Device            string   `json:"device"`
}

// Env is the result as the gate sees it.
func (r *Result) Env() recipe.EvalEnv {
	return recipe.EvalEnv{Perplexity: r.Perplexity, HeldoutLoss: r.HeldoutLoss, HeldoutPerplexity: r.HeldoutPerplexity,
		BasePerplexity: r.BasePerplexity, BaseHeldoutLoss: r.BaseHeldoutLoss, Tokens: r.Tokens}
}

func nan() float64 { return math.NaN() }

// defaultCtx is the train stage's cutoff, or 256.
func defaultCtx(r *recipe.Recipe, trainName string) int {
	if st := r.Stage(trainName); st != nil && st.Train != nil && st.Train.CutoffLen > 0 {
		return st.Train.CutoffLen
	}
	return 256
}

// Run evaluates the adapter of a recipe's evaluate stage.
func (stageKind) Run(ctx context.Context, rc *pipeline.RunContext) error {
	s := rc.Stage
	ev := s.Evaluate
	// recipe.Load fills evaluate.adapter from needs, or reports why it cannot.
	tname := ev.Adapter
	if tname == "" {
		return fmt.Errorf("stage %s: evaluate.adapter is not set (lora lint says why)", s.Name)
	}
	tdir, ok := rc.Inputs[tname]
	if !ok {
		return fmt.Errorf("evaluate: train stage %q has no output", tname)
	}
	be, note, err := device.Open(rc.Device)
	if err != nil {
		return err
	}
	defer be.Close()
	if note != "" {
		fmt.Fprintln(rc.Log, note)
	}
	m, err := model.Load(rc.Model, be, model.LoadOptions{Quantize: rc.Quantize})
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := tokenizer.Load(rc.Model)
	if err != nil {
		return fmt.Errorf("tokenizer of %s: %w", rc.Model, err)
	}
	ad, err := adapter.Load(filepath.Join(tdir, train.AdapterDir))
	if err != nil {
		return err
	}
	res := &Result{Perplexity: nan(), PerplexityWindows: nan(), HeldoutLoss: nan(), HeldoutPerplexity: nan(),
		BasePerplexity: nan(), BaseHeldoutLoss: nan(), Adapter: tname, Device: be.Info().Device, Passed: true}

	var text []int32
	var pplOpts model.PerplexityOptions
	if ev.Perplexity != nil {
		path := rc.Path(ev.Perplexity.Text)
		if _, ok := rc.Inputs[ev.Perplexity.Text]; ok {
			if path, err = rc.InputMain(ev.Perplexity.Text); err != nil {
				return err
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("perplexity text: %w", err)
		}
		text = tok.Encode(string(b), tokenizer.EncodeOptions{AddBOS: true})
		if n := ev.Perplexity.MaxTokens; n > 0 && len(text) > n {
			fmt.Fprintf(rc.Log, "perplexity: scoring the first %d of %d tokens (perplexity.max_tokens)\n", n, len(text))
			text = text[:n]
		}
		pplOpts.Ctx = ev.Perplexity.Ctx
		if pplOpts.Ctx == 0 {
			pplOpts.Ctx = defaultCtx(rc.Recipe, tname)
		}
		pplOpts.Stride = ev.Perplexity.Stride
		if pplOpts.Stride == 0 {
			pplOpts.Stride = max(1, pplOpts.Ctx/2)
		}
	}
	var held []train.Example
	if ev.Heldout != "" {
		dir, ok := rc.Inputs[ev.Heldout]
		if !ok {
			return fmt.Errorf("evaluate: heldout stage %q has no output", ev.Heldout)
		}
		if held, err = examples.ReadEval(dir); err != nil {
			return err
		}
		if len(held) == 0 {
			fmt.Fprintf(rc.Log, "warning: stage %s has no held-out examples (set eval_split there); heldout_loss is not measured\n", ev.Heldout)
		}
	}
	cutoff := defaultCtx(rc.Recipe, tname)
	measure := func(label string) (ppl, pplw, hl float64, ntok, htok int, err error) {
		ppl, pplw, hl = nan(), nan(), nan()
		if text != nil {
			opts := pplOpts
			last := time.Now()
			opts.Progress = func(done, total int) {
				if time.Since(last) > 10*time.Second || done == total {
					last = time.Now()
					fmt.Fprintf(rc.Log, "%s: perplexity windows %d/%d\n", label, done, total)
				}
			}
			r, err := m.Perplexity(ctx, text, opts)
			if err != nil {
				return 0, 0, 0, 0, 0, fmt.Errorf("perplexity (%s): %w", label, err)
			}
			ppl, pplw, ntok = r.Perplexity, r.WindowMean, r.Tokens
			fmt.Fprintf(rc.Log, "%s: perplexity %.4f over %d tokens (ctx %d, stride %d)\n", label, ppl, ntok, pplOpts.Ctx, pplOpts.Stride)
		}
		if len(held) > 0 {
			a, err := m.NewActivations(4, cutoff, false)
			if err != nil {
				return 0, 0, 0, 0, 0, err
			}
			hl, htok, err = train.HeldoutLoss(ctx, m, a, held)
			a.Free()
			if err != nil {
				return 0, 0, 0, 0, 0, fmt.Errorf("held-out loss (%s): %w", label, err)
			}
			fmt.Fprintf(rc.Log, "%s: held-out loss %.4f over %d trained tokens\n", label, hl, htok)
		}
		return
	}
	samples := func(label string) error {
		if ev.Samples == nil {
			return nil
		}
		sp := ev.Samples
		seed := sp.Seed
		if seed == 0 {
			seed = rc.Seed
		}
		// Greedy always (the deterministic answer); with a temperature, a
		// seeded sample too (what a chat front end would show).
		modes := []model.Sampling{{}}
		if sp.Temperature > 0 {
			modes = append(modes, model.Sampling{Temperature: sp.Temperature, TopK: sp.TopK, TopP: sp.TopP, Seed: seed})
		}
		for _, p := range sp.Prompts {
			ids := tok.Encode(p, tokenizer.EncodeOptions{AddBOS: true})
			for _, mode := range modes {
				out, err := m.Generate(ids, sp.MaxTokens, mode, func(id int32) bool { return tok.IsEOG(id) }, nil)
				if err != nil {
					return fmt.Errorf("sample (%s): %w", label, err)
				}
				smp := Sample{Prompt: p, Model: label, Text: tok.Decode(out), Tokens: len(out), Temperature: mode.Temperature}
				if mode.Temperature > 0 {
					smp.Seed = seed
				}
				res.Samples = append(res.Samples, smp)
			}
		}
		return nil
	}
	if ev.CompareBase {
		var err error
		if res.BasePerplexity, _, res.BaseHeldoutLoss, _, _, err = measure("base"); err != nil {
			return err
		}
		if err := samples("base"); err != nil {
			return err
		}
	}
	if err := adapter.Apply(m, ad, 0); err != nil {
		return err
	}
	if res.Perplexity, res.PerplexityWindows, res.HeldoutLoss, res.Tokens, res.HeldoutTokens, err = measure("adapter"); err != nil {
		return err
	}
	if !math.IsNaN(res.HeldoutLoss) {
		res.HeldoutPerplexity = math.Exp(res.HeldoutLoss)
	}
	if err := samples("adapter"); err != nil {
		return err
	}
	var gateErr error
	if !ev.Gate.IsZero() {
		g, err := recipe.CompileGate(recipe.GateEval, ev.Gate.Src)
		if err != nil {
			return fmt.Errorf("gate: %w", err)
		}
		ok, err := g.Eval(res.Env())
		if err != nil {
			return err
		}
		res.Gate, res.Passed = ev.Gate.Src, ok
		if !ok {
			gateErr = &pipeline.GateError{Stage: s.Name, Expr: ev.Gate.Src, Values: gateValues(res)}
		}
	}
	if err := write(rc, res, tdir); err != nil {
		return err
	}
	sum := map[string]any{"passed": res.Passed}
	for k, v := range gateValues(res) {
		sum[k] = v
	}
	rc.Summarize(sum)
	rc.Metrics(sum)
	rc.SetMain(ReportFile)
	return gateErr
}

// gateValues are the measured (non-NaN) values.
func gateValues(r *Result) map[string]any {
	out := map[string]any{}
	add := func(k string, v float64) {
		if !math.IsNaN(v) {
			out[k] = v
		}
	}
	add("perplexity", r.Perplexity)
	add("heldout_loss", r.HeldoutLoss)
	add("heldout_perplexity", r.HeldoutPerplexity)
	add("base_perplexity", r.BasePerplexity)
	add("base_heldout_loss", r.BaseHeldoutLoss)
	if r.Tokens > 0 {
		out["tokens"] = r.Tokens
	}
	return out
}

// write stores eval.json, samples.jsonl, the loss plot and report.md.
func write(rc *pipeline.RunContext, r *Result, trainDir string) error {
	vals := gateValues(r)
	vals["passed"] = r.Passed
	vals["adapter"] = r.Adapter
	vals["device"] = r.Device
	if r.Gate != "" {
		vals["gate"] = r.Gate
	}
	b, err := json.MarshalIndent(vals, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(rc.Out, ResultFile), append(b, '\n'), 0o644); err != nil {
		return err
	}
	err = atomicfile.Write(filepath.Join(rc.Out, SamplesFile), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, s := range r.Samples {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	plot := ""
	if data, err := os.ReadFile(filepath.Join(trainDir, train.PlotFile)); err == nil {
		if err := atomicfile.WriteFile(filepath.Join(rc.Out, train.PlotFile), data, 0o644); err != nil {
			return err
		}
		plot = train.PlotFile
	}
	return atomicfile.WriteFile(filepath.Join(rc.Out, ReportFile), []byte(Markdown(rc.Recipe.Name, rc.Stage.Name, r, plot)), 0o644)
}
