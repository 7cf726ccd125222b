package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
)

// fake is a stage kind for tests: it writes out.txt from its inputs' main
// files and its stage name, counts its runs, and can be told to fail, to
// sleep, or (evaluate) to measure a perplexity.
type fake struct{ kind string }

var (
	fakeMu      sync.Mutex
	fakeRuns    = map[string]int{}
	fakeFail    = map[string]bool{} // kind → fail after writing a partial file
	fakeSleep   = map[string]time.Duration{}
	fakeStarted string // file to create when a sleeping kind starts
	perplexity  = 10.0
)

func resetFakes() {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	fakeRuns = map[string]int{}
	fakeFail = map[string]bool{}
	fakeSleep = map[string]time.Duration{}
	perplexity = 10.0
}

func runs(kind string) int {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	return fakeRuns[kind]
}

func (f fake) Run(ctx context.Context, rc *RunContext) error {
	fakeMu.Lock()
	fakeRuns[f.kind]++
	fail, sleep := fakeFail[f.kind], fakeSleep[f.kind]
	fakeMu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s(%s) seed=%d model=%s q=%s\n", f.kind, rc.Stage.Name, rc.Seed, short(rc.ModelSHA256), rc.Quantize)
	for _, in := range rc.Stage.Inputs() {
		p, err := rc.InputMain(in)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "< %s: %s", in, data)
	}
	if rc.Stage.Train != nil {
		fmt.Fprintf(&b, "rank=%d resume=%q\n", rc.Stage.Train.LoRA.Rank, filepath.Base(rc.Resume))
		os.MkdirAll(filepath.Join(rc.Checkpoints, "step-000001"), 0o755)
		rc.Metrics(map[string]any{"step": 1, "loss": 2.5})
	}
	if err := os.WriteFile(filepath.Join(rc.Out, "partial.bin"), []byte("half"), 0o644); err != nil {
		return err
	}
	if sleep > 0 {
		if fakeStarted != "" {
			os.WriteFile(fakeStarted, nil, 0o644)
		}
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errors.New("boom halfway")
	}
	os.Remove(filepath.Join(rc.Out, "partial.bin"))
	if err := os.WriteFile(filepath.Join(rc.Out, "out.txt"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	rc.SetMain("out.txt")
	if rc.Stage.Evaluate != nil {
		rc.Summarize(map[string]any{"perplexity": perplexity})
		if g := rc.Stage.Evaluate.Gate; !g.IsZero() {
			gate, err := recipe.CompileGate(recipe.GateEval, g.Src)
			if err != nil {
				return err
			}
			ok, err := gate.Eval(recipe.EvalEnv{Perplexity: perplexity})
			if err != nil {
				return err
			}
			if !ok {
				return &GateError{Expr: g.Src, Values: map[string]any{"perplexity": perplexity}}
			}
		}
	}
	if rc.Stage.Train != nil {
		rc.Summarize(map[string]any{"loss": 2.5, "steps": 1})
	}
	return nil
}

// Plan makes fake a Planner: lora plan shows what it knew.
func (f fake) Plan(ctx context.Context, pc *PlanContext) ([]string, error) {
	return []string{fmt.Sprintf("fake plan: %d cached inputs, model known %v, device %s", len(pc.Inputs), pc.Model != "", pc.Device)}, nil
}

func init() {
	for _, k := range []string{recipe.KindFormat, recipe.KindChunk, recipe.KindTrain, recipe.KindEvaluate} {
		Register(k, fake{k})
	}
}

const demoRecipe = `version: 1
name: demo
seed: 7
device: cpu
model:
  source: ./model.gguf
stages:
  data:
    fetch: {source: ./data.json}
  prompts:
    format: {input: data, format: alpaca}
  train:
    train: {input: prompts, lora: {rank: 8}, max_steps: 2, batch_size: 4}
  eval:
    evaluate: {adapter: train, samples: {prompts: ["hi"]}, gate: "perplexity < 40"}
  report:
    needs: [eval]
    when: stages.eval.perplexity > 20
    evaluate: {adapter: train, samples: {prompts: ["again"]}}
`

type env struct {
	dir   string // recipe directory
	runs  string
	store *store.Store
	log   strings.Builder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	resetFakes()
	e := &env{dir: t.TempDir(), runs: t.TempDir()}
	var err error
	if e.store, err = store.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	e.write(t, "model.gguf", "fake model bytes")
	e.write(t, "data.json", `[{"instruction":"a","output":"b"}]`)
	e.write(t, "demo.yaml", demoRecipe)
	return e
}

func (e *env) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) load(t *testing.T, overrides ...string) *recipe.Recipe {
	t.Helper()
	r, ds := recipe.Load(filepath.Join(e.dir, "demo.yaml"), overrides)
	if ds.HasErrors() {
		t.Fatalf("recipe: %v", ds.Err())
	}
	return r
}

