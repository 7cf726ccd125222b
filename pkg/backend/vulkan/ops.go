//go:build cgo

package vulkan

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/vulkan/vk"
)

// wg returns a power-of-two workgroup size of at most want within the device limit.
func (b *Backend) wg(want uint32) uint32 {
	w := uint32(1)
	for w*2 <= want && w*2 <= b.maxWG {
		w *= 2
	}
	return w
}

func f32bits(f float32) uint32 { return math.Float32bits(f) }

func boolU(v bool) uint32 {
	if v {
		return 1
	}
	return 0
}

// elementwise launches an eltwise.comp variant over n elements, split into
// pieces when a per-element binding (marked with per(4)) exceeds the binding
// limit; push gets the piece's length and first element.
func (b *Backend) elementwise(op, name string, n int, binds []binding, push func(m, base int) []uint32) error {
	w := b.wg(256)
	return b.split(op, n, 1, binds, func(bs []binding, u0, m int) error {
		return b.dispatch(op, name, []uint32{w}, bs, push(m, u0), ceilDiv(uint64(m), uint64(w)))
	})
}

// plain is the push of an eltwise kernel that needs only the length and p0.
func plain(f0 float32) func(m, base int) []uint32 {
	return func(m, _ int) []uint32 { return eltPush(m, 0, 0, f0, 0, false) }
}

// eltPush packs the eltwise.comp push constants.
func eltPush(n int, u0, u1 uint32, f0, f1 float32, acc bool) []uint32 {
	return []uint32{uint32(n), u0, u1, f32bits(f0), f32bits(f1), boolU(acc)}
}

func checkN(op string, n int) error {
	if n >= 1<<32-1 {
		return fmt.Errorf("%s: %d elements exceed what one kernel launch indexes (2^32)", op, n)
	}
	return nil
}

// fillLocked records a fill of t; eager puts it on the eager stream even
// while a Program is being recorded (Alloc's zero fill happens once).
func (b *Backend) fillLocked(t *tensor, v float32, eager bool) error {
	bits := f32bits(v)
	if t.dt == backend.I32 {
		bits = uint32(int32(v))
	}
	if eager {
		saved := b.rec
		b.rec = nil
		defer func() { b.rec = saved }()
	}
	return b.elementwise("fill", "fill", t.n, []binding{out("t", t.view()).per(4)}, func(m, _ int) []uint32 { return eltPush(m, bits, 0, 0, 0, false) })
}

// Fill sets every element of t to v (I32 tensors get int32(v)).
func (b *Backend) Fill(x backend.Tensor, v float32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.get("fill", "t", x)
	if err != nil {
		return err
	}
	if t.dt != backend.F32 && t.dt != backend.I32 {
		return fmt.Errorf("fill: %v tensor %v: only f32 and i32 can be filled", t.dt, t.shape)
	}
	if err := checkN("fill", t.n); err != nil {
		return err
	}
	t.shadow = nil // the host copy no longer describes the contents
	return b.fillLocked(t, v, false)
}

func sub(t *tensor, off, n int) vk.View {
	return vk.View{Buffer: t.blk.Buffer, Offset: t.blk.Offset + 4*uint64(off), Size: 4 * uint64(n)}
}

