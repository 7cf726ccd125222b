package cli

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/spf13/cobra"
)

func init() { register("rerun", newRerunCmd) }

func newRerunCmd() *cobra.Command {
	var f runFlags
	var reuse bool
	cmd := &cobra.Command{
		Use:   "rerun RUN_DIR|LOCK_FILE",
		Short: "Repeat a recorded run exactly, verifying every input's sha256 first",
		Long: `rerun reads a run's lora.lock and runs it again into a new run directory:
the recipe source recorded in the lock (not the file as it is now), the same
--set overrides, seed and device. Before any work it checks the sha256 of
every input the lock lists: the model, fetched sources and local files; a
mismatch exits 4. Train stages run again instead of being reused from the
cache (unless --reuse), and the new adapter is compared with the stored one.`,
		Example: `  lora rerun runs/alpaca-chat/20260101T120000.123456Z-1a2b
  lora rerun runs/alpaca-chat/20260101T120000.123456Z-1a2b/lora.lock --offline`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lock.Read(args[0])
			if err != nil {
				return Exit(ExitInvalid, err)
			}
			st, err := openStore()
			if err != nil {
				return err
			}
			opt := f.options(cmd, st)
			if !reuse {
				opt.Fresh = []string{recipe.KindTrain}
			}
			if _, ds, err := pipeline.RecipeFromLock(l); err == nil {
				if err := printDiags(cmd, ds, l.Overrides); err != nil {
					return err
				}
			}
			res, err := pipeline.Rerun(cmd.Context(), l, opt)
			if res != nil {
				fmt.Fprintln(ioFrom(cmd).out, res.RunDir)
			}
			return err
		},
	}
	f.addRunFlags(cmd)
	cmd.Flags().BoolVar(&reuse, "reuse", false, "reuse cached train outputs instead of training again")
	return cmd
}
