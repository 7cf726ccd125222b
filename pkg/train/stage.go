package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/device"
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/report"
)

// Files a train stage writes into its output directory.
const (
	AdapterDir  = "adapter"      // PEFT layout: adapter_config.json + adapter_model.safetensors
	AdapterGGUF = "adapter.gguf" // GGUF LoRA for llama.cpp --lora and ollama ADAPTER (or <output_name>.gguf)
	PlotFile    = "loss.png"
	SummaryFile = "summary.json"
)

func init() { pipeline.Register(recipe.KindTrain, stageKind{}) }

type stageKind struct{}

// inputStage is the examples stage a train stage reads. recipe.Load fills
// train.input from needs when the recipe leaves it out, and reports a missing
// or ambiguous one, so an empty value here means the recipe was not loaded.
func inputStage(s *recipe.Stage) (string, error) {
	if s.Train.Input == "" {
		return "", fmt.Errorf("stage %s: train.input is not set (lora lint says why)", s.Name)
	}
	return s.Train.Input, nil
}

// OptionsFrom turns a recipe train stage into trainer options.
func OptionsFrom(r *recipe.Recipe, s *recipe.Stage, cutoff int) (Options, error) {
	tr := s.Train
	o := Options{
		Rank: tr.LoRA.Rank, Alpha: tr.LoRA.Alpha, Dropout: tr.LoRA.Dropout, RSLoRA: tr.LoRA.RSLoRA,
		LR: tr.Optimizer.LR,
		Schedule: Schedule{Name: tr.Optimizer.Scheduler, Warmup: tr.Optimizer.WarmupSteps,
			NumCycles: tr.Optimizer.NumCycles, Power: tr.Optimizer.Power},
		WarmupRatio: tr.Optimizer.WarmupRatio,
		Beta1:       tr.Optimizer.Betas[0], Beta2: tr.Optimizer.Betas[1], Eps: tr.Optimizer.Eps,
		WeightDecay: tr.Optimizer.WeightDecay, MaxGradNorm: tr.Optimizer.MaxGradNorm,
		BatchSize: tr.BatchSize, MicroBatch: tr.MicroBatchSize, CutoffLen: tr.CutoffLen,
		Epochs: tr.Epochs, MaxSteps: tr.MaxSteps, Seed: r.Seed, Shuffle: true,
		SaveEvery: tr.SaveEvery, EvalEvery: tr.EvalEvery,
		HaltOnNaN: tr.Halt.OnNaN, HaltOnZeroLoss: tr.Halt.OnZeroLoss, GradNormLimit: tr.Halt.GradNormLimit,
	}
	if o.CutoffLen == 0 {
		o.CutoffLen = cutoff
	}
	for _, t := range tr.LoRA.Targets {
		m, ok := model.ParseModule(t)
		if !ok {
			return o, fmt.Errorf("unknown lora target %q", t)
		}
		o.Targets = append(o.Targets, m)
	}
	if !tr.StopWhen.IsZero() {
		g, err := recipe.CompileGate(recipe.GateStopWhen, tr.StopWhen.Src)
		if err != nil {
			return o, fmt.Errorf("stop_when: %w", err)
		}
		o.StopWhenSrc = tr.StopWhen.Src
		o.StopWhen = func(m Metrics, ev *Metrics) (bool, error) { return g.Eval(m.TrainEnv(ev)) }
	}
	o.Defaults()
	return o, nil
}

// TrainEnv is the metrics as stop_when sees them.
func (m Metrics) TrainEnv(lastEval *Metrics) recipe.TrainEnv {
	e := recipe.TrainEnv{Loss: m.Loss, Step: m.Step, Epoch: m.Epoch, LR: m.LR, GradNorm: m.GradNorm,
		Tokens: int(m.Tokens), EvalLoss: math.NaN(), EvalPerplexity: math.NaN()}
	if lastEval != nil {
		e.EvalLoss, e.EvalPerplexity = lastEval.EvalLoss, lastEval.EvalPPL
	}
	return e
}

// splitEval holds out the last n examples of a seeded shuffle.
func splitEval(data []Example, split float64, seed uint64) (train, eval []Example) {
	n := int(split)
	if split < 1 {
		n = int(math.Round(split * float64(len(data))))
	}
	if n <= 0 || n >= len(data) {
		return data, nil
	}
	p := Plan{Examples: len(data), Seed: seed ^ 0xE7A1, Shuffle: true}
	order := p.order(0)
	for i, j := range order {
		if i < len(data)-n {
			train = append(train, data[j])
		} else {
			eval = append(eval, data[j])
		}
	}
	return train, eval
}

