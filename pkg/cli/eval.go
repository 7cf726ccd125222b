package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/tokenizer"
	"github.com/spf13/cobra"
)

func init() { register("eval", newEvalCmd) }

// evalReport is what eval prints with --json.
type evalReport struct {
	model.PerplexityResult
	Model    string `json:"model"`
	Adapter  string `json:"adapter,omitempty"`
	Text     string `json:"text"`
	Quantize string `json:"quantize"`
	Device   string `json:"device"`
}

func newEvalCmd() *cobra.Command {
	var (
		mf     modelFlags
		text   string
		ctxLen int
		stride int
		batch  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "eval --model M --text FILE [flags]",
		Short: "Measure a model's perplexity on a text, with or without an adapter",
		Long: `eval reports sliding-window perplexity. The text is tokenized once (with BOS);
a window of --ctx tokens starts every --stride tokens, and each window scores
only the tokens no earlier window scored, so every token after the first is
scored once, with as much context as the window gives it.

  perplexity              exp(total negative log-likelihood / scored tokens)
  tokens                  the number of scored tokens
  perplexity_window_mean  the unweighted mean of the windows' perplexities

--quantize evaluates the base as a quantized (QLoRA-style) run would train it.
--ctx defaults to 512 (or the model's context length when shorter) and
--stride to half of --ctx.`,
		Example: `  lora eval --model stories260K.gguf --text heldout.txt
  lora eval --model base.gguf --adapter runs/alpaca-chat/<run-id>/stages/train/adapter --text heldout.txt --ctx 256 --stride 128 --json
  lora eval --model ./llama-hf/ --text wiki.txt --quantize q4_0 --device vulkan`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if text == "" {
				return Usagef("eval needs --text FILE (the text to score)")
			}
			if ctxLen < 0 || stride < 0 || (ctxLen == 1) {
				return Usagef("--ctx must be at least 2 and --stride positive")
			}
			data, err := os.ReadFile(text)
			if err != nil {
				return fmt.Errorf("--text: %w", err)
			}
			m, tok, closeAll, err := mf.open(cmd)
			if err != nil {
				return err
			}
			defer closeAll()
			if ctxLen == 0 {
				ctxLen = 512
				if cl := m.Config.ContextLen; cl > 0 && cl < ctxLen {
					ctxLen = cl
				}
			}
			if stride == 0 {
				stride = max(1, ctxLen/2)
			}
			if stride > ctxLen {
				return Usagef("--stride %d is larger than --ctx %d: tokens between windows would never be scored", stride, ctxLen)
			}
			ids := tok.Encode(string(data), tokenizer.EncodeOptions{AddBOS: tok.BOS() >= 0})
			s := ioFrom(cmd)
			res, err := m.Perplexity(cmd.Context(), ids, model.PerplexityOptions{Ctx: ctxLen, Stride: stride, Batch: batch})
			if err != nil {
				return fmt.Errorf("%s: %w", text, err)
			}
			if asJSON {
				rep := evalReport{PerplexityResult: res, Model: mf.model, Adapter: mf.adapter, Text: text, Quantize: mf.quantize, Device: m.Backend().Info().Name}
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			fmt.Fprintf(s.out, "perplexity %.4f over %d tokens (%d windows of %d, stride %d; window mean %.4f)\n",
				res.Perplexity, res.Tokens, res.Windows, res.Ctx, res.Stride, res.WindowMean)
			return nil
		},
	}
	mf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&text, "text", "", "text file to score (required)")
	fl.IntVar(&ctxLen, "ctx", 0, "window length in tokens (default 512, or the model's context when shorter)")
	fl.IntVar(&stride, "stride", 0, "tokens between window starts, at most --ctx (default ctx/2)")
	fl.IntVar(&batch, "batch", 4, "windows per forward pass")
	fl.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