func (e *env) opts() Options {
	e.log.Reset()
	return Options{Store: e.store, RunsDir: e.runs, Log: &e.log}
}

func (e *env) run(t *testing.T, opt Options, overrides ...string) (*Result, error) {
	t.Helper()
	return Run(context.Background(), e.load(t, overrides...), opt)
}

func statuses(l *lock.Lock) string {
	var s []string
	for _, st := range l.Stages {
		s = append(s, st.Name+"="+st.Status)
	}
	return strings.Join(s, " ")
}

func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestSecondRunReusesEverything(t *testing.T) {
	e := newEnv(t)
	opt := e.opts()
	opt.ResolveDevice = func(spec string) (string, string, error) { return spec, "test " + spec, nil }
	res, err := e.run(t, opt)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.log.String())
	}
	if got := statuses(res.Lock); got != "data=ran prompts=ran train=ran eval=ran report=skipped" {
		t.Fatalf("first run: %s", got)
	}
	for _, k := range []string{"format", "train", "evaluate"} {
		if runs(k) != 1 {
			t.Fatalf("%s ran %d times", k, runs(k))
		}
	}
	// The run directory holds every output with stage.json, the lock and metrics.
	for _, s := range []string{"data", "prompts", "train", "eval"} {
		o, err := ReadOutput(filepath.Join(res.RunDir, StagesDir, s))
		if err != nil {
			t.Fatal(err)
		}
		if o.Key != res.Lock.Stage(s).Key {
			t.Errorf("%s: stage.json key %s != lock key %s", s, o.Key, res.Lock.Stage(s).Key)
		}
		if err := VerifyOutput(filepath.Join(res.RunDir, StagesDir, s)); err != nil {
			t.Error(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(res.RunDir, StagesDir, "train", "out.txt")); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("stage output files must be read-only: %v %v", fi.Mode(), err)
	}
	data, _ := os.ReadFile(filepath.Join(res.RunDir, StagesDir, "data", "data.json"))
	if string(data) != `[{"instruction":"a","output":"b"}]` {
		t.Errorf("fetched data %q", data)
	}
	m, _ := os.ReadFile(filepath.Join(res.RunDir, MetricsFile))
	if !strings.Contains(string(m), `"stage":"train"`) {
		t.Errorf("metrics.jsonl = %q", m)
	}
	l, err := lock.Read(res.RunDir)
	if err != nil || l.Status != lock.StatusOK || l.Model == nil || l.Model.SHA256 != store.HashBytes([]byte("fake model bytes")) {
		t.Fatalf("lock: %+v %v", l, err)
	}
	if l.Device.Requested != "cpu" || l.Device.Kind != "cpu" || l.Device.Name != "test cpu" {
		t.Errorf("lock device %+v", l.Device)
	}
	if len(l.Inputs) != 1 || l.Inputs[0].SHA256 != store.HashBytes(data) {
		t.Errorf("lock inputs %+v", l.Inputs)
	}

	res2, err := e.run(t, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res2.Lock); got != "data=cached prompts=cached train=cached eval=cached report=skipped" {
		t.Fatalf("second run: %s\n%s", got, e.log.String())
	}
	if runs("format") != 1 || runs("train") != 1 || runs("evaluate") != 1 {
		t.Fatalf("second run ran kinds again: %v", fakeRuns)
	}
	if res2.RunDir == res.RunDir {
		t.Fatal("second run reused the run directory")
	}
	b1, _ := os.ReadFile(filepath.Join(res.RunDir, StagesDir, "eval", "out.txt"))
	b2, _ := os.ReadFile(filepath.Join(res2.RunDir, StagesDir, "eval", "out.txt"))
	if string(b1) != string(b2) || len(b1) == 0 {
		t.Errorf("cached output differs: %q vs %q", b1, b2)
	}
	m2, _ := os.ReadFile(filepath.Join(res2.RunDir, MetricsFile))
	if !strings.Contains(string(m2), `"cached":true`) {
		t.Errorf("cached stage metrics not replayed: %q", m2)
	}
}

