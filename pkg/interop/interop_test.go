package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/train"
)

// python is the interpreter the reference runs under: Debian's, with python3-numpy.
const python = "/usr/bin/python3"

// relTol is the agreement required between our loss and the reference's.
const relTol = 1e-4

// repoRoot walks up from the package directory to the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			t.Skip("repository root (go.mod) not found above the test directory")
		}
		dir = filepath.Dir(dir)
	}
}

// sharedData is ../shared/data/rel from the repository root; the test is
// skipped when the assets are absent.
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test asset %s absent (%v): fetch ../shared/data to run this test", p, err)
	}
	return p
}

var (
	numpyOnce sync.Once
	numpyErr  error
)

// needReference skips the test when the reference cannot run here.
func needReference(t testing.TB) string {
	t.Helper()
	numpyOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import numpy").CombinedOutput()
		if err != nil {
			numpyErr = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	})
	if numpyErr != nil {
		t.Skipf("the independent reference needs %s with numpy (Debian: apt-get install python3-numpy; scripts/install-deps.sh): %v", python, numpyErr)
	}
	return filepath.Join(repoRoot(t), "scripts", "peft_reference.py")
}

// reference runs scripts/peft_reference.py with args and decodes its JSON output.
func reference(t testing.TB, out any, args ...string) {
	t.Helper()
	script := needReference(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, append([]string{script}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("peft_reference.py %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("peft_reference.py %s: output %q: %v", strings.Join(args, " "), stdout.String(), err)
	}
}

// execOutput runs a command with a timeout and returns its combined output.
func execOutput(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// job is one evaluation of a --jobs run: a PEFT directory, a GGUF LoRA
// file, or neither (the base model alone).
type job struct {
	Name     string `json:"name"`
	PEFT     string `json:"peft,omitempty"`
	GGUFLoRA string `json:"gguf_lora,omitempty"`
}

// refLoss is the reference's answer to one job.
type refLoss struct {
	Name    string    `json:"name"`
	Error   string    `json:"error"`
	Loss    float64   `json:"loss"`
	Tokens  int       `json:"tokens"`
	Mode    string    `json:"mode"`
	Adapted int       `json:"adapted"`
	Scales  []float64 `json:"scales"`
}

// referenceJobs evaluates every job with the reference over one reading of
// base (a path under ../shared/data) and the JSONL examples, by job name.
func referenceJobs(t testing.TB, base, examples string, jobs []job) map[string]refLoss {
	t.Helper()
	script := needReference(t)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, j := range jobs {
		if err := enc.Encode(j); err != nil {
			t.Fatal(err)
		}
	}
	jobsFile := filepath.Join(t.TempDir(), "jobs.jsonl")
	if err := os.WriteFile(jobsFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, script, "--model", modelPath(t, base), "--examples", examples, "--jobs", jobsFile)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("peft_reference.py --jobs: %v\n%s", err, stderr.String())
	}
	out := map[string]refLoss{}
	for _, line := range bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n")) {
		var r refLoss
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("peft_reference.py --jobs: line %q: %v", line, err)
		}
		out[r.Name] = r
	}
	for _, j := range jobs {
		if _, ok := out[j.Name]; !ok {
			t.Fatalf("peft_reference.py --jobs: no result for %q\n%s", j.Name, stderr.String())
		}
	}
	return out
}

