package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// IgnoreLabel marks a position whose token is not scored (as in PyTorch).
const IgnoreLabel = -100

// Activations holds the inputs, outputs and saved intermediate tensors of one
// forward pass over a [Batch, Seq] block of token ids. With Train set it keeps
// everything Backward needs (per layer) and room for the gradients; without it
// the layers share one set of buffers.
//
// Inputs are tensors so that a recorded backend.Program can be replayed with
// new data: write IDs (and Labels, Seed, LossScale for training) with
// backend.Write before running Forward or the Program.
type Activations struct {
	Batch, Seq int
	Train      bool

	IDs       backend.Tensor // [Batch*Seq] I32 token ids
	Pos       backend.Tensor // [Seq] I32 positions (0..Seq-1 unless a Cache sets them)
	Labels    backend.Tensor // [Batch*Seq] I32 target ids, IgnoreLabel = not scored
	Seed      backend.Tensor // [1] I32 per-step dropout seed
	LossScale backend.Tensor // [1] F32 factor on dlogits (e.g. 1/scored tokens)

	Logits  backend.Tensor // [Batch*Seq, vocab]
	Loss    backend.Tensor // [Batch*Seq] per-position loss (0 where ignored)
	DLogits backend.Tensor // [Batch*Seq, vocab] (Train only)

	layers []layerActs
	x      []backend.Tensor // residual stream entering layer l; x[Layers] enters the final norm
	xn     backend.Tensor   // final normed stream
	g      *grads           // backward scratch (Train only)
	// scratch holds [n, r] LoRA temporaries per distinct rank r, and (keyed by
	// -in) [n, in] temporaries for the LoRA input gradients.
	scratch map[int]backend.Tensor
	owned   []backend.Tensor
	be      backend.Backend
}

type layerActs struct {
	h          backend.Tensor // residual after attention
	xn1, xn2   backend.Tensor // normed inputs of attention and FFN
	q, k, v    backend.Tensor // projections (q, k after RoPE)
	probs      backend.Tensor // attention probabilities (Train only)
	att        backend.Tensor // attention output before o
	gate, up   backend.Tensor
	act        backend.Tensor // silu(gate)*up
	lora       [NumModules]loraActs
	sharedFrom int // index of the layer whose buffers this one reuses (inference)
}

type loraActs struct {
	xd backend.Tensor // dropped-out input (nil when no dropout)
	t  backend.Tensor // Scale·(xd·Aᵀ), [n, rank]
}

// Rows is Batch*Seq.
func (a *Activations) Rows() int { return a.Batch * a.Seq }