func TestChangeOneParameterRerunsItAndDependants(t *testing.T) {
	e := newEnv(t)
	if _, err := e.run(t, e.opts()); err != nil {
		t.Fatal(err)
	}
	res, err := e.run(t, e.opts(), "stages.train.train.lora.rank=16")
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Lock); got != "data=cached prompts=cached train=ran eval=ran report=skipped" {
		t.Fatalf("after override: %s", got)
	}
	if r := res.Lock.Stage("train").Reason; !strings.Contains(r, "train.lora.rank 8 → 16") {
		t.Errorf("train reason = %q", r)
	}
	if r := res.Lock.Stage("eval").Reason; !strings.Contains(r, "input train changed") {
		t.Errorf("eval reason = %q", r)
	}
	if runs("format") != 1 || runs("train") != 2 {
		t.Errorf("runs: %v", fakeRuns)
	}
	if len(res.Lock.Overrides) != 1 || res.Lock.Overrides[0] != "stages.train.train.lora.rank=16" {
		t.Errorf("overrides in lock: %v", res.Lock.Overrides)
	}
	out, _ := os.ReadFile(filepath.Join(res.RunDir, StagesDir, "train", "out.txt"))
	if !strings.Contains(string(out), "rank=16") {
		t.Errorf("train output %q", out)
	}
	// Changing the dataset file reruns everything downstream of it.
	e.write(t, "data.json", `[{"instruction":"c","output":"d"}]`)
	res, err = e.run(t, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Lock); got != "data=ran prompts=ran train=ran eval=ran report=skipped" {
		t.Fatalf("after data change: %s", got)
	}
	if r := res.Lock.Stage("data").Reason; !strings.Contains(r, "fetched content changed") {
		t.Errorf("data reason = %q", r)
	}
}

func TestFailingStageLeavesNoOutput(t *testing.T) {
	e := newEnv(t)
	fakeFail["train"] = true
	res, err := e.run(t, e.opts())
	var se *StageError
	if !errors.As(err, &se) || se.Stage != "train" || exitCode(err) != 1 {
		t.Fatalf("err = %v, want a StageError for train with exit 1", err)
	}
	if !strings.Contains(err.Error(), "train") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("message %q", err)
	}
	if _, err := os.Stat(filepath.Join(res.RunDir, StagesDir, "train")); err == nil {
		t.Error("failed stage published in the run directory")
	}
	if key := res.Lock.Stage("train").Key; key != "" {
		if _, ok := e.store.Stage(key); ok {
			t.Error("failed stage published in the store")
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.store.Root(), "stages"))
	for _, ent := range ents {
		if strings.HasPrefix(ent.Name(), ".tmp-") {
			t.Errorf("temporary output left behind: %s", ent.Name())
		}
	}
	if got := statuses(res.Lock); got != "data=ran prompts=ran train=failed eval=pending report=pending" {
		t.Errorf("statuses %s", got)
	}
	if res.Lock.Status != lock.StatusFailed {
		t.Errorf("lock status %s", res.Lock.Status)
	}
	// Fixed: the next run reuses what succeeded and runs the rest.
	fakeFail["train"] = false
	res, err = e.run(t, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Lock); got != "data=cached prompts=cached train=ran eval=ran report=skipped" {
		t.Errorf("after fix: %s", got)
	}
}

