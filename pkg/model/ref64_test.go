package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/quant"
)

// ref64 is an independent float64 LLaMA forward pass written with plain loops
// over weights read straight from a GGUF file (not through Load).
type ref64 struct {
	c      Config
	emb    [][]float64
	norm   []float64
	out    [][]float64
	layers []ref64Layer
}

type ref64Layer struct {
	attnNorm, ffnNorm []float64
	w                 [NumModules][][]float64
	bias              [3][]float64
	lora              [NumModules]*ref64LoRA
}

type ref64LoRA struct {
	a, b    [][]float64 // [r][in], [out][r]
	scale   float64
	dropout float64
}

func matrix64(t *testing.T, f *gguf.File, name string) [][]float64 {
	t.Helper()
	ti, ok := f.Tensor(name)
	if !ok {
		t.Fatalf("tensor %s missing", name)
	}
	v, err := f.TensorFloat32(ti)
	if err != nil {
		t.Fatal(err)
	}
	sh := ti.Shape()
	cols := sh[len(sh)-1]
	rows := len(v) / cols
	m := make([][]float64, rows)
	for r := range m {
		m[r] = make([]float64, cols)
		for c := range m[r] {
			m[r][c] = float64(v[r*cols+c])
		}
	}
	return m
}

func newRef64(t *testing.T, path string) *ref64 {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := ConfigFromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	r := &ref64{c: c}
	r.emb = matrix64(t, f, "token_embd.weight")
	r.norm = matrix64(t, f, "output_norm.weight")[0]
	if _, ok := f.Tensor("output.weight"); ok {
		r.out = matrix64(t, f, "output.weight")
	} else {
		r.out = r.emb
	}
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		var L ref64Layer
		L.attnNorm = matrix64(t, f, p+"attn_norm.weight")[0]
		L.ffnNorm = matrix64(t, f, p+"ffn_norm.weight")[0]
		for m := Module(0); m < NumModules; m++ {
			L.w[m] = matrix64(t, f, p+m.GGUFName()+".weight")
			if m <= V {
				if _, ok := f.Tensor(p + m.GGUFName() + ".bias"); ok {
					L.bias[m] = matrix64(t, f, p+m.GGUFName()+".bias")[0]
				}
			}
		}
		r.layers = append(r.layers, L)
	}
	return r
}

func rmsnorm64(x, w []float64, eps float64) []float64 {
	ss := 0.0
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i] * s * w[i]
	}
	return out
}

func matvec64(w [][]float64, x []float64) []float64 {
	out := make([]float64, len(w))
	for r, row := range w {
		s := 0.0
		for c, v := range row {
			s += v * x[c]
		}
		out[r] = s
	}
	return out
}

// lin applies module m of layer l to the rows xs (row index base for the dropout counter).
func (r *ref64) lin(l int, m Module, xs [][]float64, rowBase int, seed uint32) [][]float64 {
	L := &r.layers[l]
	out := make([][]float64, len(xs))
	for i, x := range xs {
		y := matvec64(L.w[m], x)
		if lo := L.lora[m]; lo != nil {
			xd := x
			if lo.dropout > 0 {
				xd = make([]float64, len(x))
				for c := range x {
					if backend.DropoutKeep(seed, stream(l, m), uint32((rowBase+i)*len(x)+c), float32(lo.dropout)) {
						xd[c] = x[c] / (1 - float64(float32(lo.dropout)))
					}
				}
			}
			t := matvec64(lo.a, xd)
			u := matvec64(lo.b, t)
			for k := range y {
				y[k] += lo.scale * u[k]
			}
		}
		if m <= V && L.bias[m] != nil {
			for k := range y {
				y[k] += L.bias[m][k]
			}
		}
		out[i] = y
	}
	return out
}

func (r *ref64) rope(x []float64, heads, pos int) {
	c := r.c
	for h := 0; h < heads; h++ {
		v := x[h*c.HeadDim : (h+1)*c.HeadDim]
		for i := 0; i < c.RoPEDims/2; i++ {
			theta := float64(pos) * math.Pow(float64(c.RoPETheta), -2*float64(i)/float64(c.RoPEDims))
			a, b := 2*i, 2*i+1
			if c.RoPELayout == backend.RoPENeoX {
				a, b = i, i+c.RoPEDims/2
			}
			cs, sn := math.Cos(theta), math.Sin(theta)
			v[a], v[b] = v[a]*cs-v[b]*sn, v[a]*sn+v[b]*cs
		}
	}
}

