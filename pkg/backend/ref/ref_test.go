package ref

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
)

// Tolerances. ref accumulates in float64 and rounds once, so forward results
// are within a few float32 ulps of the float64 truth; gradients are compared
// with central differences whose own error is far below these.
const (
	tolForward = 2e-6
	tolGrad    = 2e-5
)

var dtypes = []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4}

// TestF16Decode decodes every binary16 value through Embed and compares with the definition.
func TestF16Decode(t *testing.T) {
	b := New()
	raw := make([]byte, 2<<16)
	for h := range 1 << 16 {
		raw[2*h], raw[2*h+1] = byte(h), byte(h>>8)
	}
	w, err := b.FromBytes(backend.F16, []int{1, 1 << 16}, raw)
	must(t, err)
	out := zeros(t, b, 1, 1<<16)
	must(t, b.Embed(out, w, upI32(t, b, []int32{0}, 1)))
	for h, v := range readF32(t, b, out) {
		got, want := float64(v), half64(uint16(h))
		if math.IsNaN(want) != math.IsNaN(got) || (!math.IsNaN(want) && (got != want || math.Signbit(got) != math.Signbit(want))) {
			t.Fatalf("f16 %#04x = %v, want %v", h, got, want)
		}
	}
}

func TestDequantKnownBlocks(t *testing.T) {
	// Q8_0: d = 0.5 (0x3800), q = 0, 1, -2, 127, -128, ...
	q8 := make([]byte, 34)
	q8[0], q8[1] = 0x00, 0x38
	q8[3], q8[4], q8[5], q8[6] = 1, 0xfe, 127, 0x80
	// Q4_0: d = 2 (0x4000); byte 0 = 0xF0: value 0 = 2*(0-8) = -16, value 16 = 2*(15-8) = 14.
	q4 := make([]byte, 18)
	q4[1] = 0x40
	q4[2] = 0xf0
	for j := 3; j < 18; j++ {
		q4[j] = 0x88 // zeros
	}
	// NF4: absmax 2; byte 0 = 0xF0: value 0 = code 0 * 2 = -2, value 1 = code 15 * 2 = 2; code 7 is 0.
	nf := make([]byte, 36)
	nf[3] = 0x40 // 2.0f = 0x40000000
	nf[4] = 0xf0
	for j := 5; j < 36; j++ {
		nf[j] = 0x77
	}
	cases := []struct {
		dt   backend.DType
		raw  []byte
		cols int
		want map[int]float32
	}{
		{backend.Q8_0, q8, 32, map[int]float32{0: 0, 1: 0.5, 2: -1, 3: 63.5, 4: -64, 31: 0}},
		{backend.Q4_0, q4, 32, map[int]float32{0: -16, 16: 14, 1: 0, 31: 0}},
		{backend.NF4, nf, 64, map[int]float32{0: -2, 1: 2, 2: 0, 63: 0}},
	}
	b := New()
	for _, c := range cases {
		w, err := b.FromBytes(c.dt, []int{1, c.cols}, c.raw)
		must(t, err)
		out := zeros(t, b, 1, c.cols)
		must(t, b.Embed(out, w, upI32(t, b, []int32{0}, 1)))
		got := readF32(t, b, out)
		for j, want := range c.want {
			if got[j] != want {
				t.Errorf("%v value %d = %v, want %v", c.dt, j, got[j], want)
			}
		}
	}
}

// TestEmbedDequant checks every weight type's decoding against the value-by-value decoder.
func TestEmbedDequant(t *testing.T) {
	r := newRand(1)
	b := New()
	for _, dt := range dtypes {
		rows, cols := 5, 128
		raw := randWeight(r, dt, rows, cols)
		w, err := b.FromBytes(dt, []int{rows, cols}, raw)
		must(t, err)
		ids := []int32{4, 0, 4, 2, 1, 3, 3}
		out := zeros(t, b, len(ids), cols)
		must(t, b.Embed(out, w, upI32(t, b, ids, len(ids))))
		got := readF32(t, b, out)
		table := decode64(dt, raw, rows, cols)
		for i, id := range ids {
			for j := range cols {
				if g, want := got[i*cols+j], table[int(id)*cols+j]; g != want {
					t.Fatalf("%v: embed row %d (id %d) col %d = %v, want %v", dt, i, id, j, g, want)
				}
			}
		}
	}
}

