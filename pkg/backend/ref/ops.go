package ref

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
)

// elemChunk is the number of elements one job of an elementwise operation handles.
const elemChunk = 1 << 14

// elementwise runs f(lo, hi) over [0, n) in fixed chunks.
func elementwise(n int, f func(lo, hi int)) {
	parallel(chunks(n, elemChunk), int64(n), func() func(int) {
		return func(j int) { f(span(j, elemChunk, n)) }
	})
}

// Fill sets every element of t to v (I32 tensors get int32(v)).
func (b *Backend) Fill(x backend.Tensor, v float32) error {
	t, err := b.get("fill", "t", x)
	if err != nil {
		return err
	}
	switch t.dt {
	case backend.F32:
		for i := range t.f {
			t.f[i] = v
		}
	case backend.I32:
		for i := range t.i {
			t.i[i] = int32(v)
		}
	default:
		return fmt.Errorf("fill: %v tensor %v: only f32 and i32 can be filled", t.dt, t.shape)
	}
	return nil
}

// Copy copies n elements (the rest of src when n < 0) from src[srcOff:] to dst[dstOff:].
func (b *Backend) Copy(dstT backend.Tensor, dstOff int, srcT backend.Tensor, srcOff, n int) error {
	dst, err := b.get("copy", "dst", dstT)
	if err != nil {
		return err
	}
	src, err := b.get("copy", "src", srcT)
	if err != nil {
		return err
	}
	if dst.dt != src.dt || (dst.dt != backend.F32 && dst.dt != backend.I32) {
		return fmt.Errorf("copy: dst %v %v and src %v %v: both must be f32 or both i32", dst.dt, dst.shape, src.dt, src.shape)
	}
	if n < 0 {
		n = src.n - srcOff
	}
	if dstOff < 0 || srcOff < 0 || srcOff > src.n-n || dstOff > dst.n-n {
		return fmt.Errorf("copy: %d elements from src %v at %d to dst %v at %d run out of bounds", n, src.shape, srcOff, dst.shape, dstOff)
	}
	if dst.dt == backend.F32 {
		copy(dst.f[dstOff:dstOff+n], src.f[srcOff:srcOff+n])
	} else {
		copy(dst.i[dstOff:dstOff+n], src.i[srcOff:srcOff+n])
	}
	return nil
}

// sameLen fetches F32 tensors that must all have the same length.
func (b *Backend) sameLen(op string, names []string, xs ...backend.Tensor) ([]*tensor, error) {
	ts := make([]*tensor, len(xs))
	for i, x := range xs {
		t, err := b.getF32(op, names[i], x)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].n != ts[0].n {
			return nil, fmt.Errorf("%s: %s %v and %s %v differ in length (%d vs %d)", op, names[0], ts[0].shape, names[i], ts[i].shape, ts[0].n, ts[i].n)
		}
	}
	return ts, nil
}

// AddScaled: out += s * x.
func (b *Backend) AddScaled(outT, xT backend.Tensor, s float32) error {
	ts, err := b.sameLen("add scaled", []string{"out", "x"}, outT, xT)
	if err != nil {
		return err
	}
	out, x := ts[0].f, ts[1].f
	elementwise(len(out), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] += s * x[i]
		}
	})
	return nil
}

// Mul: out = a * b.
func (b *Backend) Mul(outT, aT, bT backend.Tensor) error {
	ts, err := b.sameLen("mul", []string{"out", "a", "b"}, outT, aT, bT)
	if err != nil {
		return err
	}
	out, x, y := ts[0].f, ts[1].f, ts[2].f
	elementwise(len(out), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] = x[i] * y[i]
		}
	})
	return nil
}

// AddBias: out[r, c] += bias[c].
func (b *Backend) AddBias(outT, biasT backend.Tensor) error {
	out, err := b.getF32("add bias", "out", outT)
	if err != nil {
		return err
	}
	bias, err := b.getF32("add bias", "b", biasT)
	if err != nil {
		return err
	}
	if bias.n != out.cols {
		return fmt.Errorf("add bias: out %v and b %v: b must have %d elements (out's last dimension)", out.shape, bias.shape, out.cols)
	}
	cols := out.cols
	parallel(out.rows, int64(out.n), func() func(int) {
		return func(r int) {
			row := out.f[r*cols : (r+1)*cols]
			for c, v := range bias.f {
				row[c] += v
			}
		}
	})
	return nil
}

// SumRows: out[c] (+)= sum_r x[r, c], summed in row order in float64.
func (b *Backend) SumRows(outT, xT backend.Tensor, accumulate bool) error {
	out, err := b.getF32("sum rows", "out", outT)
	if err != nil {
		return err
	}
	x, err := b.getF32("sum rows", "x", xT)
	if err != nil {
		return err
	}
	if out.n != x.cols {
		return fmt.Errorf("sum rows: out %v and x %v: out must have %d elements (x's last dimension)", out.shape, x.shape, x.cols)
	}
	const cw = 256
	cols := x.cols
	parallel(chunks(cols, cw), int64(x.n), func() func(int) {
		acc := make([]float64, cw)
		return func(j int) {
			c0, c1 := span(j, cw, cols)
			a := acc[:c1-c0]
			clear(a)
			for r := range x.rows {
				row := x.f[r*cols+c0 : r*cols+c1]
				for c, v := range row {
					a[c] += float64(v)
				}
			}
			store(out.f[c0:c1], a, accumulate)
		}
	})
	return nil
}

// store rounds acc to float32 into dst, adding when accumulate is set.
func store(dst []float32, acc []float64, accumulate bool) {
	dst = dst[:len(acc)]
	if accumulate {
		for i, v := range acc {
			dst[i] += float32(v)
		}
		return
	}
	for i, v := range acc {
		dst[i] = float32(v)
	}
}
