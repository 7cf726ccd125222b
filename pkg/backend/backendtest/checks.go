package backendtest

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/quant"
)

// weightTypes are the storage types a weight may have.
var weightTypes = []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4}

// inDims returns row lengths valid for dt: odd sizes for plain types, small
// and not-power-of-two multiples of the block for quantized ones.
func inDims(dt backend.DType) []int {
	if bs := dt.BlockSize(); bs > 1 {
		return []int{bs, 5 * bs}
	}
	return []int{7, 33, 130}
}

// weight quantizes random data of shape [rows, cols] into dt's storage layout
// with pkg/quant and uploads the same bytes to both backends.
func (k *kit) weight(name string, dt backend.DType, rows, cols int) *dual {
	k.t.Helper()
	src := k.vec(rows*cols, 1)
	raw := make([]byte, rows*dt.RowBytes(cols))
	var err error
	switch dt {
	case backend.F32:
		err = quant.EncodeF32(raw, src)
	case backend.F16:
		err = quant.EncodeF16(raw, src)
	case backend.Q8_0:
		err = quant.QuantizeQ8_0(raw, src)
	case backend.Q4_0:
		err = quant.QuantizeQ4_0(raw, src)
	case backend.NF4:
		err = quant.QuantizeNF4(raw, src)
	default:
		err = fmt.Errorf("no quantizer for %v", dt)
	}
	if err != nil {
		k.t.Fatalf("quantize %s [%d, %d] as %v: %v", name, rows, cols, dt, err)
	}
	return k.raw(name, dt, raw, rows, cols)
}

func checkFill(k *kit) {
	for _, n := range pick(k, []int{1, 33}, []int{1, 7, 33, 4099}) {
		x := k.f32("t", k.vec(n, 1), n)
		k.run("Fill", "", fmt.Sprintf("n=%d v=-2.5", n), []*dual{x}, func(be backend.Backend, s int) error {
			return be.Fill(x.t[s], -2.5)
		})
	}
}

func checkCopy(k *kit) {
	cases := []struct{ dstOff, srcOff, n int }{{0, 0, -1}, {5, 3, 33}, {129, 76, 1}, {0, 40, 37}, {17, 0, 0}}
	for _, c := range cases {
		dst, src := k.f32("dst", k.vec(130, 1), 130), k.f32("src", k.vec(77, 1), 77)
		desc := fmt.Sprintf("f32 dst [130] at %d, src [77] at %d, n=%d", c.dstOff, c.srcOff, c.n)
		k.run("Copy", "", desc, []*dual{dst}, func(be backend.Backend, s int) error {
			return be.Copy(dst.t[s], c.dstOff, src.t[s], c.srcOff, c.n)
		})
	}
	// i32: compare through float32 conversion of small integers (exact).
	dst, src := k.i32("dst", k.ints(130, -1000, 1000), 130), k.i32("src", k.ints(77, -1000, 1000), 77)
	desc := "i32 dst [130] at 5, src [77] at 3, n=33"
	for s := range 2 {
		if err := k.be[s].Copy(dst.t[s], 5, src.t[s], 3, 33); err != nil {
			k.t.Fatalf("Copy %s: %s returned error: %v", desc, sideName(s), err)
		}
	}
	var got [2][]float32
	for s := range 2 {
		v := make([]int32, 130)
		if err := k.be[s].Read(dst.t[s], v); err != nil {
			k.t.Fatalf("Copy %s: %s: Read: %v", desc, sideName(s), err)
		}
		for _, x := range v {
			got[s] = append(got[s], float32(x))
		}
	}
	k.compare("Copy", "", desc, dst, got[test], got[refr])
}

func checkAddScaled(k *kit) {
	for _, n := range pick(k, []int{1, 33}, []int{1, 7, 33, 4099}) {
		for _, sc := range []float32{0.5, -3} {
			out, x := k.f32("out", k.vec(n, 1), n), k.f32("x", k.vec(n, 1), n)
			k.run("AddScaled", "", fmt.Sprintf("n=%d s=%v", n, sc), []*dual{out}, func(be backend.Backend, s int) error {
				return be.AddScaled(out.t[s], x.t[s], sc)
			})
		}
	}
}