func TestMatMulForward(t *testing.T) {
	r := newRand(2)
	b := New()
	shapes := []struct{ n, in, out int }{{1, 64, 1}, {7, 64, 33}, {33, 192, 7}, {70, 128, 50}}
	for _, dt := range dtypes {
		for _, s := range shapes {
			for _, acc := range []bool{false, true} {
				name := fmt.Sprintf("%v/n%d_in%d_out%d/acc=%v", dt, s.n, s.in, s.out, acc)
				raw := randWeight(r, dt, s.out, s.in)
				w, err := b.FromBytes(dt, []int{s.out, s.in}, raw)
				must(t, err)
				xs := randVec(r, s.n*s.in, 1)
				init := randVec(r, s.n*s.out, 1)
				out := upF32(t, b, init, s.n, s.out)
				must(t, b.MatMul(out, upF32(t, b, xs, s.n, s.in), w, acc))
				want := matmul64(to64(xs), s.n, s.in, to64(decode64(dt, raw, s.out, s.in)), s.out)
				if acc {
					for i := range want {
						want[i] += float64(init[i])
					}
				}
				near(t, name, readF32(t, b, out), want, tolForward)
			}
		}
	}
}

// TestMatMulDX checks dx against d/dx Σ dy∘(x·Wᵀ) by finite differences, for every weight type.
func TestMatMulDX(t *testing.T) {
	r := newRand(3)
	b := New()
	shapes := []struct{ n, in, out int }{{1, 64, 3}, {5, 64, 7}, {3, 128, 9}}
	for _, dt := range dtypes {
		for _, s := range shapes {
			raw := randWeight(r, dt, s.out, s.in)
			w, err := b.FromBytes(dt, []int{s.out, s.in}, raw)
			must(t, err)
			w64 := to64(decode64(dt, raw, s.out, s.in))
			xs, dys := randVec(r, s.n*s.in, 1), randVec(r, s.n*s.out, 1)
			dy64 := to64(dys)
			want := fdGrad(to64(xs), func(x []float64) float64 {
				return dot64(dy64, matmul64(x, s.n, s.in, w64, s.out))
			})
			for _, acc := range []bool{false, true} {
				init := randVec(r, s.n*s.in, 1)
				dx := upF32(t, b, init, s.n, s.in)
				must(t, b.MatMulDX(dx, upF32(t, b, dys, s.n, s.out), w, acc))
				wantAcc := append([]float64(nil), want...)
				if acc {
					for i := range wantAcc {
						wantAcc[i] += float64(init[i])
					}
				}
				near(t, fmt.Sprintf("%v/n%d_in%d_out%d/acc=%v", dt, s.n, s.in, s.out, acc), readF32(t, b, dx), wantAcc, tolGrad)
			}
		}
	}
}

func TestMatMulDW(t *testing.T) {
	r := newRand(4)
	b := New()
	for _, s := range []struct{ n, in, out int }{{1, 1, 1}, {6, 7, 5}, {4, 33, 3}} {
		xs, dys, ws := randVec(r, s.n*s.in, 1), randVec(r, s.n*s.out, 1), randVec(r, s.out*s.in, 1)
		x64, dy64 := to64(xs), to64(dys)
		want := fdGrad(to64(ws), func(w []float64) float64 {
			return dot64(dy64, matmul64(x64, s.n, s.in, w, s.out))
		})
		dw := zeros(t, b, s.out, s.in)
		must(t, b.MatMulDW(dw, upF32(t, b, dys, s.n, s.out), upF32(t, b, xs, s.n, s.in), false))
		name := fmt.Sprintf("n%d_in%d_out%d", s.n, s.in, s.out)
		near(t, name, readF32(t, b, dw), want, tolGrad)
		// accumulate adds a second identical gradient
		must(t, b.MatMulDW(dw, upF32(t, b, dys, s.n, s.out), upF32(t, b, xs, s.n, s.in), true))
		for i := range want {
			want[i] *= 2
		}
		near(t, name+"/acc", readF32(t, b, dw), want, tolGrad)
	}
}

