package ref

// Independent float64 implementations of the forward operations, written as
// plain loops over the definitions (no shared code with the backend), plus
// helpers shared by the tests.

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// randVec returns n values uniform in [-1, 1) scaled by s, never exactly zero.
func randVec(r *rand.Rand, n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		x := 2*r.Float64() - 1
		if x == 0 {
			x = 0.5
		}
		v[i] = float32(x * s)
	}
	return v
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func upF32(t *testing.T, b backend.Backend, data []float32, shape ...int) backend.Tensor {
	t.Helper()
	x, err := b.Alloc(backend.F32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(x, data); err != nil {
		t.Fatal(err)
	}
	return x
}

func upI32(t *testing.T, b backend.Backend, data []int32, shape ...int) backend.Tensor {
	t.Helper()
	x, err := b.Alloc(backend.I32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(x, data); err != nil {
		t.Fatal(err)
	}
	return x
}

func zeros(t *testing.T, b backend.Backend, shape ...int) backend.Tensor {
	t.Helper()
	x, err := b.Alloc(backend.F32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func readF32(t *testing.T, b backend.Backend, x backend.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Len())
	if err := b.Read(x, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// near fails when |got-want| > tol·max(|want|, rms(want)) for some element.
func near(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var ss float64
	for _, w := range want {
		ss += w * w
	}
	rms := math.Sqrt(ss / float64(max(1, len(want))))
	bad := 0
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= tol*max(math.Abs(want[i]), rms)) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %.9g, want %.9g (diff %.3g, tol %.3g)", what, i, got[i], want[i], d, tol*max(math.Abs(want[i]), rms))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance", what, bad, len(got))
	}
}

// fdGrad returns dL/dx by central differences in float64.
func fdGrad(x []float64, loss func([]float64) float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		orig := x[i]
		h := 1e-6 * max(1, math.Abs(orig))
		x[i] = orig + h
		lp := loss(x)
		x[i] = orig - h
		lm := loss(x)
		x[i] = orig
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

func dot64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// matmul64: y[r][o] = Σ_k x[r][k]·w[o][k].
func matmul64(x []float64, n, in int, w []float64, out int) []float64 {
	y := make([]float64, n*out)
	for r := 0; r < n; r++ {
		for o := 0; o < out; o++ {
			var s float64
			for k := 0; k < in; k++ {
				s += x[r*in+k] * w[o*in+k]
			}
			y[r*out+o] = s
		}
	}
	return y
}

func rmsnorm64(x, w []float64, dim int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r*dim < len(x); r++ {
		var ms float64
		for i := 0; i < dim; i++ {
			ms += x[r*dim+i] * x[r*dim+i]
		}
		ms /= float64(dim)
		for i := 0; i < dim; i++ {
			y[r*dim+i] = x[r*dim+i] / math.Sqrt(ms+eps) * w[i]
		}
	}
	return y
}

// rope64 follows llama.cpp's loop: theta starts at pos and is multiplied by
// base^(-2/dims) for each successive pair.
func rope64(x []float64, pos []int32, p backend.RoPE, inverse bool) []float64 {
	y := append([]float64(nil), x...)
	width := p.Heads * p.HeadDim
	step := math.Pow(float64(p.Theta), -2/float64(p.Dims))
	for r := 0; r*width < len(x); r++ {
		for h := 0; h < p.Heads; h++ {
			theta := float64(pos[r%len(pos)])
			for i := 0; i < p.Dims/2; i++ {
				a, c := h*p.HeadDim+2*i, h*p.HeadDim+2*i+1
				if p.Layout == backend.RoPENeoX {
					a, c = h*p.HeadDim+i, h*p.HeadDim+i+p.Dims/2
				}
				ang := theta
				if inverse {
					ang = -ang
				}
				x0, x1 := x[r*width+a], x[r*width+c]
				y[r*width+a] = x0*math.Cos(ang) - x1*math.Sin(ang)
				y[r*width+c] = x0*math.Sin(ang) + x1*math.Cos(ang)
				theta *= step
			}
		}
	}
	return y
}

// attention64 returns out and probs for the layout documented in backend.Attention.
func attention64(q, k, v []float64, a backend.Attention) (out, probs []float64) {
	D := a.HeadDim
	out = make([]float64, a.Batch*a.QLen*a.Heads*D)
	probs = make([]float64, a.Batch*a.Heads*a.QLen*a.KVLen)
	for b := 0; b < a.Batch; b++ {
		for h := 0; h < a.Heads; h++ {
			kh := h * a.KVHeads / a.Heads
			for i := 0; i < a.QLen; i++ {
				s := make([]float64, a.KVLen)
				m := math.Inf(-1)
				for j := 0; j < a.KVLen; j++ {
					if j > i+a.QOffset {
						s[j] = math.Inf(-1)
						continue
					}
					var d float64
					for e := 0; e < D; e++ {
						d += q[((b*a.QLen+i)*a.Heads+h)*D+e] * k[((b*a.KVCap+j)*a.KVHeads+kh)*D+e]
					}
					s[j] = d * float64(a.Scale)
					m = math.Max(m, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					z += s[j]
				}
				for j := range s {
					pr := s[j] / z
					probs[((b*a.Heads+h)*a.QLen+i)*a.KVLen+j] = pr
					for e := 0; e < D; e++ {
						out[((b*a.QLen+i)*a.Heads+h)*D+e] += pr * v[((b*a.KVCap+j)*a.KVHeads+kh)*D+e]
					}
				}
			}
		}
	}
	return out, probs
}

func silu64(g float64) float64 { return g / (1 + math.Exp(-g)) }

// crossEntropy64 returns the per-row losses (0 for label -100).
func crossEntropy64(logits []float64, labels []int32, vocab int) []float64 {
	loss := make([]float64, len(labels))
	for i, l := range labels {
		if l == -100 {
			continue
		}
		row := logits[i*vocab : (i+1)*vocab]
		var z float64
		for _, v := range row {
			z += math.Exp(v)
		}
		loss[i] = math.Log(z) - row[l]
	}
	return loss
}

// half64 decodes binary16 by its definition.
func half64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

// toHalf encodes v (normal range, no rounding care needed) by truncation.
func toHalf(v float64) uint16 {
	var sign uint16
	if v < 0 {
		sign, v = 0x8000, -v
	}
	fr, e := math.Frexp(v) // v = fr·2^e, fr in [0.5, 1)
	return sign | uint16(e-1+15)<<10 | uint16((fr*2-1)*1024)
}

var nf4Published = [16]float64{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// decode64 dequantizes a [rows, cols] weight value by value from the byte layout.
func decode64(dt backend.DType, raw []byte, rows, cols int) []float32 {
	out := make([]float32, rows*cols)
	rb := dt.RowBytes(cols)
	for r := 0; r < rows; r++ {
		row := raw[r*rb : (r+1)*rb]
		for j := 0; j < cols; j++ {
			var v float64
			switch dt {
			case backend.F32:
				v = float64(math.Float32frombits(binary.LittleEndian.Uint32(row[4*j:])))
			case backend.F16:
				v = half64(binary.LittleEndian.Uint16(row[2*j:]))
			case backend.Q8_0:
				blk := row[(j/32)*34:]
				v = half64(binary.LittleEndian.Uint16(blk)) * float64(int8(blk[2+j%32]))
			case backend.Q4_0:
				blk := row[(j/32)*18:]
				k := j % 32
				nib := blk[2+k%16] & 0x0f
				if k >= 16 {
					nib = blk[2+k%16] >> 4
				}
				v = half64(binary.LittleEndian.Uint16(blk)) * float64(int(nib)-8)
			case backend.NF4:
				blk := row[(j/64)*36:]
				k := j % 64
				nib := (blk[4+k/2] >> (4 * (k % 2))) & 0x0f
				amax := float64(math.Float32frombits(binary.LittleEndian.Uint32(blk)))
				v = float64(float32(nf4Published[nib])) * amax
			}
			out[r*cols+j] = float32(v)
		}
	}
	return out
}

// randWeight returns random storage bytes of a [rows, cols] weight: random
// scales of moderate size and random codes, so every code value occurs.
func randWeight(r *rand.Rand, dt backend.DType, rows, cols int) []byte {
	raw := make([]byte, rows*dt.RowBytes(cols))
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	bb := dt.BlockBytes()
	for off := 0; off < len(raw); off += bb {
		scale := 0.005 + 0.03*r.Float64()
		switch dt {
		case backend.F32:
			binary.LittleEndian.PutUint32(raw[off:], math.Float32bits(float32(2*r.Float64()-1)))
		case backend.F16:
			binary.LittleEndian.PutUint16(raw[off:], toHalf(2*r.Float64()-1+1e-3))
		case backend.Q8_0, backend.Q4_0:
			binary.LittleEndian.PutUint16(raw[off:], toHalf(scale))
		case backend.NF4:
			binary.LittleEndian.PutUint32(raw[off:], math.Float32bits(float32(scale*20)))
		}
	}
	return raw
}