func checkMul(k *kit) {
	for _, n := range pick(k, []int{1, 33}, []int{1, 7, 33, 4099}) {
		out, a, b := k.f32("out", k.vec(n, 1), n), k.f32("a", k.vec(n, 2), n), k.f32("b", k.vec(n, 2), n)
		k.run("Mul", "", fmt.Sprintf("n=%d", n), []*dual{out}, func(be backend.Backend, s int) error {
			return be.Mul(out.t[s], a.t[s], b.t[s])
		})
	}
}

var matShapes = [][2]int{{1, 1}, {7, 33}, {130, 7}, {33, 130}}

func checkAddBias(k *kit) {
	for _, sh := range pick(k, matShapes[:2], matShapes) {
		rows, cols := sh[0], sh[1]
		out, b := k.f32("out", k.vec(rows*cols, 1), rows, cols), k.f32("b", k.vec(cols, 1), cols)
		k.run("AddBias", "", fmt.Sprintf("out [%d, %d]", rows, cols), []*dual{out}, func(be backend.Backend, s int) error {
			return be.AddBias(out.t[s], b.t[s])
		})
	}
}

func checkSumRows(k *kit) {
	for _, sh := range pick(k, matShapes[:2], matShapes) {
		for _, acc := range []bool{false, true} {
			rows, cols := sh[0], sh[1]
			out, x := k.f32("out", k.vec(cols, 1), cols), k.f32("x", k.vec(rows*cols, 1), rows, cols)
			k.run("SumRows", "", fmt.Sprintf("x [%d, %d] accumulate=%v", rows, cols, acc), []*dual{out}, func(be backend.Backend, s int) error {
				return be.SumRows(out.t[s], x.t[s], acc)
			})
		}
	}
}

func checkEmbed(k *kit) {
	const vocab = 37
	for _, dt := range weightTypes {
		for _, dim := range inDims(dt) {
			table := k.weight("table", dt, vocab, dim)
			for _, n := range pick(k, []int{7}, []int{1, 7, 33}) {
				ids := k.ints(n, 0, vocab)
				ids[0] = vocab - 1
				if n > 1 {
					ids[1] = 0
				}
				id, out := k.i32("ids", ids, n), k.f32("out", k.vec(n*dim, 1), n, dim)
				k.run("Embed", dt.String(), fmt.Sprintf("%v table [%d, %d], %d ids", dt, vocab, dim, n), []*dual{out}, func(be backend.Backend, s int) error {
					return be.Embed(out.t[s], table.t[s], id.t[s])
				})
			}
		}
	}
}

var normShapes = [][2]int{{1, 7}, {7, 33}, {33, 130}, {2, 1000}}

// normWeight returns RMSNorm weights around 1.
func (k *kit) normWeight(dim int) *dual {
	w := k.vec(dim, 0.5)
	for i := range w {
		w[i] += 1
	}
	return k.f32("w", w, dim)
}

func checkRMSNorm(k *kit) {
	for _, sh := range pick(k, normShapes[:2], normShapes) {
		for _, eps := range []float32{1e-5, 1e-6} {
			rows, dim := sh[0], sh[1]
			out, x, w := k.f32("out", k.vec(rows*dim, 1), rows, dim), k.f32("x", k.vec(rows*dim, 3), rows, dim), k.normWeight(dim)
			k.run("RMSNorm", "", fmt.Sprintf("x [%d, %d] eps=%g", rows, dim, eps), []*dual{out}, func(be backend.Backend, s int) error {
				return be.RMSNorm(out.t[s], x.t[s], w.t[s], eps)
			})
		}
	}
}

func checkRMSNormBackward(k *kit) {
	for _, sh := range pick(k, normShapes[:2], normShapes) {
		for _, acc := range []bool{false, true} {
			rows, dim := sh[0], sh[1]
			dx, dy := k.f32("dx", k.vec(rows*dim, 1), rows, dim), k.f32("dy", k.vec(rows*dim, 1), rows, dim)
			x, w := k.f32("x", k.vec(rows*dim, 3), rows, dim), k.normWeight(dim)
			k.run("RMSNormBackward", "", fmt.Sprintf("x [%d, %d] eps=1e-5 accumulate=%v", rows, dim, acc), []*dual{dx}, func(be backend.Backend, s int) error {
				return be.RMSNormBackward(dx.t[s], dy.t[s], x.t[s], w.t[s], 1e-5, acc)
			})
		}
	}
}