func TestRMSNorm(t *testing.T) {
	r := newRand(5)
	b := New()
	const eps = 1e-5
	for _, s := range []struct{ rows, dim int }{{1, 1}, {3, 7}, {2, 33}} {
		xs, ws, dys := randVec(r, s.rows*s.dim, 2), randVec(r, s.dim, 1), randVec(r, s.rows*s.dim, 1)
		w64, dy64 := to64(ws), to64(dys)
		out := zeros(t, b, s.rows, s.dim)
		x, w := upF32(t, b, xs, s.rows, s.dim), upF32(t, b, ws, s.dim)
		must(t, b.RMSNorm(out, x, w, eps))
		name := fmt.Sprintf("%dx%d", s.rows, s.dim)
		near(t, "forward "+name, readF32(t, b, out), rmsnorm64(to64(xs), w64, s.dim, eps), tolForward)

		want := fdGrad(to64(xs), func(x []float64) float64 { return dot64(dy64, rmsnorm64(x, w64, s.dim, eps)) })
		dx := zeros(t, b, s.rows, s.dim)
		must(t, b.RMSNormBackward(dx, upF32(t, b, dys, s.rows, s.dim), x, w, eps, false))
		near(t, "backward "+name, readF32(t, b, dx), want, tolGrad)
		must(t, b.RMSNormBackward(dx, upF32(t, b, dys, s.rows, s.dim), x, w, eps, true))
		for i := range want {
			want[i] *= 2
		}
		near(t, "backward accumulate "+name, readF32(t, b, dx), want, tolGrad)
	}
}

func TestRoPE(t *testing.T) {
	r := newRand(6)
	b := New()
	cases := []backend.RoPE{
		{Heads: 2, HeadDim: 8, Dims: 8, Theta: 10000, Layout: backend.RoPENormal},
		{Heads: 2, HeadDim: 8, Dims: 8, Theta: 10000, Layout: backend.RoPENeoX},
		{Heads: 3, HeadDim: 6, Dims: 4, Theta: 500000, Layout: backend.RoPENormal},
		{Heads: 1, HeadDim: 10, Dims: 6, Theta: 10000, Layout: backend.RoPENeoX},
	}
	for _, p := range cases {
		rows := 5
		pos := []int32{0, 1, 7, 300, 2}
		xs := randVec(r, rows*p.Heads*p.HeadDim, 1)
		name := fmt.Sprintf("%+v", p)
		x := upF32(t, b, xs, rows, p.Heads*p.HeadDim)
		must(t, b.RoPE(x, upI32(t, b, pos, len(pos)), p, false))
		near(t, "forward "+name, readF32(t, b, x), rope64(to64(xs), pos, p, false), tolForward)

		// The backward pass is the inverse rotation applied to dy.
		dys := randVec(r, len(xs), 1)
		dy64 := to64(dys)
		dy := upF32(t, b, dys, rows, p.Heads*p.HeadDim)
		must(t, b.RoPE(dy, upI32(t, b, pos[:2], 2), p, true)) // pos wraps: row r uses pos[r%2]
		wrapped := []int32{0, 1, 0, 1, 0}
		want := fdGrad(to64(xs), func(x []float64) float64 { return dot64(dy64, rope64(x, wrapped, p, false)) })
		near(t, "inverse "+name, readF32(t, b, dy), want, tolGrad)
	}
	// Published shape of the normal layout: position 1, theta 10000, 4 dims rotates pair 0 by 1 rad
	// and pair 1 by 0.01 rad.
	x := upF32(t, b, []float32{1, 0, 1, 0}, 1, 4)
	must(t, b.RoPE(x, upI32(t, b, []int32{1}, 1), backend.RoPE{Heads: 1, HeadDim: 4, Dims: 4, Theta: 10000}, false))
	near(t, "known angles", readF32(t, b, x), []float64{math.Cos(1), math.Sin(1), math.Cos(0.01), math.Sin(0.01)}, tolForward)
}

