// Package hf opens Hugging Face model directories: config.json, safetensors weights and the tokenizer file.
package hf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lora-dev/lora/pkg/safetensors"
)

// Supported lists the model_type values this package understands.
var Supported = []string{"llama", "mistral", "qwen2"}

// archByClass maps "architectures" class names to a model_type, for configs that
// lack model_type.
var archByClass = map[string]string{
	"LlamaForCausalLM":   "llama",
	"MistralForCausalLM": "mistral",
	"Qwen2ForCausalLM":   "qwen2",
}

// Config is the part of config.json that a LLaMA-family model needs, with the
// transformers defaults filled in.
type Config struct {
	ModelType             string   // "llama", "mistral" or "qwen2"
	Architectures         []string // e.g. ["LlamaForCausalLM"]
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int     // defaults to NumAttentionHeads
	HeadDim               int     // defaults to HiddenSize / NumAttentionHeads
	RMSNormEps            float64 // defaults to 1e-6
	RopeTheta             float64 // defaults to 10000
	RopeScaling           map[string]any
	VocabSize             int
	TieWordEmbeddings     bool
	MaxPositionEmbeddings int
	TorchDType            string // "float32", "float16", "bfloat16" or ""
	// AttentionBias: q, k and v projections have biases (always for qwen2; for
	// llama and mistral the config's attention_bias).
	AttentionBias bool
	// OutputBias: o_proj has a bias (llama's attention_bias; never for qwen2).
	OutputBias    bool
	SlidingWindow int   // mistral/qwen2 sliding_window (0 when absent or disabled)
	BOSTokenID    *int  // nil when absent
	EOSTokenIDs   []int // eos_token_id, which may be one id or a list
}

type rawConfig struct {
	ModelType             string          `json:"model_type"`
	Architectures         []string        `json:"architectures"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           map[string]any  `json:"rope_scaling"`
	VocabSize             *int            `json:"vocab_size"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	MaxPositionEmbeddings int             `json:"max_position_embeddings"`
	TorchDType            string          `json:"torch_dtype"`
	AttentionBias         bool            `json:"attention_bias"`
	SlidingWindow         *int            `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	BOSTokenID            *int            `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
}

// maxConfigSize bounds config.json and the shard index.
const maxConfigSize = 16 << 20

