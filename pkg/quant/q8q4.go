package quant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Block geometry of the ggml formats handled here (values per block, bytes per block).
const (
	QK8_0      = 32
	Q8_0Bytes  = 2 + QK8_0
	QK4_0      = 32
	Q4_0Bytes  = 2 + QK4_0/2
	QK4_1      = 32
	Q4_1Bytes  = 4 + QK4_1/2
	QK5_0      = 32
	Q5_0Bytes  = 2 + 4 + QK5_0/2
	QK5_1      = 32
	Q5_1Bytes  = 4 + 4 + QK5_1/2
	QK8_1      = 32
	Q8_1Bytes  = 4 + QK8_1
	QKK        = 256 // super-block size of the k-quants
	Q2KBytes   = QKK/16 + QKK/4 + 4
	Q3KBytes   = QKK/8 + QKK/4 + 12 + 2
	Q4KBytes   = 4 + 12 + QKK/2
	Q5KBytes   = 4 + 12 + QKK/8 + QKK/2
	Q6KBytes   = QKK/2 + QKK/4 + QKK/16 + 2
	Q8KBytes   = 4 + QKK + QKK/16*2
	NF4Block   = 64
	NF4Bytes   = 4 + NF4Block/2
	maxInt8Cvt = 1 << 31
)

// checkLen validates that n values of a block format fit src/dst exactly.
func checkLen(name string, nvals, nbytes, block, blockBytes int) error {
	if nvals%block != 0 {
		return fmt.Errorf("%s: %d values is not a multiple of the block size %d", name, nvals, block)
	}
	if want := nvals / block * blockBytes; nbytes != want {
		return fmt.Errorf("%s: %d values need %d bytes, got %d", name, nvals, want, nbytes)
	}
	return nil
}

// cvtInt8 converts like C's (int8_t)f on x86-64: truncation to int32 through
// cvttss2si (NaN and out-of-range give INT32_MIN), then the low byte.
func cvtInt8(f float32) int8 {
	if f != f || f >= maxInt8Cvt || f < -maxInt8Cvt {
		return 0 // low byte of 0x80000000
	}
	return int8(int32(f))
}

func f16le(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// QuantizeQ8_0 quantizes src (a multiple of 32 values) into dst, bit-identical to
// ggml's quantize_row_q8_0_ref: d = amax/127 stored as f16, q = round(x/d).
func QuantizeQ8_0(dst []byte, src []float32) error {
	if err := checkLen("q8_0", len(src), len(dst), QK8_0, Q8_0Bytes); err != nil {
		return err
	}
	for i := 0; i < len(src)/QK8_0; i++ {
		x := src[i*QK8_0 : (i+1)*QK8_0]
		y := dst[i*Q8_0Bytes : (i+1)*Q8_0Bytes]
		var amax float32
		for _, v := range x {
			amax = max32(amax, abs32(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, F32ToF16(d))
		for j, v := range x {
			y[2+j] = byte(cvtInt8(roundf(v * id)))
		}
	}
	return nil
}

// QuantizeQ4_0 quantizes src (a multiple of 32 values) into dst, bit-identical to
// ggml's quantize_row_q4_0_ref: d = max/-8 where max is the value of largest
// magnitude (first one on ties), q = min(15, trunc(x/d + 8.5)); value j of a block
// goes to the low nibble of byte j and value j+16 to its high nibble.
func QuantizeQ4_0(dst []byte, src []float32) error {
	if err := checkLen("q4_0", len(src), len(dst), QK4_0, Q4_0Bytes); err != nil {
		return err
	}
	for i := 0; i < len(src)/QK4_0; i++ {
		x := src[i*QK4_0 : (i+1)*QK4_0]
		y := dst[i*Q4_0Bytes : (i+1)*Q4_0Bytes]
		var amax, mx float32
		for _, v := range x {
			if a := abs32(v); amax < a {
				amax, mx = a, v
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(y, F32ToF16(d))
		for j := 0; j < QK4_0/2; j++ {
			x0 := float32(x[j] * id)
			x1 := float32(x[j+QK4_0/2] * id)
			// C: const uint8_t xi = MIN(15, (int8_t)(x + 8.5f)); the MIN is done in int.
			xi0 := uint8(min(15, int(cvtInt8(float32(x0+8.5)))))
			xi1 := uint8(min(15, int(cvtInt8(float32(x1+8.5)))))
			y[2+j] = xi0 | xi1<<4
		}
	}
	return nil
}

// DequantizeQ8_0 expands q8_0 blocks: y = q*d (ggml dequantize_row_q8_0).
func DequantizeQ8_0(dst []float32, src []byte) error {
	if err := checkLen("q8_0", len(dst), len(src), QK8_0, Q8_0Bytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QK8_0; i++ {
		b := src[i*Q8_0Bytes:]
		d := f16le(b)
		y := dst[i*QK8_0 : (i+1)*QK8_0]
		for j := range y {
			y[j] = float32(int8(b[2+j])) * d
		}
	}
	return nil
}

// DequantizeQ4_0 expands q4_0 blocks: y = (q-8)*d (ggml dequantize_row_q4_0).
func DequantizeQ4_0(dst []float32, src []byte) error {
	if err := checkLen("q4_0", len(dst), len(src), QK4_0, Q4_0Bytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QK4_0; i++ {
		b := src[i*Q4_0Bytes:]
		d := f16le(b)
		y := dst[i*QK4_0 : (i+1)*QK4_0]
		for j := 0; j < QK4_0/2; j++ {
			y[j] = float32(int32(b[2+j]&0x0f)-8) * d
			y[j+QK4_0/2] = float32(int32(b[2+j]>>4)-8) * d
		}
	}
	return nil
}

// DequantizeF16 expands little-endian binary16 values.
func DequantizeF16(dst []float32, src []byte) error {
	if err := checkLen("f16", len(dst), len(src), 1, 2); err != nil {
		return err
	}
	for i := range dst {
		dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
	return nil
}

// DequantizeBF16 expands little-endian bfloat16 values.
func DequantizeBF16(dst []float32, src []byte) error {
	if err := checkLen("bf16", len(dst), len(src), 1, 2); err != nil {
		return err
	}
	for i := range dst {
		dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
	return nil
}

// DequantizeF32 decodes little-endian float32 values.
func DequantizeF32(dst []float32, src []byte) error {
	if err := checkLen("f32", len(dst), len(src), 1, 4); err != nil {
		return err
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
	return nil
}

// EncodeF16 writes src as little-endian binary16 (round to nearest even).
func EncodeF16(dst []byte, src []float32) error {
	if err := checkLen("f16", len(src), len(dst), 1, 2); err != nil {
		return err
	}
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
	}
	return nil
}

// EncodeBF16 writes src as little-endian bfloat16 (round to nearest even).
func EncodeBF16(dst []byte, src []float32) error {
	if err := checkLen("bf16", len(src), len(dst), 1, 2); err != nil {
		return err
	}
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
	}
	return nil
}

// EncodeF32 writes src as little-endian float32.
func EncodeF32(dst []byte, src []float32) error {
	if err := checkLen("f32", len(src), len(dst), 1, 4); err != nil {
		return err
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
	}
	return nil
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// max32 is C's MAX(a, b) macro: ((a) > (b) ? (a) : (b)).
func max32(a, b float32) float32 {
	if a > b {
		return a
	}
	return b
}

// roundf is C's roundf: half away from zero (exact for float32 through float64).
func roundf(f float32) float32 { return float32(math.Round(float64(f))) }
