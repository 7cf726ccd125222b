package ref

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// Embed: out[i, :] = dequant(table[ids[i], :]).
func (b *Backend) Embed(outT, tableT, idsT backend.Tensor) error {
	const op = "embed"
	out, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	table, err := b.get(op, "table", tableT)
	if err != nil {
		return err
	}
	if !isWeight(table.dt) {
		return fmt.Errorf("%s: table %v has dtype %v: want f32, f16, q8_0, q4_0 or nf4", op, table.shape, table.dt)
	}
	ids, err := b.getI32(op, "ids", idsT)
	if err != nil {
		return err
	}
	dim := table.cols
	if out.cols != dim || out.rows != ids.n {
		return fmt.Errorf("%s: out %v for ids %v from table %v: want out [%d, %d]", op, out.shape, ids.shape, table.shape, ids.n, dim)
	}
	for i, id := range ids.i {
		if id < 0 || int(id) >= table.rows {
			return fmt.Errorf("%s: ids[%d] = %d is outside the table's %d rows", op, i, id, table.rows)
		}
	}
	parallel(ids.n, int64(out.n), func() func(int) {
		return func(i int) {
			dst := out.f[i*dim : (i+1)*dim]
			row := table.rowSeg(int(ids.i[i]), 0, dim, dst)
			copy(dst, row) // no-op for quantized tables, which decode into dst
		}
	})
	return nil
}

// rmsScale returns 1/sqrt(mean(x²)+eps) in float64.
func rmsScale(x []float32, eps float32) float64 {
	return 1 / math.Sqrt(dot(x, x)/float64(len(x))+float64(eps))
}

func (b *Backend) normArgs(op string, xs []string, ts []backend.Tensor, wT backend.Tensor) ([]*tensor, *tensor, error) {
	out := make([]*tensor, len(ts))
	for i, x := range ts {
		t, err := b.getF32(op, xs[i], x)
		if err != nil {
			return nil, nil, err
		}
		if i > 0 && (t.n != out[0].n || t.cols != out[0].cols) {
			return nil, nil, fmt.Errorf("%s: %s %v and %s %v differ in shape", op, xs[0], out[0].shape, xs[i], t.shape)
		}
		out[i] = t
	}
	w, err := b.getF32(op, "w", wT)
	if err != nil {
		return nil, nil, err
	}
	if w.n != out[0].cols {
		return nil, nil, fmt.Errorf("%s: w %v for x %v: want %d elements (x's last dimension)", op, w.shape, out[0].shape, out[0].cols)
	}
	return out, w, nil
}

// RMSNorm: out[r] = x[r] / sqrt(mean(x[r]²) + eps) * w.
func (b *Backend) RMSNorm(outT, xT, wT backend.Tensor, eps float32) error {
	ts, w, err := b.normArgs("rms norm", []string{"out", "x"}, []backend.Tensor{outT, xT}, wT)
	if err != nil {
		return err
	}
	out, x, dim := ts[0], ts[1], ts[1].cols
	parallel(x.rows, int64(x.n), func() func(int) {
		return func(r int) {
			xr := x.f[r*dim : (r+1)*dim]
			s := rmsScale(xr, eps)
			dst := out.f[r*dim : (r+1)*dim]
			for i, v := range xr {
				dst[i] = float32(float64(v) * s * float64(w.f[i]))
			}
		}
	})
	return nil
}

