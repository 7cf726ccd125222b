package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/safetensors"
)

// Checkpoint files. A checkpoint directory checkpoint-<step>/ holds:
//
//	state.safetensors   every trainable tensor and its AdamW moments, float32,
//	                    in the model's layout (names <param>, <param>.exp_avg,
//	                    <param>.exp_avg_sq), exactly as on the device
//	trainer_state.json  step, plan and the options that must not change
//	history.json        the metrics of every step so far (for the loss curve)
//	adapter/            the adapter at this step in PEFT layout, for use as is
//
// Everything else a step needs (data order, dropout masks, learning rate) is a
// function of the seed and the step, so restoring these makes the rest of the
// run bit-identical to an uninterrupted one.
const (
	StateFile        = "state.safetensors"
	TrainerStateFile = "trainer_state.json"
	HistoryFile      = "history.json" // the metrics of every step so far
	checkpointPrefix = "checkpoint-"
)

// TrainerState is trainer_state.json.
type TrainerState struct {
	Version       int     `json:"version"`
	Step          int     `json:"step"`
	TotalSteps    int     `json:"total_steps"`
	Epoch         float64 `json:"epoch"`
	Tokens        int64   `json:"tokens"`
	Seed          uint64  `json:"seed"`
	Examples      int     `json:"examples"`
	BatchSize     int     `json:"batch_size"`
	MicroBatch    int     `json:"micro_batch_size"`
	CutoffLen     int     `json:"cutoff_len"`
	Rank          int     `json:"rank"`
	StepsPerEpoch int     `json:"steps_per_epoch"`
}

func (t *Trainer) trainerState() TrainerState {
	return TrainerState{Version: 1, Step: t.Step, TotalSteps: t.Plan.TotalSteps, Epoch: t.Plan.Epoch(t.Step), Tokens: t.Tokens,
		Seed: t.Opts.Seed, Examples: t.Plan.Examples, BatchSize: t.Opts.BatchSize, MicroBatch: t.Opts.MicroBatch,
		CutoffLen: t.Opts.CutoffLen, Rank: t.Opts.Rank, StepsPerEpoch: t.Plan.StepsPerEpoch}
}

// Save writes checkpoint-<step>/ under dir atomically and returns its path.
// A kill at any moment leaves either the whole checkpoint or none of it.
func (t *Trainer) Save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, checkpointPrefix+strconv.Itoa(t.Step))
	if _, err := os.Stat(final); err == nil {
		return final, nil // already saved at this step (same state)
	}
	tmp, err := atomicfile.TempDir(dir, filepath.Base(final))
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", err
	}
	var ts []safetensors.Tensor
	for _, p := range t.params {
		for _, part := range []struct {
			suffix string
			which  byte
		}{{"", 'p'}, {".exp_avg", 'm'}, {".exp_avg_sq", 'v'}} {
			src := pick3(p, part.which)
			buf := make([]float32, src.Len())
			if err := t.be.Read(src, buf); err != nil {
				return fail(err)
			}
			ts = append(ts, safetensors.NewF32(p.name+part.suffix, src.Shape(), buf))
		}
	}
	if err := safetensors.Write(filepath.Join(tmp, StateFile), ts, map[string]string{"format": "lora-checkpoint", "step": strconv.Itoa(t.Step)}); err != nil {
		return fail(err)
	}
	st, err := json.MarshalIndent(t.trainerState(), "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, TrainerStateFile), append(st, '\n'), 0o644); err != nil {
		return fail(err)
	}
	hist, err := json.Marshal(t.History)
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, HistoryFile), append(hist, '\n'), 0o644); err != nil {
		return fail(err)
	}
	a, err := t.Adapter()
	if err != nil {
		return fail(err)
	}
	if err := adapter.SavePEFT(filepath.Join(tmp, AdapterDir), a, t.M.Config); err != nil {
		return fail(err)
	}
	if err := atomicfile.PublishDir(tmp, final); err != nil {
		return fail(err)
	}
	return final, nil
}

// Restore loads a checkpoint written by Save into t. The run's settings that
// decide the data order and shapes must match; anything else is refused with
// what differs.
func (t *Trainer) Restore(ckpt string) error {
	b, err := os.ReadFile(filepath.Join(ckpt, TrainerStateFile))
	if err != nil {
		return err
	}
	var st TrainerState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", TrainerStateFile, err)
	}
	want := t.trainerState()
	var diffs []string
	check := func(name string, a, b any) {
		if a != b {
			diffs = append(diffs, fmt.Sprintf("%s was %v, now %v", name, a, b))
		}
	}
	check("seed", st.Seed, want.Seed)
	check("examples", st.Examples, want.Examples)
	check("batch_size", st.BatchSize, want.BatchSize)
	check("micro_batch_size", st.MicroBatch, want.MicroBatch)
	check("cutoff_len", st.CutoffLen, want.CutoffLen)
	check("rank", st.Rank, want.Rank)
	if len(diffs) > 0 {
		return fmt.Errorf("the checkpoint was made with other settings (%s): resume with the run's own lora.lock, or start a new run", strings.Join(diffs, "; "))
	}
	f, err := safetensors.Open(filepath.Join(ckpt, StateFile))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range t.params {
		for _, part := range []struct {
			suffix string
			which  byte
		}{{"", 'p'}, {".exp_avg", 'm'}, {".exp_avg_sq", 'v'}} {
			ti, ok := f.Tensor(p.name + part.suffix)
			if !ok {
				return fmt.Errorf("checkpoint lacks %s%s (targets changed?)", p.name, part.suffix)
			}
			vals, err := f.TensorFloat32(ti)
			if err != nil {
				return err
			}
			dst := pick3(p, part.which)
			if len(vals) != dst.Len() {
				return fmt.Errorf("checkpoint %s%s has %d values, want %d", p.name, part.suffix, len(vals), dst.Len())
			}
			for _, v := range vals {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("checkpoint %s%s holds NaN or Inf", p.name, part.suffix)
				}
			}
			if err := t.be.Write(dst, vals); err != nil {
				return err
			}
		}
	}
	t.Step, t.Tokens = st.Step, st.Tokens
	t.History = nil
	if hb, err := os.ReadFile(filepath.Join(ckpt, HistoryFile)); err == nil {
		if err := json.Unmarshal(hb, &t.History); err != nil {
			return fmt.Errorf("%s: %w", HistoryFile, err)
		}
	}
	return nil
}
