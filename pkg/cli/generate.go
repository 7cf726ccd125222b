package cli

import (
	"bufio"
	"fmt"
	"strings"
	"time"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/device"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/tokenizer"
	"github.com/spf13/cobra"
)

func init() { register("generate", newGenerateCmd) }

// modelFlags are the flags generate and eval share for getting a model running.
type modelFlags struct {
	model, adapter, device, quantize string
}

func (f *modelFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "base model: a GGUF file or a Hugging Face directory (required)")
	fl.StringVar(&f.adapter, "adapter", "", "LoRA adapter: a PEFT directory or a GGUF LoRA file")
	fl.StringVar(&f.device, "device", "auto", "auto, cpu, vulkan or vulkan:N (see lora devices)")
	fl.StringVar(&f.quantize, "quantize", "none", "store the base's linear weights as none, q8_0, q4_0 or nf4")
}

// open loads the tokenizer, the backend, the model and the adapter.
func (f *modelFlags) open(cmd *cobra.Command) (*model.Model, *tokenizer.Tokenizer, func(), error) {
	if f.model == "" {
		return nil, nil, nil, Usagef("%s needs --model (a GGUF file or a Hugging Face directory)", cmd.Name())
	}
	if _, _, err := model.ParseQuantize(f.quantize); err != nil {
		return nil, nil, nil, Usagef("--quantize: %v", err)
	}
	if _, err := device.Parse(f.device); err != nil {
		return nil, nil, nil, Usagef("--device: %v", err)
	}
	tok, err := tokenizer.Load(f.model)
	if err != nil {
		return nil, nil, nil, err
	}
	var ad *adapter.Adapter
	if f.adapter != "" {
		if ad, err = adapter.Load(f.adapter); err != nil {
			return nil, nil, nil, err
		}
	}
	be, note, err := device.Open(f.device)
	if err != nil {
		return nil, nil, nil, err
	}
	if note != "" {
		fmt.Fprintln(ioFrom(cmd).err, "lora: "+note)
	}
	m, err := model.Load(f.model, be, model.LoadOptions{Quantize: f.quantize})
	if err != nil {
		be.Close()
		return nil, nil, nil, err
	}
	closeAll := func() {
		m.Close()
		be.Close()
	}
	if ad != nil {
		if err := adapter.Apply(m, ad, 0); err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("%s on %s: %w", f.adapter, f.model, err)
		}
	}
	if tok.VocabSize() > m.Config.Vocab {
		closeAll()
		return nil, nil, nil, fmt.Errorf("%s: the tokenizer has %d tokens but the model only %d embeddings", f.model, tok.VocabSize(), m.Config.Vocab)
	}
	return m, tok, closeAll, nil
}

func newGenerateCmd() *cobra.Command {
	var (
		mf        modelFlags
		prompt    string
		maxTokens int
		samp      model.Sampling
		quiet     bool
	)
	cmd := &cobra.Command{
		Use:   "generate --model M [flags]",
		Short: "Generate text from a base model, with or without a LoRA adapter",
		Long: `generate continues --prompt with up to --max-tokens new tokens, through a
key/value cache. The prompt is printed first, then the new text as it comes.

--temperature 0 is greedy decoding (the most likely token every step); above 0
tokens are sampled from the softmax at that temperature, restricted to the
--top-k most likely ones and then to the smallest set reaching --top-p. The
same --seed gives the same text. Generation stops at the end-of-text token
(or BOS, as llama2.c does). With an empty prompt the text starts right after
BOS, without the SentencePiece leading space.

Timing goes to standard error (--quiet drops it); standard output holds only
the text and a final newline.`,
		Example: `  lora generate --model stories260K.gguf --prompt "" --max-tokens 256 --temperature 0
  lora generate --model base.gguf --adapter runs/alpaca-chat/<run-id>/stages/train/adapter --prompt "User: hi\nAssistant:"
  lora generate --model ./llama-hf/ --temperature 0.7 --top-p 0.9 --seed 7 --device vulkan`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := samp.Validate(); err != nil {
				return Usagef("%v", err)
			}
			if maxTokens < 0 {
				return Usagef("--max-tokens %d must not be negative", maxTokens)
			}
			m, tok, closeAll, err := mf.open(cmd)
			if err != nil {
				return err
			}
			defer closeAll()
			s := ioFrom(cmd)
			ids := tok.Encode(prompt, tokenizer.EncodeOptions{AddBOS: tok.AddBOS()})
			if len(ids) == 0 || (prompt == "" && ids[0] != tok.BOS() && tok.BOS() >= 0) {
				ids = append([]int32{tok.BOS()}, ids...)
			}
			if ids[0] < 0 {
				return fmt.Errorf("%s: the prompt is empty and the tokenizer has no BOS token to start from", mf.model)
			}
			out := bufio.NewWriter(s.out)
			defer out.Flush()
			out.WriteString(prompt)
			// After BOS alone, the first piece is rendered as Decode does, which drops
			// a SentencePiece dummy space (llama2.c strips it likewise).
			first := prompt == ""
			stop := func(id int32) bool { return id == tok.EOS() || id == tok.BOS() }
			emit := func(id int32) error {
				if tok.IsControl(id) {
					return nil
				}
				piece := tok.TokenText(id)
				if first {
					piece = tok.Decode([]int32{id})
					first = false
				}
				if _, err := out.WriteString(piece); err != nil {
					return err
				}
				if strings.Contains(piece, "\n") {
					return out.Flush()
				}
				return nil
			}
			start := time.Now()
			gen, err := m.Generate(ids, maxTokens, samp, stop, emit)
			out.WriteString("\n")
			if ferr := out.Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			if !quiet {
				el := time.Since(start).Seconds()
				fmt.Fprintf(s.err, "lora: %d prompt + %d generated tokens in %.2fs (%.1f tokens/s) on %s\n",
					len(ids), len(gen), el, float64(len(gen))/max(el, 1e-9), m.Backend().Info().Device)
			}
			return nil
		},
	}
	mf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&prompt, "prompt", "", "text to continue (empty: start after BOS)")
	fl.IntVar(&maxTokens, "max-tokens", 256, "most new tokens to generate")
	fl.Float64Var(&samp.Temperature, "temperature", 0.8, "sampling temperature; 0 = greedy")
	fl.IntVar(&samp.TopK, "top-k", 40, "sample among the K most likely tokens (0 = all)")
	fl.Float64Var(&samp.TopP, "top-p", 0.95, "sample among the most likely tokens reaching this probability (1 = all)")
	fl.Uint64Var(&samp.Seed, "seed", 0, "random seed for sampling")
	fl.BoolVar(&quiet, "quiet", false, "do not print timing to standard error")
	return cmd
}