// gemmCases returns (n, in, out, accumulate) cases for a weight type: every
// dimension takes sizes that are not tile multiples, and the last cases span
// several 64-wide tiles in every dimension.
func gemmCases(k *kit, dt backend.DType) [][4]int {
	ins := inDims(dt)
	last := ins[len(ins)-1]
	all := [][4]int{
		{1, ins[0], 7, 0}, {7, ins[1], 33, 0}, {33, ins[0], 130, 1}, {130, ins[1], 1, 0},
		{130, last, 33, 1}, {130, last, 130, 0},
	}
	return pick(k, all[:2], all)
}

func checkMatMul(k *kit) {
	for _, dt := range weightTypes {
		for _, c := range gemmCases(k, dt) {
			n, in, od, acc := c[0], c[1], c[2], c[3] == 1
			w := k.weight("w", dt, od, in)
			x, out := k.f32("x", k.vec(n*in, 1), n, in), k.f32("out", k.vec(n*od, 1), n, od)
			desc := fmt.Sprintf("%v x [%d, %d] · wᵀ [%d, %d] accumulate=%v", dt, n, in, od, in, acc)
			k.run("MatMul", dt.String(), desc, []*dual{out}, func(be backend.Backend, s int) error {
				return be.MatMul(out.t[s], x.t[s], w.t[s], acc)
			})
		}
	}
}

func checkMatMulDX(k *kit) {
	for _, dt := range weightTypes {
		for _, c := range gemmCases(k, dt) {
			n, in, od, acc := c[0], c[1], c[2], c[3] == 1
			w := k.weight("w", dt, od, in)
			dy, dx := k.f32("dy", k.vec(n*od, 1), n, od), k.f32("dx", k.vec(n*in, 1), n, in)
			desc := fmt.Sprintf("%v dy [%d, %d] · w [%d, %d] accumulate=%v", dt, n, od, od, in, acc)
			k.run("MatMulDX", dt.String(), desc, []*dual{dx}, func(be backend.Backend, s int) error {
				return be.MatMulDX(dx.t[s], dy.t[s], w.t[s], acc)
			})
		}
	}
}

func checkMatMulDW(k *kit) {
	cases := [][3]int{{1, 1, 1}, {7, 33, 130}, {130, 7, 33}, {33, 130, 7}, {130, 130, 65}}
	for _, c := range pick(k, cases[:2], cases) {
		for _, acc := range []bool{false, true} {
			n, in, od := c[0], c[1], c[2]
			dy, x := k.f32("dy", k.vec(n*od, 1), n, od), k.f32("x", k.vec(n*in, 1), n, in)
			dw := k.f32("dw", k.vec(od*in, 1), od, in)
			desc := fmt.Sprintf("dyᵀ [%d, %d] · x [%d, %d] accumulate=%v", od, n, n, in, acc)
			k.run("MatMulDW", "", desc, []*dual{dw}, func(be backend.Backend, s int) error {
				return be.MatMulDW(dw.t[s], dy.t[s], x.t[s], acc)
			})
		}
	}
}

func checkRoPE(k *kit) {
	params := []backend.RoPE{
		{Heads: 2, HeadDim: 8, Dims: 8, Theta: 10000, Layout: backend.RoPENormal},
		{Heads: 2, HeadDim: 8, Dims: 8, Theta: 10000, Layout: backend.RoPENeoX},
		{Heads: 3, HeadDim: 6, Dims: 4, Theta: 10000, Layout: backend.RoPENormal},
		{Heads: 3, HeadDim: 10, Dims: 6, Theta: 10000, Layout: backend.RoPENeoX},
		{Heads: 4, HeadDim: 64, Dims: 64, Theta: 500000, Layout: backend.RoPENeoX},
	}
	for _, p := range pick(k, params[:2], params) {
		for _, rows := range pick(k, []int{7}, []int{1, 7, 33}) {
			for _, inverse := range []bool{false, true} {
				npos := rows
				if rows > 1 {
					npos = (rows + 1) / 2 // rows wrap around the positions
				}
				width := p.Heads * p.HeadDim
				x, pos := k.f32("x", k.vec(rows*width, 1), rows, width), k.i32("pos", k.ints(npos, 0, 200), npos)
				layout := map[backend.RoPELayout]string{backend.RoPENormal: "normal", backend.RoPENeoX: "neox"}[p.Layout]
				desc := fmt.Sprintf("%s x [%d, %d] heads=%d head_dim=%d dims=%d theta=%g positions=%d inverse=%v", layout, rows, width, p.Heads, p.HeadDim, p.Dims, p.Theta, npos, inverse)
				k.run("RoPE", "", desc, []*dual{x}, func(be backend.Backend, s int) error {
					return be.RoPE(x.t[s], pos.t[s], p, inverse)
				})
			}
		}
	}
}