// NewActivations allocates the tensors for forward passes over [batch, seq]
// ids. Attach adapters (SetLoRA) before calling it: the LoRA buffers are sized
// for the adapters present now.
func (m *Model) NewActivations(batch, seq int, train bool) (*Activations, error) {
	if batch <= 0 || seq <= 0 {
		return nil, fmt.Errorf("activations: batch %d and seq %d must be positive", batch, seq)
	}
	c := m.Config
	n := batch * seq
	a := &Activations{Batch: batch, Seq: seq, Train: train, be: m.be}
	var err error
	alloc := func(dt backend.DType, shape ...int) backend.Tensor {
		if err != nil {
			return nil
		}
		var t backend.Tensor
		t, err = m.be.Alloc(dt, shape...)
		if err == nil {
			a.owned = append(a.owned, t)
		}
		return t
	}
	a.IDs = alloc(backend.I32, n)
	a.Pos = alloc(backend.I32, seq)
	a.Labels = alloc(backend.I32, n)
	a.Seed = alloc(backend.I32, 1)
	a.LossScale = alloc(backend.F32, 1)
	a.Logits = alloc(backend.F32, n, c.Vocab)
	a.Loss = alloc(backend.F32, n)
	if train {
		a.DLogits = alloc(backend.F32, n, c.Vocab)
	}
	a.layers = make([]layerActs, c.Layers)
	a.x = make([]backend.Tensor, c.Layers+1)
	if train {
		for l := range a.x {
			a.x[l] = alloc(backend.F32, n, c.Dim)
		}
	} else {
		// Inference: the stream alternates between two buffers.
		x0, x1 := alloc(backend.F32, n, c.Dim), alloc(backend.F32, n, c.Dim)
		for l := range a.x {
			a.x[l] = x0
			if l%2 == 1 {
				a.x[l] = x1
			}
		}
	}
	a.xn = alloc(backend.F32, n, c.Dim)
	for l := range a.layers {
		la := &a.layers[l]
		if !train && l > 0 {
			*la = a.layers[0]
			la.lora = [NumModules]loraActs{}
			la.sharedFrom = 0
		} else {
			la.h = alloc(backend.F32, n, c.Dim)
			la.xn1 = alloc(backend.F32, n, c.Dim)
			la.xn2 = alloc(backend.F32, n, c.Dim)
			la.q = alloc(backend.F32, n, c.QDim())
			la.k = alloc(backend.F32, n, c.KVDim())
			la.v = alloc(backend.F32, n, c.KVDim())
			la.att = alloc(backend.F32, n, c.QDim())
			la.gate = alloc(backend.F32, n, c.FFN)
			la.up = alloc(backend.F32, n, c.FFN)
			la.act = alloc(backend.F32, n, c.FFN)
			if train {
				la.probs = alloc(backend.F32, batch*c.Heads*seq*seq)
			}
		}
		for mod, lin := range m.Layers[l].Linear {
			if lin.LoRA == nil {
				continue
			}
			la.lora[mod].t = alloc(backend.F32, n, lin.LoRA.Rank)
			if train && lin.LoRA.Dropout > 0 {
				la.lora[mod].xd = alloc(backend.F32, n, lin.In)
			}
		}
	}
	a.scratch = map[int]backend.Tensor{}
	for l := range m.Layers {
		for _, lin := range m.Layers[l].Linear {
			if lo := lin.LoRA; lo != nil {
				if a.scratch[lo.Rank] == nil {
					a.scratch[lo.Rank] = alloc(backend.F32, n, lo.Rank)
				}
				if train && a.scratch[-lin.In] == nil {
					a.scratch[-lin.In] = alloc(backend.F32, n, lin.In)
				}
			}
		}
	}
	if train {
		a.g = m.newGrads(n, alloc)
	}
	if err != nil {
		a.Free()
		return nil, fmt.Errorf("activations for batch %d × seq %d: %w", batch, seq, err)
	}
	pos := make([]int32, seq)
	for i := range pos {
		pos[i] = int32(i)
	}
	if err := errors.Join(m.be.Write(a.Pos, pos), m.be.Fill(a.LossScale, 1)); err != nil {
		a.Free()
		return nil, err
	}
	return a, nil
}

// Free releases every tensor of a.
func (a *Activations) Free() {
	for _, t := range a.owned {
		a.be.Free(t)
	}
	a.owned = nil
}

// Cache holds keys and values of earlier positions for incremental decoding.
type Cache struct {
	K, V       []backend.Tensor // per layer [Batch*Cap, KVDim]
	Batch, Cap int
	Len        int // positions filled
	be         backend.Backend
}

// NewCache allocates a KV cache for batch sequences of up to capacity positions.
func (m *Model) NewCache(batch, capacity int) (*Cache, error) {
	if batch <= 0 || capacity <= 0 {
		return nil, fmt.Errorf("kv cache: batch %d and capacity %d must be positive", batch, capacity)
	}
	c := &Cache{Batch: batch, Cap: capacity, be: m.be}
	for range m.Config.Layers {
		k, err := m.be.Alloc(backend.F32, batch*capacity, m.Config.KVDim())
		if err != nil {
			c.Free()
			return nil, fmt.Errorf("kv cache (%d × %d positions): %w", batch, capacity, err)
		}
		c.K = append(c.K, k)
		v, err := m.be.Alloc(backend.F32, batch*capacity, m.Config.KVDim())
		if err != nil {
			c.Free()
			return nil, fmt.Errorf("kv cache (%d × %d positions): %w", batch, capacity, err)
		}
		c.V = append(c.V, v)
	}
	return c, nil
}

