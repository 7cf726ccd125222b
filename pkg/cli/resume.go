package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/spf13/cobra"
)

func init() { register("resume", newResumeCmd) }

func newResumeCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "resume RUN_DIR",
		Short: "Continue a stopped run in its own run directory",
		Long: `resume continues a run that was interrupted (Ctrl-C, kill, a crash) or that
failed, in the same run directory, with the recipe and overrides its lora.lock
recorded. Stages already published in the run are kept; the stage that was
running starts again from its latest checkpoint (checkpoints/<stage>/), and
the remaining stages run as usual.`,
		Example: "  lora resume runs/alpaca-chat/20260101T120000.123456Z-1a2b",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lock.Read(args[0])
			if err != nil {
				return Exit(ExitInvalid, err)
			}
			r, ds, err := pipeline.RecipeFromLock(l)
			if err != nil {
				return err
			}
			if err := printDiags(cmd, ds, l.Overrides); err != nil {
				return err
			}
			if l.Status == lock.StatusOK {
				fmt.Fprintf(ioFrom(cmd).err, "run %s already finished; nothing to resume\n", args[0])
				return nil
			}
			st, err := openStore()
			if err != nil {
				return err
			}
			f.until = l.Until
			opt := f.options(cmd, st)
			opt.Resume = runDirOf(args[0])
			res, err := pipeline.Run(cmd.Context(), r, opt)
			if res != nil {
				fmt.Fprintln(ioFrom(cmd).out, res.RunDir)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&f.offline, "offline", false, "never touch the network; remote sources must be in the cache (also LORA_OFFLINE=1)")
	return cmd
}

// runDirOf returns the run directory of a run directory or lock file path.
func runDirOf(p string) string {
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		return filepath.Dir(p)
	}
	return p
}
