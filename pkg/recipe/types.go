package recipe

import (
	"encoding/json"

	"github.com/lora-dev/lora/pkg/diag"
)

// CurrentVersion is the recipe language version this lora reads.
const CurrentVersion = 1

// Stage kinds.
const (
	KindFetch    = "fetch"
	KindFormat   = "format"
	KindChunk    = "chunk"
	KindTrain    = "train"
	KindEvaluate = "evaluate"
)

// Kinds lists the stage kinds in the order they usually run.
var Kinds = []string{KindFetch, KindFormat, KindChunk, KindTrain, KindEvaluate}

// BuiltinFormats are the prompt formats lora knows by name.
var BuiltinFormats = []string{"alpaca", "alpaca-chatbot", "vicuna", "chatml", "llama2-chat"}

// Struct tags read by the decoder, the schema generator and the docs:
//
//	yaml:"key"          the key in the recipe ("-": not from YAML)
//	doc:"..."           description (schema, docs)
//	default:"..."       value when the key is absent (a YAML scalar or flow sequence)
//	required:"true"     the key must be present
//	enum:"a,b,c"        allowed values of a string
//	min, max, xmin, xmax  inclusive and exclusive numeric bounds
//	pattern:"re"        regular expression a string must match
//	examples:"a,b"      values suggested when the pattern does not match
//	env:"train|evaluate|when"  the key is an expression over that environment

// Recipe is a decoded, defaulted and checked recipe file.
type Recipe struct {
	Version     int      `yaml:"version" required:"true" min:"1" doc:"Recipe language version. Must be 1; it gates parsing, so an unknown version is reported alone."`
	Name        string   `yaml:"name" pattern:"^[a-z0-9][a-z0-9._-]*$" doc:"Recipe name, a slug (lowercase letters, digits, '.', '_', '-'). Runs go to runs/<name>/. Default: the file name without extension."`
	Description string   `yaml:"description" doc:"Free text describing what the recipe trains and why."`
	Seed        uint64   `yaml:"seed" default:"1234" doc:"Seed of every random stream (initialisation, dropout, shuffling, sampling). Same seed, inputs and device kind give a bit-identical adapter."`
	Device      string   `yaml:"device" default:"auto" examples:"auto,cpu,vulkan,vulkan:0,vulkan:1" pattern:"^(auto|cpu|vulkan(:[0-9]+)?)$" doc:"Where to train and evaluate: auto (the first Vulkan GPU, else the CPU), cpu (the plain-Go reference backend), vulkan or vulkan:N (the Nth Vulkan device)."`
	Model       Model    `yaml:"model" required:"true" doc:"The frozen base model the adapters are trained for."`
	Stages      []*Stage `yaml:"stages" required:"true" doc:"The stages, a mapping from stage name to stage. Each stage has exactly one kind key (fetch, format, chunk, train, evaluate) plus optional needs and when. File order is kept; dependencies decide the run order."`

	// Path is the recipe file as given to Load ("" for Parse of a buffer without a name).
	Path string `yaml:"-"`
	// Source is the file's contents before overrides.
	Source []byte `yaml:"-"`
	// Overrides are the --set overrides applied, in order.
	Overrides []Override `yaml:"-"`
}

// Model names the base model.
type Model struct {
	Source   string   `yaml:"source" required:"true" doc:"Where the base model is: a local path (relative to the recipe) to a GGUF file or Hugging Face directory, or any go-getter source (https://..., git::..., s3::...)."`
	SHA256   string   `yaml:"sha256" pattern:"^[0-9a-f]{64}$" doc:"sha256 of the model file, 64 lowercase hex digits. Required for remote sources; checked for local ones."`
	Quantize string   `yaml:"quantize" default:"none" enum:"none,q8_0,q4_0,nf4" doc:"Quantize the frozen base weights at load (QLoRA): none, q8_0, q4_0 or nf4. Tensors whose rows are not a multiple of the block size stay unquantized."`
	Pos      diag.Pos `yaml:"-" json:"-"`
}

// Stage is one named step of the recipe. Exactly one of Fetch, Format,
// Chunk, Train, Evaluate is set, named by Kind.
type Stage struct {
	Name     string    `yaml:"-"`
	Needs    []string  `yaml:"needs" doc:"Stages that must finish before this one. Stages named by input, adapter, heldout and similar keys are needed implicitly."`
	When     Expr      `yaml:"when" env:"when" doc:"Run the stage only when this expression is true, e.g. stages.eval.perplexity > 20. It sees stages.<name>.<metric> of the stages this one needs, and params (seed, device, name, set). A skipped stage counts as done."`
	Kind     string    `yaml:"-"`
	Fetch    *Fetch    `yaml:"fetch" doc:"Fetch a file (dataset, text) into the run, pinned by sha256."`
	Format   *Format   `yaml:"format" doc:"Turn records (JSON, JSONL) into training examples with a prompt format."`
	Chunk    *Chunk    `yaml:"chunk" doc:"Cut a raw text file into overlapping training blocks."`
	Train    *Train    `yaml:"train" doc:"Train a LoRA adapter on the examples of a format or chunk stage."`
	Evaluate *Evaluate `yaml:"evaluate" doc:"Evaluate an adapter: perplexity, held-out loss, samples, and a gate."`
	Pos      diag.Pos  `yaml:"-" json:"-"`

	stageRefs map[string]bool // path-or-stage values that name a stage
}