// RMSNormBackward: with s = 1/sqrt(mean(x²)+eps),
// dx_i = s·w_i·dy_i − s³/D · x_i · Σ_k dy_k·w_k·x_k.
func (b *Backend) RMSNormBackward(dxT, dyT, xT, wT backend.Tensor, eps float32, accumulate bool) error {
	ts, w, err := b.normArgs("rms norm backward", []string{"dx", "dy", "x"}, []backend.Tensor{dxT, dyT, xT}, wT)
	if err != nil {
		return err
	}
	dx, dy, x, dim := ts[0], ts[1], ts[2], ts[2].cols
	parallel(x.rows, 3*int64(x.n), func() func(int) {
		acc := make([]float64, dim)
		return func(r int) {
			xr, dyr := x.f[r*dim:(r+1)*dim], dy.f[r*dim:(r+1)*dim]
			s := rmsScale(xr, eps)
			var g float64
			for i, v := range xr {
				g += float64(dyr[i]) * float64(w.f[i]) * float64(v)
			}
			c := s * s * s / float64(dim) * g
			for i, v := range xr {
				acc[i] = s*float64(w.f[i])*float64(dyr[i]) - c*float64(v)
			}
			store(dx.f[r*dim:(r+1)*dim], acc, accumulate)
		}
	})
	return nil
}

// RoPE rotates x in place. Pair i (i < Dims/2) rotates by pos·Theta^(-2i/Dims),
// computed in float64; RoPENormal pairs dims (2i, 2i+1), RoPENeoX pairs (i, i+Dims/2).
func (b *Backend) RoPE(xT, posT backend.Tensor, p backend.RoPE, inverse bool) error {
	const op = "rope"
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	pos, err := b.getI32(op, "pos", posT)
	if err != nil {
		return err
	}
	if p.Heads <= 0 || p.HeadDim <= 0 || p.Dims <= 0 || p.Dims > p.HeadDim || p.Dims%2 != 0 || !(p.Theta > 0) {
		return fmt.Errorf("%s: parameters %+v: want Heads, HeadDim > 0, an even Dims <= HeadDim and Theta > 0", op, p)
	}
	if p.Layout != backend.RoPENormal && p.Layout != backend.RoPENeoX {
		return fmt.Errorf("%s: unknown layout %d", op, p.Layout)
	}
	width := p.Heads * p.HeadDim
	if x.cols != width {
		return fmt.Errorf("%s: x %v: want rows of Heads*HeadDim = %d*%d = %d", op, x.shape, p.Heads, p.HeadDim, width)
	}
	half := p.Dims / 2
	parallel(x.rows, int64(x.n)*8, func() func(int) {
		cs := make([]float64, 2*half)
		return func(r int) {
			position := float64(pos.i[r%pos.n])
			for i := range half {
				ang := position * math.Pow(float64(p.Theta), -2*float64(i)/float64(p.Dims))
				sin, cos := math.Sincos(ang)
				if inverse {
					sin = -sin
				}
				cs[2*i], cs[2*i+1] = cos, sin
			}
			row := x.f[r*width : (r+1)*width]
			for h := range p.Heads {
				head := row[h*p.HeadDim : (h+1)*p.HeadDim]
				for i := range half {
					a, c := 2*i, 2*i+1
					if p.Layout == backend.RoPENeoX {
						a, c = i, i+half
					}
					x0, x1 := float64(head[a]), float64(head[c])
					cos, sin := cs[2*i], cs[2*i+1]
					head[a] = float32(x0*cos - x1*sin)
					head[c] = float32(x0*sin + x1*cos)
				}
			}
		}
	})
	return nil
}

