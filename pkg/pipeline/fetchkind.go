package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/store"
)

func init() { Register(recipe.KindFetch, fetchKind{}) }

// fetchKind is the built-in "fetch" stage: the runner fetches the source
// into the store (to know its content before computing the key); Run puts it
// into the output under the stage's file name.
type fetchKind struct{}

func (fetchKind) Uses() Uses { return Uses{} }

func (fetchKind) Run(ctx context.Context, rc *RunContext) error {
	res := rc.fetched
	if res == nil {
		return errors.New("fetch: nothing was fetched (internal error)")
	}
	name := fetchName(rc.Stage)
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." || name == OutputFile || name == StageMetricsFile {
		return fmt.Errorf("fetch: file name %q is not usable; set fetch.filename to a plain file name", name)
	}
	dst := filepath.Join(rc.Out, name)
	if res.Tree {
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		if err := store.CopyTree(res.Path, dst, true); err != nil {
			return err
		}
	} else if err := store.CopyFile(res.Path, dst, true); err != nil {
		return err
	}
	rc.SetMain(name)
	rc.Summarize(map[string]any{"bytes": res.Size})
	how := "fetched"
	if res.Local {
		how = "read"
	} else if res.Cached {
		how = "from cache"
	}
	fmt.Fprintf(rc.Log, "%s %s: %d bytes, sha256 %s\n", how, rc.Stage.Fetch.Source, res.Size, res.SHA256)
	return ctx.Err()
}