// Fetch gets one file.
type Fetch struct {
	Source   string `yaml:"source" required:"true" doc:"A local path (relative to the recipe) or any go-getter source: https://..., git::https://...//path?ref=..., s3::... ."`
	SHA256   string `yaml:"sha256" pattern:"^[0-9a-f]{64}$" doc:"sha256 of the fetched file, 64 lowercase hex digits. Required for remote sources; checked for local ones. A mismatch stops the run (exit 4)."`
	Filename string `yaml:"filename" pattern:"^[^/\\\\]+$" doc:"File name to store the download under (default: the last element of the source)."`
}

// Format turns records into prompt/response examples.
type Format struct {
	Input         string  `yaml:"input" required:"true" doc:"Name of the fetch stage whose file holds the records (a JSON array or JSONL)."`
	Format        string  `yaml:"format" required:"true" doc:"Prompt format: a built-in name (alpaca, alpaca-chatbot, vicuna, chatml, llama2-chat) or a path, relative to the recipe, to a format file (a JSON object mapping comma-joined field sets to templates with %field% placeholders)."`
	TrainOn       string  `yaml:"train_on" default:"response" enum:"all,response" doc:"Which tokens the loss sees: response (mask the prompt) or all."`
	ResponseField string  `yaml:"response_field" default:"output" doc:"The record field that is the response; the prompt is everything before it in the template."`
	AddEOS        bool    `yaml:"add_eos" default:"true" doc:"Append the end-of-sequence token to every example."`
	CutoffLen     int     `yaml:"cutoff_len" default:"256" min:"1" doc:"Maximum example length in tokens."`
	Overflow      string  `yaml:"overflow" default:"truncate" enum:"truncate,drop" doc:"What to do with an example longer than cutoff_len: truncate it or drop it."`
	SkipUnmatched bool    `yaml:"skip_unmatched" doc:"Skip records whose non-empty fields match no template of the format, instead of failing."`
	EvalSplit     float64 `yaml:"eval_split" min:"0" doc:"Hold out records for evaluation: a fraction in (0, 0.5] or a whole count >= 1. 0: none."`
}

// Chunk cuts raw text into blocks.
type Chunk struct {
	Input           string `yaml:"input" required:"true" doc:"Name of the fetch stage whose file is the raw text (UTF-8)."`
	CutoffLen       int    `yaml:"cutoff_len" default:"256" min:"1" doc:"Block length in tokens."`
	OverlapLen      int    `yaml:"overlap_len" default:"128" min:"0" doc:"Tokens shared by consecutive blocks; less than cutoff_len."`
	NewlineFavorLen int    `yaml:"newline_favor_len" default:"128" min:"0" doc:"Move a block's start up to this many characters to begin after a newline."`
	HardCutString   string `yaml:"hard_cut_string" default:"\"\\n\\n\\n\"" doc:"Never let a block span this string (default three newlines); text is split on it first."`
	MinChars        int    `yaml:"min_chars" default:"0" min:"0" doc:"Drop blocks shorter than this many characters."`
	AddEOS          bool   `yaml:"add_eos" default:"false" doc:"Append the end-of-sequence token to every block."`
	AddBOS          bool   `yaml:"add_bos" default:"true" doc:"Prepend the beginning-of-sequence token to every block."`
}