func TestGateFailsRunAndStaysFailedWhenCached(t *testing.T) {
	e := newEnv(t)
	perplexity = 55
	res, err := e.run(t, e.opts())
	var ge *GateError
	if !errors.As(err, &ge) || exitCode(err) != 3 {
		t.Fatalf("err = %v (exit %d), want a gate error with exit 3", err, exitCode(err))
	}
	if !strings.Contains(err.Error(), "perplexity < 40") || !strings.Contains(err.Error(), "perplexity = 55") {
		t.Errorf("message %q", err)
	}
	o, err2 := ReadOutput(filepath.Join(res.RunDir, StagesDir, "eval"))
	if err2 != nil || o.Gate == nil || o.Gate.Passed {
		t.Fatalf("eval output should be published with its failed gate: %+v %v", o, err2)
	}
	if res.Lock.Status != lock.StatusGate || res.Lock.Stage("eval").Status != lock.StageRan {
		t.Errorf("lock status %s, eval %s", res.Lock.Status, res.Lock.Stage("eval").Status)
	}
	_, err = e.run(t, e.opts())
	if exitCode(err) != 3 || runs("evaluate") != 1 {
		t.Fatalf("cached gate: err %v, evaluate ran %d times", err, runs("evaluate"))
	}
}

func TestWhenRunsStage(t *testing.T) {
	e := newEnv(t)
	perplexity = 30 // passes the gate (< 40) and makes report's when true (> 20)
	res, err := e.run(t, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Lock.Stage("report").Status; st != lock.StageRan {
		t.Fatalf("report %s, want ran", st)
	}
}

func TestChecksumMismatchExits4(t *testing.T) {
	e := newEnv(t)
	bad := strings.Repeat("ab", 32)
	_, err := e.run(t, e.opts(), "stages.data.fetch.sha256="+bad)
	if exitCode(err) != 4 {
		t.Fatalf("err = %v (exit %d), want exit 4", err, exitCode(err))
	}
	for _, want := range []string{bad, store.HashBytes([]byte(`[{"instruction":"a","output":"b"}]`)), "data.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %s: %v", want, err)
		}
	}
	if runs("format") != 0 {
		t.Error("stages ran after a checksum mismatch")
	}
}

func TestUntilAndForce(t *testing.T) {
	e := newEnv(t)
	opt := e.opts()
	opt.Until = "prompts"
	res, err := e.run(t, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Lock); got != "data=ran prompts=ran" {
		t.Fatalf("--until: %s", got)
	}
	opt = e.opts()
	opt.Until = "prompts"
	opt.Force = []string{"prompts"}
	res, err = e.run(t, opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Lock); got != "data=cached prompts=ran" || runs("format") != 2 {
		t.Fatalf("--force: %s, format ran %d", got, runs("format"))
	}
	if rp := res.Lock.Stage("prompts").Reproduced; rp == nil || !*rp {
		t.Errorf("forced rerun of a deterministic stage should be reproduced: %v", rp)
	}
	opt.Until = "nope"
	if _, err := e.run(t, opt); err == nil || !strings.Contains(err.Error(), "no such stage") {
		t.Fatalf("unknown --until: %v", err)
	}
}

