// Package train fine-tunes LoRA adapters on a frozen model: batching, the
// recorded training step, AdamW, schedules, checkpoints, gates and halts.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/model"
)

// Options are the training hyper-parameters (the train stage's resolved keys).
type Options struct {
	Rank     int
	Alpha    float64
	Dropout  float64
	Targets  []model.Module
	RSLoRA   bool
	LR       float64
	Schedule Schedule // Name, Warmup, NumCycles, Power; Total and LRInit are filled in
	// WarmupRatio, when > 0 and Schedule.Warmup == 0, sets warmup = ceil(ratio*total).
	WarmupRatio  float64
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
	MaxGradNorm  float64 // <= 0: no clipping

	BatchSize  int
	MicroBatch int
	CutoffLen  int
	Epochs     float64
	MaxSteps   int
	Seed       uint64
	Shuffle    bool

	SaveEvery int // steps between checkpoints (0: only at the end)
	EvalEvery int // steps between held-out evaluations (0: only at the end when eval data exists)

	// StopWhen, when set, is evaluated after every step on the metrics; true
	// stops training (the adapter is saved). StopWhenSrc is its source, for messages.
	StopWhen    func(m Metrics, lastEval *Metrics) (bool, error)
	StopWhenSrc string

	HaltOnNaN      bool
	HaltOnZeroLoss bool
	GradNormLimit  float64 // > 0: halt when the gradient norm exceeds it
}

