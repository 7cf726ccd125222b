package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/lora-dev/lora/pkg/backend/vulkan"
	"github.com/spf13/cobra"
)

func init() { register("devices", newDevicesCmd) }

func newDevicesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the Vulkan devices lora can train on",
		Long: `devices lists every Vulkan device with a compute queue: its index (for
--device vulkan:N), name, type, driver, Vulkan API version, memory, subgroup
size, shared memory per workgroup, largest storage-buffer binding, and whether
it supports fp16 and int8 arithmetic. Without a flag, --device vulkan picks the
first discrete GPU, then integrated, virtual, and CPU devices.`,
		Example: "  lora devices\n  lora devices --json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := ioFrom(cmd).out
			devs, err := vulkan.Devices()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(devs)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "INDEX\tNAME\tTYPE\tDRIVER\tAPI\tMEMORY\tSUBGROUP\tSHARED\tMAX BINDING\tFP16\tINT8")
			for _, d := range devs {
				fmt.Fprintf(tw, "vulkan:%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d KiB\t%s\t%s\t%s\n",
					d.Index, d.Name, d.Type, d.Driver, d.APIVersion, gib(d.MemoryBytes), d.SubgroupSize,
					d.SharedMemory/1024, mib(d.MaxStorageBufferRange), yesNo(d.FP16), yesNo(d.Int8))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the devices as JSON")
	return cmd
}

func gib(n uint64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func mib(n uint64) string { return fmt.Sprintf("%d MiB", n>>20) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