// Free releases the cache's tensors.
func (c *Cache) Free() {
	for _, t := range append(c.K, c.V...) {
		c.be.Free(t)
	}
	c.K, c.V = nil, nil
}

// Forward runs the model over a.IDs and leaves the logits in a.Logits. With a
// cache, the ids continue the cached sequences (positions cache.Len onward),
// their keys and values are appended, and cache.Len advances; a must then be
// an inference Activations whose Batch equals the cache's.
func (m *Model) Forward(a *Activations, cache *Cache) error {
	be := m.be
	c := m.Config
	kvLen, kvCap, qOff := a.Seq, a.Seq, 0
	if cache != nil {
		if a.Train || a.Batch != cache.Batch {
			return fmt.Errorf("forward: a kv cache needs inference activations of batch %d (have batch %d, train %v)", cache.Batch, a.Batch, a.Train)
		}
		if cache.Len+a.Seq > cache.Cap {
			return fmt.Errorf("forward: %d positions exceed the kv cache capacity %d (raise the context size)", cache.Len+a.Seq, cache.Cap)
		}
		pos := make([]int32, a.Seq)
		for i := range pos {
			pos[i] = int32(cache.Len + i)
		}
		if err := be.Write(a.Pos, pos); err != nil {
			return err
		}
		kvLen, kvCap, qOff = cache.Len+a.Seq, cache.Cap, cache.Len
	}
	rope := backend.RoPE{Heads: c.Heads, HeadDim: c.HeadDim, Dims: c.RoPEDims, Theta: c.RoPETheta, Layout: c.RoPELayout}
	ropeK := rope
	ropeK.Heads = c.KVHeads
	att := backend.Attention{Batch: a.Batch, QLen: a.Seq, KVLen: kvLen, KVCap: kvCap,
		Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim, QOffset: qOff,
		Scale: attnScale(c)}

	if err := be.Embed(a.x[0], m.Embed, a.IDs); err != nil {
		return fmt.Errorf("forward: embed: %w", err)
	}
	for l := range m.Layers {
		L := &m.Layers[l]
		la := &a.layers[l]
		x, next := a.x[l], a.x[l+1]
		step := func(what string, err error) error {
			if err != nil {
				return fmt.Errorf("forward: layer %d %s: %w", l, what, err)
			}
			return nil
		}
		if err := step("attention norm", be.RMSNorm(la.xn1, x, L.AttnNorm, c.RMSEps)); err != nil {
			return err
		}
		for i, mod := range []Module{Q, K, V} {
			out := [3]backend.Tensor{la.q, la.k, la.v}[i]
			if err := step(mod.String(), m.linear(a, l, mod, out, la.xn1, false)); err != nil {
				return err
			}
			if L.Bias[i] != nil {
				if err := step(mod.String()+" bias", be.AddBias(out, L.Bias[i])); err != nil {
					return err
				}
			}
		}
		if err := step("rope", errors.Join(be.RoPE(la.q, a.Pos, rope, false), be.RoPE(la.k, a.Pos, ropeK, false))); err != nil {
			return err
		}
		k, v := la.k, la.v
		if cache != nil {
			kv := c.KVDim()
			for b := 0; b < a.Batch; b++ {
				dst := (b*cache.Cap + cache.Len) * kv
				src := b * a.Seq * kv
				if err := step("kv cache", errors.Join(
					be.Copy(cache.K[l], dst, la.k, src, a.Seq*kv),
					be.Copy(cache.V[l], dst, la.v, src, a.Seq*kv))); err != nil {
					return err
				}
			}
			k, v = cache.K[l], cache.V[l]
		}
		if err := step("attention", be.Attention(la.att, la.probs, la.q, k, v, att)); err != nil {
			return err
		}
		// h = x + o(att)
		if err := step("residual", be.Copy(la.h, 0, x, 0, -1)); err != nil {
			return err
		}
		if err := step("o_proj", m.linear(a, l, O, la.h, la.att, true)); err != nil {
			return err
		}
		if err := step("ffn norm", be.RMSNorm(la.xn2, la.h, L.FFNNorm, c.RMSEps)); err != nil {
			return err
		}
		if err := step("gate_proj", m.linear(a, l, Gate, la.gate, la.xn2, false)); err != nil {
			return err
		}
		if err := step("up_proj", m.linear(a, l, Up, la.up, la.xn2, false)); err != nil {
			return err
		}
		if err := step("swiglu", be.SwiGLU(la.act, la.gate, la.up)); err != nil {
			return err
		}
		// next = h + down(act)
		if err := step("residual", be.Copy(next, 0, la.h, 0, -1)); err != nil {
			return err
		}
		if err := step("down_proj", m.linear(a, l, Down, next, la.act, true)); err != nil {
			return err
		}
	}
	if err := be.RMSNorm(a.xn, a.x[c.Layers], m.Norm, c.RMSEps); err != nil {
		return fmt.Errorf("forward: final norm: %w", err)
	}
	if err := be.MatMul(a.Logits, a.xn, m.Output, false); err != nil {
		return fmt.Errorf("forward: lm head: %w", err)
	}
	if cache != nil {
		cache.Len += a.Seq
	}
	return nil
}

