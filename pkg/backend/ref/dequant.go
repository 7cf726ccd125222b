package ref

import (
	"encoding/binary"
	"math"

	"github.com/lora-dev/lora/pkg/backend"
)

// nf4Code holds the 16 NormalFloat4 values of QLoRA (bitsandbytes), in code order.
var nf4Code = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// f16 converts an IEEE 754 binary16 value to float32 exactly.
func f16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or nan
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// subnormal: mant * 2^-24
	v := float32(mant) * (1.0 / 16777216.0)
	if sign != 0 {
		v = -v
	}
	return v
}

// rowSeg returns columns [c0, c1) of row r of w as float32. For F32 weights it
// returns a slice of the tensor itself; otherwise it decodes into buf (which
// must hold c1-c0 values). c0 and c1 must be multiples of w's block size, or c1
// equal to w.cols.
func (w *tensor) rowSeg(r, c0, c1 int, buf []float32) []float32 {
	if w.dt == backend.F32 {
		base := r * w.cols
		return w.f[base+c0 : base+c1]
	}
	dst := buf[:c1-c0]
	row := w.raw[r*w.dt.RowBytes(w.cols):]
	switch w.dt {
	case backend.F16:
		for j := range dst {
			dst[j] = f16(binary.LittleEndian.Uint16(row[2*(c0+j):]))
		}
	case backend.Q8_0:
		for b := c0 / 32; b*32 < c1; b++ {
			blk := row[b*34 : b*34+34]
			d := f16(binary.LittleEndian.Uint16(blk))
			out := dst[b*32-c0 : b*32-c0+32]
			for j := range 32 {
				out[j] = d * float32(int8(blk[2+j]))
			}
		}
	case backend.Q4_0:
		for b := c0 / 32; b*32 < c1; b++ {
			blk := row[b*18 : b*18+18]
			d := f16(binary.LittleEndian.Uint16(blk))
			out := dst[b*32-c0 : b*32-c0+32]
			for j := range 16 {
				q := blk[2+j]
				out[j] = d * float32(int(q&0x0f)-8)
				out[j+16] = d * float32(int(q>>4)-8)
			}
		}
	case backend.NF4:
		for b := c0 / 64; b*64 < c1; b++ {
			blk := row[b*36 : b*36+36]
			amax := math.Float32frombits(binary.LittleEndian.Uint32(blk))
			out := dst[b*64-c0 : b*64-c0+64]
			for j := range 32 {
				q := blk[4+j]
				out[2*j] = nf4Code[q&0x0f] * amax
				out[2*j+1] = nf4Code[q>>4] * amax
			}
		}
	default:
		panic("ref: rowSeg on dtype " + w.dt.String()) // unreachable: weights are checked by isWeight
	}
	return dst
}

// isWeight reports whether dt can be read by Embed, MatMul and MatMulDX.
func isWeight(dt backend.DType) bool {
	switch dt {
	case backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4:
		return true
	}
	return false
}