func loadBase(t testing.TB, base string) *model.Model {
	t.Helper()
	m, err := model.Load(modelPath(t, base), ref.New(), model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// modelPath is base itself when absolute (a file a test wrote), else the
// file under ../shared/data.
func modelPath(t testing.TB, base string) string {
	if filepath.IsAbs(base) {
		return base
	}
	return sharedData(t, base)
}

// lcg is a small deterministic generator for token ids.
type lcg uint64

func (g *lcg) next(n int) int32 {
	*g = *g*6364136223846793005 + 1442695040888963407
	return int32(uint64(*g>>33) % uint64(n))
}

// trainingData repeats short token patterns (easy to learn, so a few steps
// move the adapter far from zero).
func trainingData() []train.Example {
	exs := make([]train.Example, 8)
	for i := range exs {
		ids := make([]int32, 16)
		lab := make([]int32, 16)
		ids[0], lab[0] = 1, train.Ignore
		for j := 1; j < len(ids); j++ {
			ids[j] = int32(300 + (i+j)%7)
			lab[j] = ids[j]
		}
		exs[i] = train.Example{InputIDs: ids, Labels: lab}
	}
	return exs
}

// heldout is a mix of the trained pattern and pseudo-random tokens, of
// uneven lengths, with masked prompts: 7 examples, so the last batch of 4
// is partial.
func heldout() []train.Example {
	g := lcg(7)
	var exs []train.Example
	for i := 0; i < 7; i++ {
		n := 10 + 3*i
		ids := make([]int32, n)
		lab := make([]int32, n)
		ids[0] = 1
		for j := 1; j < n; j++ {
			if i%2 == 0 {
				ids[j] = int32(300 + (i+j)%7)
			} else {
				ids[j] = 3 + g.next(509)
			}
		}
		for j := range lab {
			lab[j] = ids[j]
			if j < 1+i%4 {
				lab[j] = train.Ignore
			}
		}
		exs = append(exs, train.Example{InputIDs: ids, Labels: lab})
	}
	return exs
}

// writeExamples writes examples as JSONL {"input_ids", "labels"}.
func writeExamples(t testing.TB, exs []train.Example) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "heldout.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, ex := range exs {
		if err := enc.Encode(map[string][]int32{"input_ids": ex.InputIDs, "labels": ex.Labels}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Bases the interop tests train on: a real pretrained F32 model with
// grouped-query attention and tied embeddings, and an F16 one with plain
// multi-head attention, 4-wide heads and its own output matrix.
var bases = []string{"models/stories260K.gguf", "models/llama-2-tiny-random.gguf"}

type fixture struct {
	a   *adapter.Adapter
	cfg model.Config
	err error
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*fixture{}
)

// trained is a rank-4 adapter on every linear of the base (a path under
// ../shared/data) after a few steps of training with dropout 0, in the
// model's (GGUF) layout. It is trained once per base and test binary.
func trained(t testing.TB, base string) (*adapter.Adapter, model.Config) {
	t.Helper()
	path := sharedData(t, base)
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	f := fixtures[path]
	if f == nil {
		f = &fixture{}
		f.a, f.cfg, f.err = trainFixture(path)
		fixtures[path] = f
	}
	if f.err != nil {
		t.Fatalf("training the fixture adapter on %s: %v", base, f.err)
	}
	return f.a, f.cfg
}

func trainFixture(path string) (*adapter.Adapter, model.Config, error) {
	m, err := model.Load(path, ref.New(), model.LoadOptions{})
	if err != nil {
		return nil, model.Config{}, err
	}
	defer m.Close()
	data := trainingData()
	o := train.Options{Rank: 4, Alpha: 8, Dropout: 0,
		Targets: []model.Module{model.Q, model.K, model.V, model.O, model.Gate, model.Up, model.Down},
		LR:      2e-2, Schedule: train.Schedule{Name: "constant"}, MaxGradNorm: 1,
		BatchSize: 4, MicroBatch: 4, CutoffLen: 16, MaxSteps: 6, Seed: 7, Shuffle: true}
	tr, err := train.New(m, o, len(data), nil)
	if err != nil {
		return nil, model.Config{}, err
	}
	defer tr.Close()
	for tr.Step < tr.Plan.TotalSteps {
		if _, err := tr.TrainStep(data); err != nil {
			return nil, model.Config{}, err
		}
	}
	a, err := tr.Adapter()
	if err != nil {
		return nil, model.Config{}, err
	}
	a.BaseModel = filepath.Base(path)
	return a, m.Config, nil
}

// ourLoss is lora's held-out loss of a freshly loaded base with the adapter
// at path (none when path is ""), as `lora eval` computes it.
func ourLoss(t testing.TB, base, path string, exs []train.Example) (float64, int) {
	t.Helper()
	m := loadBase(t, base)
	if path != "" {
		a, err := adapter.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := adapter.Apply(m, a, 0); err != nil {
			t.Fatal(err)
		}
	}
	acts, err := m.NewActivations(4, 32, false)
	if err != nil {
		t.Fatal(err)
	}
	defer acts.Free()
	loss, n, err := train.HeldoutLoss(context.Background(), m, acts, exs)
	if err != nil {
		t.Fatal(err)
	}
	return loss, n
}

func rel(a, b float64) float64 { return math.Abs(a-b) / math.Max(math.Abs(b), 1e-12) }

// TestLossAgreesWithReference trains an adapter, saves it as PEFT and as GGUF
// LoRA, and requires the loss lora computes with each to equal the loss of
// the independent reference: Hugging Face layout and forward with the PEFT
// merge for the PEFT directory, llama.cpp layout and LoRA product for the
// GGUF file. Agreement proves the PEFT names, shapes and q/k un-permutation,
// the GGUF adapter's semantics, and our forward pass.
func TestLossAgreesWithReference(t *testing.T) {
	needReference(t)
	exs := heldout()
	examples := writeExamples(t, exs)
	for _, base := range bases {
		t.Run(filepath.Base(base), func(t *testing.T) {
			trainedA, cfg := trained(t, base)
			dir := t.TempDir()
			type variant struct {
				name, format, path, mode string
				a                        adapter.Adapter
			}
			var vs []variant
			jobs := []job{{Name: "base"}}
			plain, rs := *trainedA, *trainedA
			rs.RSLoRA = true
			for _, x := range []struct {
				kind string
				a    adapter.Adapter
			}{{"lora", plain}, {"rslora", rs}, {"rank-pattern", rankPattern(trainedA, 2, model.Q, model.Down)}} {
				peftDir := filepath.Join(dir, x.kind+"-peft")
				ggufPath := filepath.Join(dir, x.kind+".gguf")
				if err := adapter.SavePEFT(peftDir, &x.a, cfg); err != nil {
					t.Fatal(err)
				}
				if err := adapter.SaveGGUF(ggufPath, &x.a, cfg); err != nil {
					t.Fatal(err)
				}
				vs = append(vs, variant{x.kind + "/PEFT", "PEFT", peftDir, "peft", x.a}, variant{x.kind + "/GGUF", "GGUF", ggufPath, "gguf", x.a})
				jobs = append(jobs, job{Name: x.kind + "/PEFT", PEFT: peftDir}, job{Name: x.kind + "/GGUF", GGUFLoRA: ggufPath})
			}
			ref := referenceJobs(t, base, examples, jobs)

			ourBase, n := ourLoss(t, base, "", exs)
			refBase := ref["base"]
			t.Logf("base model: ours %.9f, reference %.9f (relative %.2g, %d tokens)", ourBase, refBase.Loss, rel(ourBase, refBase.Loss), n)
			if refBase.Error != "" || refBase.Tokens != n {
				t.Fatalf("reference on the base: %q, %d trained tokens (ours %d)", refBase.Error, refBase.Tokens, n)
			}
			if r := rel(ourBase, refBase.Loss); r > relTol {
				t.Fatalf("base model loss: ours %.9f, reference %.9f (relative %.2g > %g): the forward pass disagrees with the HF LLaMA forward", ourBase, refBase.Loss, r, relTol)
			}
			modules := cfg.Layers * int(model.NumModules)
			for _, v := range vs {
				t.Run(v.name, func(t *testing.T) {
					r := ref[v.name]
					if r.Error != "" {
						t.Fatalf("the reference refused our %s adapter: %s", v.format, r.Error)
					}
					ours, nOurs := ourLoss(t, base, v.path, exs)
					t.Logf("ours %.9f, reference %.9f (relative %.2g; base %.6f; scale %v)", ours, r.Loss, rel(ours, r.Loss), refBase.Loss, r.Scales)
					if r.Mode != v.mode || r.Adapted != modules || r.Tokens != nOurs {
						t.Fatalf("reference ran mode %q on %d linears and %d tokens, want %q, %d, %d", r.Mode, r.Adapted, r.Tokens, v.mode, modules, nOurs)
					}
					if want := scales(&v.a); fmt.Sprintf("%.6g", r.Scales) != fmt.Sprintf("%.6g", want) {
						t.Errorf("reference read scales %v, want %v (alpha %g, rslora %v)", r.Scales, want, v.a.Alpha, v.a.RSLoRA)
					}
					// The adapter must matter far more than the tolerance, or
					// agreement would prove nothing. (The random base's LM head
					// has tiny weights, so no adapter on the linears moves its
					// loss much: about 0.5%; stories260K's moves by half.)
					if d := rel(r.Loss, refBase.Loss); d < 20*relTol {
						t.Fatalf("the adapter moves the reference loss by only %.2g relative: train it harder", d)
					}
					if d := rel(ours, r.Loss); d > relTol {
						t.Errorf("%s adapter: our loss %.9f, reference %.9f (relative %.2g > %g)", v.format, ours, r.Loss, d, relTol)
					}
				})
			}
		})
	}
}

// rankPattern is a copy of a whose weights for mods keep only their first
// r ranks (a valid adapter of mixed ranks: PEFT's rank_pattern).
func rankPattern(a *adapter.Adapter, r int, mods ...model.Module) adapter.Adapter {
	out := *a
	out.Weights = map[adapter.Key]*adapter.Weight{}
	for k, w := range a.Weights {
		nw := *w
		for _, m := range mods {
			if k.Module == m {
				nw.Rank = r
				nw.A = append([]float32(nil), w.A[:r*w.In]...)
				nw.B = make([]float32, w.Out*r)
				for o := 0; o < w.Out; o++ {
					copy(nw.B[o*r:(o+1)*r], w.B[o*w.Rank:o*w.Rank+r])
				}
			}
		}
		out.Weights[k] = &nw
	}
	return out
}

// scales is the sorted set of LoRA scales of a's weights.
func scales(a *adapter.Adapter) []float64 {
	set := map[float64]bool{}
	for _, w := range a.Weights {
		set[float64(a.Scale(w.Rank))] = true
	}
	var out []float64
	for s := range set {
		out = append(out, s)
	}
	sort.Float64s(out)
	return out
}

// TestReferenceSeesLayoutMistakes is the control: q/k lora_B rows written in
// the wrong order (PEFT left in llama.cpp order, GGUF left in HF order) must
// move the reference's loss away from ours, so the agreement above really
// checks the un-permutation.
func TestReferenceSeesLayoutMistakes(t *testing.T) {
	needReference(t)
	const base = "models/stories260K.gguf"
	trainedA, cfg := trained(t, base)
	if trainedA.Layout != adapter.LayoutGGUF {
		t.Fatalf("stories260K is a GGUF llama file: the trained adapter should be in the GGUF layout, got %v", trainedA.Layout)
	}
	exs := heldout()
	examples := writeExamples(t, exs)
	dir := t.TempDir()

	good := filepath.Join(dir, "good.gguf")
	if err := adapter.SaveGGUF(good, trainedA, cfg); err != nil {
		t.Fatal(err)
	}
	ours, _ := ourLoss(t, base, good, exs)

	// PEFT with rows left in GGUF order: claim HF so SavePEFT does not convert.
	wrongPEFT := *trainedA
	wrongPEFT.Layout = adapter.LayoutHF
	peftDir := filepath.Join(dir, "peft-unconverted")
	if err := adapter.SavePEFT(peftDir, &wrongPEFT, cfg); err != nil {
		t.Fatal(err)
	}
	// GGUF with rows in HF order: convert, then claim GGUF.
	wrongGGUF := trainedA.Convert(adapter.LayoutHF, cfg)
	wrongGGUF.Layout = adapter.LayoutGGUF
	ggufPath := filepath.Join(dir, "hf-order.gguf")
	if err := adapter.SaveGGUF(ggufPath, wrongGGUF, cfg); err != nil {
		t.Fatal(err)
	}
	jobs := []job{{Name: "PEFT with llama.cpp row order", PEFT: peftDir}, {Name: "GGUF with HF row order", GGUFLoRA: ggufPath}}
	ref := referenceJobs(t, base, examples, jobs)
	for _, j := range jobs {
		r := ref[j.Name]
		if r.Error != "" {
			t.Fatalf("%s: %s", j.Name, r.Error)
		}
		t.Logf("%s: reference %.9f, ours (correct adapter) %.9f, relative %.2g", j.Name, r.Loss, ours, rel(r.Loss, ours))
		if d := rel(r.Loss, ours); d < 10*relTol {
			t.Errorf("%s: reference loss %.9f is within %.2g of the correct %.9f: the reference does not see q/k row order", j.Name, r.Loss, d, ours)
		}
	}
}
