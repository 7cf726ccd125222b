package cli

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/spf13/cobra"
)

func init() { register("plan", newPlanCmd) }

func newPlanCmd() *cobra.Command {
	var f runFlags
	var format string
	cmd := &cobra.Command{
		Use:   "plan RECIPE",
		Short: "Show the stage graph, what is cached and what would run, and why",
		Long: `plan checks the recipe, computes every stage's key without running anything
or touching the network, and prints the stages in run order with what each
needs, whether its output is cached, and otherwise why it would run: no
previous run, a definition change (naming the field), a changed input, file,
model, seed, device or tool version. Kinds add details (parameter count,
memory, tokens per epoch for train). It compares with the newest run of the
recipe under --runs.`,
		Example: `  lora plan recipes/alpaca-chat.yaml
  lora plan recipes/alpaca-chat.yaml --set stages.train.train.lora.rank=16
  lora plan recipes/alpaca-chat.yaml --format json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return Usagef("--format %q: want text or json", format)
			}
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
			p, err := pipeline.Plan(cmd.Context(), r, f.options(cmd, st))
			if err != nil {
				return err
			}
			if format == "json" {
				return p.WriteJSON(ioFrom(cmd).out)
			}
			if err := p.WriteText(ioFrom(cmd).out); err != nil {
				return fmt.Errorf("write plan: %w", err)
			}
			return nil
		},
	}
	f.addRecipeFlags(cmd)
	cmd.Flags().StringVar(&f.runs, "runs", "runs", "directory of earlier runs to compare with")
	cmd.Flags().StringVar(&f.until, "until", "", "plan only this stage and the stages it needs")
	cmd.Flags().StringArrayVar(&f.force, "force", nil, "show this stage as running even if cached (repeatable)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