// attentionArgs validates the tensors and parameters of Attention.
func (b *Backend) attentionArgs(op string, a backend.Attention, names []string, ts ...backend.Tensor) ([]*tensor, error) {
	if err := backend.CheckAttention(op, a, names, ts...); err != nil {
		return nil, err
	}
	out := make([]*tensor, len(ts))
	for i, x := range ts {
		if x == nil && names[i] == "probs" {
			continue
		}
		t, err := b.getF32(op, names[i], x)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// Attention: grouped-query causal attention with a materialized softmax per
// (batch, head); query head h reads kv head h/(Heads/KVHeads).
func (b *Backend) Attention(outT, probsT, qT, kT, vT backend.Tensor, a backend.Attention) error {
	const op = "attention"
	ts, err := b.attentionArgs(op, a, []string{"out", "probs", "q", "k", "v"}, outT, probsT, qT, kT, vT)
	if err != nil {
		return err
	}
	out, probs, q, k, v := ts[0], ts[1], ts[2], ts[3], ts[4]
	D, group := a.HeadDim, a.Heads/a.KVHeads
	qW, kvW := a.Heads*D, a.KVHeads*D
	work := int64(a.Batch) * int64(a.Heads) * int64(a.QLen) * int64(a.KVLen) * int64(D) * 2
	parallel(a.Batch*a.Heads, work, func() func(int) {
		p := make([]float64, a.KVLen)
		acc := make([]float64, D)
		return func(job int) {
			bi, h := job/a.Heads, job%a.Heads
			kh := h / group
			for i := range a.QLen {
				qi := q.f[(bi*a.QLen+i)*qW+h*D:][:D]
				last := min(i+a.QOffset, a.KVLen-1)
				m := math.Inf(-1)
				for j := 0; j <= last; j++ {
					kj := k.f[(bi*a.KVCap+j)*kvW+kh*D:][:D]
					p[j] = float64(a.Scale) * dot(qi, kj)
					m = max(m, p[j])
				}
				var sum float64
				for j := 0; j <= last; j++ {
					p[j] = math.Exp(p[j] - m)
					sum += p[j]
				}
				clear(acc)
				for j := 0; j <= last; j++ {
					p[j] /= sum
					axpy(acc, p[j], v.f[(bi*a.KVCap+j)*kvW+kh*D:][:D])
				}
				store(out.f[(bi*a.QLen+i)*qW+h*D:][:D], acc, false)
				if probs != nil {
					row := probs.f[((bi*a.Heads+h)*a.QLen+i)*a.KVLen:][:a.KVLen]
					for j := range row {
						if j <= last {
							row[j] = float32(p[j])
						} else {
							row[j] = 0
						}
					}
				}
			}
		}
	})
	return nil
}

// AttentionBackward: with P the saved probabilities, dV = Pᵀ·dO,
// dP = dO·Vᵀ, dS = P∘(dP − rowsum(P∘dP)), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
// One job per (batch, kv head) owns dk and dv of that head and sums over its
// query heads in ascending order, then over queries in ascending order.
func (b *Backend) AttentionBackward(dqT, dkT, dvT, doutT, probsT, qT, kT, vT backend.Tensor, a backend.Attention) error {
	const op = "attention backward"
	if a.QLen != a.KVLen || a.KVCap != a.KVLen || a.QOffset != 0 {
		return fmt.Errorf("%s: parameters %+v: training attention needs QLen == KVLen == KVCap and QOffset == 0", op, a)
	}
	if probsT == nil {
		return fmt.Errorf("%s: probs is nil: run Attention with a probs tensor first", op)
	}
	ts, err := b.attentionArgs(op, a, []string{"dq", "dk", "dv", "dout", "probs", "q", "k", "v"}, dqT, dkT, dvT, doutT, probsT, qT, kT, vT)
	if err != nil {
		return err
	}
	dq, dk, dv, dout, probs, q, k, v := ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6], ts[7]
	T, D, group := a.QLen, a.HeadDim, a.Heads/a.KVHeads
	qW, kvW := a.Heads*D, a.KVHeads*D
	work := int64(a.Batch) * int64(a.Heads) * int64(T) * int64(T) * int64(D) * 4
	parallel(a.Batch*a.KVHeads, work, func() func(int) {
		dS := make([]float64, T)
		dqAcc := make([]float64, D)
		dkAcc := make([]float64, T*D)
		dvAcc := make([]float64, T*D)
		return func(job int) {
			bi, kh := job/a.KVHeads, job%a.KVHeads
			clear(dkAcc)
			clear(dvAcc)
			for h := kh * group; h < (kh+1)*group; h++ {
				for i := range T {
					prow := probs.f[((bi*a.Heads+h)*T+i)*T:][:T]
					doi := dout.f[(bi*T+i)*qW+h*D:][:D]
					qi := q.f[(bi*T+i)*qW+h*D:][:D]
					var rowsum float64
					for j := 0; j <= i; j++ {
						dS[j] = dot(doi, v.f[(bi*T+j)*kvW+kh*D:][:D])
						rowsum += float64(prow[j]) * dS[j]
					}
					clear(dqAcc)
					for j := 0; j <= i; j++ {
						pj := float64(prow[j])
						ds := pj * (dS[j] - rowsum) * float64(a.Scale)
						axpy(dqAcc, ds, k.f[(bi*T+j)*kvW+kh*D:][:D])
						axpy(dkAcc[j*D:(j+1)*D], ds, qi)
						axpy(dvAcc[j*D:(j+1)*D], pj, doi)
					}
					store(dq.f[(bi*T+i)*qW+h*D:][:D], dqAcc, false)
				}
			}
			for j := range T {
				store(dk.f[(bi*T+j)*kvW+kh*D:][:D], dkAcc[j*D:(j+1)*D], false)
				store(dv.f[(bi*T+j)*kvW+kh*D:][:D], dvAcc[j*D:(j+1)*D], false)
			}
		}
	})
	return nil
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// SwiGLU: out = silu(gate) * up.
func (b *Backend) SwiGLU(outT, gateT, upT backend.Tensor) error {
	ts, err := b.sameLen("swiglu", []string{"out", "gate", "up"}, outT, gateT, upT)
	if err != nil {
		return err
	}
	out, gate, up := ts[0].f, ts[1].f, ts[2].f
	elementwise(len(out), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := float64(gate[i])
			out[i] = float32(g * sigmoid(g) * float64(up[i]))
		}
	})
	return nil
}

