package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/quant"
)

// LoadOptions control how weights are stored on the backend.
type LoadOptions struct {
	// Quantize is the storage type of the linear weights: "" or "none" keeps the
	// file's type (types the backends cannot read, such as Q4_1, K-quants and
	// BF16, become F32), "q8_0", "q4_0" or "nf4" quantize at load (a weight
	// already in that type is kept bit for bit). A weight whose row length is
	// not a multiple of the block size keeps its type, as llama.cpp does; the
	// model's Tensors report says which did.
	Quantize string
}

// ParseQuantize turns "none" (or ""), "q8_0", "q4_0" or "nf4" into a storage
// type; quantize is false for none.
func ParseQuantize(s string) (dt backend.DType, quantize bool, err error) {
	switch strings.ToLower(s) {
	case "", "none":
		return backend.F32, false, nil
	case "q8_0":
		return backend.Q8_0, true, nil
	case "q4_0":
		return backend.Q4_0, true, nil
	case "nf4":
		return backend.NF4, true, nil
	}
	return 0, false, fmt.Errorf("unknown quantization %q: use none, q8_0, q4_0 or nf4", s)
}

// Load reads a model from a GGUF file or a Hugging Face directory (config.json
// and safetensors) and uploads its weights to be.
func Load(path string, be backend.Backend, opts LoadOptions) (*Model, error) {
	if _, _, err := ParseQuantize(opts.Quantize); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() || filepath.Base(path) == "config.json" || strings.HasSuffix(path, ".safetensors") {
		return loadHF(path, be, opts)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	return FromGGUF(f, path, be, opts)
}

// ConfigFromGGUF reads the model configuration from GGUF metadata
// (general.architecture and the <arch>.* keys).
func ConfigFromGGUF(f *gguf.File) (Config, error) {
	if t, _ := f.String("general.type"); t == "adapter" {
		return Config{}, fmt.Errorf("this is a LoRA adapter, not a base model: pass it with --adapter and the base with --model")
	}
	arch, ok := f.String("general.architecture")
	if !ok {
		return Config{}, fmt.Errorf("no general.architecture key: not a model file")
	}
	c := Config{Arch: arch}
	if err := c.Validate(); errors.Is(err, ErrArch) {
		return c, err
	}
	var missing []string
	need := func(key string) int {
		v, ok := f.Uint(arch + "." + key)
		if !ok || v > math.MaxInt32 {
			missing = append(missing, arch+"."+key)
			return 0
		}
		return int(v)
	}
	opt := func(key string, def int) int {
		if v, ok := f.Uint(arch + "." + key); ok && v <= math.MaxInt32 {
			return int(v)
		}
		return def
	}
	optF := func(key string, def float64) float32 {
		if v, ok := f.Float(arch + "." + key); ok {
			return float32(v)
		}
		return float32(def)
	}
	c.Dim = need("embedding_length")
	c.Layers = need("block_count")
	c.FFN = need("feed_forward_length")
	c.Heads = need("attention.head_count")
	if len(missing) > 0 {
		return c, fmt.Errorf("missing or invalid metadata %s", strings.Join(missing, ", "))
	}
	c.KVHeads = opt("attention.head_count_kv", c.Heads)
	c.HeadDim = opt("attention.key_length", c.Dim/c.Heads)
	c.RoPEDims = opt("rope.dimension_count", c.HeadDim)
	c.ContextLen = opt("context_length", 0)
	c.RoPETheta = optF("rope.freq_base", 10000)
	c.RMSEps = optF("attention.layer_norm_rms_epsilon", 1e-5)
	if t, ok := f.Tensor("token_embd.weight"); ok && len(t.Dims) == 2 {
		c.Vocab = int(t.Dims[1])
	} else if toks, ok := f.Strings("tokenizer.ggml.tokens"); ok {
		c.Vocab = len(toks)
	}
	c.Vocab = opt("vocab_size", c.Vocab)
	_, hasOutput := f.Tensor("output.weight")
	c.TiedEmbeddings = !hasOutput
	_, c.QKVBias = f.Tensor("blk.0.attn_q.bias")
	c.RoPELayout = backend.RoPENormal
	if arch == ArchQwen2 {
		c.RoPELayout = backend.RoPENeoX
	}
	return c, c.Validate()
}

// storable maps GGUF types the backends read directly.
var storable = map[gguf.GGMLType]backend.DType{
	gguf.F32: backend.F32, gguf.F16: backend.F16, gguf.Q8_0: backend.Q8_0, gguf.Q4_0: backend.Q4_0,
}

// FromGGUF loads a model from an open GGUF file; name is used in messages.
func FromGGUF(f *gguf.File, name string, be backend.Backend, opts LoadOptions) (*Model, error) {
	c, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	src := &ggufSource{f: f}
	m, err := build(c, src, be, opts, false)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	m.Source = "gguf"
	m.QKPermuted = c.RoPELayout == backend.RoPENormal
	return m, nil
}

// weightSource yields tensors by their GGUF-style names.
type weightSource interface {
	// get describes a tensor (shape, type) without reading it; its raw and
	// f32 functions read the data on demand.
	get(name string) (*srcTensor, error)
	has(name string) bool
}

type srcTensor struct {
	shape    []int
	fileType string
	storable bool          // the backends read the file's type directly
	stored   backend.DType // that type, when storable
	raw      func() ([]byte, error)
	f32      func() ([]float32, error)
}

type ggufSource struct{ f *gguf.File }

func (s *ggufSource) has(name string) bool { _, ok := s.f.Tensor(name); return ok }

func (s *ggufSource) get(name string) (*srcTensor, error) {
	t, ok := s.f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s is missing", name)
	}
	st := &srcTensor{shape: t.Shape(), fileType: t.Type.String()}
	st.stored, st.storable = storable[t.Type]
	st.raw = func() ([]byte, error) { return s.f.TensorData(t) }
	st.f32 = func() ([]float32, error) { return s.f.TensorFloat32(t) }
	return st, nil
}

