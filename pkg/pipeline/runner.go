package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/fetch"
	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
	"github.com/lora-dev/lora/pkg/version"
)

// Run directory layout (see docs/runs.md).
const (
	StagesDir      = "stages"
	CheckpointsDir = "checkpoints"
	LogsDir        = "logs"
	MetricsFile    = "metrics.jsonl"
)

// Options configure Run and Plan.
type Options struct {
	Store   *store.Store
	RunsDir string // runs go to RunsDir/<recipe name>/<run id>; default "runs"
	Until   string // run only this stage and what it needs
	Offline bool   // never touch the network
	Force   []string
	// Fresh lists stage kinds that always run instead of reusing a stored
	// output (rerun uses it for train, so the adapter is really made again).
	Fresh []string
	Log   io.Writer
	// ResolveDevice turns a device spec (auto, cpu, vulkan:N) into a device
	// kind and name; nil keeps the spec as the kind.
	ResolveDevice func(spec string) (kind, name string, err error)
	// Shaders is the hash of the shader set, part of the key of GPU stages.
	Shaders string
	// Pins gives sha256 pins for sources the recipe leaves unpinned (rerun).
	Pins map[string]string
	// Resume continues the run in this existing run directory.
	Resume string
	// RunID names the new run directory; default a UTC timestamp plus random.
	RunID string
	// Profile asks GPU stages to time their kernels (RunContext.Profile).
	Profile bool
	// Fetch tunes fetching (size limit, timeout); Store, Dir, Offline and
	// Log are filled in by the runner.
	Fetch fetch.Options
}

// Result is what a run did.
type Result struct {
	RunDir string
	Lock   *lock.Lock
}

func (o Options) logOrDiscard() io.Writer {
	if o.Log == nil {
		return io.Discard
	}
	return o.Log
}

type runner struct {
	unlock  func()
	r       *recipe.Recipe
	opt     Options
	log     io.Writer
	order   []*recipe.Stage
	prev    *lock.Lock
	model   *fetch.Result
	keys    map[string]string
	mats    map[string]*Material
	outs    map[string]string // stage → published output dir in the run
	metrics map[string]recipe.StageMetrics
	skipped map[string]bool
	lk      *lock.Lock
	runDir  string
	mfile   *os.File
	mu      sync.Mutex
	devices map[string][2]string
}

func newRunner(r *recipe.Recipe, opt Options) (*runner, error) {
	if opt.Store == nil {
		return nil, errors.New("pipeline: no store")
	}
	if opt.RunsDir == "" {
		opt.RunsDir = "runs"
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	order, err := r.Order()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Path, err)
	}
	if opt.Until != "" {
		if r.Stage(opt.Until) == nil {
			var names []string
			for _, s := range r.Stages {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("--until %s: no such stage in %s (stages: %s)", opt.Until, r.Path, strings.Join(names, ", "))
		}
		want := map[string]bool{}
		var mark func(n string)
		mark = func(n string) {
			if want[n] {
				return
			}
			want[n] = true
			for _, in := range r.Stage(n).Inputs() {
				mark(in)
			}
		}
		mark(opt.Until)
		order = slices.DeleteFunc(order, func(s *recipe.Stage) bool { return !want[s.Name] })
	}
	for _, f := range opt.Force {
		if r.Stage(f) == nil {
			return nil, fmt.Errorf("--force %s: no such stage in %s", f, r.Path)
		}
	}
	return &runner{
		r: r, opt: opt, log: opt.Log, order: order,
		keys: map[string]string{}, mats: map[string]*Material{}, outs: map[string]string{},
		metrics: map[string]recipe.StageMetrics{}, skipped: map[string]bool{},
		devices: map[string][2]string{},
	}, nil
}

func (x *runner) fetchOptions() fetch.Options {
	o := x.opt.Fetch
	o.Store = x.opt.Store
	o.Dir = x.r.Dir()
	o.Offline = x.opt.Offline
	o.Log = x.log
	return o
}

func (x *runner) pin(source, sha string) string {
	if sha != "" {
		return sha
	}
	return x.opt.Pins[source]
}