// SwiGLUBackward: dup = dout·silu(g); dgate = dout·up·σ(g)·(1 + g·(1−σ(g))).
func (b *Backend) SwiGLUBackward(dgateT, dupT, doutT, gateT, upT backend.Tensor) error {
	ts, err := b.sameLen("swiglu backward", []string{"dgate", "dup", "dout", "gate", "up"}, dgateT, dupT, doutT, gateT, upT)
	if err != nil {
		return err
	}
	dgate, dup, dout, gate, up := ts[0].f, ts[1].f, ts[2].f, ts[3].f, ts[4].f
	elementwise(len(dout), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g, d := float64(gate[i]), float64(dout[i])
			s := sigmoid(g)
			dgate[i] = float32(d * float64(up[i]) * s * (1 + g*(1-s)))
			dup[i] = float32(d * g * s)
		}
	})
	return nil
}

// Dropout: out[i] = x[i] * (1/(1-p)) when backend.DropoutKeep(seed, stream, i, p),
// else 0. The scale 1/(1-p) is computed once in float32. p == 0 copies x.
func (b *Backend) Dropout(outT, xT, seedT backend.Tensor, stream uint32, p float32) error {
	const op = "dropout"
	ts, err := b.sameLen(op, []string{"out", "x"}, outT, xT)
	if err != nil {
		return err
	}
	seedt, err := b.getI32(op, "seed", seedT)
	if err != nil {
		return err
	}
	if seedt.n != 1 {
		return fmt.Errorf("%s: seed %v: want one i32 element", op, seedt.shape)
	}
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("%s: p = %v: want 0 <= p < 1", op, p)
	}
	out, x := ts[0].f, ts[1].f
	if p == 0 {
		copy(out, x)
		return nil
	}
	seed := uint32(seedt.i[0])
	scale := 1 / (1 - p)
	elementwise(len(out), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if backend.DropoutKeep(seed, stream, uint32(i), p) {
				out[i] = x[i] * scale
			} else {
				out[i] = 0
			}
		}
	})
	return nil
}
