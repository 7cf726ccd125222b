package train

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/lora-dev/lora/pkg/report"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Loop drives a Trainer to the end: steps, held-out evaluation, checkpoints,
// stop_when, progress and halts.
type Loop struct {
	T           *Trainer
	Data, Eval  []Example
	Checkpoints string // directory for checkpoint-<step>/ ("" = none)
	Log         io.Writer
	Metrics     func(Metrics)
	// Restored receives the metrics a resumed trainer brought back from its
	// checkpoint (steps already done), before training continues.
	Restored func(Metrics)
	// Memory is the device memory the run holds (the estimate that matches
	// the allocations), shown with the progress.
	Memory string
	// Progress forces the live bar on (true) or off (false); nil = when stderr is a terminal.
	Progress *bool
}

// Result is what a loop did.
type Result struct {
	Last       Metrics
	LastEval   *Metrics
	StoppedBy  string // the stop_when expression that fired, or ""
	TrainCurve []report.Point
	EvalCurve  []report.Point
}

// Run trains until the plan's last step, a stop_when, a halt, an error or
// cancellation. On a halt or cancellation it saves a checkpoint first, so
// `lora resume` continues from there.
func (l *Loop) Run(ctx context.Context) (*Result, error) {
	t := l.T
	res := &Result{}
	for _, m := range t.History {
		res.TrainCurve = append(res.TrainCurve, report.Point{Step: float64(m.Step), Value: m.Loss})
		if m.EvalLoss != 0 {
			cp := m
			res.LastEval = &cp
			res.EvalCurve = append(res.EvalCurve, report.Point{Step: float64(m.Step), Value: m.EvalLoss})
		}
		res.Last = m
		if l.Restored != nil {
			l.Restored(m)
		}
	}
	start := time.Now()
	startStep := t.Step
	live := term.IsTerminal(int(os.Stderr.Fd()))
	if l.Progress != nil {
		live = *l.Progress
	}
	var bar *progressbar.ProgressBar
	if live {
		bar = progressbar.NewOptions(t.Plan.TotalSteps,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("train"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
		_ = bar.Set(t.Step)
	}
	every := max(1, t.Plan.TotalSteps/20)
	save := func(why string) error {
		if l.Checkpoints == "" {
			return nil
		}
		dir, err := t.Save(l.Checkpoints)
		if err != nil {
			return fmt.Errorf("checkpoint at step %d (%s): %w", t.Step, why, err)
		}
		if !live {
			fmt.Fprintf(l.Log, "checkpoint: %s\n", dir)
		}
		return nil
	}
	evaluate := func(m *Metrics) error {
		if len(l.Eval) == 0 {
			return nil
		}
		ev, err := t.Evaluate(ctx, l.Eval)
		if err != nil {
			return err
		}
		m.EvalLoss, m.EvalPPL = ev, math.Exp(ev)
		cp := *m
		res.LastEval = &cp
		res.EvalCurve = append(res.EvalCurve, report.Point{Step: float64(m.Step), Value: ev})
		return nil
	}
	for t.Step < t.Plan.TotalSteps {
		if err := ctx.Err(); err != nil {
			if serr := save("interrupted"); serr != nil {
				return res, fmt.Errorf("%w (and %v)", err, serr)
			}
			return res, err
		}
		m, err := t.TrainStep(l.Data)
		if err != nil {
			if h, ok := err.(*Halt); ok {
				if serr := save("halted"); serr != nil {
					fmt.Fprintf(l.Log, "warning: %v\n", serr)
				}
				if bar != nil {
					_ = bar.Clear()
				}
				return res, h
			}
			return res, err
		}
		m.Elapsed = time.Since(start).Seconds()
		if t.Opts.EvalEvery > 0 && t.Step%t.Opts.EvalEvery == 0 {
			if err := evaluate(&m); err != nil {
				return res, fmt.Errorf("eval at step %d: %w", t.Step, err)
			}
		}
		res.Last = m
		res.TrainCurve = append(res.TrainCurve, report.Point{Step: float64(m.Step), Value: m.Loss})
		t.History = append(t.History, m)
		if l.Metrics != nil {
			l.Metrics(m)
		}
		done := t.Step - startStep
		eta := time.Duration(float64(time.Since(start)) / float64(done) * float64(t.Plan.TotalSteps-t.Step))
		if bar != nil {
			bar.Describe(fmt.Sprintf("epoch %.2f loss %.4f lr %.2e %.0f tok/s mem %s", m.Epoch, m.Loss, m.LR, m.TokPerSec, l.Memory))
			_ = bar.Set(t.Step)
		} else if t.Step%every == 0 || t.Step == 1 || t.Step == t.Plan.TotalSteps {
			ev := ""
			if m.EvalLoss != 0 {
				ev = fmt.Sprintf(" eval_loss %.4f", m.EvalLoss)
			}
			fmt.Fprintf(l.Log, "step %d/%d epoch %.2f loss %.4f%s lr %.3g grad_norm %.3g %.0f tok/s mem %s eta %s\n",
				t.Step, t.Plan.TotalSteps, m.Epoch, m.Loss, ev, m.LR, m.GradNorm, m.TokPerSec, l.Memory, eta.Round(time.Second))
		}
		if t.Opts.SaveEvery > 0 && t.Step%t.Opts.SaveEvery == 0 && t.Step < t.Plan.TotalSteps {
			if err := save("save_every"); err != nil {
				return res, err
			}
		}
		if t.Opts.StopWhen != nil {
			stop, err := t.Opts.StopWhen(m, res.LastEval)
			if err != nil {
				return res, fmt.Errorf("stop_when at step %d: %w", t.Step, err)
			}
			if stop {
				res.StoppedBy = t.Opts.StopWhenSrc
				if bar != nil {
					_ = bar.Clear()
				}
				fmt.Fprintf(l.Log, "stop_when %q fired at step %d (loss %.4f)\n", t.Opts.StopWhenSrc, t.Step, m.Loss)
				break
			}
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if len(l.Eval) > 0 && (res.LastEval == nil || res.LastEval.Step != t.Step) {
		m := res.Last
		m.Step = t.Step
		if err := evaluate(&m); err != nil {
			return res, fmt.Errorf("final eval: %w", err)
		}
		fmt.Fprintf(l.Log, "eval_loss %.4f (perplexity %.2f) on %d held-out examples\n", m.EvalLoss, m.EvalPPL, len(l.Eval))
		t.History = append(t.History, m)
		if l.Metrics != nil {
			l.Metrics(m)
		}
	}
	return res, save("final")
}