func TestAttention(t *testing.T) {
	r := newRand(7)
	b := New()
	cases := []backend.Attention{
		{Batch: 1, QLen: 1, KVLen: 1, KVCap: 1, Heads: 1, KVHeads: 1, HeadDim: 3},
		{Batch: 2, QLen: 5, KVLen: 5, KVCap: 5, Heads: 8, KVHeads: 4, HeadDim: 3},
		{Batch: 2, QLen: 4, KVLen: 4, KVCap: 4, Heads: 3, KVHeads: 1, HeadDim: 5},
		// inference shapes: a cache with spare capacity and queries at an offset
		{Batch: 2, QLen: 2, KVLen: 6, KVCap: 9, Heads: 4, KVHeads: 2, HeadDim: 4, QOffset: 4},
		{Batch: 1, QLen: 3, KVLen: 3, KVCap: 7, Heads: 2, KVHeads: 2, HeadDim: 4, QOffset: 0},
	}
	for _, a := range cases {
		a.Scale = float32(1 / math.Sqrt(float64(a.HeadDim)))
		name := fmt.Sprintf("B%d_Q%d_KV%d/%d_H%d/%d_D%d_off%d", a.Batch, a.QLen, a.KVLen, a.KVCap, a.Heads, a.KVHeads, a.HeadDim, a.QOffset)
		qn, kn := a.Batch*a.QLen*a.Heads*a.HeadDim, a.Batch*a.KVCap*a.KVHeads*a.HeadDim
		qs, ks, vs := randVec(r, qn, 2), randVec(r, kn, 2), randVec(r, kn, 1)
		q := upF32(t, b, qs, a.Batch*a.QLen, a.Heads*a.HeadDim)
		k := upF32(t, b, ks, a.Batch*a.KVCap, a.KVHeads*a.HeadDim)
		v := upF32(t, b, vs, a.Batch*a.KVCap, a.KVHeads*a.HeadDim)
		out := zeros(t, b, a.Batch*a.QLen, a.Heads*a.HeadDim)
		probs := zeros(t, b, a.Batch*a.Heads*a.QLen*a.KVLen)
		must(t, b.Attention(out, probs, q, k, v, a))
		wantOut, wantProbs := attention64(to64(qs), to64(ks), to64(vs), a)
		near(t, "out "+name, readF32(t, b, out), wantOut, tolForward)
		near(t, "probs "+name, readF32(t, b, probs), wantProbs, tolForward)
		out2 := zeros(t, b, a.Batch*a.QLen, a.Heads*a.HeadDim)
		must(t, b.Attention(out2, nil, q, k, v, a))
		near(t, "out without probs "+name, readF32(t, b, out2), wantOut, tolForward)
		if a.QLen != a.KVLen || a.KVCap != a.KVLen || a.QOffset != 0 {
			continue
		}
		douts := randVec(r, qn, 1)
		do64 := to64(douts)
		q64, k64, v64 := to64(qs), to64(ks), to64(vs)
		loss := func(q, k, v []float64) float64 { o, _ := attention64(q, k, v, a); return dot64(do64, o) }
		wantDQ := fdGrad(to64(qs), func(x []float64) float64 { return loss(x, k64, v64) })
		wantDK := fdGrad(to64(ks), func(x []float64) float64 { return loss(q64, x, v64) })
		wantDV := fdGrad(to64(vs), func(x []float64) float64 { return loss(q64, k64, x) })
		dq, dk, dv := zeros(t, b, a.Batch*a.QLen, a.Heads*a.HeadDim), zeros(t, b, a.Batch*a.KVCap, a.KVHeads*a.HeadDim), zeros(t, b, a.Batch*a.KVCap, a.KVHeads*a.HeadDim)
		must(t, b.AttentionBackward(dq, dk, dv, upF32(t, b, douts, a.Batch*a.QLen, a.Heads*a.HeadDim), probs, q, k, v, a))
		near(t, "dq "+name, readF32(t, b, dq), wantDQ, tolGrad)
		near(t, "dk "+name, readF32(t, b, dk), wantDK, tolGrad)
		near(t, "dv "+name, readF32(t, b, dv), wantDV, tolGrad)
	}
}

func TestSwiGLU(t *testing.T) {
	r := newRand(8)
	b := New()
	n := 37
	gs, us, ds := randVec(r, n, 4), randVec(r, n, 2), randVec(r, n, 1)
	out := zeros(t, b, n)
	g, u := upF32(t, b, gs, n), upF32(t, b, us, n)
	must(t, b.SwiGLU(out, g, u))
	want := make([]float64, n)
	for i := range want {
		want[i] = silu64(float64(gs[i])) * float64(us[i])
	}
	near(t, "forward", readF32(t, b, out), want, tolForward)
	d64, g64, u64 := to64(ds), to64(gs), to64(us)
	loss := func(g, u []float64) float64 {
		var s float64
		for i := range g {
			s += d64[i] * silu64(g[i]) * u[i]
		}
		return s
	}
	dg, du := zeros(t, b, n), zeros(t, b, n)
	must(t, b.SwiGLUBackward(dg, du, upF32(t, b, ds, n), g, u))
	near(t, "dgate", readF32(t, b, dg), fdGrad(to64(gs), func(x []float64) float64 { return loss(x, u64) }), tolGrad)
	near(t, "dup", readF32(t, b, du), fdGrad(to64(us), func(x []float64) float64 { return loss(g64, x) }), tolGrad)
}

