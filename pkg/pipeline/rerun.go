package pipeline

import (
	"context"
	"fmt"

	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/fetch"
	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
	"github.com/lora-dev/lora/pkg/version"
)

// RecipeFromLock rebuilds the recipe a lock recorded: its source, read as
// if it were still at its original path (so relative paths resolve the
// same), with the recorded overrides. The diagnostics are the recipe's.
func RecipeFromLock(l *lock.Lock) (*recipe.Recipe, diag.List, error) {
	if got := store.HashBytes([]byte(l.Recipe.Source)); got != l.Recipe.SHA256 {
		return nil, nil, &ChecksumError{Source: "the recipe recorded in the lock file", Expected: l.Recipe.SHA256, Actual: got}
	}
	path := l.Recipe.Abs
	if path == "" {
		path = l.Recipe.Path
	}
	r, ds := recipe.Parse(path, []byte(l.Recipe.Source), l.Overrides)
	return r, ds, nil
}

// VerifyInputs checks every input a lock recorded (the model, fetched
// sources and local files) against its sha256 before any work, fetching
// remote ones into the store when they are not there (never when offline).
// A mismatch is a *ChecksumError.
func VerifyInputs(ctx context.Context, l *lock.Lock, r *recipe.Recipe, opt Options) error {
	fo := opt.Fetch
	fo.Store, fo.Dir, fo.Offline, fo.Log = opt.Store, r.Dir(), opt.Offline, opt.Log
	ins := append([]lock.Input(nil), l.Inputs...)
	if l.Model != nil {
		ins = append([]lock.Input{*l.Model}, ins...)
	}
	for _, in := range ins {
		switch in.Role {
		case "file":
			sum, err := hashLocal(r.Resolve(in.Source))
			if err != nil {
				return fmt.Errorf("stage %s: %w", in.Stage, err)
			}
			if sum != in.SHA256 {
				return &ChecksumError{Source: in.Source, Expected: in.SHA256, Actual: sum}
			}
		default:
			res, err := fetch.Get(ctx, in.Source, in.SHA256, fo)
			if err != nil {
				return err
			}
			if !res.Local && !res.Tree {
				// Served from the store by name: rehash it, it could have been altered.
				if err := opt.Store.VerifyBlob(in.SHA256); err != nil {
					return &ChecksumError{Source: in.Source, Expected: in.SHA256, Actual: "altered blob in the cache: " + err.Error()}
				}
			}
		}
	}
	return nil
}

// Rerun repeats the run a lock recorded, into a new run directory: the same
// recipe source and overrides, every input verified by sha256 first, and
// the stage kinds in opt.Fresh run again rather than reused (the CLI puts
// train there unless --reuse), so the adapter is really reproduced.
func Rerun(ctx context.Context, l *lock.Lock, opt Options) (*Result, error) {
	r, ds, err := RecipeFromLock(l)
	if err != nil {
		return nil, err
	}
	if ds.HasErrors() {
		return nil, fmt.Errorf("the recipe recorded in the lock no longer loads: %w", ds.Err())
	}
	if l.Tool.Version != version.Key() {
		fmt.Fprintf(opt.logOrDiscard(), "warning: the run was made by lora %s, this is %s; stage keys differ, so every stage runs\n", l.Tool.Version, version.Key())
	}
	if l.Device.Kind != "" && opt.ResolveDevice != nil {
		if kind, _, err := opt.ResolveDevice(r.Device); err == nil && kind != l.Device.Kind {
			fmt.Fprintf(opt.logOrDiscard(), "warning: the run used a %s device and device %q is %s here; outputs of train and evaluate will differ\n", l.Device.Kind, r.Device, kind)
		}
	}
	if err := VerifyInputs(ctx, l, r, opt); err != nil {
		return nil, err
	}
	opt.Pins = map[string]string{}
	for _, in := range l.Inputs {
		if in.Role == "fetch" {
			opt.Pins[in.Source] = in.SHA256
		}
	}
	if l.Model != nil {
		opt.Pins[l.Model.Source] = l.Model.SHA256
	}
	opt.Until = l.Until
	return Run(ctx, r, opt)
}