// Train trains one LoRA adapter.
type Train struct {
	Input          string    `yaml:"input" doc:"Name of the format or chunk stage whose examples to train on. Default: the single format or chunk stage in needs."`
	OutputName     string    `yaml:"output_name" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" doc:"Name of the adapter: the GGUF adapter is written as <output_name>.gguf with general.name output_name (default adapter.gguf, unnamed). The PEFT directory is always adapter/."`
	LoRA           LoRA      `yaml:"lora" doc:"Shape of the adapter."`
	Optimizer      Optimizer `yaml:"optimizer" doc:"AdamW and the learning-rate schedule."`
	Epochs         float64   `yaml:"epochs" xmin:"0" doc:"Passes over the training examples (may be fractional). Default 3 when max_steps is not set."`
	MaxSteps       int       `yaml:"max_steps" min:"0" doc:"Stop after this many optimizer steps; overrides epochs. 0: use epochs."`
	MicroBatchSize int       `yaml:"micro_batch_size" default:"4" min:"1" doc:"Examples per forward/backward pass."`
	BatchSize      int       `yaml:"batch_size" default:"128" min:"1" doc:"Examples per optimizer step; a multiple of micro_batch_size (gradient accumulation = batch_size / micro_batch_size)."`
	CutoffLen      int       `yaml:"cutoff_len" min:"0" doc:"Maximum sequence length in tokens during training. 0: the input stage's cutoff_len."`
	SaveEvery      int       `yaml:"save_every" min:"0" doc:"Write a resumable checkpoint every this many steps. 0: only at the end."`
	EvalEvery      int       `yaml:"eval_every" min:"0" doc:"Compute eval_loss on the held-out examples every this many steps. 0: never during training."`
	EvalSplit      float64   `yaml:"eval_split" min:"0" doc:"Hold out examples for eval_loss: a fraction in (0, 0.5] or a whole count >= 1. 0: the input stage's held-out split, if any."`
	InitAdapter    string    `yaml:"init_adapter" doc:"Start from an existing adapter instead of fresh weights: a train stage name, or a path (relative to the recipe) to an adapter directory in PEFT layout."`
	StopWhen       Expr      `yaml:"stop_when" env:"train" doc:"Stop training early when this expression becomes true, checked after every step, e.g. loss < 1.0. Names: loss, step, epoch, lr, grad_norm, tokens, eval_loss, eval_perplexity."`
	Halt           Halt      `yaml:"halt" doc:"Stop with a diagnosis when training breaks down."`
	Device         string    `yaml:"device" examples:"auto,cpu,vulkan,vulkan:0,vulkan:1" pattern:"^(auto|cpu|vulkan(:[0-9]+)?)$" doc:"Device for this stage; overrides the recipe's device."`
	Quantize       string    `yaml:"quantize" enum:"none,q8_0,q4_0,nf4" doc:"Quantization of the frozen base for this stage; overrides model.quantize."`
}

// LoRA is the adapter's shape.
type LoRA struct {
	Rank    int     `yaml:"rank" default:"8" min:"1" max:"4096" doc:"Rank r of the low-rank update."`
	Alpha   float64 `yaml:"alpha" default:"16" xmin:"0" doc:"Scale numerator: the update is scaled by alpha/r (alpha/sqrt(r) with rslora)."`
	Dropout float64 `yaml:"dropout" default:"0.05" min:"0" xmax:"1" doc:"Dropout probability on the LoRA path, in [0, 1)."`
	Targets Targets `yaml:"targets" default:"[q_proj, v_proj]" doc:"Linear layers that get an adapter: a list of q, k, v, o, gate, up, down (or q_proj ... down_proj), or the string all-linear."`
	RSLoRA  bool    `yaml:"rslora" doc:"Rank-stabilised scaling alpha/sqrt(r) instead of alpha/r."`
}

// Optimizer configures AdamW and the schedule.
type Optimizer struct {
	LR          float64    `yaml:"lr" default:"3e-4" xmin:"0" doc:"Peak learning rate."`
	Scheduler   string     `yaml:"scheduler" default:"linear" enum:"linear,constant,constant_with_warmup,cosine,cosine_with_restarts,polynomial,inverse_sqrt" doc:"Learning-rate schedule after warmup (the Hugging Face names)."`
	WarmupSteps int        `yaml:"warmup_steps" min:"0" doc:"Steps of linear warmup from 0 to lr."`
	WarmupRatio float64    `yaml:"warmup_ratio" min:"0" max:"1" doc:"Warmup as a fraction of all steps; used when warmup_steps is 0."`
	NumCycles   float64    `yaml:"num_cycles" min:"0" doc:"Cosine cycles (cosine: default 0.5, a half wave; cosine_with_restarts: default 1)."`
	Power       float64    `yaml:"power" default:"1" xmin:"0" doc:"Exponent of the polynomial schedule."`
	Betas       [2]float64 `yaml:"betas" default:"[0.9, 0.999]" min:"0" xmax:"1" doc:"AdamW beta1 and beta2, each in [0, 1)."`
	Eps         float64    `yaml:"eps" default:"1e-8" xmin:"0" doc:"AdamW epsilon."`
	WeightDecay float64    `yaml:"weight_decay" default:"0" min:"0" doc:"AdamW decoupled weight decay."`
	MaxGradNorm float64    `yaml:"max_grad_norm" default:"1" min:"0" doc:"Clip the global gradient norm to this value. 0: no clipping."`
}

