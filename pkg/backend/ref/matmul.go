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

// dotSeq returns a·b summed in ascending order in one float64 accumulator:
// the order every MatMul output uses, whichever kernel computes it.
func dotSeq(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// dot2x4 returns the eight products of rows x0, x1 with rows w0..w3 (x0·w0..x0·w3,
// then x1·w0..x1·w3), each summed like dotSeq: ascending order, one float64
// accumulator, so results equal dotSeq's bit for bit.
func dot2x4(x0, x1, w0, w1, w2, w3 []float32) [8]float64 {
	n := len(x0)
	x1, w0, w1, w2, w3 = x1[:n], w0[:n], w1[:n], w2[:n], w3[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float64
	for k := range n {
		a, b := float64(x0[k]), float64(x1[k])
		c0, c1, c2, c3 := float64(w0[k]), float64(w1[k]), float64(w2[k]), float64(w3[k])
		s0 += a * c0
		s1 += a * c1
		s2 += a * c2
		s3 += a * c3
		s4 += b * c0
		s5 += b * c1
		s6 += b * c2
		s7 += b * c3
	}
	return [8]float64{s0, s1, s2, s3, s4, s5, s6, s7}
}

// dot1x4 is dot2x4 for one row of x.
func dot1x4(x, w0, w1, w2, w3 []float32) [4]float64 {
	n := len(x)
	w0, w1, w2, w3 = w0[:n], w1[:n], w2[:n], w3[:n]
	var s0, s1, s2, s3 float64
	for k := range n {
		a := float64(x[k])
		s0 += a * float64(w0[k])
		s1 += a * float64(w1[k])
		s2 += a * float64(w2[k])
		s3 += a * float64(w3[k])
	}
	return [4]float64{s0, s1, s2, s3}
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

// axpy4 adds s[0]·v0, s[1]·v1, s[2]·v2 and s[3]·v3 to acc, one after the
// other for each element: the same arithmetic as four axpy calls in that order.
func axpy4(acc []float64, s []float32, v0, v1, v2, v3 []float32) {
	n := len(acc)
	v0, v1, v2, v3 = v0[:n], v1[:n], v2[:n], v3[:n]
	s0, s1, s2, s3 := float64(s[0]), float64(s[1]), float64(s[2]), float64(s[3])
	for i := range acc {
		a := acc[i]
		a += s0 * float64(v0[i])
		a += s1 * float64(v1[i])
		a += s2 * float64(v2[i])
		a += s3 * float64(v3[i])
		acc[i] = a
	}
}

// axpy4x2 is axpy4 for two accumulator rows sharing v0..v3.
func axpy4x2(acc, acc2 []float64, s, t []float32, v0, v1, v2, v3 []float32) {
	n := len(acc)
	acc2, v0, v1, v2, v3 = acc2[:n], v0[:n], v1[:n], v2[:n], v3[:n]
	s0, s1, s2, s3 := float64(s[0]), float64(s[1]), float64(s[2]), float64(s[3])
	t0, t1, t2, t3 := float64(t[0]), float64(t[1]), float64(t[2]), float64(t[3])
	for i := range acc {
		w0, w1, w2, w3 := float64(v0[i]), float64(v1[i]), float64(v2[i]), float64(v3[i])
		a, b := acc[i], acc2[i]
		a += s0 * w0
		b += t0 * w0
		a += s1 * w1
		b += t1 * w1
		a += s2 * w2
		b += t2 * w2
		a += s3 * w3
		b += t3 * w3
		acc[i], acc2[i] = a, b
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
// Each output sums over k in ascending order in one float64 accumulator; a
// 2×4 register-blocked kernel computes most of them (same arithmetic).
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
			put := func(r, o int, v float64) {
				if accumulate {
					out.f[r*od+o] += float32(v)
				} else {
					out.f[r*od+o] = float32(v)
				}
			}
			r := n0
			for ; r+2 <= n1; r += 2 {
				x0, x1 := x.f[r*in:(r+1)*in], x.f[(r+1)*in:(r+2)*in]
				o := o0
				for ; o+4 <= o1; o += 4 {
					s := dot2x4(x0, x1, rows[o-o0], rows[o-o0+1], rows[o-o0+2], rows[o-o0+3])
					for j := range 4 {
						put(r, o+j, s[j])
						put(r+1, o+j, s[4+j])
					}
				}
				for ; o < o1; o++ {
					put(r, o, dotSeq(x0, rows[o-o0]))
					put(r+1, o, dotSeq(x1, rows[o-o0]))
				}
			}
			for ; r < n1; r++ {
				xr := x.f[r*in : (r+1)*in]
				o := o0
				for ; o+4 <= o1; o += 4 {
					s := dot1x4(xr, rows[o-o0], rows[o-o0+1], rows[o-o0+2], rows[o-o0+3])
					for j := range 4 {
						put(r, o+j, s[j])
					}
				}
				for ; o < o1; o++ {
					put(r, o, dotSeq(xr, rows[o-o0]))
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
		buf := make([]float32, 4*colChunk)
		return func(j int) {
			c0, c1 := span(j%cJobs, colChunk, in)
			r0, r1 := span(j/cJobs, tileDX, n)
			cw := c1 - c0
			a := acc[:(r1-r0)*cw]
			clear(a)
			o := 0
			for ; o+4 <= od; o += 4 {
				w0 := w.rowSeg(o, c0, c1, buf[0:cw])
				w1 := w.rowSeg(o+1, c0, c1, buf[colChunk:colChunk+cw])
				w2 := w.rowSeg(o+2, c0, c1, buf[2*colChunk:2*colChunk+cw])
				w3 := w.rowSeg(o+3, c0, c1, buf[3*colChunk:3*colChunk+cw])
				r := r0
				for ; r+2 <= r1; r += 2 {
					axpy4x2(a[(r-r0)*cw:(r-r0+1)*cw], a[(r+1-r0)*cw:(r+2-r0)*cw],
						dy.f[r*od+o:r*od+o+4], dy.f[(r+1)*od+o:(r+1)*od+o+4], w0, w1, w2, w3)
				}
				for ; r < r1; r++ {
					axpy4(a[(r-r0)*cw:(r-r0+1)*cw], dy.f[r*od+o:r*od+o+4], w0, w1, w2, w3)
				}
			}
			for ; o < od; o++ {
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
			r := 0
			var d [4]float32
			for ; r+4 <= n; r += 4 {
				x0, x1 := x.f[r*in+c0:r*in+c1], x.f[(r+1)*in+c0:(r+1)*in+c1]
				x2, x3 := x.f[(r+2)*in+c0:(r+2)*in+c1], x.f[(r+3)*in+c0:(r+3)*in+c1]
				for o := o0; o < o1; o++ {
					d = [4]float32{dy.f[r*od+o], dy.f[(r+1)*od+o], dy.f[(r+2)*od+o], dy.f[(r+3)*od+o]}
					axpy4(a[(o-o0)*cw:(o-o0+1)*cw], d[:], x0, x1, x2, x3)
				}
			}
			for ; r < n; r++ {
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