// forward returns the logits of every position of one sequence; rowBase is the
// sequence's first row in its batch (for dropout counters), seed the dropout seed.
func (r *ref64) forward(ids []int32, rowBase int, seed uint32) [][]float64 {
	c := r.c
	n := len(ids)
	xs := make([][]float64, n)
	for i, id := range ids {
		xs[i] = append([]float64(nil), r.emb[id]...)
	}
	eps := float64(c.RMSEps)
	group := c.Heads / c.KVHeads
	for l := range r.layers {
		L := &r.layers[l]
		xn := make([][]float64, n)
		for i := range xs {
			xn[i] = rmsnorm64(xs[i], L.attnNorm, eps)
		}
		q := r.lin(l, Q, xn, rowBase, seed)
		k := r.lin(l, K, xn, rowBase, seed)
		v := r.lin(l, V, xn, rowBase, seed)
		for i := 0; i < n; i++ {
			r.rope(q[i], c.Heads, i)
			r.rope(k[i], c.KVHeads, i)
		}
		att := make([][]float64, n)
		for i := 0; i < n; i++ {
			att[i] = make([]float64, c.QDim())
			for h := 0; h < c.Heads; h++ {
				kh := h / group
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := 0; j <= i; j++ {
					s := 0.0
					for d := 0; d < c.HeadDim; d++ {
						s += q[i][h*c.HeadDim+d] * k[j][kh*c.HeadDim+d]
					}
					sc[j] = s / math.Sqrt(float64(c.HeadDim))
					mx = math.Max(mx, sc[j])
				}
				sum := 0.0
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := range sc {
					for d := 0; d < c.HeadDim; d++ {
						att[i][h*c.HeadDim+d] += sc[j] / sum * v[j][kh*c.HeadDim+d]
					}
				}
			}
		}
		o := r.lin(l, O, att, rowBase, seed)
		for i := range xs {
			for d := range xs[i] {
				xs[i][d] += o[i][d]
			}
			xn[i] = rmsnorm64(xs[i], L.ffnNorm, eps)
		}
		g := r.lin(l, Gate, xn, rowBase, seed)
		u := r.lin(l, Up, xn, rowBase, seed)
		for i := range g {
			for d := range g[i] {
				g[i][d] = g[i][d] / (1 + math.Exp(-g[i][d])) * u[i][d]
			}
		}
		dn := r.lin(l, Down, g, rowBase, seed)
		for i := range xs {
			for d := range xs[i] {
				xs[i][d] += dn[i][d]
			}
		}
	}
	logits := make([][]float64, n)
	for i := range xs {
		logits[i] = matvec64(r.out, rmsnorm64(xs[i], r.norm, eps))
	}
	return logits
}

// nll is -log softmax(logits)[label].
func nll64(logits []float64, label int32) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, v)
	}
	s := 0.0
	for _, v := range logits {
		s += math.Exp(v - mx)
	}
	return math.Log(s) + mx - logits[label]
}

// synthOptions shape a random tiny llama written to a GGUF file.
type synthOptions struct {
	arch                        string
	dim, layers, heads, kv, ffn int
	vocab                       int
	typ                         gguf.GGMLType // type of the linear weights
	bias, tied                  bool
	ropeDims                    int
	seed                        uint64
}

