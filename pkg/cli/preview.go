package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	_ "github.com/lora-dev/lora/pkg/dataset/formatstage" // registers the format stage kind
	"github.com/lora-dev/lora/pkg/examples"
	"github.com/lora-dev/lora/pkg/pipeline"
	"github.com/lora-dev/lora/pkg/recipe"
	"github.com/lora-dev/lora/pkg/tokenizer"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { register("preview", newPreviewCmd) }

func newPreviewCmd() *cobra.Command {
	var (
		f      runFlags
		stage  string
		n      int
		format string
		color  string
	)
	cmd := &cobra.Command{
		Use:   "preview RECIPE --stage NAME [-n N] [--format text|jsonl]",
		Short: "Show the examples a format or chunk stage makes, with the trained part marked",
		Long: `preview runs the recipe's stages up to NAME (a format or chunk stage), reusing
cached outputs as run does, and shows the first N examples decoded with the
tokenizer, so you see exactly what the model will learn before training.

Text output marks the trained tokens «like this»; everything outside the
markers is context the model reads but is not trained on (the loss ignores
it, label -100). Control tokens such as <s> and </s> are shown. On a
terminal the untrained part is also dimmed (--color always|never|auto).

--format jsonl prints one JSON object per example instead: text, trained_text,
input_ids and labels (-100 where not trained); the counts then go to
standard error.

Both report the counts of the whole stage: examples, tokens, trained tokens,
truncated, dropped, skipped. Nothing is written to the runs directory; the
stage outputs stay in the cache, so a later run reuses them.`,
		Example: `  lora preview recipes/alpaca-chat.yaml --stage prompts
  lora preview recipes/raw-text.yaml --stage blocks -n 2
  lora preview recipes/alpaca-chat.yaml --stage prompts --format jsonl -n 100 | jq .trained_text
  lora preview recipes/alpaca-chat.yaml --stage prompts --set stages.prompts.format.cutoff_len=512`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if stage == "" {
				return Usagef("preview needs --stage NAME, the format or chunk stage to show")
			}
			if format != "text" && format != "jsonl" {
				return Usagef("--format %q: want text or jsonl", format)
			}
			if n < 0 {
				return Usagef("-n %d: want 0 or more examples", n)
			}
			s := ioFrom(cmd)
			useColor, err := colorFlag(color, s.out)
			if err != nil {
				return err
			}
			r, err := loadRecipe(cmd, args[0], f.overrides())
			if err != nil {
				return err
			}
			st := r.Stage(stage)
			if st == nil {
				var names []string
				for _, x := range r.Stages {
					if x.Kind == recipe.KindFormat || x.Kind == recipe.KindChunk {
						names = append(names, x.Name)
					}
				}
				return Exit(ExitInvalid, fmt.Errorf("%s: no stage %q (format and chunk stages: %s)", r.Path, stage, strings.Join(names, ", ")))
			}
			if st.Kind != recipe.KindFormat && st.Kind != recipe.KindChunk {
				return Exit(ExitInvalid, fmt.Errorf("%s: stage %q is a %s stage; preview shows format and chunk stages", r.Path, stage, st.Kind))
			}
			store, err := openStore()
			if err != nil {
				return err
			}
			runs, err := os.MkdirTemp("", "lora-preview-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(runs)
			opts := f.options(cmd, store)
			opts.RunsDir = runs
			opts.Until = stage
			res, err := pipeline.Run(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
			dir := filepath.Join(res.RunDir, pipeline.StagesDir, stage)
			if res.Lock.Model == nil {
				return fmt.Errorf("preview: the run recorded no model, so there is no tokenizer to decode with")
			}
			model, ok := store.Blob(res.Lock.Model.SHA256)
			if res.Lock.Model.Tree {
				model, ok = store.Tree(res.Lock.Model.SHA256)
			}
			if !ok {
				return fmt.Errorf("preview: the model %s is not in the cache", res.Lock.Model.Source)
			}
			tok, err := tokenizer.Load(model)
			if err != nil {
				return err
			}
			p := previewer{tok: tok, color: useColor}
			return p.show(s.out, s.err, dir, stage, n, format)
		},
	}
	f.addRecipeFlags(cmd)
	cmd.Flags().BoolVar(&f.offline, "offline", false, "never touch the network; remote sources must be in the cache (also LORA_OFFLINE=1)")
	cmd.Flags().StringVar(&stage, "stage", "", "the format or chunk stage to show (required)")
	cmd.Flags().IntVarP(&n, "n", "n", 3, "number of examples to show")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or jsonl")
	cmd.Flags().StringVar(&color, "color", "auto", "dim the untrained text: auto (on a terminal), always or never")
	return cmd
}

func colorFlag(mode string, out io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto":
		if os.Getenv("NO_COLOR") != "" {
			return false, nil
		}
		if f, ok := out.(*os.File); ok {
			return term.IsTerminal(int(f.Fd())), nil
		}
		return false, nil
	}
	return false, Usagef("--color %q: want auto, always or never", mode)
}

type previewer struct {
	tok   *tokenizer.Tokenizer
	color bool
}

// segment is a run of an example's text, trained or not.
type segment struct {
	text    string
	trained bool
}

// segments decodes an example into runs of trained and untrained text. The
// run boundaries come from decoding prefixes of the whole example, so the
// dummy-prefix space is removed once, as for the whole text.
func (p previewer) segments(ex examples.Example) []segment {
	opt := tokenizer.DecodeOptions{Special: true}
	var out []segment
	prev := 0
	for i := 1; i <= len(ex.InputIDs); i++ {
		if i < len(ex.InputIDs) && (ex.Labels[i] != examples.Ignore) == (ex.Labels[i-1] != examples.Ignore) {
			continue
		}
		head := p.tok.DecodeWith(ex.InputIDs[:i], opt)
		out = append(out, segment{text: head[min(prev, len(head)):], trained: ex.Labels[i-1] != examples.Ignore})
		prev = len(head)
	}
	return out
}

func (p previewer) show(out, errw io.Writer, dir, stage string, n int, format string) error {
	stats, err := examples.ReadStats(dir)
	if err != nil {
		return err
	}
	rd, err := examples.Open(dir)
	if err != nil {
		return err
	}
	defer rd.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	counts := func(to io.Writer) {
		fmt.Fprintf(to, "stage %s (%s): ", stage, stats.Kind)
		examples.Report(to, stats)
	}
	if format == "text" {
		counts(w)
		fmt.Fprintln(w, "legend: «trained text»; text outside « » is context, not trained (label -100); <s> and </s> are the BOS and EOS tokens")
	} else {
		counts(errw)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := 0; i < n && rd.Next(); i++ {
		ex := rd.Example()
		segs := p.segments(ex)
		if format == "jsonl" {
			var all, trained strings.Builder
			for _, s := range segs {
				all.WriteString(s.text)
				if s.trained {
					trained.WriteString(s.text)
				}
			}
			if err := enc.Encode(map[string]any{
				"index":        i,
				"text":         all.String(),
				"trained_text": trained.String(),
				"input_ids":    ex.InputIDs,
				"labels":       ex.Labels,
			}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(w, "\n── example %d of %d · %d tokens · %d trained ──\n", i+1, stats.Examples, len(ex.InputIDs), ex.Trained())
		for _, s := range segs {
			switch {
			case s.trained:
				fmt.Fprintf(w, "«%s»", s.text)
			case p.color:
				fmt.Fprintf(w, "\x1b[2m%s\x1b[0m", s.text)
			default:
				w.WriteString(s.text)
			}
		}
		fmt.Fprintln(w)
	}
	return rd.Err()
}