// stream is the dropout stream id of a module in a layer.
func stream(layer int, mod Module) uint32 { return uint32(layer*int(NumModules) + int(mod)) }

// linear computes out (+)= x·Wᵀ + Scale·(drop(x)·Aᵀ)·Bᵀ for module mod of layer l.
func (m *Model) linear(a *Activations, l int, mod Module, out, x backend.Tensor, accumulate bool) error {
	be := m.be
	lin := m.Layers[l].Linear[mod]
	if err := be.MatMul(out, x, lin.W, accumulate); err != nil {
		return err
	}
	lo := lin.LoRA
	if lo == nil {
		return nil
	}
	la := &a.layers[l].lora[mod]
	if la.t == nil {
		return fmt.Errorf("lora on layer %d %v was attached after the activations were made", l, mod)
	}
	in := x
	if a.Train && lo.Dropout > 0 {
		if err := be.Dropout(la.xd, x, a.Seed, stream(l, mod), lo.Dropout); err != nil {
			return err
		}
		in = la.xd
	}
	tmp, err := a.rankScratch(lo.Rank)
	if err != nil {
		return err
	}
	if err := be.MatMul(tmp, in, lo.A, false); err != nil {
		return err
	}
	if err := be.Fill(la.t, 0); err != nil {
		return err
	}
	if err := be.AddScaled(la.t, tmp, lo.Scale); err != nil {
		return err
	}
	return be.MatMul(out, la.t, lo.B, true)
}

// rankScratch returns the [n, r] scratch tensor allocated for rank r.
func (a *Activations) rankScratch(r int) (backend.Tensor, error) {
	if t := a.scratch[r]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("no scratch for lora rank %d: attach adapters before making the activations", r)
}

// Loss computes per-position cross-entropy of a.Logits against a.Labels into
// a.Loss and, for training activations, dlogits (times a.LossScale) into a.DLogits.
func (m *Model) Loss(a *Activations) error {
	var dl backend.Tensor
	if a.Train {
		dl = a.DLogits
	}
	if err := m.be.CrossEntropy(a.Loss, dl, a.Logits, a.Labels, a.LossScale); err != nil {
		return fmt.Errorf("loss: %w", err)
	}
	return nil
}

func attnScale(c Config) float32 { return float32(1 / math.Sqrt(float64(c.HeadDim))) }
