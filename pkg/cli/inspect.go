package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/report"
	"github.com/lora-dev/lora/pkg/tokenizer"
	"github.com/spf13/cobra"
)

func init() { register("inspect", newInspectCmd) }

// inspectReport is inspect's --json output for a model.
type inspectReport struct {
	File        string               `json:"file"`
	Source      string               `json:"source"`
	Config      model.Config         `json:"config"`
	Params      int64                `json:"params"`
	WeightBytes int64                `json:"weight_bytes"`
	Quantize    string               `json:"quantize"`
	Tensors     []model.TensorReport `json:"tensors"`
	Tokenizer   *tokenizerInfo       `json:"tokenizer,omitempty"`
	Plan        model.TrainPlan      `json:"plan"`
	Memory      model.MemoryEstimate `json:"memory"`
}

type tokenizerInfo struct {
	Model  string `json:"model"`
	Pre    string `json:"pre,omitempty"`
	Vocab  int    `json:"vocab"`
	BOS    int32  `json:"bos"`
	EOS    int32  `json:"eos"`
	AddBOS bool   `json:"add_bos"`
}

// adapterReport is inspect's --json output for an adapter.
type adapterReport struct {
	File      string   `json:"file"`
	Format    string   `json:"format"`
	Arch      string   `json:"arch,omitempty"`
	BaseModel string   `json:"base_model,omitempty"`
	Rank      int      `json:"rank"`
	Alpha     float64  `json:"alpha"`
	RSLoRA    bool     `json:"rslora"`
	Targets   []string `json:"targets"`
	Layers    int      `json:"layers"`
	Weights   int      `json:"weights"`
	Params    int      `json:"params"`
}

func newInspectCmd() *cobra.Command {
	var (
		rank, cutoff, batch int
		targets, quantize   string
		dropout, asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Show a model's or adapter's architecture, tensors, tokenizer and training memory",
		Long: `inspect reads a base model (GGUF file or Hugging Face directory) or a LoRA
adapter (PEFT directory or GGUF adapter) without loading its weights.

For a model it prints the architecture and shapes, every tensor with its type
in the file and as lora would store it (--quantize), the tokenizer, the
parameter count, and the device memory a LoRA run needs at --rank, --cutoff
(tokens per sequence), --batch (sequences per micro-batch) and --targets:
frozen weights, adapter, gradients, AdamW moments and activations. Tensors
whose rows do not fit the quantization block keep their type and are marked.`,
		Example: `  lora inspect stories260K.gguf
  lora inspect stories260K.gguf --quantize q4_0 --rank 16 --cutoff 256 --batch 4 --targets q_proj,v_proj
  lora inspect runs/alpaca-chat/<run-id>/stages/train/adapter --json`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			s := ioFrom(cmd)
			if isAdapterPath(path) {
				return inspectAdapter(s.out, path, asJSON)
			}
			if _, _, err := model.ParseQuantize(quantize); err != nil {
				return Usagef("--quantize: %v", err)
			}
			var mods []model.Module
			for _, t := range strings.Split(targets, ",") {
				if t = strings.TrimSpace(t); t == "" {
					continue
				}
				if t == "all" {
					for m := model.Module(0); m < model.NumModules; m++ {
						mods = append(mods, m)
					}
					continue
				}
				m, ok := model.ParseModule(t)
				if !ok {
					return Usagef("--targets: unknown module %q (use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all)", t)
				}
				mods = append(mods, m)
			}
			if rank <= 0 || cutoff <= 0 || batch <= 0 {
				return Usagef("--rank, --cutoff and --batch must be positive")
			}
			d, err := model.Describe(path, model.LoadOptions{Quantize: quantize})
			if err != nil {
				return err
			}
			plan := model.TrainPlan{Rank: rank, Targets: mods, Batch: batch, Seq: cutoff, Dropout: dropout}
			mem, err := model.EstimateMemory(d.Config, d.WeightBytes, plan)
			if err != nil {
				return err
			}
			rep := inspectReport{File: path, Source: d.Source, Config: d.Config, Params: d.Params, WeightBytes: d.WeightBytes,
				Quantize: quantize, Tensors: d.Tensors, Plan: plan, Memory: mem}
			if tok, err := tokenizer.Load(path); err == nil {
				rep.Tokenizer = &tokenizerInfo{Model: tok.Model(), Pre: tok.Pre(), Vocab: tok.VocabSize(), BOS: tok.BOS(), EOS: tok.EOS(), AddBOS: tok.AddBOS()}
			}
			if asJSON {
				enc := json.NewEncoder(s.out)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			return printModel(s.out, rep)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&rank, "rank", 16, "LoRA rank for the memory estimate")
	fl.IntVar(&cutoff, "cutoff", 256, "tokens per sequence for the memory estimate")
	fl.IntVar(&batch, "batch", 4, "sequences per micro-batch for the memory estimate")
	fl.StringVar(&targets, "targets", "q_proj,v_proj", "adapted modules, comma-separated, or all")
	fl.StringVar(&quantize, "quantize", "none", "storage of the base's linear weights: none, q8_0, q4_0 or nf4")
	fl.BoolVar(&dropout, "dropout", true, "LoRA dropout on (keeps the dropped inputs for backward)")
	fl.BoolVar(&asJSON, "json", false, "print a JSON report")
	return cmd
}

// isAdapter tells adapters (PEFT directories, GGUF adapters) from models.
func isAdapterPath(path string) bool {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		_, err := os.Stat(filepath.Join(path, adapter.ConfigFile))
		return err == nil
	}
	switch filepath.Base(path) {
	case adapter.ConfigFile, adapter.WeightsFile:
		return true
	}
	f, err := gguf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	t, _ := f.String("general.type")
	return t == "adapter"
}

