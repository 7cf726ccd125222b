package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/model"
)

// sharedData finds ../shared/data from the repository root.
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data %s not present: %v", rel, err)
	}
	return p
}

func loadStories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.Load(sharedData(t, "models/stories260K.gguf"), ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// patterned returns n examples of a repeating token pattern: easy to learn.
func patterned(n, length int, trainedFrom int) []Example {
	exs := make([]Example, n)
	for i := range exs {
		ids := make([]int32, length)
		lab := make([]int32, length)
		ids[0] = 1
		lab[0] = Ignore
		for j := 1; j < length; j++ {
			ids[j] = int32(300 + (i+j)%7)
			lab[j] = ids[j]
			if j < trainedFrom {
				lab[j] = Ignore
			}
		}
		exs[i] = Example{InputIDs: ids, Labels: lab}
	}
	return exs
}

func baseOpts() Options {
	return Options{Rank: 4, Alpha: 8, Targets: []model.Module{model.Q, model.V, model.Down}, LR: 1e-2,
		Schedule: Schedule{Name: "constant"}, MaxGradNorm: 1, BatchSize: 4, MicroBatch: 2, CutoffLen: 16,
		MaxSteps: 6, Seed: 99, Shuffle: true, HaltOnNaN: true, HaltOnZeroLoss: true}
}

func runSteps(t *testing.T, m *model.Model, o Options, data []Example) ([]Metrics, *adapter.Adapter) {
	t.Helper()
	tr, err := New(m, o, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Check(data); err != nil {
		t.Fatal(err)
	}
	var ms []Metrics
	for tr.Step < tr.Plan.TotalSteps {
		mt, err := tr.TrainStep(data)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, mt)
	}
	w, err := tr.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	return ms, w
}

func TestLossFallsAndRunsAreBitIdentical(t *testing.T) {
	m := loadStories(t)
	data := patterned(8, 16, 1)
	o := baseOpts()
	o.Dropout = 0.1
	o.MaxSteps = 8
	ms, w1 := runSteps(t, m, o, data)
	if !(ms[len(ms)-1].Loss < 0.8*ms[0].Loss) {
		t.Errorf("loss did not fall: first %.4f last %.4f", ms[0].Loss, ms[len(ms)-1].Loss)
	}
	_, w2 := runSteps(t, m, o, data)
	for _, s := range w1.Keys() {
		a1, b1 := w1.Weights[s].A, w1.Weights[s].B
		a2, b2 := w2.Weights[s].A, w2.Weights[s].B
		for i := range a1 {
			if math.Float32bits(a1[i]) != math.Float32bits(a2[i]) {
				t.Fatalf("rerun differs at %v A[%d]", s, i)
			}
		}
		for i := range b1 {
			if math.Float32bits(b1[i]) != math.Float32bits(b2[i]) {
				t.Fatalf("rerun differs at %v B[%d]", s, i)
			}
		}
	}
}

// Accumulating two micro-batches of 2 equals one micro-batch of 4: the loss
// is normalised by the trained tokens of the whole step.
func TestGradientAccumulationEqualsLargeBatch(t *testing.T) {
	m := loadStories(t)
	data := patterned(8, 16, 5)
	// uneven trained counts per example make a per-micro-batch mean differ
	for i := range data {
		for j := 1; j < 2+i; j++ {
			data[i].Labels[j] = Ignore
		}
	}
	o := baseOpts()
	o.MaxSteps = 3
	o.Shuffle = false
	msA, wA := runSteps(t, m, o, data)
	o.MicroBatch = 4
	msB, wB := runSteps(t, m, o, data)
	for i := range msA {
		if d := math.Abs(msA[i].Loss - msB[i].Loss); d > 1e-5*msA[i].Loss {
			t.Errorf("step %d loss %.7f vs %.7f", i+1, msA[i].Loss, msB[i].Loss)
		}
	}
	var maxRel float64
	for _, s := range wA.Keys() {
		bA, bB := wA.Weights[s].B, wB.Weights[s].B
		for i := range bA {
			d := math.Abs(float64(bA[i] - bB[i]))
			if d > 1e-6 {
				maxRel = math.Max(maxRel, d/math.Max(1e-3, math.Abs(float64(bA[i]))))
			}
		}
	}
	if maxRel > 1e-3 {
		t.Errorf("accumulated and large-batch adapters differ: max relative %.3g", maxRel)
	}
}

func TestHalts(t *testing.T) {
	m := loadStories(t)
	t.Run("all masked", func(t *testing.T) {
		data := patterned(4, 16, 100)
		tr, err := New(m, baseOpts(), len(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var h *Halt
		if err := tr.Check(data); !errors.As(err, &h) || h.Kind != "no-labels" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("nan", func(t *testing.T) {
		o := baseOpts()
		o.LR = 1e30
		o.MaxGradNorm = 0
		data := patterned(8, 16, 1)
		tr, err := New(m, o, len(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var h *Halt
		for i := 0; i < 6 && h == nil; i++ {
			if _, err := tr.TrainStep(data); err != nil && !errors.As(err, &h) {
				t.Fatal(err)
			}
		}
		if h == nil || (h.Kind != "nan" && h.Kind != "grad-explosion") {
			t.Fatalf("no nan halt: %v", h)
		}
		t.Logf("%s: %s", h.Kind, h.Reason)
		if h.Kind == "nan" && !strings.Contains(h.Reason, "layer ") {
			t.Errorf("the diagnosis does not name the layer: %s", h.Reason)
		}
	})
	t.Run("grad explosion halts before the update", func(t *testing.T) {
		o := baseOpts()
		o.GradNormLimit = 1e-3
		data := patterned(8, 16, 1)
		tr, err := New(m, o, len(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var h *Halt
		if _, err := tr.TrainStep(data); !errors.As(err, &h) || h.Kind != "grad-explosion" {
			t.Fatalf("got %v", err)
		}
		a, _ := tr.Adapter()
		for _, k := range a.Keys() {
			for _, v := range a.Weights[k].B {
				if v != 0 {
					t.Fatalf("the update of the exploding step was applied (B is no longer zero)")
				}
			}
		}
		if tr.Step != 0 {
			t.Fatalf("step %d after a halted first step", tr.Step)
		}
	})
	t.Run("zero loss", func(t *testing.T) {
		tr := &Trainer{Opts: Options{HaltOnZeroLoss: true, HaltOnNaN: true}}
		if h := tr.lossHalt(3, 0); h == nil || h.Kind != "zero-loss" {
			t.Fatalf("got %v", h)
		}
		if h := tr.lossHalt(3, 0.5); h != nil {
			t.Fatalf("halted on a normal loss: %v", h)
		}
	})
}

func TestEvaluateMatchesTrainLossAtStart(t *testing.T) {
	m := loadStories(t)
	data := patterned(4, 16, 1)
	o := baseOpts()
	o.MicroBatch, o.BatchSize = 4, 4
	tr, err := New(m, o, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ev, err := tr.Evaluate(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := tr.TrainStep(data)
	if err != nil {
		t.Fatal(err)
	}
	// B starts at zero, so the first step's loss is the base model's loss.
	if math.Abs(ev-mt.Loss) > 1e-5*ev {
		t.Errorf("eval loss %.7f != first train loss %.7f", ev, mt.Loss)
	}
}

func TestPrintCurve(t *testing.T) {
	if testing.Short() || os.Getenv("LORA_PRINT") == "" {
		t.Skip("set LORA_PRINT=1")
	}
	m := loadStories(t)
	o := baseOpts()
	o.MaxSteps = 8
	ms, _ := runSteps(t, m, o, patterned(8, 16, 1))
	for _, x := range ms {
		t.Logf("%+v", x)
	}
}

// Stopping after any step, saving, and resuming in a fresh trainer ends with
// the same adapter, bit for bit, as an uninterrupted run.
func TestResumeIsBitIdentical(t *testing.T) {
	m := loadStories(t)
	data := patterned(10, 16, 1)
	o := baseOpts()
	o.Dropout = 0.1
	o.MaxSteps = 6
	_, want := runSteps(t, m, o, data)

	dir := t.TempDir()
	tr, err := New(m, o, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := tr.TrainStep(data); err != nil {
			t.Fatal(err)
		}
	}
	ck, err := tr.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	// one more step that is "lost" with the kill
	if _, err := tr.TrainStep(data); err != nil {
		t.Fatal(err)
	}
	tr.Close()

	tr2, err := New(m, o, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	latest := ck
	if err := tr2.Restore(latest); err != nil {
		t.Fatal(err)
	}
	if tr2.Step != 4 {
		t.Fatalf("restored step %d", tr2.Step)
	}
	for tr2.Step < tr2.Plan.TotalSteps {
		if _, err := tr2.TrainStep(data); err != nil {
			t.Fatal(err)
		}
	}
	got, err := tr2.Adapter()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range want.Keys() {
		for i, v := range want.Weights[k].B {
			if math.Float32bits(v) != math.Float32bits(got.Weights[k].B[i]) {
				t.Fatalf("%v B[%d]: resumed %g, uninterrupted %g", k, i, got.Weights[k].B[i], v)
			}
		}
		for i, v := range want.Weights[k].A {
			if math.Float32bits(v) != math.Float32bits(got.Weights[k].A[i]) {
				t.Fatalf("%v A[%d] differs", k, i)
			}
		}
	}
	// A checkpoint from other settings is refused with what differs.
	o2 := o
	o2.CutoffLen = 12
	tr3, err := New(m, o2, len(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr3.Close()
	if err := tr3.Restore(latest); err == nil || !strings.Contains(err.Error(), "cutoff_len was 16, now 12") {
		t.Fatalf("got %v", err)
	}
}

func TestStartFromAdapterRefusesOtherRank(t *testing.T) {
	m := loadStories(t)
	data := patterned(4, 16, 1)
	o := baseOpts()
	o.MaxSteps = 2
	_, w := runSteps(t, m, o, data)
	o.Rank = 8
	if _, err := New(m, o, len(data), w); err == nil || !strings.Contains(err.Error(), "rank 4") {
		t.Fatalf("got %v", err)
	}
	o.Rank = 4
	tr, err := New(m, o, len(data), w)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	got, _ := tr.Adapter()
	k := w.Keys()[0]
	if got.Weights[k].B[0] != w.Weights[k].B[0] || got.Weights[k].A[3] != w.Weights[k].A[3] {
		t.Fatal("adapter not started from the given weights")
	}
}