// Copy copies n elements from src[srcOff:] to dst[dstOff:].
func (b *Backend) Copy(dstT backend.Tensor, dstOff int, srcT backend.Tensor, srcOff, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "copy"
	dst, err := b.get(op, "dst", dstT)
	if err != nil {
		return err
	}
	src, err := b.get(op, "src", srcT)
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
	if n == 0 {
		return nil
	}
	dst.shadow = nil
	if dst != src && dst.bytes <= b.maxBind && src.bytes <= b.maxBind {
		// whole tensors with offsets in push constants: the descriptor set is
		// the same for every offset (a KV-cache append reuses one set).
		return b.elementwise(op, "copy", n, []binding{out("dst", dst.view()), in("src", src.view())},
			func(m, _ int) []uint32 { return eltPush(m, uint32(dstOff), uint32(srcOff), 0, 0, false) })
	}
	piece := int((b.maxBind - b.align) / 4)
	if dst == src && dstOff < srcOff+n && srcOff < dstOff+n {
		// overlapping ranges of one tensor: go through scratch.
		tmp, err := b.scratchBuf("copy", 4*uint64(n))
		if err != nil {
			return err
		}
		for i := 0; i < n; i += piece {
			m := min(piece, n-i)
			sv := vk.View{Buffer: tmp.Buffer, Offset: tmp.Offset, Size: tmp.Size}
			if err := b.copyRange(sv, i, src, srcOff+i, m); err != nil {
				return err
			}
		}
		for i := 0; i < n; i += piece {
			m := min(piece, n-i)
			if err := b.copyFrom(dst, dstOff+i, vk.View{Buffer: tmp.Buffer, Offset: tmp.Offset, Size: tmp.Size}, i, m); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < n; i += piece {
		m := min(piece, n-i)
		if err := b.copyFrom(dst, dstOff+i, src.view(), srcOff+i, m); err != nil {
			return err
		}
	}
	return nil
}

// copyRange copies m elements of src at srcOff into buffer view dst at element dstOff.
func (b *Backend) copyRange(dst vk.View, dstOff int, src *tensor, srcOff, m int) error {
	return b.copyViews(vk.View{Buffer: dst.Buffer, Offset: dst.Offset + 4*uint64(dstOff), Size: 4 * uint64(m)}, sub(src, srcOff, m), m)
}

// copyFrom copies m elements of view src at element srcOff into dst at dstOff.
func (b *Backend) copyFrom(dst *tensor, dstOff int, src vk.View, srcOff, m int) error {
	return b.copyViews(sub(dst, dstOff, m), vk.View{Buffer: src.Buffer, Offset: src.Offset + 4*uint64(srcOff), Size: 4 * uint64(m)}, m)
}

// copyViews binds just the ranges copied (aligned down, with the remainder as
// an element offset) so that unrelated work need not wait.
func (b *Backend) copyViews(dv, sv vk.View, m int) error {
	du, su := uint32(0), uint32(0)
	if r := dv.Offset % b.align; r != 0 {
		dv.Offset, dv.Size, du = dv.Offset-r, dv.Size+r, uint32(r/4)
	}
	if r := sv.Offset % b.align; r != 0 {
		sv.Offset, sv.Size, su = sv.Offset-r, sv.Size+r, uint32(r/4)
	}
	return b.elementwise("copy", "copy", m, []binding{out("dst", dv), in("src", sv)}, func(m, _ int) []uint32 { return eltPush(m, du, su, 0, 0, false) })
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
	return ts, checkN(op, ts[0].n)
}

// AddScaled: out += s * x.
func (b *Backend) AddScaled(outT, xT backend.Tensor, s float32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts, err := b.sameLen("add scaled", []string{"out", "x"}, outT, xT)
	if err != nil {
		return err
	}
	return b.elementwise("add scaled", "add_scaled", ts[0].n, []binding{out("out", ts[0].view()).per(4), in("x", ts[1].view()).per(4)}, plain(s))
}

// Mul: out = a * b.
func (b *Backend) Mul(outT, aT, bT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts, err := b.sameLen("mul", []string{"out", "a", "b"}, outT, aT, bT)
	if err != nil {
		return err
	}
	return b.elementwise("mul", "mul", ts[0].n, []binding{out("out", ts[0].view()).per(4), in("a", ts[1].view()).per(4), in("b", ts[2].view()).per(4)}, plain(0))
}

// AddBias: out[r, c] += bias[c].
func (b *Backend) AddBias(outT, biasT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "add bias"
	o, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	bias, err := b.getF32(op, "b", biasT)
	if err != nil {
		return err
	}
	if bias.n != o.cols {
		return fmt.Errorf("%s: b %v for out %v: want %d elements (out's last dimension)", op, bias.shape, o.shape, o.cols)
	}
	if err := checkN(op, o.n); err != nil {
		return err
	}
	w := b.wg(256)
	return b.split(op, o.rows, 1, []binding{out("out", o.view()).per(4 * uint64(o.cols)), in("b", bias.view())}, func(bs []binding, _, m int) error {
		n := m * o.cols
		return b.dispatch(op, "add_bias", []uint32{w}, bs, eltPush(n, uint32(o.cols), 0, 0, 0, false), ceilDiv(uint64(n), uint64(w)))
	})
}

// SumRows: out[c] (+)= sum_r x[r, c], rows summed in order.
func (b *Backend) SumRows(outT, xT backend.Tensor, accumulate bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "sum rows"
	o, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	x, err := b.getF32(op, "x", xT)
	if err != nil {
		return err
	}
	if o.n != x.cols {
		return fmt.Errorf("%s: out %v for x %v: want %d elements (x's last dimension)", op, o.shape, x.shape, x.cols)
	}
	if err := checkN(op, x.n); err != nil {
		return err
	}
	w := b.wg(256)
	return b.split(op, x.rows, 1, []binding{out("out", o.view()), in("x", x.view()).per(4 * uint64(x.cols))}, func(bs []binding, r0, m int) error {
		// pieces of rows are added in row order.
		push := eltPush(x.cols, uint32(x.cols), uint32(m), 0, 0, accumulate || r0 > 0)
		return b.dispatch(op, "sum_rows", []uint32{w}, bs, push, ceilDiv(uint64(x.cols), uint64(w)))
	})
}

// SwiGLU: out = silu(gate) * up.
func (b *Backend) SwiGLU(outT, gateT, upT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts, err := b.sameLen("swiglu", []string{"out", "gate", "up"}, outT, gateT, upT)
	if err != nil {
		return err
	}
	return b.elementwise("swiglu", "swiglu", ts[0].n, []binding{out("out", ts[0].view()).per(4), in("gate", ts[1].view()).per(4), in("up", ts[2].view()).per(4)}, plain(0))
}

// SwiGLUBackward: dgate, dup from dout.
func (b *Backend) SwiGLUBackward(dgateT, dupT, doutT, gateT, upT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ts, err := b.sameLen("swiglu backward", []string{"dgate", "dup", "dout", "gate", "up"}, dgateT, dupT, doutT, gateT, upT)
	if err != nil {
		return err
	}
	return b.elementwise("swiglu backward", "swiglu_bwd", ts[0].n,
		[]binding{out("dgate", ts[0].view()).per(4), out("dup", ts[1].view()).per(4), in("dout", ts[2].view()).per(4), in("gate", ts[3].view()).per(4), in("up", ts[4].view()).per(4)},
		plain(0))
}

// Dropout: out = x * (1/(1-p)) where backend.DropoutKeep(seed, stream, i, p), else 0.
func (b *Backend) Dropout(outT, xT, seedT backend.Tensor, streamID uint32, p float32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "dropout"
	ts, err := b.sameLen(op, []string{"out", "x"}, outT, xT)
	if err != nil {
		return err
	}
	seed, err := b.getI32(op, "seed", seedT)
	if err != nil {
		return err
	}
	if seed.n != 1 {
		return fmt.Errorf("%s: seed %v: want one i32 element", op, seed.shape)
	}
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("%s: p = %v: want 0 <= p < 1", op, p)
	}
	o, x := ts[0], ts[1]
	if p == 0 {
		if o == x {
			return nil
		}
		return b.elementwise(op, "copy", o.n, []binding{out("out", o.view()).per(4), in("x", x.view()).per(4)}, plain(0))
	}
	scale := 1 / (1 - p)
	return b.elementwise(op, "dropout", o.n, []binding{out("out", o.view()).per(4), in("x", x.view()).per(4), in("seed", seed.view())},
		func(m, base int) []uint32 { return eltPush(m, streamID, uint32(base), p, scale, false) })
}

// AdamW updates param with grad and the moments (see backend.AdamWScalarsLen).
func (b *Backend) AdamW(paramT, gradT, mT, vT, scalarsT, sumsqT backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
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
	sq, err := b.getF32(op, "sumsq", sumsqT)
	if err != nil {
		return err
	}
	return b.elementwise(op, "adamw", ts[0].n,
		[]binding{out("param", ts[0].view()).per(4), in("grad", ts[1].view()).per(4), out("m", ts[2].view()).per(4), out("v", ts[3].view()).per(4), in("scalars", sc.view()), in("sumsq", sq.view())},
		plain(0))
}

// sumsqChunk is the number of elements one workgroup of the first pass sums.
const sumsqChunk = 4096

// SumSquares: out[0] (+)= sum of squares of all xs: per-workgroup partial sums
// in a fixed order, then one workgroup adds the partials in order.
func (b *Backend) SumSquares(outT backend.Tensor, accumulate bool, xs ...backend.Tensor) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	const op = "sum squares"
	o, err := b.getF32(op, "out", outT)
	if err != nil {
		return err
	}
	// pieces of at most one binding, each a whole number of chunks, so that
	// every piece starts aligned.
	chunk := uint64(sumsqChunk)
	if 4*chunk > b.maxBind {
		chunk = max(b.maxBind/b.align*b.align/4, 1)
	}
	pieceElems := b.maxBind / 4 / chunk * chunk
	type piece struct {
		name string
		v    vk.View
		n    uint64
	}
	var pieces []piece
	total := uint64(0)
	for i, x := range xs {
		t, err := b.getF32(op, fmt.Sprintf("xs[%d]", i), x)
		if err != nil {
			return err
		}
		for e0 := uint64(0); e0 < uint64(t.n); e0 += pieceElems {
			m := min(pieceElems, uint64(t.n)-e0)
			pieces = append(pieces, piece{fmt.Sprintf("xs[%d]", i), vk.View{Buffer: t.blk.Buffer, Offset: t.blk.Offset + 4*e0, Size: 4 * m}, m})
			total += b.partials(m, chunk)
		}
	}
	part, err := b.scratchBuf("sumsq", 4*max(total, 1))
	if err != nil {
		return err
	}
	w := b.redWG(256)
	off := uint64(0)
	for _, pc := range pieces {
		// each piece's partials start aligned, so the launches write disjoint
		// bindings and need no barrier between them; padding groups write 0.
		g := b.partials(pc.n, chunk)
		pv := vk.View{Buffer: part.Buffer, Offset: part.Offset + 4*off, Size: 4 * g}
		if err := b.dispatch(op, "sumsq_partial", []uint32{w}, []binding{out("partials", pv), in(pc.name, pc.v)},
			[]uint32{uint32(pc.n), uint32(chunk), 0, 0}, g); err != nil {
			return err
		}
		off += g
	}
	return b.dispatch(op, "sumsq_final", []uint32{w}, []binding{out("out", sub(o, 0, 1)), in("partials", part)},
		[]uint32{uint32(total), 0, 0, boolU(accumulate)}, 1)
}

// partials is the number of first-pass sums for n elements, padded so that
// the next tensor's partials start at an aligned offset.
func (b *Backend) partials(n, chunk uint64) uint64 {
	return roundUp(ceilDiv(n, chunk), b.align/4)
}

func roundUp(x, a uint64) uint64 { return ceilDiv(x, a) * a }