func TestCrossEntropy(t *testing.T) {
	r := newRand(9)
	b := New()
	n, vocab := 6, 11
	ls := randVec(r, n*vocab, 8)
	ls[3] = 60 // large logits must not overflow
	labels := []int32{3, -100, 0, 10, 5, -100}
	const scale = 0.25
	loss, dl := zeros(t, b, n), zeros(t, b, n, vocab)
	must(t, b.CrossEntropy(loss, dl, upF32(t, b, ls, n, vocab), upI32(t, b, labels, n), upF32(t, b, []float32{scale}, 1)))
	near(t, "loss", readF32(t, b, loss), crossEntropy64(to64(ls), labels, vocab), tolForward)
	want := fdGrad(to64(ls), func(x []float64) float64 {
		var s float64
		for _, l := range crossEntropy64(x, labels, vocab) {
			s += l
		}
		return s * scale
	})
	near(t, "dlogits", readF32(t, b, dl), want, tolGrad)
	// without dlogits
	loss2 := zeros(t, b, n)
	must(t, b.CrossEntropy(loss2, nil, upF32(t, b, ls, n, vocab), upI32(t, b, labels, n), upF32(t, b, []float32{scale}, 1)))
	near(t, "loss without dlogits", readF32(t, b, loss2), crossEntropy64(to64(ls), labels, vocab), tolForward)
}

func TestDropout(t *testing.T) {
	r := newRand(10)
	b := New()
	n, p := 4099, float32(0.3)
	xs, dys := randVec(r, n, 1), randVec(r, n, 1)
	seed := upI32(t, b, []int32{-12345}, 1)
	out := zeros(t, b, n)
	must(t, b.Dropout(out, upF32(t, b, xs, n), seed, 7, p))
	got := readF32(t, b, out)
	kept := 0
	want := make([]float64, n)
	for i := range n {
		if backend.DropoutKeep(uint32(0xffffcfc7), 7, uint32(i), p) { // uint32(int32(-12345))
			want[i] = float64(xs[i]) / (1 - float64(p))
			kept++
		}
	}
	near(t, "forward", got, want, tolForward)
	if frac := float64(kept) / float64(n); math.Abs(frac-0.7) > 0.03 {
		t.Errorf("kept %.3f of elements, want about 0.7", frac)
	}
	// backward: the same mask applied to dy is d/dx Σ dy∘dropout(x)
	dy64 := to64(dys)
	wantDX := fdGrad(to64(xs), func(x []float64) float64 {
		var s float64
		for i := range x {
			if want[i] != 0 {
				s += dy64[i] * x[i] / (1 - float64(p))
			}
		}
		return s
	})
	dx := zeros(t, b, n)
	must(t, b.Dropout(dx, upF32(t, b, dys, n), seed, 7, p))
	near(t, "backward", readF32(t, b, dx), wantDX, tolGrad)
	// p = 0 copies
	must(t, b.Dropout(dx, upF32(t, b, dys, n), seed, 7, 0))
	near(t, "p=0", readF32(t, b, dx), dy64, 0)
	// another stream gives another mask
	must(t, b.Dropout(dx, upF32(t, b, xs, n), seed, 8, p))
	same := 0
	for i, v := range readF32(t, b, dx) {
		if (v == 0) == (got[i] == 0) {
			same++
		}
	}
	if same == n {
		t.Error("streams 7 and 8 gave the same mask")
	}
}

func TestElementwise(t *testing.T) {
	r := newRand(11)
	b := New()
	rows, cols := 7, 33
	n := rows * cols
	as, bs, cs := randVec(r, n, 1), randVec(r, n, 1), randVec(r, cols, 1)
	x, y := upF32(t, b, as, rows, cols), upF32(t, b, bs, rows, cols)

	out := zeros(t, b, rows, cols)
	must(t, b.Mul(out, x, y))
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(as[i] * bs[i])
	}
	near(t, "mul", readF32(t, b, out), want, 0)

	must(t, b.AddScaled(out, x, -0.5))
	for i := range want {
		want[i] = float64(float32(want[i]) + (-0.5)*as[i])
	}
	near(t, "add scaled", readF32(t, b, out), want, 0)

	must(t, b.AddBias(out, upF32(t, b, cs, cols)))
	for i := range want {
		want[i] = float64(float32(want[i]) + cs[i%cols])
	}
	near(t, "add bias", readF32(t, b, out), want, 0)

	sums := upF32(t, b, cs, cols)
	must(t, b.SumRows(sums, x, true))
	wantSums := make([]float64, cols)
	for c := range cols {
		wantSums[c] = float64(cs[c])
		for r := range rows {
			wantSums[c] += float64(as[r*cols+c])
		}
	}
	near(t, "sum rows accumulate", readF32(t, b, sums), wantSums, tolForward)
	must(t, b.SumRows(sums, x, false))
	for c := range cols {
		wantSums[c] -= float64(cs[c])
	}
	near(t, "sum rows", readF32(t, b, sums), wantSums, tolForward)

	must(t, b.Fill(out, 3.5))
	for i := range want {
		want[i] = 3.5
	}
	near(t, "fill", readF32(t, b, out), want, 0)

	must(t, b.Copy(out, 10, x, 5, 20))
	for i := range 20 {
		want[10+i] = float64(as[5+i])
	}
	near(t, "copy with offsets", readF32(t, b, out), want, 0)
	must(t, b.Copy(out, 0, y, 0, -1))
	near(t, "copy all", readF32(t, b, out), to64(bs), 0)

	ss := upF32(t, b, []float32{1}, 1)
	must(t, b.SumSquares(ss, true, x, upF32(t, b, cs, cols)))
	var wantSS float64 = 1
	for _, v := range append(append([]float32(nil), as...), cs...) {
		wantSS += float64(v) * float64(v)
	}
	near(t, "sum squares", readF32(t, b, ss), []float64{wantSS}, tolForward)
}