func TestPlan(t *testing.T) {
	e := newEnv(t)
	p, err := Plan(context.Background(), e.load(t), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Stages {
		if s.Status != PlanRun || s.Key == "" {
			t.Errorf("fresh plan: %+v", s)
		}
	}
	res, err := e.run(t, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	p, err = Plan(context.Background(), e.load(t, "stages.train.train.lora.rank=4"), e.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"data": PlanCached, "prompts": PlanCached, "train": PlanRun, "eval": PlanRun}
	for _, s := range p.Stages {
		if w, ok := want[s.Name]; ok && s.Status != w {
			t.Errorf("%s: %s, want %s (%s)", s.Name, s.Status, w, s.Reason)
		}
		if s.Name == "data" && s.Key != res.Lock.Stage("data").Key {
			t.Errorf("plan key %s != run key %s", s.Key, res.Lock.Stage("data").Key)
		}
	}
	var b strings.Builder
	p.WriteText(&b)
	for _, want := range []string{"prompts", "← data", "why: definition changed: train.lora.rank 8 → 4", "2 cached",
		"fake plan: 1 cached inputs, model known true, device cpu"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan text lacks %q:\n%s", want, b.String())
		}
	}
}

func TestOfflineMissingModel(t *testing.T) {
	e := newEnv(t)
	sum := strings.Repeat("a", 64)
	opt := e.opts()
	opt.Offline = true
	_, err := e.run(t, opt, "model.source=https://example.invalid/m.gguf", "model.sha256="+sum)
	if err == nil || !strings.Contains(err.Error(), "lora cache import") || !strings.Contains(err.Error(), sum) {
		t.Fatalf("err = %v", err)
	}
}

func TestResume(t *testing.T) {
	e := newEnv(t)
	fakeFail["train"] = true
	res, _ := e.run(t, e.opts())
	fakeFail["train"] = false
	opt := e.opts()
	opt.Resume = res.RunDir
	res2, err := Run(context.Background(), e.load(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res2.RunDir != res.RunDir {
		t.Fatalf("resume wrote to %s", res2.RunDir)
	}
	if got := statuses(res2.Lock); got != "data=cached prompts=cached train=ran eval=ran report=skipped" {
		t.Fatalf("resume: %s", got)
	}
	out, _ := os.ReadFile(filepath.Join(res.RunDir, StagesDir, "train", "out.txt"))
	if !strings.Contains(string(out), `resume="step-000001"`) {
		t.Errorf("train did not get its checkpoint: %q", out)
	}
}

// TestKilledRunLeavesNoHalfWrittenStage runs a recipe in a child process
// whose train stage sleeps after writing part of its output, SIGKILLs it,
// and checks that nothing was published and that the next run cleans up.
func TestKilledRunLeavesNoHalfWrittenStage(t *testing.T) {
	if os.Getenv("LORA_PIPELINE_CHILD") != "" {
		return
	}
	e := newEnv(t)
	started := filepath.Join(t.TempDir(), "started")
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildRun$")
	cmd.Env = append(os.Environ(), "LORA_PIPELINE_CHILD=1", "CHILD_DIR="+e.dir, "CHILD_RUNS="+e.runs,
		"CHILD_STORE="+e.store.Root(), "CHILD_STARTED="+started)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child never reached the train stage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	runDirs, _ := filepath.Glob(filepath.Join(e.runs, "demo", "*"))
	if len(runDirs) != 1 {
		t.Fatalf("run dirs %v", runDirs)
	}
	l, err := lock.Read(runDirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if st := l.Stage("train").Status; st != lock.StageRunning {
		t.Errorf("lock says train %s, want running", st)
	}
	if _, err := os.Stat(filepath.Join(runDirs[0], StagesDir, "train")); err == nil {
		t.Fatal("killed stage published in the run directory")
	}
	// A half-made copy into the run and a half-written checkpoint, as a kill
	// during publication would leave them (pid of the dead child).
	pid := strconv.Itoa(cmd.Process.Pid)
	halfRun := filepath.Join(runDirs[0], StagesDir, ".tmp-train-"+pid+"-1")
	halfCkpt := filepath.Join(runDirs[0], CheckpointsDir, "train", ".tmp-step-000002-"+pid+"-1")
	os.MkdirAll(halfRun, 0o755)
	os.MkdirAll(halfCkpt, 0o755)
	if _, ok := e.store.Stage(l.Stage("train").Key); ok {
		t.Fatal("killed stage published in the store")
	}
	tmps, _ := filepath.Glob(filepath.Join(e.store.Root(), "stages", ".tmp-*"))
	if len(tmps) != 1 {
		t.Fatalf("want exactly the killed stage's temporary dir, got %v", tmps)
	}
	// The next run (reopening the store) removes it and finishes the work.
	s, err := store.Open(e.store.Root())
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(e.store.Root(), "stages", ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary dirs not cleaned: %v", left)
	}
	opt := e.opts()
	opt.Store = s
	opt.Resume = runDirs[0]
	res, err := Run(context.Background(), e.load(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res.Lock); got != "data=cached prompts=cached train=ran eval=ran report=skipped" {
		t.Errorf("after kill: %s", got)
	}
	for _, p := range []string{halfRun, halfCkpt} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s not cleaned", p)
		}
	}
}

// TestChildRun is the child of TestKilledRunLeavesNoHalfWrittenStage.
func TestChildRun(t *testing.T) {
	if os.Getenv("LORA_PIPELINE_CHILD") == "" {
		t.Skip("child process of TestKilledRunLeavesNoHalfWrittenStage")
	}
	resetFakes()
	fakeSleep["train"] = time.Minute
	fakeStarted = os.Getenv("CHILD_STARTED")
	s, err := store.Open(os.Getenv("CHILD_STORE"))
	if err != nil {
		t.Fatal(err)
	}
	r, ds := recipe.Load(filepath.Join(os.Getenv("CHILD_DIR"), "demo.yaml"), nil)
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	Run(context.Background(), r, Options{Store: s, RunsDir: os.Getenv("CHILD_RUNS")})
	t.Fatal("the parent should have killed this process")
}

func TestCancelPublishesNothing(t *testing.T) {
	e := newEnv(t)
	fakeSleep["train"] = time.Minute
	dir := t.TempDir()
	fakeStarted = filepath.Join(dir, "started")
	defer func() { fakeStarted = "" }()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(fakeStarted); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := Run(ctx, e.load(t), e.opts())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if res.Lock.Status != lock.StatusInterrupted || !strings.Contains(err.Error(), "lora resume") {
		t.Errorf("status %s, err %v", res.Lock.Status, err)
	}
	if _, err := os.Stat(filepath.Join(res.RunDir, StagesDir, "train")); err == nil {
		t.Error("interrupted stage published")
	}
	if tmps, _ := filepath.Glob(filepath.Join(e.store.Root(), "stages", ".tmp-*")); len(tmps) != 0 {
		t.Errorf("temporary dirs left: %v", tmps)
	}
}

func TestRerun(t *testing.T) {
	e := newEnv(t)
	res, err := e.run(t, e.opts(), "stages.train.train.lora.rank=4")
	if err != nil {
		t.Fatal(err)
	}
	l, err := lock.Read(res.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	// Editing the recipe file does not change what a rerun does: the lock holds the source.
	e.write(t, "demo.yaml", strings.Replace(demoRecipe, "seed: 7", "seed: 8", 1))
	opt := e.opts()
	opt.Fresh = []string{recipe.KindTrain}
	res2, err := Rerun(context.Background(), l, opt)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.log.String())
	}
	if got := statuses(res2.Lock); got != "data=cached prompts=cached train=ran eval=cached report=skipped" {
		t.Fatalf("rerun: %s", got)
	}
	if rp := res2.Lock.Stage("train").Reproduced; rp == nil || !*rp {
		t.Errorf("train not reproduced: %v", rp)
	}
	if res2.Lock.Seed != 7 || res2.Lock.Overrides[0] != "stages.train.train.lora.rank=4" {
		t.Errorf("rerun used seed %d, overrides %v", res2.Lock.Seed, res2.Lock.Overrides)
	}
	// A changed input is caught before any work, with exit code 4.
	e.write(t, "data.json", `[]`)
	before := runs("format") + runs("train")
	_, err = Rerun(context.Background(), l, e.opts())
	if exitCode(err) != 4 || !strings.Contains(err.Error(), "data.json") {
		t.Fatalf("err = %v (exit %d)", err, exitCode(err))
	}
	if runs("format")+runs("train") != before {
		t.Error("stages ran before inputs were verified")
	}
	// A tampered lock (recipe source edited) is a checksum error too.
	l.Recipe.Source += "\n# edited\n"
	if _, err := Rerun(context.Background(), l, e.opts()); exitCode(err) != 4 {
		t.Fatalf("tampered lock: %v", err)
	}
}

func TestLatestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	if got := latestCheckpoint(dir); got != "" {
		t.Fatalf("empty dir: %q", got)
	}
	for _, n := range []string{"checkpoint-20", "checkpoint-100", "checkpoint-40", ".tmp-checkpoint-120-1-2", "notes"} {
		os.Mkdir(filepath.Join(dir, n), 0o755)
	}
	if got := filepath.Base(latestCheckpoint(dir)); got != "checkpoint-100" {
		t.Fatalf("latest = %s, want checkpoint-100", got)
	}
}

func TestResumeRefusesARunInUse(t *testing.T) {
	e := newEnv(t)
	res, err := e.run(t, e.opts())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lockRunDir(res.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	opt := e.opts()
	opt.Resume = res.RunDir
	if _, err := Run(context.Background(), e.load(t), opt); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("resume of a locked run: %v", err)
	}
}