func synthModel(t *testing.T, o synthOptions) string {
	t.Helper()
	if o.arch == "" {
		o.arch = ArchLlama
	}
	rng := rand.New(rand.NewPCG(o.seed, 7))
	hd := o.dim / o.heads
	if o.ropeDims == 0 {
		o.ropeDims = hd
	}
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue(o.arch)},
		{Key: o.arch + ".embedding_length", Value: gguf.MustValue(uint32(o.dim))},
		{Key: o.arch + ".block_count", Value: gguf.MustValue(uint32(o.layers))},
		{Key: o.arch + ".feed_forward_length", Value: gguf.MustValue(uint32(o.ffn))},
		{Key: o.arch + ".attention.head_count", Value: gguf.MustValue(uint32(o.heads))},
		{Key: o.arch + ".attention.head_count_kv", Value: gguf.MustValue(uint32(o.kv))},
		{Key: o.arch + ".rope.dimension_count", Value: gguf.MustValue(uint32(o.ropeDims))},
		{Key: o.arch + ".rope.freq_base", Value: gguf.MustValue(float32(10000))},
		{Key: o.arch + ".attention.layer_norm_rms_epsilon", Value: gguf.MustValue(float32(1e-5))},
		{Key: o.arch + ".context_length", Value: gguf.MustValue(uint32(64))},
	}
	var ts []gguf.WriteTensor
	add := func(name string, shape []int, typ gguf.GGMLType, scale, offset float64) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(offset + scale*(2*rng.Float64()-1))
		}
		if typ == gguf.Q4_1 || typ == gguf.Q6_K {
			ts = append(ts, rawBlocks(t, name, shape, typ, rng))
			return
		}
		wt, err := gguf.NewTensor(name, shape, v, typ)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, wt)
	}
	c := Config{Dim: o.dim, Heads: o.heads, KVHeads: o.kv, HeadDim: hd, FFN: o.ffn}
	add("token_embd.weight", []int{o.vocab, o.dim}, gguf.F32, 1, 0)
	for l := 0; l < o.layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", []int{o.dim}, gguf.F32, 0.2, 1)
		add(p+"ffn_norm.weight", []int{o.dim}, gguf.F32, 0.2, 1)
		for m := Module(0); m < NumModules; m++ {
			out, in := c.Shape(m)
			add(p+m.GGUFName()+".weight", []int{out, in}, o.typ, 1/math.Sqrt(float64(in))*1.5, 0)
			if o.bias && m <= V {
				add(p+m.GGUFName()+".bias", []int{out}, gguf.F32, 0.3, 0)
			}
		}
	}
	add("output_norm.weight", []int{o.dim}, gguf.F32, 0.2, 1)
	if !o.tied {
		add("output.weight", []int{o.vocab, o.dim}, gguf.F32, 1/math.Sqrt(float64(o.dim)), 0)
	}
	path := filepath.Join(t.TempDir(), "synth.gguf")
	if err := gguf.Write(path, kv, ts); err != nil {
		t.Fatal(err)
	}
	return path
}

// sharedData returns ../shared/data/<rel> from the repository root, skipping the test when absent.
func sharedData(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test asset %s absent (%v): fetch ../shared/data to run this test", p, err)
	}
	return p
}

// rawBlocks builds a tensor of random Q4_1 or Q6_K blocks with moderate
// scales (types pkg/gguf reads but does not write).
func rawBlocks(t *testing.T, name string, shape []int, typ gguf.GGMLType, rng *rand.Rand) gguf.WriteTensor {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	blocks := n / typ.BlockSize()
	data := make([]byte, blocks*typ.BlockBytes())
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	f16 := func(b []byte, v float32) { binary.LittleEndian.PutUint16(b, quant.F32ToF16(v)) }
	for b := 0; b < blocks; b++ {
		blk := data[b*typ.BlockBytes() : (b+1)*typ.BlockBytes()]
		switch typ {
		case gguf.Q4_1: // d, m, 16 bytes of nibbles: value = d*q + m
			f16(blk[0:], float32(0.01+0.02*rng.Float64()))
			f16(blk[2:], float32(-0.15+0.05*rng.Float64()))
		case gguf.Q6_K: // ql[128], qh[64], scales[16] int8, d
			for j := 192; j < 208; j++ {
				blk[j] = byte(int8(rng.IntN(41) - 20))
			}
			f16(blk[208:], float32(0.0005+0.0005*rng.Float64()))
		}
	}
	wt := gguf.WriteTensor{Name: name, Type: typ, Data: data, Dims: make([]uint64, len(shape))}
	for i, d := range shape {
		wt.Dims[len(shape)-1-i] = uint64(d)
	}
	return wt
}