// device returns the device spec, kind and name for a stage.
func (x *runner) device(s *recipe.Stage) (spec, kind, name string, err error) {
	spec = x.r.Device
	if s.Train != nil && s.Train.Device != "" {
		spec = s.Train.Device
	}
	if spec == "" {
		spec = "auto"
	}
	if d, ok := x.devices[spec]; ok {
		return spec, d[0], d[1], nil
	}
	kind, name = spec, ""
	if x.opt.ResolveDevice != nil {
		kind, name, err = x.opt.ResolveDevice(spec)
		if err != nil {
			return spec, "", "", fmt.Errorf("device %s: %w", spec, err)
		}
	}
	x.devices[spec] = [2]string{kind, name}
	if x.lk != nil && (spec == x.r.Device || x.r.Device == "" && spec == "auto") {
		x.lk.Device.Kind, x.lk.Device.Name = kind, name
	}
	return spec, kind, name, nil
}

func quantizeOf(r *recipe.Recipe, s *recipe.Stage) string {
	if s.Train != nil && s.Train.Quantize != "" {
		return s.Train.Quantize
	}
	if r.Model.Quantize == "" {
		return "none"
	}
	return r.Model.Quantize
}

// localRefs lists the recipe-relative local paths a stage reads directly
// (format files, perplexity texts, initial adapters); their content is part
// of the stage key.
func localRefs(r *recipe.Recipe, s *recipe.Stage) []string {
	var out []string
	switch {
	case s.Format != nil:
		if s.Format.Format != "" && !slices.Contains(recipe.BuiltinFormats, s.Format.Format) {
			out = append(out, s.Format.Format)
		}
	case s.Train != nil:
		if p := s.Train.InitAdapter; p != "" && r.Stage(p) == nil {
			out = append(out, p)
		}
	case s.Evaluate != nil:
		if s.Evaluate.Perplexity != nil {
			if p := s.Evaluate.Perplexity.Text; p != "" && r.Stage(p) == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func hashLocal(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("local file %s: %w", path, err)
	}
	if fi.IsDir() {
		return store.HashTree(path)
	}
	sum, _, err := store.HashFile(path)
	return sum, err
}

// definition is the canonical form of a stage: needs, when and its kind's block.
func definition(s *recipe.Stage) map[string]any {
	d, _ := Canonical(s).(map[string]any)
	if d == nil {
		d = map[string]any{}
	}
	if s.Kind == recipe.KindFetch {
		// What was fetched is keyed by content; where from is recorded, not keyed.
		if f, ok := d["fetch"].(map[string]any); ok {
			delete(f, "source")
			delete(f, "sha256")
		}
	}
	return d
}

// material builds a stage's key material. modelSum is the model's content
// hash (used when the kind uses the model); content is the fetched content
// of a fetch stage. inputKeys maps input stage names to their keys.
func (x *runner) material(s *recipe.Stage, k Kind, inputKeys map[string]string, modelSum, content string) (*Material, error) {
	u := usesOf(s.Kind, k)
	m := &Material{Kind: s.Kind, Definition: definition(s), Content: content, Tool: version.Key()}
	if s.Kind == recipe.KindFetch {
		if f, ok := m.Definition["fetch"].(map[string]any); ok {
			f["filename"] = fetchName(s)
		}
	}
	if u.Model {
		m.Model = &ModelRef{SHA256: modelSum}
		if u.Device {
			// Quantization changes what stages computing with the weights
			// produce; format and chunk only read the tokenizer.
			m.Model.Quantize = quantizeOf(x.r, s)
		}
	}
	if u.Seed {
		seed := x.r.Seed
		m.Seed = &seed
	}
	if u.Device || u.GPU {
		_, kind, _, err := x.device(s)
		if err != nil {
			return nil, err
		}
		if u.Device {
			m.Device = kind
		}
		if u.GPU && strings.HasPrefix(kind, "vulkan") {
			m.Shaders = x.opt.Shaders
		}
	}
	if len(inputKeys) > 0 {
		m.Inputs = inputKeys
	}
	for _, p := range localRefs(x.r, s) {
		sum, err := hashLocal(x.r.Resolve(p))
		if err != nil {
			return nil, err
		}
		if m.Files == nil {
			m.Files = map[string]string{}
		}
		m.Files[p] = sum
	}
	return m, nil
}

func fetchName(s *recipe.Stage) string {
	if s.Fetch.Filename != "" {
		return s.Fetch.Filename
	}
	return fetch.Name(s.Fetch.Source)
}

// NewRunID returns a run id that sorts by start time: the UTC time to the
// microsecond plus 4 random hex digits, 20260101T120000.123456Z-1a2b.
func NewRunID() string {
	var b [2]byte
	rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b[:])
}

// previousLock returns the newest lock of an earlier run of this recipe.
func previousLock(runsDir, name, exclude string) *lock.Lock {
	base := filepath.Join(runsDir, name)
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), atomicfile.TempPrefix) && filepath.Join(base, e.Name()) != exclude {
			ids = append(ids, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	for _, id := range ids {
		if l, err := lock.Read(filepath.Join(base, id, lock.FileName)); err == nil {
			return l
		}
	}
	return nil
}

// reason explains why a stage with this material runs.
func (x *runner) reason(s *recipe.Stage, m *Material) string {
	if x.prev == nil {
		return "no previous run"
	}
	ps := x.prev.Stage(s.Name)
	if ps == nil || len(ps.Material) == 0 {
		return "new stage"
	}
	var old Material
	if json.Unmarshal(ps.Material, &old) != nil {
		return "previous key unreadable"
	}
	if d := Diff(&old, m); len(d) > 0 {
		return strings.Join(d, "; ")
	}
	switch ps.Status {
	case lock.StageSkipped:
		return "skipped by when: last time"
	case lock.StageFailed, lock.StageRunning, lock.StagePending:
		return "did not finish last time"
	}
	return "output no longer in the cache"
}

func (x *runner) setup() error {
	name := x.r.Name
	if x.opt.Resume != "" {
		x.runDir = x.opt.Resume
		unlock, err := lockRunDir(x.runDir)
		if err != nil {
			return err
		}
		x.unlock = unlock
		l, err := lock.Read(filepath.Join(x.runDir, lock.FileName))
		if err != nil {
			unlock()
			return err
		}
		x.lk = l
		x.prev = l
	} else {
		base := filepath.Join(x.opt.RunsDir, name)
		if err := os.MkdirAll(base, 0o755); err != nil {
			return fmt.Errorf("make run directory: %w (choose another with --runs)", err)
		}
		x.prev = previousLock(x.opt.RunsDir, name, "")
		id := x.opt.RunID
		for try := 0; ; try++ {
			if id == "" || try > 0 {
				id = NewRunID()
			}
			dir := filepath.Join(base, id)
			err := os.Mkdir(dir, 0o755)
			if err == nil {
				x.runDir = dir
				break
			}
			if !errors.Is(err, os.ErrExist) || try > 5 {
				return fmt.Errorf("make run directory %s: %w", dir, err)
			}
		}
		x.lk = x.newLock(filepath.Base(x.runDir))
		unlock, err := lockRunDir(x.runDir)
		if err != nil {
			return err
		}
		x.unlock = unlock
	}
	for _, d := range []string{StagesDir, CheckpointsDir, LogsDir} {
		if err := os.MkdirAll(filepath.Join(x.runDir, d), 0o755); err != nil {
			return err
		}
	}
	cleanRuns(filepath.Dir(x.runDir))
	f, err := os.OpenFile(filepath.Join(x.runDir, MetricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	x.mfile = f
	x.lk.Status = lock.StatusRunning
	x.lk.Error = ""
	return x.writeLock()
}

// cleanRuns removes what killed processes left in the runs of one recipe:
// ".tmp-*" entries in each run's stages/ and checkpoints/<stage>/ whose
// process is gone.
func cleanRuns(base string) {
	runs, _ := os.ReadDir(base)
	for _, r := range runs {
		if !r.IsDir() {
			continue
		}
		dir := filepath.Join(base, r.Name())
		atomicfile.CleanTemp(filepath.Join(dir, StagesDir))
		ck := filepath.Join(dir, CheckpointsDir)
		atomicfile.CleanTemp(ck)
		stages, _ := os.ReadDir(ck)
		for _, s := range stages {
			if s.IsDir() {
				atomicfile.CleanTemp(filepath.Join(ck, s.Name()))
			}
		}
	}
}

func (x *runner) newLock(id string) *lock.Lock {
	abs, _ := filepath.Abs(x.r.Path)
	now := time.Now().UTC()
	l := &lock.Lock{
		Version: lock.FormatVersion,
		Tool:    lock.Tool{Version: version.Key(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Shaders: x.opt.Shaders},
		Created: now,
		RunID:   id,
		Name:    x.r.Name,
		Recipe: lock.Recipe{
			Path: x.r.Path, Abs: abs, SHA256: store.HashBytes(x.r.Source), Source: string(x.r.Source),
			Git: lock.GitInfo(x.r.Path),
		},
		Resolved: Resolved(x.r),
		Seed:     x.r.Seed,
		Device:   lock.Device{Requested: x.r.Device},
		Offline:  x.opt.Offline,
		Until:    x.opt.Until,
	}
	for _, o := range x.r.Overrides {
		l.Overrides = append(l.Overrides, o.Path+"="+o.Value)
	}
	for _, s := range x.order {
		l.Stages = append(l.Stages, lock.Stage{Name: s.Name, Kind: s.Kind, Status: lock.StagePending})
	}
	return l
}

// Resolved is the recipe after defaults and overrides, as plain data with
// stages keyed by name.
func Resolved(r *recipe.Recipe) map[string]any {
	m, _ := Canonical(r).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	stages := map[string]any{}
	for _, s := range r.Stages {
		stages[s.Name] = Canonical(s)
	}
	m["stages"] = stages
	return m
}

func (x *runner) writeLock() error {
	x.lk.Updated = time.Now().UTC()
	return x.lk.Write(filepath.Join(x.runDir, lock.FileName))
}

func (x *runner) stageLock(name string) *lock.Stage {
	if s := x.lk.Stage(name); s != nil {
		return s
	}
	x.lk.Stages = append(x.lk.Stages, lock.Stage{Name: name})
	return &x.lk.Stages[len(x.lk.Stages)-1]
}

func (x *runner) addInput(in lock.Input) {
	for _, have := range x.lk.Inputs {
		if have.Stage == in.Stage && have.Role == in.Role && have.Source == in.Source {
			return
		}
	}
	x.lk.Inputs = append(x.lk.Inputs, in)
}

func (x *runner) ensureModel(ctx context.Context) (*fetch.Result, error) {
	if x.model != nil {
		return x.model, nil
	}
	src := x.r.Model.Source
	if src == "" {
		return nil, fmt.Errorf("%s: model.source is empty", x.r.Path)
	}
	res, err := fetch.Get(ctx, src, x.pin(src, x.r.Model.SHA256), x.fetchOptions())
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	x.model = res
	x.lk.Model = &lock.Input{Role: "model", Source: src, SHA256: res.SHA256, Size: res.Size, Tree: res.Tree}
	return res, nil
}

// Run runs the recipe's stages in dependency order, reusing stored outputs
// whose key is unchanged. The Result is non-nil once the run directory
// exists, also when err is not nil.
func Run(ctx context.Context, r *recipe.Recipe, opt Options) (*Result, error) {
	x, err := newRunner(r, opt)
	if err != nil {
		return nil, err
	}
	if err := x.setup(); err != nil {
		return nil, err
	}
	defer x.mfile.Close()
	defer x.unlock()
	res := &Result{RunDir: x.runDir, Lock: x.lk}
	fmt.Fprintf(x.log, "run %s\n", x.runDir)
	start := time.Now()
	err = x.run(ctx)
	switch {
	case err == nil:
		x.lk.Status = lock.StatusOK
	case ctx.Err() != nil:
		x.lk.Status = lock.StatusInterrupted
		err = fmt.Errorf("interrupted; `lora resume %s` continues: %w", x.runDir, err)
	default:
		x.lk.Status = lock.StatusFailed
		var ge *GateError
		var ce *ChecksumError
		if errors.As(err, &ge) {
			x.lk.Status = lock.StatusGate
		} else if errors.As(err, &ce) {
			x.lk.Status = lock.StatusChecksum
		}
	}
	if err != nil {
		x.lk.Error = err.Error()
	}
	if werr := x.writeLock(); werr != nil && err == nil {
		err = werr
	}
	if err == nil {
		count := map[string]int{}
		for _, s := range x.lk.Stages {
			count[s.Status]++
		}
		fmt.Fprintf(x.log, "done in %s: %d ran, %d cached, %d skipped: %s\n", round(time.Since(start)),
			count[lock.StageRan], count[lock.StageCached], count[lock.StageSkipped], x.runDir)
	}
	return res, err
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func (x *runner) run(ctx context.Context) error {
	n := len(x.order)
	for i, s := range x.order {
		if err := ctx.Err(); err != nil {
			return err
		}
		tag := fmt.Sprintf("[%d/%d] %s", i+1, n, s.Name)
		if err := x.stage(ctx, s, tag); err != nil {
			return err
		}
	}
	return nil
}

func (x *runner) whenEnv() recipe.WhenEnv {
	set := map[string]string{}
	for _, o := range x.r.Overrides {
		set[o.Path] = o.Value
	}
	return recipe.WhenEnv{
		Stages: x.metrics,
		Params: recipe.Params{Name: x.r.Name, Seed: int(x.r.Seed), Device: x.r.Device, Set: set},
	}
}

// stageMetrics fills the typed metrics `when` sees from a summary map.
func stageMetrics(summary map[string]any, cached bool, gate *lock.Gate) recipe.StageMetrics {
	var m recipe.StageMetrics
	v := reflect.ValueOf(&m).Elem()
	t := v.Type()
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("expr")
		raw, ok := summary[name]
		if !ok {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Float64:
			if x, ok := toFloat(raw); ok {
				f.SetFloat(x)
			}
		case reflect.Int:
			if x, ok := toFloat(raw); ok {
				f.SetInt(int64(x))
			}
		case reflect.Bool:
			if b, ok := raw.(bool); ok {
				f.SetBool(b)
			}
		}
	}
	m.Cached = cached
	m.Passed = gate == nil || gate.Passed
	return m
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func (x *runner) stage(ctx context.Context, s *recipe.Stage, tag string) (err error) {
	sl := x.stageLock(s.Name)
	sl.Kind = s.Kind
	defer func() {
		if err != nil && sl.Status != lock.StageSkipped {
			if sl.Gate == nil || sl.Gate.Passed {
				// A failed gate keeps its stage's ran or cached status: the
				// stage finished; the run stopped on its result.
				sl.Status = lock.StageFailed
			}
			sl.Error = err.Error()
			var se *StageError
			if !errors.As(err, &se) && ctx.Err() == nil {
				err = &StageError{Stage: s.Name, Err: err}
			}
		}
		if werr := x.writeLock(); werr != nil && err == nil {
			err = werr
		}
	}()

	if !s.When.IsZero() {
		g, err := recipe.CompileGate(recipe.GateWhen, s.When.Src)
		if err != nil {
			return fmt.Errorf("when: %w", err)
		}
		ok, err := g.Eval(x.whenEnv())
		if err != nil {
			return fmt.Errorf("when: %w", err)
		}
		if !ok {
			x.skipped[s.Name] = true
			x.metrics[s.Name] = recipe.StageMetrics{Skipped: true}
			sl.Status, sl.Reason, sl.Key, sl.Material = lock.StageSkipped, "when: "+s.When.Src+" is false", "", nil
			fmt.Fprintf(x.log, "%s: skipped (when: %s is false)\n", tag, s.When.Src)
			return nil
		}
	}
	k, ok := Lookup(s.Kind)
	if !ok {
		return fmt.Errorf("no stage kind %q is built into this lora (known: %s)", s.Kind, strings.Join(Kinds(), ", "))
	}
	inputKeys := map[string]string{}
	inputs := map[string]string{}
	for _, in := range s.Inputs() {
		if x.skipped[in] {
			inputKeys[in] = "skipped"
			continue
		}
		inputKeys[in] = x.keys[in]
		inputs[in] = x.outs[in]
	}

	var fetched *fetch.Result
	var content string
	if s.Kind == recipe.KindFetch {
		fetched, err = fetch.Get(ctx, s.Fetch.Source, x.pin(s.Fetch.Source, s.Fetch.SHA256), x.fetchOptions())
		if err != nil {
			return err
		}
		content = fetched.SHA256
		x.addInput(lock.Input{Stage: s.Name, Role: "fetch", Source: s.Fetch.Source, SHA256: fetched.SHA256, Size: fetched.Size, Tree: fetched.Tree})
	}
	u := usesOf(s.Kind, k)
	var modelSum, modelPath string
	if u.Model {
		mr, err := x.ensureModel(ctx)
		if err != nil {
			return err
		}
		modelSum, modelPath = mr.SHA256, mr.Path
	}
	m, err := x.material(s, k, inputKeys, modelSum, content)
	if err != nil {
		return err
	}
	for p, sum := range m.Files {
		x.addInput(lock.Input{Stage: s.Name, Role: "file", Source: p, SHA256: sum})
	}
	key := m.Key()
	mb, _ := json.Marshal(m)
	// Checkpoints of an interrupted attempt are only valid for the same key.
	resumable := x.opt.Resume != "" && sl.Key == key && (sl.Status == lock.StageRunning || sl.Status == lock.StageFailed)
	sl.Key, sl.Material = key, mb
	x.mats[s.Name] = m
	x.keys[s.Name] = key
	final := filepath.Join(x.runDir, StagesDir, s.Name)

	// Resume: an output already published in this run with the same key is kept.
	if o, err := ReadOutput(final); err == nil && o.Key == key {
		return x.reuse(s, sl, tag, final, o, "kept from the interrupted run")
	}
	os.RemoveAll(final) // a stale output of another key (resume after an edit): replaced below
	force := slices.Contains(x.opt.Force, s.Name)
	fresh := slices.Contains(x.opt.Fresh, s.Kind)
	if !force && !fresh {
		if p, ok := x.opt.Store.Stage(key); ok {
			o, err := ReadOutput(p)
			if err == nil {
				if err := x.publishRun(p, final, true); err != nil {
					return err
				}
				x.replayMetrics(s.Name, p)
				return x.reuse(s, sl, tag, final, o, "")
			}
			fmt.Fprintf(x.log, "%s: stored output %s unreadable (%v); running again\n", tag, p, err)
			x.opt.Store.RemoveStage(key)
		}
	}
	switch {
	case force:
		sl.Reason = "--force"
	case fresh:
		if _, ok := x.opt.Store.Stage(key); ok {
			sl.Reason = "rerun: " + s.Kind + " stages run again to reproduce their output"
		} else {
			sl.Reason = x.reason(s, m)
		}
	default:
		sl.Reason = x.reason(s, m)
	}
	sl.Status = lock.StageRunning
	if err := x.writeLock(); err != nil {
		return err
	}
	fmt.Fprintf(x.log, "%s: started (%s; %s)\n", tag, s.Kind, sl.Reason)

	tmp, err := x.opt.Store.StageTemp(key)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // gone after publication; removes a failed stage's partial output
	rc, closeLog, err := x.runContext(s, tmp, inputs, modelPath, modelSum, resumable)
	if err != nil {
		return err
	}
	rc.fetched = fetched
	t0 := time.Now()
	runErr := k.Run(ctx, rc)
	closeLog()
	secs := time.Since(t0).Seconds()
	var gate *GateError
	if runErr != nil && !errors.As(runErr, &gate) {
		if ctx.Err() != nil {
			fmt.Fprintf(x.log, "%s: interrupted after %s\n", tag, round(time.Since(t0)))
			sl.Status = lock.StageFailed
			sl.Error = "interrupted"
			return runErr
		}
		fmt.Fprintf(x.log, "%s: failed after %s\n", tag, round(time.Since(t0)))
		return runErr
	}
	o := &Output{Stage: s.Name, Kind: s.Kind, Key: key, Material: m, Main: rc.main, Metrics: rc.summary, Seconds: secs}
	if fetched != nil {
		o.Source = &lock.Input{Stage: s.Name, Role: "fetch", Source: s.Fetch.Source, SHA256: fetched.SHA256, Size: fetched.Size, Tree: fetched.Tree}
	}
	if gate != nil {
		if gate.Stage == "" {
			gate.Stage = s.Name
		}
		o.Gate = &lock.Gate{Expr: gate.Expr, Passed: false}
	} else if s.Evaluate != nil && !s.Evaluate.Gate.IsZero() {
		o.Gate = &lock.Gate{Expr: s.Evaluate.Gate.Src, Passed: true}
	}
	if err := writeOutput(tmp, o); err != nil {
		return err
	}
	// Outputs are shared by hard links between the store and runs: make
	// them read-only so that editing a run's file cannot alter the cache.
	if err := readOnly(tmp); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err() // nothing is published once interrupted
	}
	var published string
	if existing, ok := x.opt.Store.Stage(key); ok && (force || fresh) {
		// The key was stored before: compare instead of replacing, and give
		// this run the fresh output.
		same, diff := sameFiles(existing, tmp)
		if same {
			fmt.Fprintf(x.log, "%s: output identical to the stored one (reproduced)\n", tag)
		} else {
			fmt.Fprintf(x.log, "%s: warning: output differs from the stored one with the same key (%s)\n", tag, diff)
		}
		sl.Reproduced = &same
		published = tmp
	} else {
		published, err = x.opt.Store.PublishStage(tmp, key)
		if err != nil {
			return err
		}
	}
	if err := x.publishRun(published, final, published != tmp); err != nil {
		return err
	}
	sl.Status, sl.Seconds, sl.Metrics, sl.Gate, sl.Error = lock.StageRan, secs, o.Metrics, o.Gate, ""
	x.outs[s.Name] = final
	x.metrics[s.Name] = stageMetrics(o.Metrics, false, o.Gate)
	fmt.Fprintf(x.log, "%s: done in %s\n", tag, round(time.Since(t0)))
	if gate != nil {
		return &StageError{Stage: s.Name, Err: gate}
	}
	return nil
}

// reuse records a stage whose output is taken from the store or kept.
func (x *runner) reuse(s *recipe.Stage, sl *lock.Stage, tag, final string, o *Output, how string) error {
	sl.Status, sl.Metrics, sl.Gate, sl.Error, sl.Seconds = lock.StageCached, o.Metrics, o.Gate, "", 0
	sl.Reason = how
	x.outs[s.Name] = final
	x.metrics[s.Name] = stageMetrics(o.Metrics, true, o.Gate)
	if how == "" {
		how = "cached"
	}
	fmt.Fprintf(x.log, "%s: %s (key %s)\n", tag, how, o.Key[:12])
	if o.Gate != nil && !o.Gate.Passed {
		return &StageError{Stage: s.Name, Err: &GateError{Stage: s.Name, Expr: o.Gate.Expr, Values: o.Metrics}}
	}
	return nil
}

// publishRun puts a copy (hard links when link) of a stage output into the
// run directory, atomically.
func (x *runner) publishRun(src, final string, link bool) error {
	tmp, err := atomicfile.TempDir(filepath.Dir(final), filepath.Base(final))
	if err != nil {
		return err
	}
	if err := store.CopyTree(src, tmp, link); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := atomicfile.PublishDir(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// sameFiles compares two stage outputs by their file listings, ignoring
// stage.json (it records times) and the stage's metrics.jsonl (it records
// throughput). It returns the differing paths.
func sameFiles(a, b string) (bool, string) {
	oa, err1 := ReadOutput(a)
	ob, err2 := ReadOutput(b)
	if err1 != nil || err2 != nil {
		return false, "unreadable stage.json"
	}
	ma := map[string]string{}
	for _, f := range oa.Files {
		ma[f.Path] = f.SHA256
	}
	var diff []string
	for _, f := range ob.Files {
		if f.Path != StageMetricsFile && ma[f.Path] != f.SHA256 {
			diff = append(diff, f.Path)
		}
		delete(ma, f.Path)
	}
	for p := range ma {
		if p != StageMetricsFile {
			diff = append(diff, p)
		}
	}
	sort.Strings(diff)
	return len(diff) == 0, strings.Join(diff, ", ")
}

func (x *runner) runContext(s *recipe.Stage, out string, inputs map[string]string, modelPath, modelSum string, resumable bool) (*RunContext, func(), error) {
	spec, _, _, err := x.device(s)
	if err != nil {
		return nil, nil, err
	}
	ckpt := filepath.Join(x.runDir, CheckpointsDir, s.Name)
	resume := ""
	if resumable {
		resume = latestCheckpoint(ckpt)
	}
	logf, err := os.OpenFile(filepath.Join(x.runDir, LogsDir, s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	var stageMetrics *os.File
	rc := &RunContext{
		Recipe: x.r, Stage: s, Inputs: inputs, Out: out, RunDir: x.runDir,
		Checkpoints: ckpt, Resume: resume,
		Model: modelPath, ModelSHA256: modelSum, Quantize: quantizeOf(x.r, s),
		Seed: x.r.Seed, Device: spec, Store: x.opt.Store, Offline: x.opt.Offline, Profile: x.opt.Profile,
		Log: io.MultiWriter(x.log, logf),
	}
	rc.metrics = func(m map[string]any) { rc.writeMetrics(m, true) }
	rc.stageMetrics = func(m map[string]any) { rc.writeMetrics(m, false) }
	rc.writeMetrics = func(m map[string]any, run bool) {
		rec := make(map[string]any, len(m)+1)
		for k, v := range m {
			rec[k] = v
		}
		rec["stage"] = s.Name
		b, err := json.Marshal(rec)
		if err != nil {
			fmt.Fprintf(rc.Log, "warning: metrics not recorded: %v\n", err)
			return
		}
		b = append(b, '\n')
		x.mu.Lock()
		defer x.mu.Unlock()
		if run {
			x.mfile.Write(b)
		}
		if stageMetrics == nil {
			stageMetrics, _ = os.OpenFile(filepath.Join(out, StageMetricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		}
		if stageMetrics != nil {
			stageMetrics.Write(b)
		}
	}
	return rc, func() {
		logf.Close()
		x.mu.Lock()
		if stageMetrics != nil {
			stageMetrics.Close()
		}
		x.mu.Unlock()
	}, nil
}

// replayMetrics appends a reused output's own metrics to the run's metrics.jsonl.
func (x *runner) replayMetrics(name, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, StageMetricsFile))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		rec["stage"] = name
		rec["cached"] = true
		if out, err := json.Marshal(rec); err == nil {
			x.mfile.Write(append(out, '\n'))
		}
	}
}

// latestCheckpoint returns the newest published checkpoint directory in dir:
// the one whose name ends in the largest number (checkpoint-100 after
// checkpoint-20), names without a number ordered by name before them.
func latestCheckpoint(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	best, bestN := "", int64(-1)
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, atomicfile.TempPrefix) {
			continue
		}
		n := trailingNumber(name)
		if n > bestN || n == bestN && name > best {
			best, bestN = name, n
		}
	}
	if best == "" {
		return ""
	}
	return filepath.Join(dir, best)
}

// trailingNumber returns the decimal number a name ends with, or -1.
func trailingNumber(name string) int64 {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == len(name) || len(name)-i > 18 {
		return -1
	}
	n, _ := strconv.ParseInt(name[i:], 10, 64)
	return n
}

// readOnly removes write permission from every regular file under dir.
func readOnly(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, fi.Mode().Perm()&^0o222)
	})
}