func readSmall(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxConfigSize {
		return nil, fmt.Errorf("%s: %d bytes is too large for a JSON config (limit %d)", path, st.Size(), maxConfigSize)
	}
	b := make([]byte, st.Size())
	if _, err := fh.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// jsonError turns encoding/json errors into "file: field: problem".
func jsonError(path string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: field %q is a JSON %s, want %s", path, te.Field, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s: invalid JSON at byte %d: %v", path, se.Offset, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// LoadConfig reads and validates a config.json.
func LoadConfig(path string) (*Config, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, b)
}

// ParseConfig validates config.json content; name is used in error messages.
func ParseConfig(name string, data []byte) (*Config, error) {
	var rc rawConfig
	if err := json.Unmarshal(data, &rc); err != nil {
		return nil, jsonError(name, err)
	}
	c := &Config{
		ModelType:             rc.ModelType,
		Architectures:         rc.Architectures,
		RopeScaling:           rc.RopeScaling,
		MaxPositionEmbeddings: rc.MaxPositionEmbeddings,
		TorchDType:            rc.TorchDType,
		BOSTokenID:            rc.BOSTokenID,
		RMSNormEps:            1e-6,
		RopeTheta:             10000,
	}
	if c.ModelType == "" {
		for _, a := range rc.Architectures {
			if t, ok := archByClass[a]; ok {
				c.ModelType = t
				break
			}
		}
	}
	switch c.ModelType {
	case "llama", "mistral":
		c.AttentionBias, c.OutputBias = rc.AttentionBias, rc.AttentionBias
	case "qwen2":
		c.AttentionBias = true
	case "":
		return nil, fmt.Errorf("%s: no model_type (and no known \"architectures\" entry); supported model types: %s", name, strings.Join(Supported, ", "))
	default:
		return nil, fmt.Errorf("%s: model_type %q is not supported; supported model types: %s", name, c.ModelType, strings.Join(Supported, ", "))
	}
	req := func(field string, p *int, dst *int) error {
		if p == nil {
			return fmt.Errorf("%s: required field %q is missing", name, field)
		}
		if *p <= 0 {
			return fmt.Errorf("%s: %q is %d, want a positive integer", name, field, *p)
		}
		*dst = *p
		return nil
	}
	for _, f := range []struct {
		field string
		p     *int
		dst   *int
	}{
		{"hidden_size", rc.HiddenSize, &c.HiddenSize},
		{"intermediate_size", rc.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", rc.NumHiddenLayers, &c.NumHiddenLayers},
		{"num_attention_heads", rc.NumAttentionHeads, &c.NumAttentionHeads},
		{"vocab_size", rc.VocabSize, &c.VocabSize},
	} {
		if err := req(f.field, f.p, f.dst); err != nil {
			return nil, err
		}
	}
	c.NumKeyValueHeads = c.NumAttentionHeads
	if rc.NumKeyValueHeads != nil {
		if err := req("num_key_value_heads", rc.NumKeyValueHeads, &c.NumKeyValueHeads); err != nil {
			return nil, err
		}
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return nil, fmt.Errorf("%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", name, c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if rc.HeadDim != nil {
		if err := req("head_dim", rc.HeadDim, &c.HeadDim); err != nil {
			return nil, err
		}
	} else {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return nil, fmt.Errorf("%s: hidden_size (%d) is not a multiple of num_attention_heads (%d); set head_dim", name, c.HiddenSize, c.NumAttentionHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if rc.RMSNormEps != nil {
		if !(*rc.RMSNormEps > 0) {
			return nil, fmt.Errorf("%s: rms_norm_eps is %g, want a positive number", name, *rc.RMSNormEps)
		}
		c.RMSNormEps = *rc.RMSNormEps
	}
	if rc.RopeTheta != nil {
		if !(*rc.RopeTheta > 0) {
			return nil, fmt.Errorf("%s: rope_theta is %g, want a positive number", name, *rc.RopeTheta)
		}
		c.RopeTheta = *rc.RopeTheta
	}
	if rc.TieWordEmbeddings != nil {
		c.TieWordEmbeddings = *rc.TieWordEmbeddings
	}
	if rc.SlidingWindow != nil && (rc.UseSlidingWindow == nil || *rc.UseSlidingWindow || c.ModelType == "mistral") {
		c.SlidingWindow = max(0, *rc.SlidingWindow)
	}
	switch c.TorchDType {
	case "", "float32", "float16", "bfloat16":
	default:
		return nil, fmt.Errorf("%s: torch_dtype %q is not supported (float32, float16 or bfloat16)", name, c.TorchDType)
	}
	if len(rc.EOSTokenID) > 0 && string(rc.EOSTokenID) != "null" {
		var one int
		if err := json.Unmarshal(rc.EOSTokenID, &one); err == nil {
			c.EOSTokenIDs = []int{one}
		} else if err := json.Unmarshal(rc.EOSTokenID, &c.EOSTokenIDs); err != nil {
			return nil, fmt.Errorf("%s: eos_token_id must be an integer or a list of integers", name)
		}
	}
	return c, nil
}

// Model is an opened Hugging Face model directory.
type Model struct {
	Dir    string
	Config *Config
	// Weights gives access to every tensor, across shards.
	Weights *Weights
	// TokenizerPath is dir/tokenizer.json, or "" when the directory has none.
	TokenizerPath string
	// TokenizerModelPath is dir/tokenizer.model (SentencePiece), or "".
	TokenizerModelPath string
}

// Open reads dir/config.json, opens the safetensors weights (model.safetensors,
// or the shards named by model.safetensors.index.json) and locates the tokenizer.
func Open(dir string) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w, err := OpenWeights(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Config: cfg, Weights: w}
	if p := filepath.Join(dir, "tokenizer.json"); isFile(p) {
		m.TokenizerPath = p
	}
	if p := filepath.Join(dir, "tokenizer.model"); isFile(p) {
		m.TokenizerModelPath = p
	}
	return m, nil
}

// Close closes the weight files.
func (m *Model) Close() error { return m.Weights.Close() }

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// Weights is the set of safetensors files holding a model's tensors.
type Weights struct {
	Files    []*safetensors.File // in shard order
	Paths    []string
	Metadata map[string]any // the index's "metadata" (nil for a single file)
	where    map[string]int // tensor name -> index into Files
}

// OpenWeights opens dir/model.safetensors.index.json (sharded) or else
// dir/model.safetensors.
func OpenWeights(dir string) (*Weights, error) {
	w := &Weights{where: map[string]int{}}
	if err := w.open(dir); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

func (w *Weights) open(dir string) error {
	idx := filepath.Join(dir, "model.safetensors.index.json")
	single := filepath.Join(dir, "model.safetensors")
	if !isFile(idx) {
		if !isFile(single) {
			hint := ""
			if isFile(filepath.Join(dir, "pytorch_model.bin")) || isFile(filepath.Join(dir, "pytorch_model.bin.index.json")) {
				hint = " (it has PyTorch .bin weights: convert them to safetensors)"
			}
			return fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json%s", dir, hint)
		}
		f, err := safetensors.Open(single)
		if err != nil {
			return err
		}
		w.Files, w.Paths = append(w.Files, f), append(w.Paths, single)
		for i := range f.Tensors {
			w.where[f.Tensors[i].Name] = 0
		}
		return nil
	}
	b, err := readSmall(idx)
	if err != nil {
		return err
	}
	var ri struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &ri); err != nil {
		return jsonError(idx, err)
	}
	if len(ri.WeightMap) == 0 {
		return fmt.Errorf("%s: weight_map is missing or empty", idx)
	}
	w.Metadata = ri.Metadata
	shardIdx := map[string]int{}
	var names []string
	for name := range ri.WeightMap {
		names = append(names, name)
	}
	sort.Strings(names)
	var shards []string
	for _, name := range names {
		s := ri.WeightMap[name]
		if s == "" || s != filepath.Base(s) || s == "." || s == ".." || strings.ContainsAny(s, `/\`) || !fs.ValidPath(s) {
			return fmt.Errorf("%s: weight_map[%q] = %q is not a file name in the model directory", idx, name, s)
		}
		if _, ok := shardIdx[s]; !ok {
			shardIdx[s] = -1
			shards = append(shards, s)
		}
	}
	sort.Strings(shards)
	for i, s := range shards {
		p := filepath.Join(dir, s)
		f, err := safetensors.Open(p)
		if err != nil {
			return fmt.Errorf("shard listed in %s: %w", idx, err)
		}
		shardIdx[s] = i
		w.Files, w.Paths = append(w.Files, f), append(w.Paths, p)
	}
	for _, name := range names {
		i := shardIdx[ri.WeightMap[name]]
		if _, ok := w.Files[i].Tensor(name); !ok {
			return fmt.Errorf("%s: tensor %q is mapped to %s, which does not contain it", idx, name, ri.WeightMap[name])
		}
		w.where[name] = i
	}
	return nil
}

// Close closes every shard.
func (w *Weights) Close() error {
	var first error
	for _, f := range w.Files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	w.Files = nil
	return first
}

// Names returns every tensor name, sorted.
func (w *Weights) Names() []string {
	out := make([]string, 0, len(w.where))
	for n := range w.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Tensor returns a tensor's descriptor and the file holding it.
func (w *Weights) Tensor(name string) (*safetensors.TensorInfo, *safetensors.File, bool) {
	i, ok := w.where[name]
	if !ok {
		return nil, nil, false
	}
	ti, ok := w.Files[i].Tensor(name)
	return ti, w.Files[i], ok
}

// Float32 reads a tensor converted to float32, with its shape.
func (w *Weights) Float32(name string) ([]float32, []int, error) {
	ti, f, ok := w.Tensor(name)
	if !ok {
		return nil, nil, fmt.Errorf("tensor %q not found in the model weights", name)
	}
	v, err := f.TensorFloat32(ti)
	return v, ti.Shape, err
}