func inspectAdapter(w io.Writer, path string, asJSON bool) error {
	a, err := adapter.Load(path)
	if err != nil {
		return err
	}
	rep := adapterReport{File: path, Format: "peft", Arch: a.Arch, BaseModel: a.BaseModel, Rank: a.Rank, Alpha: a.Alpha,
		RSLoRA: a.RSLoRA, Targets: a.Targets, Weights: len(a.Weights), Params: a.Params()}
	if a.Arch != "" {
		rep.Format = "gguf"
	}
	layers := map[int]bool{}
	for k := range a.Weights {
		layers[k.Layer] = true
	}
	rep.Layers = len(layers)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(w, "LoRA adapter (%s) %s\n", rep.Format, path)
	if rep.BaseModel != "" {
		fmt.Fprintf(w, "  base model   %s\n", rep.BaseModel)
	}
	if rep.Arch != "" {
		fmt.Fprintf(w, "  architecture %s\n", rep.Arch)
	}
	scale := "alpha/r"
	if a.RSLoRA {
		scale = "alpha/sqrt(r) (rsLoRA)"
	}
	fmt.Fprintf(w, "  rank %d, alpha %g, scale %s = %g\n", a.Rank, a.Alpha, scale, a.Scale(a.Rank))
	fmt.Fprintf(w, "  targets %s on %d layers: %d weight pairs, %s trainable values\n", strings.Join(a.Targets, ","), rep.Layers, rep.Weights, humanCount(int64(rep.Params)))
	return nil
}

func printModel(w io.Writer, r inspectReport) error {
	c := r.Config
	fmt.Fprintf(w, "%s model %s (%s)\n", c.Arch, r.File, r.Source)
	fmt.Fprintf(w, "  dim %d, %d layers, %d heads (%d kv, head dim %d), ffn %d, vocab %d\n", c.Dim, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab)
	layout := "normal (GGUF-permuted Q/K)"
	if c.RoPELayout == backend.RoPENeoX {
		layout = "neox"
	}
	fmt.Fprintf(w, "  rope theta %g, %d dims, %s; rms eps %g; context %d; tied embeddings %v; qkv bias %v\n",
		c.RoPETheta, c.RoPEDims, layout, c.RMSEps, c.ContextLen, c.TiedEmbeddings, c.QKVBias)
	fmt.Fprintf(w, "  %s parameters, %s as stored (quantize %s)\n", humanCount(r.Params), report.Bytes(r.WeightBytes), r.Quantize)
	if t := r.Tokenizer; t != nil {
		fmt.Fprintf(w, "  tokenizer %s", t.Model)
		if t.Pre != "" {
			fmt.Fprintf(w, " (pre %s)", t.Pre)
		}
		fmt.Fprintf(w, ", %d tokens, bos %d, eos %d, add bos %v\n", t.Vocab, t.BOS, t.EOS, t.AddBOS)
	}
	fmt.Fprintln(w, "\ntensors:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kept := 0
	for _, t := range r.Tensors {
		note := ""
		if t.Kept {
			kept++
			note = "kept: " + t.Why
		}
		fmt.Fprintf(tw, "  %s\t%v\t%s\t→ %s\t%s\n", t.Name, t.Shape, t.FileType, t.Stored, note)
	}
	tw.Flush()
	if kept > 0 {
		fmt.Fprintf(w, "  %d tensors kept their type: their rows are not a multiple of the %s block\n", kept, r.Quantize)
	}
	p, m := r.Plan, r.Memory
	var names []string
	for _, t := range p.Targets {
		names = append(names, t.String())
	}
	fmt.Fprintf(w, "\nLoRA run at rank %d on %s, batch %d × %d tokens:\n", p.Rank, strings.Join(names, ","), p.Batch, p.Seq)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range []struct {
		what string
		b    int64
	}{{"frozen weights", m.Weights}, {"adapter", m.Adapter}, {"gradients", m.Gradients}, {"AdamW moments", m.Optimizer}, {"activations", m.Activations}, {"total", m.Total}} {
		fmt.Fprintf(tw, "  %s\t%s\t\n", row.what, report.Bytes(row.b))
	}
	tw.Flush()
	fmt.Fprintf(w, "  %s trainable values (%.3f%% of the base)\n", humanCount(m.TrainableParams), 100*float64(m.TrainableParams)/float64(max(r.Params, 1)))
	return nil
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