// TestAdamW follows torch.optim.AdamW's update for two steps, with and without clipping.
func TestAdamW(t *testing.T) {
	r := newRand(12)
	b := New()
	n := 29
	for _, maxNorm := range []float64{0, 0.5} {
		ps, gs := randVec(r, n, 1), randVec(r, n, 1)
		param, grad, m, v := upF32(t, b, ps, n), upF32(t, b, gs, n), zeros(t, b, n), zeros(t, b, n)
		sumsq := zeros(t, b, 1)
		must(t, b.SumSquares(sumsq, false, grad))
		p64, m64, v64 := to64(ps), make([]float64, n), make([]float64, n)
		var norm float64
		for _, g := range gs {
			norm += float64(g) * float64(g)
		}
		norm = math.Sqrt(norm)
		clip := 1.0
		if maxNorm > 0 && maxNorm/(norm+1e-6) < 1 {
			clip = maxNorm / (norm + 1e-6)
		}
		lr, b1, b2, eps, wd := 1e-2, 0.9, 0.999, 1e-8, 0.1
		for step := 1; step <= 2; step++ {
			bc1, bc2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
			sc := []float32{float32(lr), float32(b1), float32(b2), float32(eps), float32(wd), float32(bc1), float32(bc2), float32(maxNorm)}
			must(t, b.AdamW(param, grad, m, v, upF32(t, b, sc, len(sc)), sumsq))
			for i := range p64 {
				g := float64(gs[i]) * clip
				p64[i] *= 1 - float64(float32(lr))*float64(float32(wd))
				m64[i] = float64(float32(b1))*m64[i] + (1-float64(float32(b1)))*g
				v64[i] = float64(float32(b2))*v64[i] + (1-float64(float32(b2)))*g*g
				mh, vh := m64[i]/float64(float32(bc1)), v64[i]/float64(float32(bc2))
				p64[i] -= float64(float32(lr)) * mh / (math.Sqrt(vh) + float64(float32(eps)))
			}
			name := fmt.Sprintf("max_norm %v step %d", maxNorm, step)
			near(t, "param "+name, readF32(t, b, param), p64, 1e-5)
			near(t, "m "+name, readF32(t, b, m), m64, 1e-5)
			near(t, "v "+name, readF32(t, b, v), v64, 1e-5)
		}
	}
}