// Defaults fills unset fields with the documented defaults.
func (o *Options) Defaults() {
	if o.Rank == 0 {
		o.Rank = 8
	}
	if o.Alpha == 0 {
		o.Alpha = 16
	}
	if len(o.Targets) == 0 {
		o.Targets = []model.Module{model.Q, model.V}
	}
	if o.LR == 0 {
		o.LR = 3e-4
	}
	if o.Schedule.Name == "" {
		o.Schedule.Name = "linear"
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.Eps == 0 {
		o.Eps = 1e-8
	}
	if o.MicroBatch == 0 {
		o.MicroBatch = 4
	}
	if o.BatchSize == 0 {
		o.BatchSize = o.MicroBatch
	}
	if o.CutoffLen == 0 {
		o.CutoffLen = 256
	}
	if o.Epochs == 0 && o.MaxSteps == 0 {
		o.Epochs = 3
	}
}

// param is one trainable tensor with its gradient and AdamW moments.
type param struct {
	name       string // e.g. "layers.0.q_proj.lora_A"
	layer      int
	mod        model.Module
	isB        bool
	p, g, m, v backend.Tensor
}

// Metrics is what a step reports (and what stop_when sees).
type Metrics struct {
	Step      int     `json:"step"` // completed optimizer steps
	Epoch     float64 `json:"epoch"`
	Loss      float64 `json:"loss"`
	LR        float64 `json:"lr"`
	GradNorm  float64 `json:"grad_norm"`
	Tokens    int64   `json:"tokens"`         // trained tokens so far
	StepTok   int     `json:"step_tokens"`    // trained tokens in this step
	TokPerSec float64 `json:"tokens_per_sec"` // all tokens processed per second this step
	EvalLoss  float64 `json:"eval_loss,omitempty"`
	EvalPPL   float64 `json:"eval_perplexity,omitempty"`
	Elapsed   float64 `json:"elapsed_s"`
}

// Trainer trains the LoRA adapters attached to a model.
type Trainer struct {
	M      *model.Model
	Opts   Options
	Plan   Plan
	params []param

	be      backend.Backend
	acts    *model.Activations
	evAct   *model.Activations
	step    backend.Program // forward + loss + backward of one micro-batch
	norm    backend.Program // sum of squares of every gradient
	opt     backend.Program // AdamW over every parameter (clipping by norm)
	scalars backend.Tensor  // AdamW per-step scalars
	sumsq   backend.Tensor
	pad     int32

	// Step is the number of completed optimizer steps.
	Step   int
	Tokens int64
	// History holds the metrics of every completed step (and evaluation),
	// saved with checkpoints so a resumed run keeps its whole curve.
	History []Metrics
}

// Halt is a training stop with a diagnosis: the run saves its state and
// exits nonzero with Reason and Advice shown to the user.
type Halt struct {
	Kind   string // "nan", "zero-loss", "no-labels", "grad-explosion"
	Step   int
	Reason string
	Advice string
}

func (h *Halt) Error() string {
	return fmt.Sprintf("training halted at step %d: %s\nhint: %s", h.Step, h.Reason, h.Advice)
}

// ExitCode makes a halt exit 1 (a stage failed) through the CLI.
func (h *Halt) ExitCode() int { return 1 }

// New attaches fresh adapters (A Kaiming-uniform like PEFT, B zero) to every
// target module of m, or the adapters in init when non-nil, and prepares the
// recorded step for examples of the given count.
func New(m *model.Model, opts Options, examples int, init *adapter.Adapter) (*Trainer, error) {
	opts.Defaults()
	plan, err := NewPlan(examples, opts.BatchSize, opts.MicroBatch, opts.Epochs, opts.MaxSteps, opts.Seed, opts.Shuffle)
	if err != nil {
		return nil, err
	}
	s := opts.Schedule
	s.Total = plan.TotalSteps
	s.LRInit = opts.LR
	if s.Warmup == 0 && opts.WarmupRatio > 0 {
		s.Warmup = int(math.Ceil(opts.WarmupRatio * float64(plan.TotalSteps)))
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	opts.Schedule = s
	if opts.Dropout < 0 || opts.Dropout >= 1 {
		return nil, fmt.Errorf("lora dropout %g must be in [0, 1)", opts.Dropout)
	}
	t := &Trainer{M: m, Opts: opts, Plan: plan, be: m.Backend()}
	if err := t.attach(init); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.prepare(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// attach creates the adapters and their optimizer state.
func (t *Trainer) attach(init *adapter.Adapter) error {
	o := t.Opts
	scale := model.Scale(o.Alpha, o.Rank, o.RSLoRA)
	if init != nil {
		for _, k := range init.Keys() {
			if r := init.Weights[k].Rank; r != o.Rank {
				return fmt.Errorf("the starting adapter has rank %d but this run asks for rank %d: set lora.rank to %d, or start from scratch", r, o.Rank, r)
			}
		}
		init = init.Convert(t.layout(), t.M.Config)
	}
	for l := range t.M.Layers {
		for _, mod := range o.Targets {
			lin := t.M.Layers[l].Linear[mod]
			a := make([]float32, o.Rank*lin.In)
			b := make([]float32, lin.Out*o.Rank)
			if init != nil {
				w := init.Weights[adapter.Key{Layer: l, Module: mod}]
				if w == nil {
					return fmt.Errorf("the starting adapter has no %v in layer %d: train the targets it was trained on (%v)", mod, l, init.Targets)
				}
				if len(w.A) != len(a) || len(w.B) != len(b) {
					return fmt.Errorf("the starting adapter's layer %d %v is %d×%d, this model's is %d×%d: it was trained on another base", l, mod, w.Out, w.In, lin.Out, lin.In)
				}
				copy(a, w.A)
				copy(b, w.B)
			} else {
				KaimingUniform(a, lin.In, t.Opts.Seed, uint32(l), uint32(mod))
			}
			lo, err := t.M.SetLoRA(l, mod, o.Rank, scale, float32(o.Dropout), a, b)
			if err != nil {
				return err
			}
			for _, isB := range []bool{false, true} {
				p := param{layer: l, mod: mod, isB: isB, p: lo.A}
				p.name = fmt.Sprintf("layers.%d.%s.lora_A", l, mod)
				shape := []int{o.Rank, lin.In}
				if isB {
					p.p = lo.B
					p.name = fmt.Sprintf("layers.%d.%s.lora_B", l, mod)
					shape = []int{lin.Out, o.Rank}
				}
				var err error
				if p.g, err = t.be.Alloc(backend.F32, shape...); err != nil {
					return err
				}
				if p.m, err = t.be.Alloc(backend.F32, shape...); err != nil {
					return err
				}
				if p.v, err = t.be.Alloc(backend.F32, shape...); err != nil {
					return err
				}
				if isB {
					lo.GradB = p.g
				} else {
					lo.GradA = p.g
				}
				t.params = append(t.params, p)
			}
		}
	}
	return nil
}

// KaimingUniform fills a [rank, in] with U(-1/sqrt(in), 1/sqrt(in)): PyTorch's
// kaiming_uniform_(a=sqrt(5)) as PEFT initialises lora_A, from a counter-based
// stream so every backend and a rerun get the same values.
func KaimingUniform(a []float32, in int, seed uint64, layer, mod uint32) {
	bound := 1 / math.Sqrt(float64(in))
	s := uint32(seed) ^ uint32(seed>>32)*0x9E3779B1
	stream := 0x494E4954 ^ layer<<8 ^ mod // "INIT"
	for i := range a {
		u := float64(backend.Uniform(s, stream, uint32(i)))
		a[i] = float32((2*u - 1) * bound)
	}
}

// prepare allocates activations and records the step and optimizer programs.
func (t *Trainer) prepare() error {
	var err error
	if t.acts, err = t.M.NewActivations(t.Opts.MicroBatch, t.Opts.CutoffLen, true); err != nil {
		return err
	}
	if t.scalars, err = t.be.Alloc(backend.F32, backend.AdamWScalarsLen); err != nil {
		return err
	}
	if t.sumsq, err = t.be.Alloc(backend.F32, 1); err != nil {
		return err
	}
	t.step, err = t.be.Record(func() error {
		if err := t.M.Forward(t.acts, nil); err != nil {
			return err
		}
		if err := t.M.Loss(t.acts); err != nil {
			return err
		}
		return t.M.Backward(t.acts)
	})
	if err != nil {
		return fmt.Errorf("record training step: %w", err)
	}
	grads := make([]backend.Tensor, len(t.params))
	for i, p := range t.params {
		grads[i] = p.g
	}
	t.norm, err = t.be.Record(func() error { return t.be.SumSquares(t.sumsq, false, grads...) })
	if err != nil {
		return fmt.Errorf("record gradient norm: %w", err)
	}
	t.opt, err = t.be.Record(func() error {
		for _, p := range t.params {
			if err := t.be.AdamW(p.p, p.g, p.m, p.v, t.scalars, t.sumsq); err != nil {
				return fmt.Errorf("adamw %s: %w", p.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record optimizer step: %w", err)
	}
	return nil
}

// Close releases the programs and tensors the trainer made (not the model).
func (t *Trainer) Close() {
	if t.step != nil {
		t.step.Release()
	}
	if t.opt != nil {
		t.opt.Release()
	}
	if t.norm != nil {
		t.norm.Release()
	}
	if t.acts != nil {
		t.acts.Free()
	}
	if t.evAct != nil {
		t.evAct.Free()
	}
	for _, p := range t.params {
		for _, x := range []backend.Tensor{p.g, p.m, p.v} {
			if x != nil {
				t.be.Free(x)
			}
		}
	}
	for _, x := range []backend.Tensor{t.scalars, t.sumsq} {
		if x != nil {
			t.be.Free(x)
		}
	}
}

// Check verifies before any work that every step has trained labels (a
// dataset or batch with none can only produce a meaningless run).
func (t *Trainer) Check(data []Example) error {
	total := 0
	for k := 0; k < t.Plan.StepsPerEpoch && k < t.Plan.TotalSteps; k++ {
		n := 0
		var idx []int
		for _, mb := range t.Plan.Step(k) {
			exs := pick(data, mb)
			n += Pack(exs, t.Opts.MicroBatch, t.Opts.CutoffLen, 0).Trained
			idx = append(idx, mb...)
		}
		total += n
		if n == 0 && total > 0 {
			return &Halt{Kind: "no-labels", Step: k, Reason: fmt.Sprintf("the batch of step %d (examples %v) has no trained label", k, head(idx, 8)),
				Advice: "every position of these examples is masked (-100): check cutoff_len (the response may be cut off) and the template's trained part (train_on); `lora preview` shows what is trained"}
		}
	}
	if total == 0 {
		return &Halt{Kind: "no-labels", Step: 0, Reason: "no example has a trained label: every label is -100 after the cutoff",
			Advice: "raise cutoff_len so responses fit, or use train_on: all; `lora preview RECIPE --stage NAME` shows the trained part"}
	}
	return nil
}

func head(x []int, n int) []int {
	if len(x) > n {
		return x[:n]
	}
	return x
}

func pick(data []Example, idx []int) []Example {
	out := make([]Example, len(idx))
	for i, j := range idx {
		out[i] = data[j]
	}
	return out
}

// microSeed is the dropout seed of micro-batch j of step k.
func (t *Trainer) microSeed(k, j int) int32 {
	return int32(backend.Hash3(uint32(t.Opts.Seed)^uint32(t.Opts.Seed>>32), uint32(k*t.Plan.Accumulation()+j), 0xD809))
}

// TrainStep runs optimizer step t.Step on data and returns its metrics.
func (t *Trainer) TrainStep(data []Example) (Metrics, error) {
	start := time.Now()
	k := t.Step
	micro := t.Plan.Step(k)
	batches := make([]Batch, len(micro))
	trained := 0
	for j, mb := range micro {
		batches[j] = Pack(pick(data, mb), t.Opts.MicroBatch, t.Opts.CutoffLen, t.pad)
		trained += batches[j].Trained
	}
	if trained == 0 {
		return Metrics{}, &Halt{Kind: "no-labels", Step: k + 1, Reason: fmt.Sprintf("step %d has no trained label in its batch", k+1),
			Advice: "check cutoff_len and the template's trained part; `lora preview` shows what is trained"}
	}
	for _, p := range t.params {
		if err := t.be.Fill(p.g, 0); err != nil {
			return Metrics{}, err
		}
	}
	if err := t.be.Write(t.acts.LossScale, []float32{float32(1 / float64(trained))}); err != nil {
		return Metrics{}, err
	}
	var lossSum float64
	loss := make([]float32, t.acts.Rows())
	for j, b := range batches {
		if err := t.be.Write(t.acts.IDs, b.IDs); err != nil {
			return Metrics{}, err
		}
		if err := t.be.Write(t.acts.Labels, b.Targets); err != nil {
			return Metrics{}, err
		}
		if err := t.be.Write(t.acts.Seed, []int32{t.microSeed(k, j)}); err != nil {
			return Metrics{}, err
		}
		if err := t.step.Run(); err != nil {
			return Metrics{}, fmt.Errorf("step %d micro-batch %d: %w", k+1, j, err)
		}
		if err := t.be.Read(t.acts.Loss, loss); err != nil {
			return Metrics{}, err
		}
		for _, v := range loss {
			lossSum += float64(v)
		}
	}
	lr := t.Opts.LR * t.Opts.Schedule.Factor(k)
	tt := float64(k + 1)
	sc := []float32{float32(lr), float32(t.Opts.Beta1), float32(t.Opts.Beta2), float32(t.Opts.Eps), float32(t.Opts.WeightDecay),
		float32(1 - math.Pow(t.Opts.Beta1, tt)), float32(1 - math.Pow(t.Opts.Beta2, tt)), float32(t.Opts.MaxGradNorm)}
	if err := t.be.Write(t.scalars, sc); err != nil {
		return Metrics{}, err
	}
	meanLoss := lossSum / float64(trained)
	// Halt before the update when the loss is already broken, so the saved
	// state is the last good one.
	if h := t.lossHalt(k+1, meanLoss); h != nil {
		return Metrics{Step: k, Loss: meanLoss}, h
	}
	if err := t.norm.Run(); err != nil {
		return Metrics{}, fmt.Errorf("gradient norm of step %d: %w", k+1, err)
	}
	ss := make([]float32, 1)
	if err := t.be.Read(t.sumsq, ss); err != nil {
		return Metrics{}, err
	}
	gn := math.Sqrt(float64(ss[0]))
	m := Metrics{Step: k + 1, Epoch: t.Plan.Epoch(k + 1), Loss: meanLoss, LR: lr, GradNorm: gn,
		Tokens: t.Tokens + int64(trained), StepTok: trained}
	// Halt before the update, so the saved state is the last good one.
	if math.IsNaN(gn) || math.IsInf(gn, 0) || (t.Opts.GradNormLimit > 0 && gn > t.Opts.GradNormLimit) {
		return m, &Halt{Kind: "grad-explosion", Step: k + 1,
			Reason: fmt.Sprintf("the gradient norm is %.4g (limit %g)", gn, t.Opts.GradNormLimit),
			Advice: "lower the learning rate, keep max_grad_norm (clipping) on, or add warmup_steps; the saved checkpoint is the state before this step"}
	}
	if err := t.opt.Run(); err != nil {
		return Metrics{}, fmt.Errorf("optimizer step %d: %w", k+1, err)
	}
	t.Step++
	t.Tokens += int64(trained)
	el := time.Since(start).Seconds()
	if el > 0 {
		m.TokPerSec = float64(len(batches)*t.Opts.MicroBatch*t.Opts.CutoffLen) / el
	}
	return m, nil
}

func (t *Trainer) lossHalt(step int, loss float64) *Halt {
	switch {
	case t.Opts.HaltOnNaN && (math.IsNaN(loss) || math.IsInf(loss, 0)):
		where := ""
		if l, ok := t.firstNonFinite(); ok {
			where = " (first non-finite values appear " + l + ")"
		}
		return &Halt{Kind: "nan", Step: step, Reason: fmt.Sprintf("the loss is %v%s", loss, where),
			Advice: "lower the learning rate (optimizer.lr), add warmup, keep max_grad_norm clipping on; a quantized base may also overflow: try quantize: q8_0"}
	case t.Opts.HaltOnZeroLoss && loss == 0:
		return &Halt{Kind: "zero-loss", Step: step, Reason: "the loss is exactly 0",
			Advice: "the model predicts every trained token with certainty: usually the trained part is trivial (only padding or EOS is trained, the response is empty, or the same short example repeats); check train_on and the template with `lora preview`"}
	}
	return nil
}

// firstNonFinite names where the first non-finite value of the last
// forward pass appeared (a layer and part, or the logits).
func (t *Trainer) firstNonFinite() (string, bool) {
	where, bad, err := t.M.FirstNonFinite(t.acts)
	if err != nil || !bad {
		return "", false
	}
	return "in " + where, true
}

// Evaluate returns the mean loss per trained token over data (no dropout).
func (t *Trainer) Evaluate(ctx context.Context, data []Example) (float64, error) {
	if t.evAct == nil {
		var err error
		if t.evAct, err = t.M.NewActivations(t.Opts.MicroBatch, t.Opts.CutoffLen, false); err != nil {
			return 0, err
		}
	}
	loss, _, err := HeldoutLoss(ctx, t.M, t.evAct, data)
	return loss, err
}

// HeldoutLoss is the mean loss per trained token of m over data, in batches
// of the inference activations a (a.Batch rows of a.Seq tokens; longer
// examples are cut). It also returns the number of trained tokens.
func HeldoutLoss(ctx context.Context, m *model.Model, a *model.Activations, data []Example) (float64, int, error) {
	if len(data) == 0 {
		return math.NaN(), 0, errors.New("no held-out examples")
	}
	be := m.Backend()
	var sum float64
	n := 0
	loss := make([]float32, a.Rows())
	for i := 0; i < len(data); i += a.Batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		b := Pack(data[i:min(i+a.Batch, len(data))], a.Batch, a.Seq, 0)
		if err := errors.Join(be.Write(a.IDs, b.IDs), be.Write(a.Labels, b.Targets)); err != nil {
			return 0, 0, err
		}
		if err := m.Forward(a, nil); err != nil {
			return 0, 0, err
		}
		if err := m.Loss(a); err != nil {
			return 0, 0, err
		}
		if err := be.Read(a.Loss, loss); err != nil {
			return 0, 0, err
		}
		for _, v := range loss {
			sum += float64(v)
		}
		n += b.Trained
	}
	if n == 0 {
		return math.NaN(), 0, errors.New("held-out examples have no trained label")
	}
	return sum / float64(n), n, nil
}