func attDesc(a backend.Attention) string {
	return fmt.Sprintf("batch=%d qlen=%d kvlen=%d kvcap=%d heads=%d/%d head_dim=%d qoffset=%d", a.Batch, a.QLen, a.KVLen, a.KVCap, a.Heads, a.KVHeads, a.HeadDim, a.QOffset)
}

// attInputs uploads random q, k, v for a.
func (k *kit) attInputs(a backend.Attention) (q, kk, v *dual) {
	qRows, kvRows := a.Batch*a.QLen, a.Batch*a.KVCap
	q = k.f32("q", k.vec(qRows*a.Heads*a.HeadDim, 2), qRows, a.Heads*a.HeadDim)
	kk = k.f32("k", k.vec(kvRows*a.KVHeads*a.HeadDim, 2), kvRows, a.KVHeads*a.HeadDim)
	v = k.f32("v", k.vec(kvRows*a.KVHeads*a.HeadDim, 1), kvRows, a.KVHeads*a.HeadDim)
	return q, kk, v
}

func withScale(a backend.Attention) backend.Attention {
	a.Scale = float32(1 / math.Sqrt(float64(a.HeadDim)))
	return a
}

func checkAttention(k *kit) {
	cases := []backend.Attention{
		{Batch: 1, QLen: 1, KVLen: 1, KVCap: 1, Heads: 1, KVHeads: 1, HeadDim: 4},
		{Batch: 2, QLen: 7, KVLen: 7, KVCap: 7, Heads: 8, KVHeads: 4, HeadDim: 8},
		{Batch: 1, QLen: 33, KVLen: 33, KVCap: 33, Heads: 4, KVHeads: 1, HeadDim: 16},
		{Batch: 2, QLen: 1, KVLen: 9, KVCap: 16, Heads: 8, KVHeads: 4, HeadDim: 8, QOffset: 8},
		{Batch: 2, QLen: 3, KVLen: 10, KVCap: 12, Heads: 2, KVHeads: 2, HeadDim: 5, QOffset: 7},
		{Batch: 1, QLen: 5, KVLen: 5, KVCap: 130, Heads: 3, KVHeads: 3, HeadDim: 7},
	}
	for _, a := range pick(k, cases[:2], cases) {
		a = withScale(a)
		q, kk, v := k.attInputs(a)
		out := k.f32("out", k.vec(a.Batch*a.QLen*a.Heads*a.HeadDim, 1), a.Batch*a.QLen, a.Heads*a.HeadDim)
		probs := k.f32("probs", k.vec(a.Batch*a.Heads*a.QLen*a.KVLen, 1), a.Batch, a.Heads, a.QLen, a.KVLen)
		k.run("Attention", "", attDesc(a)+" with probs", []*dual{out, probs}, func(be backend.Backend, s int) error {
			return be.Attention(out.t[s], probs.t[s], q.t[s], kk.t[s], v.t[s], a)
		})
		k.run("Attention", "", attDesc(a)+" without probs", []*dual{out}, func(be backend.Backend, s int) error {
			return be.Attention(out.t[s], nil, q.t[s], kk.t[s], v.t[s], a)
		})
	}
}

