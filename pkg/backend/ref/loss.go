package ref

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// IgnoreLabel marks a label that contributes no loss and no gradient.
const IgnoreLabel = -100

// CrossEntropy: loss[i] = logsumexp(logits[i]) − logits[i][label] (fused,
// max-subtracted, float64) and dlogits[i] = (softmax − onehot)·scale[0].
func (b *Backend) CrossEntropy(lossT, dlogitsT, logitsT, labelsT, scaleT backend.Tensor) error {
	const op = "cross entropy"
	loss, err := b.getF32(op, "loss", lossT)
	if err != nil {
		return err
	}
	logits, err := b.getF32(op, "logits", logitsT)
	if err != nil {
		return err
	}
	labels, err := b.getI32(op, "labels", labelsT)
	if err != nil {
		return err
	}
	scale, err := b.getF32(op, "scale", scaleT)
	if err != nil {
		return err
	}
	n, vocab := logits.rows, logits.cols
	if loss.n != n || labels.n != n || scale.n != 1 {
		return fmt.Errorf("%s: logits %v, labels %v, loss %v, scale %v: want labels and loss of %d elements and scale of 1", op, logits.shape, labels.shape, loss.shape, scale.shape, n)
	}
	var dl *tensor
	if dlogitsT != nil {
		if dl, err = b.getF32(op, "dlogits", dlogitsT); err != nil {
			return err
		}
		if dl.n != logits.n || dl.cols != vocab {
			return fmt.Errorf("%s: dlogits %v and logits %v differ in shape", op, dl.shape, logits.shape)
		}
	}
	for i, l := range labels.i {
		if l != IgnoreLabel && (l < 0 || int(l) >= vocab) {
			return fmt.Errorf("%s: labels[%d] = %d is outside the vocabulary of %d (use -100 to ignore a position)", op, i, l, vocab)
		}
	}
	s := float64(scale.f[0])
	parallel(n, 3*int64(logits.n), func() func(int) {
		e := make([]float64, vocab)
		return func(i int) {
			row := logits.f[i*vocab : (i+1)*vocab]
			label := labels.i[i]
			if label == IgnoreLabel {
				loss.f[i] = 0
				if dl != nil {
					clear(dl.f[i*vocab : (i+1)*vocab])
				}
				return
			}
			m := math.Inf(-1)
			for _, v := range row {
				m = max(m, float64(v))
			}
			var sum float64
			for c, v := range row {
				e[c] = math.Exp(float64(v) - m)
				sum += e[c]
			}
			loss.f[i] = float32(m + math.Log(sum) - float64(row[label]))
			if dl != nil {
				d := dl.f[i*vocab : (i+1)*vocab]
				inv := s / sum
				for c := range d {
					d[c] = float32(e[c] * inv)
				}
				d[label] = float32((e[label]/sum - 1) * s)
			}
		}
	})
	return nil
}

// SumSquares: out[0] (+)= Σ x², over xs in argument order and each x in
// element order, accumulated in one float64.
func (b *Backend) SumSquares(outT backend.Tensor, accumulate bool, xs ...backend.Tensor) error {
	const op = "sum squares"
	out, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	ts := make([]*tensor, len(xs))
	for i, x := range xs {
		if ts[i], err = b.getF32(op, fmt.Sprintf("xs[%d]", i), x); err != nil {
			return err
		}
	}
	var sum float64
	for _, t := range ts {
		for _, v := range t.f {
			sum += float64(v) * float64(v)
		}
	}
	if accumulate {
		out.f[0] += float32(sum)
	} else {
		out.f[0] = float32(sum)
	}
	return nil
}

// AdamW updates param in place (PyTorch AdamW semantics, decoupled weight decay),
// computing each element in float64 and storing param, m and v as float32.
func (b *Backend) AdamW(paramT, gradT, mT, vT, scalarsT, sumsqT backend.Tensor) error {
	const op = "adamw"
	ts, err := b.sameLen(op, []string{"param", "grad", "m", "v"}, paramT, gradT, mT, vT)
	if err != nil {
		return err
	}
	sc, err := b.getF32(op, "scalars", scalarsT)
	if err != nil {
		return err
	}
	if sc.n != backend.AdamWScalarsLen {
		return fmt.Errorf("%s: scalars %v: want %d elements (see backend.AdamWScalarsLen)", op, sc.shape, backend.AdamWScalarsLen)
	}
	sumsq, err := b.getF32(op, "sumsq", sumsqT)
	if err != nil {
		return err
	}
	var s [backend.AdamWScalarsLen]float64
	for i, v := range sc.f {
		s[i] = float64(v)
	}
	lr, b1, b2, eps, wd, bc1, bc2, maxNorm := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
	clip := 1.0
	if maxNorm > 0 {
		clip = min(1, maxNorm/(math.Sqrt(float64(sumsq.f[0]))+1e-6))
	}
	param, grad, m, v := ts[0].f, ts[1].f, ts[2].f, ts[3].f
	elementwise(len(param), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g := float64(grad[i]) * clip
			p := float64(param[i])
			p -= lr * wd * p
			mi := b1*float64(m[i]) + (1-b1)*g
			vi := b2*float64(v[i]) + (1-b2)*g*g
			p -= lr * (mi / bc1) / (math.Sqrt(vi/bc2) + eps)
			param[i], m[i], v[i] = float32(p), float32(mi), float32(vi)
		}
	})
	return nil
}
