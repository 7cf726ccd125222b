package model

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
)

// grads is the backward pass's scratch: gradients flowing through one layer at a time.
type grads struct {
	dx, dxn    backend.Tensor // [n, dim]
	dq, datt   backend.Tensor // [n, qdim]
	dk, dv     backend.Tensor // [n, kvdim]
	dgate, dup backend.Tensor // [n, ffn]
	dact       backend.Tensor // [n, ffn]
	dt         map[int]backend.Tensor
}

func (m *Model) newGrads(n int, alloc func(backend.DType, ...int) backend.Tensor) *grads {
	c := m.Config
	g := &grads{
		dx: alloc(backend.F32, n, c.Dim), dxn: alloc(backend.F32, n, c.Dim),
		dq: alloc(backend.F32, n, c.QDim()), datt: alloc(backend.F32, n, c.QDim()),
		dk: alloc(backend.F32, n, c.KVDim()), dv: alloc(backend.F32, n, c.KVDim()),
		dgate: alloc(backend.F32, n, c.FFN), dup: alloc(backend.F32, n, c.FFN), dact: alloc(backend.F32, n, c.FFN),
		dt: map[int]backend.Tensor{},
	}
	for l := range m.Layers {
		for _, lin := range m.Layers[l].Linear {
			if lo := lin.LoRA; lo != nil && g.dt[lo.Rank] == nil {
				g.dt[lo.Rank] = alloc(backend.F32, n, lo.Rank)
			}
		}
	}
	return g
}

// Backward propagates a.DLogits (from Loss) back through the model computed by
// the last Forward(a, nil) and accumulates the gradients of every LoRA A and B
// that has GradA/GradB tensors. The frozen weights get no gradients, but the
// input gradient flows through every layer (quantized ones included, via
// MatMulDX), so adapters in early layers learn.
func (m *Model) Backward(a *Activations) error {
	if !a.Train || a.g == nil {
		return fmt.Errorf("backward: activations were made without train")
	}
	be := m.be
	c := m.Config
	g := a.g
	rope := backend.RoPE{Heads: c.Heads, HeadDim: c.HeadDim, Dims: c.RoPEDims, Theta: c.RoPETheta, Layout: c.RoPELayout}
	ropeK := rope
	ropeK.Heads = c.KVHeads
	att := backend.Attention{Batch: a.Batch, QLen: a.Seq, KVLen: a.Seq, KVCap: a.Seq,
		Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim, Scale: attnScale(c)}

	if err := be.MatMulDX(g.dxn, a.DLogits, m.Output, false); err != nil {
		return fmt.Errorf("backward: lm head: %w", err)
	}
	if err := be.RMSNormBackward(g.dx, g.dxn, a.x[c.Layers], m.Norm, c.RMSEps, false); err != nil {
		return fmt.Errorf("backward: final norm: %w", err)
	}
	for l := len(m.Layers) - 1; l >= 0; l-- {
		L := &m.Layers[l]
		la := &a.layers[l]
		step := func(what string, err error) error {
			if err != nil {
				return fmt.Errorf("backward: layer %d %s: %w", l, what, err)
			}
			return nil
		}
		// g.dx holds d x[l+1]; x[l+1] = h + down(act), so d h starts as g.dx.
		if err := step("down_proj", m.linearBackward(a, l, Down, g.dact, g.dx, la.act, false)); err != nil {
			return err
		}
		if err := step("swiglu", be.SwiGLUBackward(g.dgate, g.dup, g.dact, la.gate, la.up)); err != nil {
			return err
		}
		if err := step("gate_proj", m.linearBackward(a, l, Gate, g.dxn, g.dgate, la.xn2, false)); err != nil {
			return err
		}
		if err := step("up_proj", m.linearBackward(a, l, Up, g.dxn, g.dup, la.xn2, true)); err != nil {
			return err
		}
		if err := step("ffn norm", be.RMSNormBackward(g.dx, g.dxn, la.h, L.FFNNorm, c.RMSEps, true)); err != nil {
			return err
		}
		// g.dx holds d h; h = x + o(att).
		if err := step("o_proj", m.linearBackward(a, l, O, g.datt, g.dx, la.att, false)); err != nil {
			return err
		}
		if err := step("attention", be.AttentionBackward(g.dq, g.dk, g.dv, g.datt, la.probs, la.q, la.k, la.v, att)); err != nil {
			return err
		}
		if err := step("rope", be.RoPE(g.dq, a.Pos, rope, true)); err != nil {
			return err
		}
		if err := step("rope", be.RoPE(g.dk, a.Pos, ropeK, true)); err != nil {
			return err
		}
		if err := step("q_proj", m.linearBackward(a, l, Q, g.dxn, g.dq, la.xn1, false)); err != nil {
			return err
		}
		if err := step("k_proj", m.linearBackward(a, l, K, g.dxn, g.dk, la.xn1, true)); err != nil {
			return err
		}
		if err := step("v_proj", m.linearBackward(a, l, V, g.dxn, g.dv, la.xn1, true)); err != nil {
			return err
		}
		if err := step("attention norm", be.RMSNormBackward(g.dx, g.dxn, a.x[l], L.AttnNorm, c.RMSEps, true)); err != nil {
			return err
		}
	}
	return nil
}

// linearBackward: dx (+)= dy·W + (LoRA path), and the LoRA gradients
// GradB += dyᵀ·t, GradA += (Scale·dy·B)ᵀ·drop(x).
func (m *Model) linearBackward(a *Activations, l int, mod Module, dx, dy, x backend.Tensor, accumulate bool) error {
	be := m.be
	lin := m.Layers[l].Linear[mod]
	if err := be.MatMulDX(dx, dy, lin.W, accumulate); err != nil {
		return err
	}
	lo := lin.LoRA
	if lo == nil {
		return nil
	}
	la := &a.layers[l].lora[mod]
	tmp, err := a.rankScratch(lo.Rank)
	if err != nil {
		return err
	}
	dt := a.g.dt[lo.Rank]
	din := a.scratch[-lin.In]
	if la.t == nil || dt == nil || din == nil {
		return fmt.Errorf("lora on layer %d %v was attached after the activations were made", l, mod)
	}
	if err := be.MatMulDX(tmp, dy, lo.B, false); err != nil { // d t = dy·B
		return err
	}
	if lo.GradB != nil {
		if err := be.MatMulDW(lo.GradB, dy, la.t, true); err != nil {
			return err
		}
	}
	if err := be.Fill(dt, 0); err != nil {
		return err
	}
	if err := be.AddScaled(dt, tmp, lo.Scale); err != nil { // d (xd·Aᵀ) = Scale·dy·B
		return err
	}
	in := x
	if la.xd != nil {
		in = la.xd
	}
	if lo.GradA != nil {
		if err := be.MatMulDW(lo.GradA, dt, in, true); err != nil {
			return err
		}
	}
	if err := be.MatMulDX(din, dt, lo.A, false); err != nil {
		return err
	}
	if la.xd != nil {
		// The dropped input is no longer needed this step: reuse it for the
		// masked gradient (Dropout with the same seed and stream is its backward).
		if err := be.Dropout(la.xd, din, a.Seed, stream(l, mod), lo.Dropout); err != nil {
			return err
		}
		din = la.xd
	}
	return be.AddScaled(dx, din, 1)
}
