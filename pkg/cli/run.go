package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/lora-dev/lora/pkg/backend/vulkan"
	"github.com/lora-dev/lora/pkg/device"
	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/fetch"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
	"github.com/lora-dev/lora/shaders"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { register("run", newRunCmd) }

// runFlags are the flags run, plan, rerun and resume share.
type runFlags struct {
	sets    []string
	until   string
	runs    string
	offline bool
	device  string
	force   []string
	profile bool
}

func (f *runFlags) addRecipeFlags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&f.sets, "set", nil, "override a recipe value by dotted path, e.g. --set stages.train.train.lora.rank=16 (repeatable; recorded in lora.lock)")
	cmd.Flags().StringVar(&f.device, "device", "", "device to train and evaluate on: auto, cpu, vulkan or vulkan:N (same as --set device=D)")
}

func (f *runFlags) addRunFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.runs, "runs", "runs", "directory that holds run directories (RUNS/<recipe>/<run-id>/)")
	cmd.Flags().BoolVar(&f.offline, "offline", false, "never touch the network; remote sources must be in the cache (also LORA_OFFLINE=1)")
	cmd.Flags().BoolVar(&f.profile, "profile", false, "time every kernel of the training step (Vulkan timestamp queries) and print a per-kernel table; also written to the train stage's profile.json")
}

func (f *runFlags) overrides() []string {
	sets := append([]string(nil), f.sets...)
	if f.device != "" {
		sets = append(sets, "device="+f.device)
	}
	return sets
}

func (f *runFlags) isOffline() bool { return f.offline || fetch.OfflineFromEnv() }

// openStore opens the content-addressed cache ($LORA_CACHE or the user cache dir).
func openStore() (*store.Store, error) {
	root, err := store.DefaultRoot()
	if err != nil {
		return nil, err
	}
	return store.Open(root)
}

// loadRecipe loads a recipe and prints its diagnostics; errors exit 2.
func loadRecipe(cmd *cobra.Command, path string, sets []string) (*recipe.Recipe, error) {
	r, ds := recipe.Load(path, sets)
	if err := printDiags(cmd, ds, sets); err != nil {
		return nil, err
	}
	return r, nil
}

// printDiags writes diagnostics to stderr and returns an exit-2 error when
// any is an error.
func printDiags(cmd *cobra.Command, ds diag.List, sets []string) error {
	if len(ds) == 0 {
		return nil
	}
	ds.Sort()
	errw := ioFrom(cmd).err
	color := false
	if f, ok := errw.(*os.File); ok {
		color = term.IsTerminal(int(f.Fd()))
	}
	srcs := map[string][]byte{recipe.SetFile: recipe.SetSource(sets)}
	diag.Text{Color: color, Sources: srcs}.Write(errw, ds)
	if ds.HasErrors() {
		return Exit(ExitInvalid, ErrSilent)
	}
	return nil
}

// resolveDevice turns a device spec into the device kind that goes into
// stage keys (cpu or vulkan) and a name for the lock. auto follows
// device.Open: the best hardware Vulkan device, else the cpu backend.
func resolveDevice(spec string) (kind, name string, err error) {
	s, err := device.Parse(spec)
	if err != nil {
		return "", "", err
	}
	switch s.Kind {
	case device.CPU:
		return device.CPU, "cpu (plain Go)", nil
	case device.Vulkan:
		devs, err := vulkan.Devices()
		if err != nil || len(devs) == 0 {
			return device.Vulkan, "", nil // the stage reports the real error when it opens the device
		}
		for _, d := range devs {
			if s.Index < 0 || d.Index == s.Index {
				return device.Vulkan, d.Name, nil
			}
		}
		return device.Vulkan, "", nil
	}
	devs, err := vulkan.Devices()
	if err == nil {
		for _, d := range devs {
			if d.Type != "cpu" {
				return device.Vulkan, d.Name, nil
			}
		}
	}
	return device.CPU, "cpu (plain Go)", nil
}

// shaderHash identifies the embedded shader set: sha256 over each variant's
// name and SPIR-V, in name order. It is part of the key of GPU stages.
func shaderHash() string {
	names := shaders.Names()
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := shaders.Get(n)
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkStages reports --until and --force values that name no stage (exit 2).
func (f *runFlags) checkStages(r *recipe.Recipe) error {
	var names []string
	for _, s := range r.Stages {
		names = append(names, s.Name)
	}
	for _, n := range append([]string{f.until}, f.force...) {
		if n != "" && r.Stage(n) == nil {
			return Usagef("no stage %q in %s (stages: %s)", n, r.Path, strings.Join(names, ", "))
		}
	}
	return nil
}

func (f *runFlags) options(cmd *cobra.Command, st *store.Store) pipeline.Options {
	return pipeline.Options{
		Store:         st,
		RunsDir:       f.runs,
		Until:         f.until,
		Offline:       f.isOffline(),
		Force:         f.force,
		Log:           ioFrom(cmd).err,
		ResolveDevice: resolveDevice,
		Shaders:       shaderHash(),
		Profile:       f.profile,
	}
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run RECIPE",
		Short: "Run a recipe's stages, reusing every stage whose inputs did not change",
		Long: `run checks the recipe (as lint does; an invalid recipe exits 2), then runs its
stages in dependency order. Each stage has a key: the sha256 of its resolved
definition, its inputs' contents, the model, seed and device where they matter,
and lora's version. A stage whose key is in the cache is reused, not run.

Outputs go to RUNS/<recipe name>/<run id>/: stages/<stage>/ (each with
stage.json), lora.lock (everything needed to rerun exactly), metrics.jsonl and
logs/. Ctrl-C stops cleanly; nothing half-written is ever published, and
lora resume continues the run. See docs/runs.md.

Exit codes: 0 ok, 1 a stage failed (or offline and a source is missing),
2 invalid recipe or usage, 3 a gate was not met, 4 checksum mismatch,
130 interrupted.`,
		Example: `  lora run recipes/alpaca-chat.yaml
  lora run recipes/alpaca-chat.yaml --set stages.train.train.lora.rank=16 --until train
  LORA_OFFLINE=1 lora run recipes/alpaca-chat.yaml   # after lora cache import`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := loadRecipe(cmd, args[0], f.overrides())
			if err != nil {
				return err
			}
			if err := f.checkStages(r); err != nil {
				return err
			}
			st, err := openStore()
			if err != nil {
				return err
			}
			res, err := pipeline.Run(cmd.Context(), r, f.options(cmd, st))
			if res != nil {
				fmt.Fprintln(ioFrom(cmd).out, res.RunDir)
			}
			return err
		},
	}
	f.addRecipeFlags(cmd)
	f.addRunFlags(cmd)
	cmd.Flags().StringVar(&f.until, "until", "", "run only this stage and the stages it needs")
	cmd.Flags().StringArrayVar(&f.force, "force", nil, "run this stage even if its output is cached (repeatable)")
	return cmd
}