func checkAttentionBackward(k *kit) {
	cases := []backend.Attention{
		{Batch: 1, QLen: 1, KVLen: 1, KVCap: 1, Heads: 1, KVHeads: 1, HeadDim: 4},
		{Batch: 2, QLen: 7, KVLen: 7, KVCap: 7, Heads: 8, KVHeads: 4, HeadDim: 8},
		{Batch: 1, QLen: 33, KVLen: 33, KVCap: 33, Heads: 4, KVHeads: 1, HeadDim: 16},
		{Batch: 3, QLen: 5, KVLen: 5, KVCap: 5, Heads: 3, KVHeads: 3, HeadDim: 7},
	}
	for _, a := range pick(k, cases[:2], cases) {
		a = withScale(a)
		q, kk, v := k.attInputs(a)
		qRows, kvRows := a.Batch*a.QLen, a.Batch*a.KVCap
		// Both sides get the reference's probabilities, so only the backward op is compared.
		out := k.alloc("out", backend.F32, qRows, a.Heads*a.HeadDim)
		probs := k.alloc("probs", backend.F32, a.Batch, a.Heads, a.QLen, a.KVLen)
		if err := k.be[refr].Attention(out.t[refr], probs.t[refr], q.t[refr], kk.t[refr], v.t[refr], a); err != nil {
			k.t.Fatalf("reference Attention %s: %v", attDesc(a), err)
		}
		k.write(probs, k.read(probs, refr))
		dout := k.f32("dout", k.vec(qRows*a.Heads*a.HeadDim, 1), qRows, a.Heads*a.HeadDim)
		dq := k.f32("dq", k.vec(qRows*a.Heads*a.HeadDim, 1), qRows, a.Heads*a.HeadDim)
		dk := k.f32("dk", k.vec(kvRows*a.KVHeads*a.HeadDim, 1), kvRows, a.KVHeads*a.HeadDim)
		dv := k.f32("dv", k.vec(kvRows*a.KVHeads*a.HeadDim, 1), kvRows, a.KVHeads*a.HeadDim)
		k.run("AttentionBackward", "", attDesc(a), []*dual{dq, dk, dv}, func(be backend.Backend, s int) error {
			return be.AttentionBackward(dq.t[s], dk.t[s], dv.t[s], dout.t[s], probs.t[s], q.t[s], kk.t[s], v.t[s], a)
		})
	}
}

func checkSwiGLU(k *kit) {
	for _, n := range pick(k, []int{1, 33}, []int{1, 7, 33, 4099}) {
		out, g, u := k.f32("out", k.vec(n, 1), n), k.f32("gate", k.vec(n, 8), n), k.f32("up", k.vec(n, 2), n)
		k.run("SwiGLU", "", fmt.Sprintf("n=%d", n), []*dual{out}, func(be backend.Backend, s int) error {
			return be.SwiGLU(out.t[s], g.t[s], u.t[s])
		})
	}
}

func checkSwiGLUBackward(k *kit) {
	for _, n := range pick(k, []int{1, 33}, []int{1, 7, 33, 4099}) {
		dg, du, dout := k.f32("dgate", k.vec(n, 1), n), k.f32("dup", k.vec(n, 1), n), k.f32("dout", k.vec(n, 1), n)
		g, u := k.f32("gate", k.vec(n, 8), n), k.f32("up", k.vec(n, 2), n)
		k.run("SwiGLUBackward", "", fmt.Sprintf("n=%d", n), []*dual{dg, du}, func(be backend.Backend, s int) error {
			return be.SwiGLUBackward(dg.t[s], du.t[s], dout.t[s], g.t[s], u.t[s])
		})
	}
}

func checkDropout(k *kit) {
	for _, n := range pick(k, []int{33}, []int{1, 33, 4099}) {
		for _, p := range []float32{0, 0.1, 0.5} {
			for _, stream := range []uint32{0, 3} {
				seedVal := int32(k.r.Uint32())
				out, x, seed := k.f32("out", k.vec(n, 1), n), k.f32("x", k.vec(n, 1), n), k.i32("seed", []int32{seedVal}, 1)
				desc := fmt.Sprintf("n=%d p=%g seed=%d stream=%d", n, p, seedVal, stream)
				if !k.run("Dropout", "", desc, []*dual{out}, func(be backend.Backend, s int) error {
					return be.Dropout(out.t[s], x.t[s], seed.t[s], stream, p)
				}) {
					continue
				}
				// The mask must be backend.DropoutKeep exactly (x is never zero).
				got := k.read(out, test)
				for i, v := range got {
					keep := p == 0 || backend.DropoutKeep(uint32(seedVal), stream, uint32(i), p)
					if keep != (v != 0) {
						k.t.Errorf("Dropout %s: out[%d] = %v but DropoutKeep(seed, stream, %d, p) = %v: the mask differs from backend.DropoutKeep", desc, i, v, i, keep)
						break
					}
				}
			}
		}
	}
}