// Run trains the adapter of a recipe's train stage.
func (stageKind) Run(ctx context.Context, rc *pipeline.RunContext) error {
	s := rc.Stage
	in, err := inputStage(s)
	if err != nil {
		return err
	}
	dir, ok := rc.Inputs[in]
	if !ok {
		return fmt.Errorf("train input %q has no output", in)
	}
	stats, _ := examples.ReadStats(dir)
	data, err := examples.ReadAll(dir)
	if err != nil {
		return fmt.Errorf("read examples of %s: %w", in, err)
	}
	evalData, err := examples.ReadEval(dir)
	if err != nil {
		return fmt.Errorf("read held-out examples of %s: %w", in, err)
	}
	if s.Train.EvalSplit > 0 {
		data, evalData = splitEval(data, s.Train.EvalSplit, rc.Seed)
	}
	cutoff := stats.MaxLen
	opts, err := OptionsFrom(rc.Recipe, s, cutoff)
	if err != nil {
		return err
	}
	be, note, err := device.Open(rc.Device)
	if err != nil {
		return err
	}
	defer be.Close()
	if note != "" {
		fmt.Fprintln(rc.Log, note)
	}
	info := be.Info()
	fmt.Fprintf(rc.Log, "device: %s (%s)\n", info.Device, info.Name)
	m, err := model.Load(rc.Model, be, model.LoadOptions{Quantize: rc.Quantize})
	if err != nil {
		return err
	}
	defer m.Close()
	for _, tr := range m.Tensors {
		if tr.Kept {
			fmt.Fprintf(rc.Log, "note: %s stays %s (%s)\n", tr.Name, tr.Stored, tr.Why)
		}
	}
	need, err := EstimateMemory(m.Config, m.WeightBytes(), opts)
	if err != nil {
		return err
	}
	if info.MemoryBytes > 0 && uint64(need.Total) > info.MemoryBytes {
		return fmt.Errorf("training needs about %s of device memory but %s has %s: lower micro_batch_size (now %d) or cutoff_len (now %d), or quantize the base (model.quantize: q4_0)",
			report.Bytes(need.Total), info.Device, report.Bytes(info.MemoryBytes), opts.MicroBatch, opts.CutoffLen)
	}
	var init *adapter.Adapter
	if ia := s.Train.InitAdapter; ia != "" {
		path := rc.Path(ia)
		if d, ok := rc.Inputs[ia]; ok {
			path = filepath.Join(d, AdapterDir)
		}
		if init, err = adapter.Load(path); err != nil {
			return fmt.Errorf("init_adapter %s: %w", ia, err)
		}
	}
	data, err = dropUntrained(data, opts.CutoffLen, rc.Log)
	if err != nil {
		return err
	}
	t, err := New(m, opts, len(data), init)
	if err != nil {
		return err
	}
	defer t.Close()
	if err := t.Check(data); err != nil {
		return err
	}
	fmt.Fprintf(rc.Log, "training %d examples (%d held out), %d steps of %d (micro-batch %d × %d accumulation), %d trainable parameters, about %s of device memory\n",
		len(data), len(evalData), t.Plan.TotalSteps, opts.BatchSize, opts.MicroBatch, t.Plan.Accumulation(), t.Params(), report.Bytes(need.Total))
	loop := &Loop{T: t, Data: data, Eval: evalData, Checkpoints: rc.Checkpoints, Log: rc.Log, Memory: report.Bytes(need.Total),
		Metrics:  func(mt Metrics) { rc.Metrics(mt.Record()) },
		Restored: func(mt Metrics) { rc.RestoreMetrics(mt.Record()) }}
	if rc.Resume != "" {
		// the runner picked the newest published checkpoint
		if err := t.Restore(rc.Resume); err != nil {
			return fmt.Errorf("resume from %s: %w", rc.Resume, err)
		}
		fmt.Fprintf(rc.Log, "resumed from %s at step %d\n", rc.Resume, t.Step)
	}
	prof, _ := be.(backend.Profiler)
	if rc.Profile {
		if prof == nil {
			fmt.Fprintf(rc.Log, "note: --profile needs a backend with kernel timers (--device vulkan); %s has none\n", info.Name)
		} else {
			prof.Profile(true) // drop the timings of loading and recording
		}
	}
	res, runErr := loop.Run(ctx)
	if rc.Profile && prof != nil {
		if err := writeProfile(rc, prof.Profile(true), t.Step); err != nil {
			fmt.Fprintf(rc.Log, "warning: profile: %v\n", err)
		}
	}
	// Whatever happened, leave what was learned and the plot.
	if res != nil {
		if err := report.LossPlot(filepath.Join(rc.Out, PlotFile), rc.Recipe.Name+" / "+s.Name, res.TrainCurve, res.EvalCurve); err != nil {
			fmt.Fprintf(rc.Log, "warning: loss plot: %v\n", err)
		}
	}
	if runErr != nil {
		return runErr
	}
	a, err := t.Adapter()
	if err != nil {
		return err
	}
	a.BaseModel = rc.Recipe.Model.Source
	a.Name = s.Train.OutputName
	ggufName := AdapterGGUF
	if a.Name != "" {
		ggufName = a.Name + ".gguf"
	}
	if err := writeAdapters(rc.Out, ggufName, a, m.Config); err != nil {
		return err
	}
	sum := map[string]any{"steps": t.Step, "loss": res.Last.Loss, "tokens": t.Tokens, "epoch": res.Last.Epoch,
		"stopped_by": res.StoppedBy, "params": t.Params()}
	if res.LastEval != nil {
		sum["eval_loss"] = res.LastEval.EvalLoss
	}
	sum["adapter_gguf"] = ggufName
	if b, err := json.MarshalIndent(sum, "", "  "); err == nil {
		if err := atomicfile.WriteFile(filepath.Join(rc.Out, SummaryFile), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	rc.Summarize(sum)
	rc.SetMain(AdapterDir)
	fmt.Fprintf(rc.Log, "done: %d steps, loss %.4f%s; adapter in %s\n", t.Step, res.Last.Loss, stoppedNote(res.StoppedBy), AdapterDir)
	return nil
}

func stoppedNote(s string) string {
	if s == "" {
		return ""
	}
	return "; stopped early by " + s
}

// writeAdapters writes the PEFT directory and the GGUF adapter.
func writeAdapters(out, ggufName string, a *adapter.Adapter, c model.Config) error {
	if err := adapter.SavePEFT(filepath.Join(out, AdapterDir), a, c); err != nil {
		return fmt.Errorf("write PEFT adapter: %w", err)
	}
	if err := adapter.SaveGGUF(filepath.Join(out, ggufName), a, c); err != nil {
		return fmt.Errorf("write GGUF adapter: %w", err)
	}
	return nil
}

// dropUntrained leaves out examples with no trained label within the cutoff:
// they add nothing to the loss but cost a forward and backward pass, and a
// batch made only of them would have no loss at all. When they are most of
// the data the recipe is wrong, and training halts with the diagnosis.
func dropUntrained(data []Example, cutoff int, log io.Writer) ([]Example, error) {
	kept := data[:0:0]
	for _, ex := range data {
		if Pack([]Example{ex}, 1, cutoff, 0).Trained > 0 {
			kept = append(kept, ex)
		}
	}
	n := len(data) - len(kept)
	if n == 0 {
		return data, nil
	}
	if len(kept) == 0 || 2*n > len(data) {
		return nil, &Halt{Kind: "no-labels", Step: 0,
			Reason: fmt.Sprintf("%d of %d examples have no trained label within cutoff_len %d", n, len(data), cutoff),
			Advice: "the trained part (the response) starts after the cutoff: raise cutoff_len, shorten the prompts, or use train_on: all; `lora preview RECIPE --stage NAME` shows what is trained"}
	}
	fmt.Fprintf(log, "warning: left out %d of %d examples that have no trained label within cutoff_len %d (raise cutoff_len to keep them)\n", n, len(data), cutoff)
	return kept, nil
}

// Params is the number of trainable values.
func (t *Trainer) Params() int {
	n := 0
	for _, p := range t.params {
		n += p.p.Len()
	}
	return n
}

// Record is the metrics as one metrics.jsonl record.
func (m Metrics) Record() map[string]any {
	r := map[string]any{"step": m.Step, "epoch": m.Epoch, "loss": m.Loss, "lr": m.LR, "grad_norm": m.GradNorm,
		"tokens": m.Tokens, "tokens_per_sec": m.TokPerSec, "elapsed_s": m.Elapsed}
	if m.EvalLoss != 0 {
		r["eval_loss"] = m.EvalLoss
		r["eval_perplexity"] = m.EvalPPL
	}
	return r
}

// EstimateMemory predicts the device memory of training m with o (the
// estimator in pkg/model counts exactly what the model and trainer allocate).
func EstimateMemory(c model.Config, weightBytes int64, o Options) (model.MemoryEstimate, error) {
	return model.EstimateMemory(c, weightBytes, model.TrainPlan{Rank: o.Rank, Targets: o.Targets,
		Batch: o.MicroBatch, Seq: o.CutoffLen, Dropout: o.Dropout > 0})
}

// Plan describes the train stage for `lora plan`: examples, steps, trainable
// parameters, the tensors kept unquantized, and device memory by part.
func (stageKind) Plan(ctx context.Context, pc *pipeline.PlanContext) ([]string, error) {
	s := pc.Stage
	var lines []string
	cutoff := 0
	examplesN := -1
	if in, err := inputStage(s); err == nil {
		if dir, ok := pc.Inputs[in]; ok {
			if st, err := examples.ReadStats(dir); err == nil {
				cutoff, examplesN = st.MaxLen, st.Examples
				lines = append(lines, fmt.Sprintf("examples: %d (%d tokens, %d trained); %d held out", st.Examples, st.Tokens, st.TrainedTokens, st.EvalExamples))
			}
		} else if st := pc.Recipe.Stage(in); st != nil && st.Format != nil {
			cutoff = st.Format.CutoffLen
		} else if st != nil && st.Chunk != nil {
			cutoff = st.Chunk.CutoffLen
		}
	}
	o, err := OptionsFrom(pc.Recipe, s, cutoff)
	if err != nil {
		return nil, err
	}
	if examplesN > 0 {
		if p, err := NewPlan(examplesN, o.BatchSize, o.MicroBatch, o.Epochs, o.MaxSteps, o.Seed, true); err == nil {
			lines = append(lines, fmt.Sprintf("steps: %d (%d per epoch, batch %d = micro-batch %d × %d accumulation), tokens per epoch ≤ %d",
				p.TotalSteps, p.StepsPerEpoch, o.BatchSize, o.MicroBatch, p.Accumulation(), examplesN*o.CutoffLen))
		}
	}
	if pc.Model == "" {
		return append(lines, "memory: unknown until the model is fetched"), nil
	}
	d, err := model.Describe(pc.Model, model.LoadOptions{Quantize: pc.Quantize})
	if err != nil {
		return lines, err
	}
	for _, t := range d.Tensors {
		if t.Kept {
			lines = append(lines, fmt.Sprintf("kept %s: %s (%s)", t.Stored, t.Name, t.Why))
		}
	}
	e, err := EstimateMemory(d.Config, d.WeightBytes, o)
	if err != nil {
		return lines, err
	}
	byType := map[string]int64{}
	var types []string
	for _, t := range d.Tensors {
		k := t.Stored.String()
		if _, ok := byType[k]; !ok {
			types = append(types, k)
		}
		byType[k] += t.Bytes()
	}
	sort.Strings(types)
	var parts []string
	for _, k := range types {
		parts = append(parts, fmt.Sprintf("%s %s", k, report.Bytes(uint64(byType[k]))))
	}
	lines = append(lines, "weights by type: "+strings.Join(parts, ", "))
	lines = append(lines,
		fmt.Sprintf("trainable parameters: %d (rank %d on %v in %d layers)", e.TrainableParams, o.Rank, o.Targets, d.Config.Layers),
		fmt.Sprintf("memory: %s total = weights %s + adapter %s + gradients %s + AdamW %s + activations %s (micro-batch %d × %d tokens)",
			report.Bytes(uint64(e.Total)), report.Bytes(uint64(e.Weights)), report.Bytes(uint64(e.Adapter)), report.Bytes(uint64(e.Gradients)),
			report.Bytes(uint64(e.Optimizer)), report.Bytes(uint64(e.Activations)), o.MicroBatch, o.CutoffLen))
	return lines, nil
}

// ProfileFile holds the per-kernel times of a --profile run.
const ProfileFile = "profile.json"

// writeProfile prints the kernel table (slowest first) and writes profile.json.
func writeProfile(rc *pipeline.RunContext, times []backend.KernelTime, steps int) error {
	sort.Slice(times, func(i, j int) bool { return times[i].Seconds > times[j].Seconds })
	var total float64
	for _, k := range times {
		total += k.Seconds
	}
	fmt.Fprintf(rc.Log, "kernel times over %d steps (GPU timestamps):\n", steps)
	fmt.Fprintf(rc.Log, "  %-28s %8s %12s %12s %6s\n", "kernel", "calls", "total ms", "ms/step", "share")
	for _, k := range times {
		share := 0.0
		if total > 0 {
			share = 100 * k.Seconds / total
		}
		fmt.Fprintf(rc.Log, "  %-28s %8d %12.3f %12.4f %5.1f%%\n", k.Name, k.Calls, 1e3*k.Seconds, 1e3*k.Seconds/float64(max(1, steps)), share)
	}
	b, err := json.MarshalIndent(map[string]any{"steps": steps, "total_seconds": total, "kernels": times}, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(rc.Out, ProfileFile), append(b, '\n'), 0o644)
}
