package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/lora-dev/lora/pkg/dataset"
	"github.com/lora-dev/lora/pkg/dataset/formatstage"
	"github.com/lora-dev/lora/pkg/diag"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { register("lint", newLintCmd) }

func newLintCmd() *cobra.Command {
	var (
		format string
		sets   []string
	)
	cmd := &cobra.Command{
		Use:   "lint RECIPE... [--format text|json] [--set key.path=value]...",
		Short: "Check recipes and report every problem at once",
		Long: `lint loads each recipe with the same code run and plan use (schema, strict
keys and types, ranges, the stage graph, expressions, local files, format
files, checksum syntax) without touching the network or a GPU, and reports
every problem of every file as file:line:col with the source line and a hint.

--format json prints one versioned document for all files:
{"version":1,"errors":N,"warnings":N,"diagnostics":[...]}; it is valid JSON
even when a recipe does not parse. --set overrides apply to every recipe.

Exit status: 0 when no recipe has an error (warnings allowed), 2 otherwise.
See docs/lint.md.`,
		Example: `  lora lint recipes/alpaca-chat.yaml
  lora lint recipes/*.yaml --format json
  lora lint recipes/alpaca-chat.yaml --set stages.train.train.lora.rank=16`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return Usagef("--format must be text or json, not %q", format)
			}
			s := ioFrom(cmd)
			all, sources := lintFiles(args, sets)
			var err error
			if format == "json" {
				err = diag.WriteJSON(s.out, all)
			} else {
				err = writeLintText(s.out, all, sources, len(args))
			}
			if err != nil {
				return err
			}
			if all.HasErrors() {
				return Exit(ExitInvalid, ErrSilent)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a value by dotted path, e.g. stages.train.train.lora.rank=16 (repeatable)")
	return cmd
}

// lintFiles loads every recipe and returns all diagnostics (each file's
// sorted, files in argument order) and the sources for snippets.
func lintFiles(paths, sets []string) (diag.List, map[string][]byte) {
	var all diag.List
	sources := map[string][]byte{recipe.SetFile: recipe.SetSource(sets)}
	for _, p := range paths {
		r, ds := recipe.Load(p, sets)
		if r != nil {
			sources[p] = r.Source
			if !ds.HasErrors() {
				ds = append(ds, dataChecks(r)...)
			}
		}
		ds.Sort()
		all = append(all, ds...)
	}
	return all, sources
}

// lintSample bounds how many records lint reads from each local dataset.
const lintSample = 2000

// dataChecks runs the format stage's own checks on local data: every
// sampled record must match a template of the format (an error, or a
// warning with skip_unmatched), and with a local model the sampled
// examples are tokenized to warn when most would be truncated or have
// nothing to train on. Remote data is checked when the stage runs.
func dataChecks(r *recipe.Recipe) diag.List {
	var ds diag.List
	for _, s := range r.Stages {
		if s.Format == nil {
			continue
		}
		in := r.Stage(s.Format.Input)
		if in == nil || in.Fetch == nil {
			continue
		}
		file, ok := r.LocalFile(in.Fetch.Source)
		if !ok {
			continue
		}
		f, err := formatstage.Format(r, s.Format.Format)
		if err != nil {
			if inner := diag.FromError(err); len(inner) > 0 {
				ds = append(ds, inner...)
			} else {
				ds.Add(diag.Errorf(r.At(s.Pos), "bad-format-file", "stages.%s: %v", s.Name, err))
			}
			continue
		}
		for _, d := range dataset.Check(file, f, lintSample) {
			if d.Code == "unmatched-record" && s.Format.SkipUnmatched {
				d.Severity = diag.Warning
			}
			ds.Add(d)
		}
		if model, ok := r.LocalFile(r.Model.Source); ok && !ds.HasErrors() {
			tok, err := formatstage.Tokenizer(model)
			if err != nil {
				continue // the model's own problems are reported when it loads
			}
			ds = append(ds, dataset.CheckExamples(file, f, tok, formatstage.Options(s.Format), lintSample)...)
		}
	}
	return ds
}

func writeLintText(w io.Writer, ds diag.List, sources map[string][]byte, files int) error {
	color := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		color = os.Getenv("NO_COLOR") == ""
	}
	if err := (diag.Text{Color: color, Sources: sources}).Write(w, ds); err != nil {
		return err
	}
	errs, warns := ds.Count(diag.Error), ds.Count(diag.Warning)
	if errs == 0 && warns == 0 {
		_, err := fmt.Fprintf(w, "%s ok\n", plural(files, "recipe"))
		return err
	}
	_, err := fmt.Fprintf(w, "%s, %s in %s\n", plural(errs, "error"), plural(warns, "warning"), plural(files, "recipe"))
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
