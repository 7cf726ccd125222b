// Package pipeline runs recipes: stage kinds, stage keys, run directories, reuse of stored outputs, plans.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"

	"github.com/lora-dev/lora/pkg/fetch"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
)

// Kind runs one kind of stage. Packages register their kinds with Register
// from init; the pipeline never imports them.
type Kind interface {
	// Run produces the stage's output in rc.Out, an empty directory that
	// the runner publishes atomically when Run returns nil (or a
	// *GateError) and deletes otherwise. Run must stop promptly when ctx
	// is cancelled and must not write outside rc.Out, rc.Checkpoints and
	// the run's metrics (rc.Metrics).
	Run(ctx context.Context, rc *RunContext) error
}

// Planner is implemented by kinds that can describe their work for
// `lora plan` without running it (parameter count, memory, tokens).
type Planner interface {
	Plan(ctx context.Context, pc *PlanContext) ([]string, error)
}

// Uses says which recipe-wide settings change a kind's output; they go into
// its stage key. Kinds that do not implement User get DefaultUses(kind).
type Uses struct {
	Model  bool // the base model's content (its tokenizer included)
	Seed   bool // the recipe seed
	Device bool // the device kind (cpu, vulkan) and, with Model, the model's quantization
	GPU    bool // the shader set, when the device is a GPU
}

// User is implemented by kinds that declare their Uses.
type User interface {
	Uses() Uses
}

// DefaultUses is what a kind uses when it does not say: fetch uses nothing,
// format and chunk use the model (its tokenizer), everything else uses all.
func DefaultUses(kind string) Uses {
	switch kind {
	case recipe.KindFetch:
		return Uses{}
	case recipe.KindFormat, recipe.KindChunk:
		return Uses{Model: true}
	}
	return Uses{Model: true, Seed: true, Device: true, GPU: true}
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// Register makes a stage kind available under name. It panics when the
// name is taken, as registering twice is a programming error.
func Register(name string, k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[name]; dup {
		panic("pipeline: stage kind registered twice: " + name)
	}
	kinds[name] = k
}

// Lookup returns the kind registered under name.
func Lookup(name string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// Kinds lists the registered kind names, sorted.
func Kinds() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	var out []string
	for n := range kinds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func usesOf(kind string, k Kind) Uses {
	if u, ok := k.(User); ok {
		return u.Uses()
	}
	return DefaultUses(kind)
}

// RunContext is what a stage kind gets to do its work.
type RunContext struct {
	Recipe *recipe.Recipe
	Stage  *recipe.Stage
	// Inputs maps each input stage's name to its published output directory
	// (read it with ReadOutput). Stages skipped by when: are absent.
	Inputs map[string]string
	// Out is the empty directory to write the output into. The runner adds
	// stage.json last and publishes the directory atomically.
	Out string
	// RunDir is the run directory (runs/<recipe>/<run-id>).
	RunDir string
	// Checkpoints is a directory under the run directory that survives a
	// killed run, for resumable state (train's checkpoints). Publish each
	// checkpoint atomically (atomicfile.TempDir + PublishDir).
	Checkpoints string
	// Resume is the latest checkpoint in Checkpoints when `lora resume`
	// continues this stage, else "".
	Resume string
	// Model is the base model file in the store (read-only), for kinds that
	// use it; ModelSHA256 is its content hash.
	Model       string
	ModelSHA256 string
	// Quantize is the effective quantization of the base model.
	Quantize string
	Seed     uint64
	// Device is the device spec for this stage (the stage's own device,
	// else the recipe's, after --device): auto, cpu, vulkan, vulkan:N.
	Device  string
	Store   *store.Store
	Offline bool
	// Profile asks the stage to time its kernels and report them (--profile).
	Profile bool
	// Log receives human-readable progress lines (also kept in the run's logs/).
	Log io.Writer

	metrics      func(map[string]any)
	stageMetrics func(map[string]any)
	writeMetrics func(m map[string]any, run bool)
	summary      map[string]any
	main         string
	fetched      *fetch.Result
}

// Metrics appends one record to the run's metrics.jsonl (and the stage's
// own metrics.jsonl, replayed when the stage is reused). The runner adds
// "stage". Values must be JSON-encodable.
func (rc *RunContext) Metrics(m map[string]any) {
	if rc.metrics != nil {
		rc.metrics(m)
	}
}

// RestoreMetrics writes records to the stage's own metrics.jsonl only: a
// resumed stage restores the records of the steps before its checkpoint,
// which the run's metrics.jsonl already holds.
func (rc *RunContext) RestoreMetrics(m map[string]any) {
	if rc.stageMetrics != nil {
		rc.stageMetrics(m)
	}
}

// Summarize sets summary metrics of the stage: they go into stage.json and
// are visible to later stages' when: expressions as stages.<name>.<key>.
func (rc *RunContext) Summarize(m map[string]any) {
	if rc.summary == nil {
		rc.summary = map[string]any{}
	}
	for k, v := range m {
		rc.summary[k] = v
	}
}

// SetMain names the output's main file or directory, relative to Out (for
// example "examples.jsonl" or "adapter"). Consumers find it with
// Output.MainPath.
func (rc *RunContext) SetMain(rel string) { rc.main = filepath.ToSlash(filepath.Clean(rel)) }

// Path resolves a recipe-relative path.
func (rc *RunContext) Path(p string) string { return rc.Recipe.Resolve(p) }

// InputOutput reads the stage.json of the named input.
func (rc *RunContext) InputOutput(name string) (*Output, error) {
	dir, ok := rc.Inputs[name]
	if !ok {
		return nil, fmt.Errorf("stage %s: input stage %q has no output (was it skipped by when:?)", rc.Stage.Name, name)
	}
	return ReadOutput(dir)
}

// InputMain returns the main file or directory of the named input's output.
func (rc *RunContext) InputMain(name string) (string, error) {
	o, err := rc.InputOutput(name)
	if err != nil {
		return "", err
	}
	return o.MainPath(rc.Inputs[name]), nil
}

// PlanContext is what a Planner gets: like RunContext, without outputs.
type PlanContext struct {
	Recipe *recipe.Recipe
	Stage  *recipe.Stage
	// Inputs holds the output directories of inputs that are already in the
	// store (cached); others are absent.
	Inputs   map[string]string
	Model    string // the model file when it is available locally, else ""
	Quantize string
	Device   string
	Seed     uint64
}

// jsonValue round-trips v through JSON into plain maps, slices and numbers.
func jsonValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}