func checkCrossEntropy(k *kit) {
	shapes := [][2]int{{1, 1}, {7, 33}, {33, 130}, {5, 1000}}
	for _, sh := range pick(k, shapes[:2], shapes) {
		n, vocab := sh[0], sh[1]
		for _, withGrad := range []bool{true, false} {
			logitsV := k.vec(n*vocab, 5)
			logitsV[k.r.IntN(len(logitsV))] = 50 // a large logit must not overflow
			labelsV := k.ints(n, 0, vocab)
			if n > 1 {
				labelsV[1] = -100
			}
			logits, labels := k.f32("logits", logitsV, n, vocab), k.i32("labels", labelsV, n)
			scale := k.f32("scale", []float32{1 / float32(n)}, 1)
			loss := k.f32("loss", k.vec(n, 1), n)
			outs := []*dual{loss}
			var dl *dual
			if withGrad {
				dl = k.f32("dlogits", k.vec(n*vocab, 1), n, vocab)
				outs = append(outs, dl)
			}
			desc := fmt.Sprintf("logits [%d, %d] dlogits=%v", n, vocab, withGrad)
			k.run("CrossEntropy", "", desc, outs, func(be backend.Backend, s int) error {
				var d backend.Tensor
				if dl != nil {
					d = dl.t[s]
				}
				return be.CrossEntropy(loss.t[s], d, logits.t[s], labels.t[s], scale.t[s])
			})
		}
	}
}

func checkSumSquares(k *kit) {
	sets := [][]int{{1}, {33}, {33, 4099, 7}}
	for _, sizes := range pick(k, sets[:2], sets) {
		for _, acc := range []bool{false, true} {
			xs := make([]*dual, len(sizes))
			for i, n := range sizes {
				xs[i] = k.f32(fmt.Sprintf("xs[%d]", i), k.vec(n, 1), n)
			}
			out := k.f32("out", k.vec(1, 1), 1)
			k.run("SumSquares", "", fmt.Sprintf("sizes %v accumulate=%v", sizes, acc), []*dual{out}, func(be backend.Backend, s int) error {
				ts := make([]backend.Tensor, len(xs))
				for i, x := range xs {
					ts[i] = x.t[s]
				}
				return be.SumSquares(out.t[s], acc, ts...)
			})
		}
	}
}

func checkAdamW(k *kit) {
	for _, n := range pick(k, []int{33}, []int{1, 33, 4099}) {
		for _, maxNorm := range []float32{0, 0.01, 100} {
			gv := k.vec(n, 1)
			var ss float64
			for _, g := range gv {
				ss += float64(g) * float64(g)
			}
			param, grad := k.f32("param", k.vec(n, 1), n), k.f32("grad", gv, n)
			m, v := k.alloc("m", backend.F32, n), k.alloc("v", backend.F32, n)
			sumsq := k.f32("sumsq", []float32{float32(ss)}, 1)
			const lr, b1, b2, eps, wd = 0.05, 0.9, 0.999, 1e-8, 0.1 // large enough that every term shows at 1e-4
			for step := 1; step <= 2; step++ {
				sc := []float32{lr, b1, b2, eps, wd, float32(1 - math.Pow(b1, float64(step))), float32(1 - math.Pow(b2, float64(step))), maxNorm}
				scalars := k.f32("scalars", sc, backend.AdamWScalarsLen)
				desc := fmt.Sprintf("n=%d max_norm=%g step %d", n, maxNorm, step)
				k.run("AdamW", "", desc, []*dual{param, m, v}, func(be backend.Backend, s int) error {
					return be.AdamW(param.t[s], grad.t[s], m.t[s], v.t[s], scalars.t[s], sumsq.t[s])
				})
				// Continue both sides from the reference state so step 2 tests one step.
				for _, d := range []*dual{param, m, v} {
					k.write(d, k.read(d, refr))
				}
			}
		}
	}
}