// TestDeterminism runs the parallel kernels with GOMAXPROCS 1 and 8 and wants identical bits.
func TestDeterminism(t *testing.T) {
	run := func() [][]float32 {
		r := newRand(13)
		b := New()
		var res [][]float32
		n, in, od := 70, 128, 50
		raw := randWeight(r, backend.Q4_0, od, in)
		w, err := b.FromBytes(backend.Q4_0, []int{od, in}, raw)
		must(t, err)
		x := upF32(t, b, randVec(r, n*in, 1), n, in)
		dy := upF32(t, b, randVec(r, n*od, 1), n, od)
		out, dx, dw := zeros(t, b, n, od), zeros(t, b, n, in), zeros(t, b, od, in)
		must(t, b.MatMul(out, x, w, false))
		must(t, b.MatMulDX(dx, dy, w, false))
		must(t, b.MatMulDW(dw, dy, x, false))
		sums := zeros(t, b, in)
		must(t, b.SumRows(sums, x, false))
		a := backend.Attention{Batch: 2, QLen: 33, KVLen: 33, KVCap: 33, Heads: 8, KVHeads: 4, HeadDim: 16, Scale: 0.25}
		q := upF32(t, b, randVec(r, 66*128, 1), 66, 128)
		k := upF32(t, b, randVec(r, 66*64, 1), 66, 64)
		v := upF32(t, b, randVec(r, 66*64, 1), 66, 64)
		ao, probs := zeros(t, b, 66, 128), zeros(t, b, 2*8*33*33)
		must(t, b.Attention(ao, probs, q, k, v, a))
		dq, dk, dv := zeros(t, b, 66, 128), zeros(t, b, 66, 64), zeros(t, b, 66, 64)
		must(t, b.AttentionBackward(dq, dk, dv, ao, probs, q, k, v, a))
		for _, x := range []backend.Tensor{out, dx, dw, sums, ao, probs, dq, dk, dv} {
			res = append(res, readF32(t, b, x))
		}
		return res
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one := run()
	runtime.GOMAXPROCS(8)
	eight := run()
	for i := range one {
		for j := range one[i] {
			if math.Float32bits(one[i][j]) != math.Float32bits(eight[i][j]) {
				t.Fatalf("result %d element %d: %v with GOMAXPROCS=1, %v with 8", i, j, one[i][j], eight[i][j])
			}
		}
	}
}

func TestErrors(t *testing.T) {
	b := New()
	x := zeros(t, b, 3, 4)
	w := zeros(t, b, 5, 6)
	out := zeros(t, b, 3, 5)
	ids := upI32(t, b, []int32{0, 9}, 2)
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"matmul shapes", b.MatMul(out, x, w, false), []string{"matmul", "[3 4]", "[5 6]"}},
		{"matmul dx shapes", b.MatMulDX(x, out, w, false), []string{"matmul dx", "[3 5]", "[5 6]"}},
		{"matmul dw shapes", b.MatMulDW(w, out, x, false), []string{"matmul dw", "[5 6]"}},
		{"embed id", b.Embed(zeros(t, b, 2, 6), w, ids), []string{"embed", "ids[1] = 9"}},
		{"mul lengths", b.Mul(x, x, w), []string{"mul", "[3 4]", "[5 6]"}},
		{"i32 as f32", b.Mul(x, x, ids), []string{"mul", "want f32"}},
		{"rope width", b.RoPE(x, ids, backend.RoPE{Heads: 2, HeadDim: 3, Dims: 2, Theta: 1e4}, false), []string{"rope", "[3 4]"}},
		{"rope dims", b.RoPE(x, ids, backend.RoPE{Heads: 2, HeadDim: 2, Dims: 3, Theta: 1e4}, false), []string{"rope", "even Dims"}},
		{"gqa", b.Attention(x, nil, x, x, x, backend.Attention{Batch: 1, QLen: 3, KVLen: 3, KVCap: 3, Heads: 3, KVHeads: 2, HeadDim: 1}), []string{"attention", "3 heads", "2 kv heads"}},
		{"attention backward offset", b.AttentionBackward(x, x, x, x, x, x, x, x, backend.Attention{Batch: 1, QLen: 1, KVLen: 3, KVCap: 3, Heads: 1, KVHeads: 1, HeadDim: 1}), []string{"attention backward", "QLen == KVLen"}},
		{"dropout p", b.Dropout(x, x, ids, 0, 1), []string{"dropout"}},
		{"cross entropy label", b.CrossEntropy(zeros(t, b, 2), nil, zeros(t, b, 2, 9), ids, zeros(t, b, 1)), []string{"cross entropy", "labels[1] = 9", "-100"}},
		{"copy bounds", b.Copy(x, 10, x, 0, 5), []string{"copy", "out of bounds"}},
		{"adamw scalars", b.AdamW(x, x, x, x, x, x), []string{"adamw", "scalars"}},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(c.err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", c.name, c.err, s)
			}
		}
	}
	// FromBytes is bounded.
	if _, err := b.FromBytes(backend.Q4_0, []int{2, 32}, make([]byte, 35)); err == nil || !strings.Contains(err.Error(), "needs 36 bytes") {
		t.Errorf("short q4_0: %v", err)
	}
	if _, err := b.FromBytes(backend.Q8_0, []int{2, 33}, make([]byte, 68)); err == nil || !strings.Contains(err.Error(), "block size") {
		t.Errorf("unaligned q8_0: %v", err)
	}
	if _, err := b.FromBytes(backend.F32, []int{1 << 30, 1 << 30, 1 << 30}, nil); err == nil {
		t.Error("huge shape accepted")
	}
	if _, err := b.FromBytes(backend.F32, []int{2, -1}, nil); err == nil {
		t.Error("negative dimension accepted")
	}
	if _, err := b.Alloc(backend.Q4_0, 1, 32); err == nil {
		t.Error("alloc of q4_0 accepted")
	}
	// Use after free.
	b.Free(x)
	if err := b.Fill(x, 1); err == nil || !strings.Contains(err.Error(), "after Free") {
		t.Errorf("fill after free: %v", err)
	}
	// Another backend's tensor.
	if err := New().Fill(out, 1); err == nil {
		t.Error("foreign tensor accepted")
	}
}

