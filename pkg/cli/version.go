package cli

import (
	"fmt"
	"runtime"

	"github.com/lora-dev/lora/pkg/version"
	"github.com/spf13/cobra"
)

func init() { register("version", newVersionCmd) }

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print lora's version",
		Example: "  lora version",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(ioFrom(cmd).out, "lora %s %s/%s %s\n", version.String(), runtime.GOOS, runtime.GOARCH, runtime.Version())
			return nil
		},
	}
}
