package ref

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
)

// Tile sizes. Column chunks are multiples of 64, the largest block size, so a
// chunk boundary never splits a quantization block.
const (
	tileW    = 16  // weight rows per MatMul/MatMulDW job
	tileX    = 64  // activation rows per MatMul job
	tileDX   = 32  // dy rows per MatMulDX job
	colChunk = 256 // columns per MatMulDX/MatMulDW job
)

// dot returns a·b accumulated in float64 with four partial sums in a fixed
// order. Products of float32 values are exact in float64, so the result does
// not depend on multiply-add fusion.
func dot(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds s*x to acc in float64.
func axpy(acc []float64, s float64, x []float32) {
	x = x[:len(acc)]
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, v := acc[i:i+4:i+4], x[i:i+4:i+4]
		a[0] += s * float64(v[0])
		a[1] += s * float64(v[1])
		a[2] += s * float64(v[2])
		a[3] += s * float64(v[3])
	}
	for ; i < len(x); i++ {
		acc[i] += s * float64(x[i])
	}
}

func (b *Backend) weight(op string, x backend.Tensor) (*tensor, error) {
	w, err := b.get(op, "w", x)
	if err != nil {
		return nil, err
	}
	if !isWeight(w.dt) {
		return nil, fmt.Errorf("%s: w %v has dtype %v: want f32, f16, q8_0, q4_0 or nf4", op, w.shape, w.dt)
	}
	return w, nil
}

// MatMul: out (+)= x · Wᵀ for x [n, in], W [out, in], out [n, out].
func (b *Backend) MatMul(outT, xT, wT backend.Tensor, accumulate bool) error {
	const op = "matmul"
	out, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	w, err := b.weight(op, wT)
	if err != nil {
		return err
	}
	in, od, n := w.cols, w.rows, x.rows
	if x.cols != in || out.cols != od || out.rows != n {
		return fmt.Errorf("%s: out %v = x %v · wᵀ %v (%v): want x [n, %d] and out [n, %d]", op, out.shape, x.shape, w.shape, w.dt, in, od)
	}
	wJobs, xJobs := chunks(od, tileW), chunks(n, tileX)
	parallel(wJobs*xJobs, int64(n)*int64(od)*int64(in), func() func(int) {
		var buf []float32
		if w.dt != backend.F32 {
			buf = make([]float32, tileW*in)
		}
		rows := make([][]float32, tileW)
		return func(j int) {
			o0, o1 := span(j%wJobs, tileW, od)
			n0, n1 := span(j/wJobs, tileX, n)
			for o := o0; o < o1; o++ {
				var seg []float32
				if buf != nil {
					seg = buf[(o-o0)*in : (o-o0+1)*in]
				}
				rows[o-o0] = w.rowSeg(o, 0, in, seg)
			}
			for r := n0; r < n1; r++ {
				xr := x.f[r*in : (r+1)*in]
				dst := out.f[r*od : (r+1)*od]
				for o := o0; o < o1; o++ {
					s := float32(dot(xr, rows[o-o0]))
					if accumulate {
						dst[o] += s
					} else {
						dst[o] = s
					}
				}
			}
		}
	})
	return nil
}

// MatMulDX: dx (+)= dy · W for dy [n, out], W [out, in], dx [n, in].
// Each dx element sums over W's rows in ascending order.
func (b *Backend) MatMulDX(dxT, dyT, wT backend.Tensor, accumulate bool) error {
	const op = "matmul dx"
	dx, err := b.getF32(op, "dx", dxT)
	if err != nil {
		return err
	}
	dy, err := b.getF32(op, "dy", dyT)
	if err != nil {
		return err
	}
	w, err := b.weight(op, wT)
	if err != nil {
		return err
	}
	in, od, n := w.cols, w.rows, dy.rows
	if dy.cols != od || dx.cols != in || dx.rows != n {
		return fmt.Errorf("%s: dx %v = dy %v · w %v (%v): want dy [n, %d] and dx [n, %d]", op, dx.shape, dy.shape, w.shape, w.dt, od, in)
	}
	cJobs, rJobs := chunks(in, colChunk), chunks(n, tileDX)
	parallel(cJobs*rJobs, int64(n)*int64(od)*int64(in), func() func(int) {
		acc := make([]float64, tileDX*colChunk)
		buf := make([]float32, colChunk)
		return func(j int) {
			c0, c1 := span(j%cJobs, colChunk, in)
			r0, r1 := span(j/cJobs, tileDX, n)
			cw := c1 - c0
			a := acc[:(r1-r0)*cw]
			clear(a)
			for o := range od {
				seg := w.rowSeg(o, c0, c1, buf)
				for r := r0; r < r1; r++ {
					axpy(a[(r-r0)*cw:(r-r0+1)*cw], float64(dy.f[r*od+o]), seg)
				}
			}
			for r := r0; r < r1; r++ {
				store(dx.f[r*in+c0:r*in+c1], a[(r-r0)*cw:(r-r0+1)*cw], accumulate)
			}
		}
	})
	return nil
}

// MatMulDW: dw (+)= dyᵀ · x for dy [n, out], x [n, in], dw [out, in] (F32).
// Each dw element sums over the n rows in ascending order.
func (b *Backend) MatMulDW(dwT, dyT, xT backend.Tensor, accumulate bool) error {
	const op = "matmul dw"
	dw, err := b.getF32(op, "dw", dwT)
	if err != nil {
		return err
	}
	dy, err := b.getF32(op, "dy", dyT)
	if err != nil {
		return err
	}
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	od, in, n := dy.cols, x.cols, dy.rows
	if x.rows != n || dw.cols != in || dw.rows != od {
		return fmt.Errorf("%s: dw %v = dyᵀ %v · x %v: want dy [n, out], x [n, in] and dw [out, in] with equal n", op, dw.shape, dy.shape, x.shape)
	}
	cJobs, oJobs := chunks(in, colChunk), chunks(od, tileW)
	parallel(cJobs*oJobs, int64(n)*int64(od)*int64(in), func() func(int) {
		acc := make([]float64, tileW*colChunk)
		return func(j int) {
			c0, c1 := span(j%cJobs, colChunk, in)
			o0, o1 := span(j/cJobs, tileW, od)
			cw := c1 - c0
			a := acc[:(o1-o0)*cw]
			clear(a)
			for r := range n {
				xr := x.f[r*in+c0 : r*in+c1]
				for o := o0; o < o1; o++ {
					axpy(a[(o-o0)*cw:(o-o0+1)*cw], float64(dy.f[r*od+o]), xr)
				}
			}
			for o := o0; o < o1; o++ {
				store(dw.f[o*in+c0:o*in+c1], a[(o-o0)*cw:(o-o0+1)*cw], accumulate)
			}
		}
	})
	return nil
}