func TestRecord(t *testing.T) {
	b := New()
	x := upF32(t, b, []float32{1, 2, 3}, 3)
	out := zeros(t, b, 3)
	prog, err := b.Record(func() error { return b.AddScaled(out, x, 2) })
	must(t, err)
	if got := readF32(t, b, out); got[0] != 0 {
		t.Fatalf("Record ran fn: %v", got)
	}
	must(t, prog.Run())
	must(t, b.Write(x, []float32{10, 20, 30}))
	must(t, prog.Run())
	near(t, "replay", readF32(t, b, out), []float64{22, 44, 66}, 0)
	prog.Release()
	if err := prog.Run(); err == nil {
		t.Error("run after release succeeded")
	}
	info := b.Info()
	if info.Name != "cpu" || info.Kind != "cpu" {
		t.Errorf("info = %+v", info)
	}
	if runtime.GOOS == "linux" && info.MemoryBytes == 0 {
		t.Error("no host memory reported on linux")
	}
}

// TestMatMulKernelsAgree checks that every MatMul output equals the plain
// ascending-order float64 sum, whichever blocked kernel produced it (row and
// column remainders of the 2×4 blocking, tile edges).
func TestMatMulKernelsAgree(t *testing.T) {
	r := newRand(14)
	b := New()
	for _, s := range []struct{ n, in, out int }{{1, 5, 9}, {3, 7, 5}, {5, 33, 19}, {67, 9, 35}} {
		xs, ws := randVec(r, s.n*s.in, 1), randVec(r, s.out*s.in, 1)
		out := zeros(t, b, s.n, s.out)
		must(t, b.MatMul(out, upF32(t, b, xs, s.n, s.in), upF32(t, b, ws, s.out, s.in), false))
		got := readF32(t, b, out)
		for i := range s.n {
			for o := range s.out {
				var sum float64
				for k := range s.in {
					sum += float64(xs[i*s.in+k]) * float64(ws[o*s.in+k])
				}
				if got[i*s.out+o] != float32(sum) {
					t.Fatalf("n%d in%d out%d: out[%d,%d] = %v, want %v", s.n, s.in, s.out, i, o, got[i*s.out+o], float32(sum))
				}
			}
		}
	}
}

// TestGradKernelsAgree checks that MatMulDX sums over W's rows and MatMulDW over
// the batch rows in plain ascending order in float64, bit for bit, whatever
// blocked kernel (4 weight rows × 2 dy rows, remainders) produced an element.
func TestGradKernelsAgree(t *testing.T) {
	r := newRand(15)
	b := New()
	for _, s := range []struct{ n, in, out int }{{1, 5, 3}, {3, 7, 5}, {5, 33, 9}, {37, 300, 11}} {
		xs, dys, ws := randVec(r, s.n*s.in, 1), randVec(r, s.n*s.out, 1), randVec(r, s.out*s.in, 1)
		x, dy, w := upF32(t, b, xs, s.n, s.in), upF32(t, b, dys, s.n, s.out), upF32(t, b, ws, s.out, s.in)
		dx, dw := zeros(t, b, s.n, s.in), zeros(t, b, s.out, s.in)
		must(t, b.MatMulDX(dx, dy, w, false))
		must(t, b.MatMulDW(dw, dy, x, false))
		gotDX, gotDW := readF32(t, b, dx), readF32(t, b, dw)
		for i := range s.n {
			for k := range s.in {
				var sum float64
				for o := range s.out {
					sum += float64(dys[i*s.out+o]) * float64(ws[o*s.in+k])
				}
				if gotDX[i*s.in+k] != float32(sum) {
					t.Fatalf("n%d in%d out%d: dx[%d,%d] = %v, want %v", s.n, s.in, s.out, i, k, gotDX[i*s.in+k], float32(sum))
				}
			}
		}
		for o := range s.out {
			for k := range s.in {
				var sum float64
				for i := range s.n {
					sum += float64(dys[i*s.out+o]) * float64(xs[i*s.in+k])
				}
				if gotDW[o*s.in+k] != float32(sum) {
					t.Fatalf("n%d in%d out%d: dw[%d,%d] = %v, want %v", s.n, s.in, s.out, o, k, gotDW[o*s.in+k], float32(sum))
				}
			}
		}
	}
}
