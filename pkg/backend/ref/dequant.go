package ref

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/quant"
)

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
	bs, bb := w.dt.BlockSize(), w.dt.BlockBytes()
	src := row[c0/bs*bb : c1/bs*bb]
	var err error
	switch w.dt {
	case backend.F16:
		err = quant.DequantizeF16(dst, src)
	case backend.Q8_0:
		err = quant.DequantizeQ8_0(dst, src)
	case backend.Q4_0:
		err = quant.DequantizeQ4_0(dst, src)
	case backend.NF4:
		err = quant.DequantizeNF4(dst, src)
	default:
		err = fmt.Errorf("dtype %v is not a weight type", w.dt)
	}
	if err != nil {
		// Unreachable: FromBytes checked the sizes and callers align c0 and c1.
		panic("ref: dequantize row segment: " + err.Error())
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