// Halt stops a run that has gone wrong, with a diagnosis.
type Halt struct {
	OnNaN         bool    `yaml:"on_nan" default:"true" doc:"Stop when the loss or a gradient is NaN or infinite."`
	OnZeroLoss    bool    `yaml:"on_zero_loss" default:"true" doc:"Stop when the loss is exactly 0 (every label masked, or a broken batch)."`
	GradNormLimit float64 `yaml:"grad_norm_limit" min:"0" doc:"Stop when the gradient norm (before clipping) exceeds this, e.g. 1e4. 0: no limit."`
}

// Evaluate measures an adapter.
type Evaluate struct {
	Adapter     string      `yaml:"adapter" doc:"Name of the train stage whose adapter to evaluate. Default: the single train stage in needs."`
	Perplexity  *Perplexity `yaml:"perplexity" doc:"Perplexity over a text, with a sliding window."`
	Heldout     string      `yaml:"heldout" doc:"Name of a format or chunk stage whose held-out examples give heldout_loss."`
	Samples     *Samples    `yaml:"samples" doc:"Generate text from prompts, written to the run's samples file."`
	CompareBase bool        `yaml:"compare_base" doc:"Also measure the base model without the adapter (base_perplexity, base_heldout_loss)."`
	Gate        Expr        `yaml:"gate" env:"evaluate" doc:"The run fails (exit 3) unless this expression is true, e.g. perplexity < 40. Names: perplexity, heldout_loss, heldout_perplexity, base_perplexity, base_heldout_loss, tokens."`
}

// Perplexity configures a perplexity measurement.
type Perplexity struct {
	Text      string `yaml:"text" required:"true" doc:"The text: a fetch stage name or a path relative to the recipe."`
	Ctx       int    `yaml:"ctx" min:"0" doc:"Window length in tokens. 0: the train stage's cutoff_len."`
	Stride    int    `yaml:"stride" min:"0" doc:"Tokens the window advances each time; only the new tokens are scored. 0: ctx/2."`
	MaxTokens int    `yaml:"max_tokens" min:"0" doc:"Score only the first max_tokens tokens of the text (its tokenization with BOS is cut there), to keep evaluation of a large corpus short. 0: the whole text."`
}

// Samples configures generation.
type Samples struct {
	Prompts     []string `yaml:"prompts" required:"true" doc:"Prompts to complete, used as given (write them in the training format)."`
	MaxTokens   int      `yaml:"max_tokens" default:"64" min:"1" doc:"Tokens to generate per prompt."`
	Temperature float64  `yaml:"temperature" default:"0" min:"0" doc:"Sampling temperature. Every prompt gets a greedy (deterministic) completion; with a temperature above 0 it also gets a seeded sample at that temperature."`
	TopK        int      `yaml:"top_k" default:"0" min:"0" doc:"Sample from the k most likely tokens. 0: no limit."`
	TopP        float64  `yaml:"top_p" default:"1" xmin:"0" max:"1" doc:"Nucleus sampling: the smallest set of tokens whose probability reaches top_p."`
	Seed        uint64   `yaml:"seed" doc:"Sampling seed. 0: derived from the recipe seed."`
}

// Override is one --set key.path=value.
type Override struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Expr is an expression (expr-lang syntax) kept as written; Load compiles
// and checks it. Use CompileGate to evaluate it.
type Expr struct {
	Src string
	Pos diag.Pos // where the expression starts (0 when absent)

	file string
	m    *posMap
}

// IsZero reports whether no expression was given.
func (e Expr) IsZero() bool { return e.Src == "" }

// String returns the expression's source.
func (e Expr) String() string { return e.Src }

// MarshalJSON writes the expression's source (a string).
func (e Expr) MarshalJSON() ([]byte, error) { return json.Marshal(e.Src) }

// UnmarshalJSON reads an expression's source.
func (e *Expr) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &e.Src) }

// MarshalYAML writes the expression's source.
func (e Expr) MarshalYAML() (any, error) { return e.Src, nil }

// Targets lists the linear layers to adapt, in canonical short form
// (q, k, v, o, gate, up, down). "all-linear" decodes to all seven.
type Targets []string

// AllTargets are the adaptable linears of a LLaMA block, in canonical order.
var AllTargets = []string{"q", "k", "v", "o", "gate", "up", "down"}

// targetNames maps accepted spellings to canonical names.
var targetNames = map[string]string{
	"q": "q", "k": "k", "v": "v", "o": "o", "gate": "gate", "up": "up", "down": "down",
	"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o",
	"gate_proj": "gate", "up_proj": "up", "down_proj": "down",
}

// HFName returns the Hugging Face module name of a canonical target ("q" → "q_proj").
func HFName(target string) string { return target + "_proj" }
