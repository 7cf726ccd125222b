package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/lora-dev/lora/pkg/lock"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/store"
	"github.com/spf13/cobra"
)

func init() { register("cache", newCacheCmd) }

func newCacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the content-addressed cache of sources and stage outputs",
		Long: `The cache ($LORA_CACHE, default the user cache directory's lora/) holds
fetched files by sha256 (blobs), fetched directory trees, and stage outputs by
stage key. A recipe source pinned by sha256 is served from it without the
network, so seeding it with lora cache import lets an air-gapped machine run
recipes whose sources are public URLs. See docs/runs.md.`,
		Example: `  lora cache import stories260K.gguf alpaca_5000.json
  lora cache ls`,
		Args: usageArgs(cobra.NoArgs),
	}
	cmd.AddCommand(newCacheImportCmd(), newCacheLsCmd(), newCacheGCCmd())
	return cmd
}

func newCacheImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import FILE...",
		Short: "Store files in the cache by content and print their sha256",
		Long: `import copies each file into the cache under its sha256 and prints the
sha256, size and path. A recipe source pinned with that sha256 is then found
in the cache, also with --offline.`,
		Example: "  lora cache import ../shared/data/models/stories260K.gguf",
		Args:    usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openStore()
			if err != nil {
				return err
			}
			out := ioFrom(cmd).out
			for _, p := range args {
				fi, err := os.Stat(p)
				if err != nil {
					return fmt.Errorf("import %s: %w", p, err)
				}
				if fi.IsDir() {
					sum, err := st.PutTree(p)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "%s  tree  %s\n", sum, p)
					continue
				}
				sum, size, err := st.PutFile(p, 0)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s  %d  %s\n", sum, size, p)
			}
			return nil
		},
	}
}

type lsEntry struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	Size    int64    `json:"size"`
	Sources []string `json:"sources,omitempty"`
	Stage   string   `json:"stage,omitempty"`
	Stages  string   `json:"stage_kind,omitempty"`
}

func newCacheLsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List cached blobs, trees and stage outputs",
		Long: `ls lists the blobs (sha256, size, and the sources they were fetched for, when
known), the trees, and the stage outputs (key, stage kind and name, size).`,
		Example: "  lora cache ls\n  lora cache ls --format json",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return Usagef("--format %q: want text or json", format)
			}
			st, err := openStore()
			if err != nil {
				return err
			}
			srcs, err := st.Sources()
			if err != nil {
				return err
			}
			bySum := map[string][]string{}
			for _, s := range srcs {
				bySum[s.SHA256] = append(bySum[s.SHA256], s.Source)
			}
			var ents []lsEntry
			for _, list := range []func() ([]store.Entry, error){st.Blobs, st.Trees, st.Stages} {
				es, err := list()
				if err != nil {
					return err
				}
				sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
				for _, e := range es {
					le := lsEntry{Kind: e.Kind, Name: e.Name, Size: e.Size, Sources: bySum[e.Name]}
					if e.Kind == "stage" {
						if o, err := pipeline.ReadOutput(e.Path); err == nil {
							le.Stage, le.Stages = o.Stage, o.Kind
						}
					}
					ents = append(ents, le)
				}
			}
			out := ioFrom(cmd).out
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if ents == nil {
					ents = []lsEntry{}
				}
				return enc.Encode(map[string]any{"root": st.Root(), "entries": ents})
			}
			fmt.Fprintf(out, "cache %s\n", st.Root())
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KIND\tSHA256/KEY\tSIZE\tFOR")
			for _, e := range ents {
				what := strings.Join(e.Sources, ", ")
				if e.Kind == "stage" {
					what = e.Stages + " " + e.Stage
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Kind, e.Name, e.Size, what)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func newCacheGCCmd() *cobra.Command {
	var runs string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove cached stage outputs that no run under --runs refers to",
		Long: `gc deletes the stage outputs in the cache whose key no lora.lock under --runs
mentions. Blobs and trees (fetched sources) are kept: they are what offline
runs need. Use --dry-run to see what would go.`,
		Example: "  lora cache gc --runs runs --dry-run",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore()
			if err != nil {
				return err
			}
			keep := map[string]bool{}
			locks, _ := filepath.Glob(filepath.Join(runs, "*", "*", lock.FileName))
			for _, p := range locks {
				l, err := lock.Read(p)
				if err != nil {
					continue
				}
				for _, s := range l.Stages {
					keep[s.Key] = true
				}
			}
			stages, err := st.Stages()
			if err != nil {
				return err
			}
			out := ioFrom(cmd).out
			removed, freed := 0, int64(0)
			for _, e := range stages {
				if keep[e.Name] {
					continue
				}
				if !dryRun {
					if err := st.RemoveStage(e.Name); err != nil {
						return err
					}
				}
				removed++
				freed += e.Size
				fmt.Fprintf(out, "remove stage %s (%d bytes)\n", e.Name, e.Size)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(out, "%s %d stage outputs, %d bytes; %d runs refer to the rest\n", verb, removed, freed, len(locks))
			return nil
		},
	}
	cmd.Flags().StringVar(&runs, "runs", "runs", "directory of runs whose stage outputs to keep")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed without removing it")
	return cmd
}