// build reads every weight from src and uploads it.
func build(c Config, src weightSource, be backend.Backend, opts LoadOptions, dry bool) (*Model, error) {
	qt, quantize, err := ParseQuantize(opts.Quantize)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: c, be: be, Layers: make([]Layer, c.Layers)}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	// upload stores one tensor; kind selects the storage policy.
	type kind int
	const (
		vector kind = iota // norms, biases: F32
		table              // embedding / LM head: file type when storable, else F32
		matrix             // linears: quantized per opts
	)
	upload := func(name string, want []int, k kind) (backend.Tensor, error) {
		st, err := src.get(name)
		if err != nil {
			return nil, err
		}
		if !sameShape(st.shape, want) {
			return nil, fmt.Errorf("tensor %s has shape %v, want %v for this config", name, st.shape, want)
		}
		rep := TensorReport{Name: name, Shape: st.shape, FileType: st.fileType}
		cols := want[len(want)-1]
		const (
			asIs = iota
			quantizeF32
			asF32
		)
		mode := asIs
		switch {
		case k == matrix && quantize && st.storable && st.stored == qt:
			rep.Stored = qt
		case k == matrix && quantize && cols%qt.BlockSize() == 0:
			rep.Stored, mode = qt, quantizeF32
		case k != vector && st.storable:
			rep.Stored = st.stored
		default:
			rep.Stored, mode = backend.F32, asF32
		}
		if k == matrix && quantize && rep.Stored != qt {
			rep.Kept = true
			rep.Why = fmt.Sprintf("rows of %d values are not a multiple of the %s block (%d); kept as %s", cols, qt, qt.BlockSize(), rep.Stored)
		}
		m.Tensors = append(m.Tensors, rep)
		if dry {
			return nil, nil
		}
		var raw []byte
		switch mode {
		case asIs:
			raw, err = st.raw()
		case quantizeF32:
			var vals []float32
			if vals, err = st.f32(); err == nil {
				raw, err = Quantize(qt, vals, cols)
			}
		case asF32:
			var vals []float32
			if vals, err = st.f32(); err == nil {
				raw = f32Bytes(vals)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", name, err)
		}
		t, err := be.FromBytes(rep.Stored, want, raw)
		if err != nil {
			return nil, fmt.Errorf("uploading %s: %w", name, err)
		}
		return t, nil
	}
	if m.Embed, err = upload("token_embd.weight", []int{c.Vocab, c.Dim}, table); err != nil {
		return nil, err
	}
	for l := range m.Layers {
		L := &m.Layers[l]
		p := fmt.Sprintf("blk.%d.", l)
		if L.AttnNorm, err = upload(p+"attn_norm.weight", []int{c.Dim}, vector); err != nil {
			return nil, err
		}
		if L.FFNNorm, err = upload(p+"ffn_norm.weight", []int{c.Dim}, vector); err != nil {
			return nil, err
		}
		for mod := Module(0); mod < NumModules; mod++ {
			out, in := c.Shape(mod)
			w, err := upload(p+mod.GGUFName()+".weight", []int{out, in}, matrix)
			if err != nil {
				return nil, err
			}
			L.Linear[mod] = &Linear{W: w, Out: out, In: in}
			if mod <= V && src.has(p+mod.GGUFName()+".bias") {
				if L.Bias[mod], err = upload(p+mod.GGUFName()+".bias", []int{out}, vector); err != nil {
					return nil, err
				}
			}
		}
	}
	if m.Norm, err = upload("output_norm.weight", []int{c.Dim}, vector); err != nil {
		return nil, err
	}
	if c.TiedEmbeddings {
		m.Output = m.Embed
	} else if m.Output, err = upload("output.weight", []int{c.Vocab, c.Dim}, table); err != nil {
		return nil, err
	}
	ok = true
	return m, nil
}

// Quantize encodes row-major values with rows of cols values into dt's block
// layout (Q8_0 and Q4_0 bit-identical to ggml's reference quantizers).
func Quantize(dt backend.DType, vals []float32, cols int) ([]byte, error) {
	if cols <= 0 || len(vals)%cols != 0 || cols%dt.BlockSize() != 0 {
		return nil, fmt.Errorf("cannot quantize %d values in rows of %d to %s (block %d)", len(vals), cols, dt, dt.BlockSize())
	}
	out := make([]byte, len(vals)/dt.BlockSize()*dt.BlockBytes())
	var err error
	switch dt {
	case backend.Q8_0:
		err = quant.QuantizeQ8_0(out, vals)
	case backend.Q4_0:
		err = quant.QuantizeQ4_0(out, vals)
	case backend.NF4:
		err = quant.QuantizeNF4(out, vals)
	case backend.F16:
		err = quant.EncodeF16(out, vals)
	case backend.F32:
		err = quant.EncodeF32(out, vals)
	default:
		err = fmt.Errorf("no quantizer for %s", dt)
	}
	return out, err
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
