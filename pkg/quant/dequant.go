package quant

import (
	"encoding/binary"
	"math"
)

// The dequantizers below transliterate ggml's dequantize_row_* reference
// functions. In C, x*d + m is two rounded float operations (no contraction on
// x86-64 without FMA); the explicit float32(...) conversions keep Go from fusing them.

// DequantizeQ4_1 expands q4_1 blocks: y = q*d + m.
func DequantizeQ4_1(dst []float32, src []byte) error {
	if err := checkLen("q4_1", len(dst), len(src), QK4_1, Q4_1Bytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QK4_1; i++ {
		b := src[i*Q4_1Bytes:]
		d, m := f16le(b), f16le(b[2:])
		qs := b[4 : 4+QK4_1/2]
		y := dst[i*QK4_1 : (i+1)*QK4_1]
		for j := 0; j < QK4_1/2; j++ {
			y[j] = float32(float32(qs[j]&0x0f)*d) + m
			y[j+QK4_1/2] = float32(float32(qs[j]>>4)*d) + m
		}
	}
	return nil
}

// DequantizeQ5_0 expands q5_0 blocks: y = (q-16)*d with the fifth bits in qh.
func DequantizeQ5_0(dst []float32, src []byte) error {
	if err := checkLen("q5_0", len(dst), len(src), QK5_0, Q5_0Bytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QK5_0; i++ {
		b := src[i*Q5_0Bytes:]
		d := f16le(b)
		qh := binary.LittleEndian.Uint32(b[2:])
		qs := b[6 : 6+QK5_0/2]
		y := dst[i*QK5_0 : (i+1)*QK5_0]
		for j := 0; j < QK5_0/2; j++ {
			xh0 := uint8((qh>>j)<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			y[j] = float32(int32(qs[j]&0x0f|xh0)-16) * d
			y[j+QK5_0/2] = float32(int32(qs[j]>>4|xh1)-16) * d
		}
	}
	return nil
}

// DequantizeQ5_1 expands q5_1 blocks: y = q*d + m with the fifth bits in qh.
func DequantizeQ5_1(dst []float32, src []byte) error {
	if err := checkLen("q5_1", len(dst), len(src), QK5_1, Q5_1Bytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QK5_1; i++ {
		b := src[i*Q5_1Bytes:]
		d, m := f16le(b), f16le(b[2:])
		qh := binary.LittleEndian.Uint32(b[4:])
		qs := b[8 : 8+QK5_1/2]
		y := dst[i*QK5_1 : (i+1)*QK5_1]
		for j := 0; j < QK5_1/2; j++ {
			xh0 := uint8((qh>>j)<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			y[j] = float32(float32(qs[j]&0x0f|xh0)*d) + m
			y[j+QK5_1/2] = float32(float32(qs[j]>>4|xh1)*d) + m
		}
	}
	return nil
}

// DequantizeQ2_K expands q2_K super-blocks (scales[16], qs[64], d, dmin).
func DequantizeQ2_K(dst []float32, src []byte) error {
	if err := checkLen("q2_K", len(dst), len(src), QKK, Q2KBytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QKK; i++ {
		b := src[i*Q2KBytes : (i+1)*Q2KBytes]
		scales, q := b[0:16], b[16:80]
		d, mn := f16le(b[80:]), f16le(b[82:])
		y := dst[i*QKK : (i+1)*QKK]
		is, k := 0, 0
		for n := 0; n < QKK; n += 128 {
			shift := uint(0)
			for j := 0; j < 4; j++ {
				for half := 0; half < 2; half++ {
					sc := scales[is]
					is++
					dl := d * float32(sc&0xf)
					ml := mn * float32(sc>>4)
					for l := 0; l < 16; l++ {
						y[k] = float32(dl*float32((q[l+16*half]>>shift)&3)) - ml
						k++
					}
				}
				shift += 2
			}
			q = q[32:]
		}
	}
	return nil
}

// DequantizeQ3_K expands q3_K super-blocks (hmask[32], qs[64], scales[12], d).
func DequantizeQ3_K(dst []float32, src []byte) error {
	if err := checkLen("q3_K", len(dst), len(src), QKK, Q3KBytes); err != nil {
		return err
	}
	const kmask1, kmask2 = 0x03030303, 0x0f0f0f0f
	for i := 0; i < len(dst)/QKK; i++ {
		b := src[i*Q3KBytes : (i+1)*Q3KBytes]
		hm, q := b[0:32], b[32:96]
		dAll := f16le(b[108:])
		var aux [4]uint32
		for w := 0; w < 3; w++ {
			aux[w] = binary.LittleEndian.Uint32(b[96+4*w:])
		}
		tmp := aux[2]
		aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4)
		aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4)
		aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4)
		aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4)
		var scales [16]int8
		for w := 0; w < 4; w++ {
			for k := 0; k < 4; k++ {
				scales[4*w+k] = int8(aux[w] >> (8 * k))
			}
		}
		y := dst[i*QKK : (i+1)*QKK]
		is, k := 0, 0
		m := uint8(1)
		for n := 0; n < QKK; n += 128 {
			shift := uint(0)
			for j := 0; j < 4; j++ {
				for half := 0; half < 2; half++ {
					dl := dAll * float32(int32(scales[is])-32)
					is++
					for l := 0; l < 16; l++ {
						v := int32((q[l+16*half] >> shift) & 3)
						if hm[l+16*half]&m == 0 {
							v -= 4
						}
						y[k] = dl * float32(v)
						k++
					}
				}
				shift += 2
				m <<= 1
			}
			q = q[32:]
		}
	}
	return nil
}

// scaleMinK4 is ggml's get_scale_min_k4: 6-bit scale and min j of a q4_K/q5_K block.
func scaleMinK4(j int, q []byte) (d, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0xf) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// DequantizeQ4_K expands q4_K super-blocks (d, dmin, scales[12], qs[128]).
func DequantizeQ4_K(dst []float32, src []byte) error {
	if err := checkLen("q4_K", len(dst), len(src), QKK, Q4KBytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QKK; i++ {
		b := src[i*Q4KBytes : (i+1)*Q4KBytes]
		d, mn := f16le(b), f16le(b[2:])
		scales, q := b[4:16], b[16:]
		y := dst[i*QKK : (i+1)*QKK]
		k, is := 0, 0
		for j := 0; j < QKK; j += 64 {
			sc, m := scaleMinK4(is, scales)
			d1, m1 := d*float32(sc), mn*float32(m)
			sc, m = scaleMinK4(is+1, scales)
			d2, m2 := d*float32(sc), mn*float32(m)
			for l := 0; l < 32; l++ {
				y[k] = float32(d1*float32(q[l]&0xf)) - m1
				k++
			}
			for l := 0; l < 32; l++ {
				y[k] = float32(d2*float32(q[l]>>4)) - m2
				k++
			}
			q = q[32:]
			is += 2
		}
	}
	return nil
}

// DequantizeQ5_K expands q5_K super-blocks (d, dmin, scales[12], qh[32], qs[128]).
func DequantizeQ5_K(dst []float32, src []byte) error {
	if err := checkLen("q5_K", len(dst), len(src), QKK, Q5KBytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QKK; i++ {
		b := src[i*Q5KBytes : (i+1)*Q5KBytes]
		d, mn := f16le(b), f16le(b[2:])
		scales, qh, ql := b[4:16], b[16:48], b[48:]
		y := dst[i*QKK : (i+1)*QKK]
		k, is := 0, 0
		u1, u2 := uint8(1), uint8(2)
		for j := 0; j < QKK; j += 64 {
			sc, m := scaleMinK4(is, scales)
			d1, m1 := d*float32(sc), mn*float32(m)
			sc, m = scaleMinK4(is+1, scales)
			d2, m2 := d*float32(sc), mn*float32(m)
			for l := 0; l < 32; l++ {
				v := int32(ql[l] & 0xf)
				if qh[l]&u1 != 0 {
					v += 16
				}
				y[k] = float32(d1*float32(v)) - m1
				k++
			}
			for l := 0; l < 32; l++ {
				v := int32(ql[l] >> 4)
				if qh[l]&u2 != 0 {
					v += 16
				}
				y[k] = float32(d2*float32(v)) - m2
				k++
			}
			ql = ql[32:]
			is += 2
			u1 <<= 2
			u2 <<= 2
		}
	}
	return nil
}

// DequantizeQ6_K expands q6_K super-blocks (ql[128], qh[64], scales[16], d).
func DequantizeQ6_K(dst []float32, src []byte) error {
	if err := checkLen("q6_K", len(dst), len(src), QKK, Q6KBytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QKK; i++ {
		b := src[i*Q6KBytes : (i+1)*Q6KBytes]
		ql, qh, sc := b[0:128], b[128:192], b[192:208]
		d := f16le(b[208:])
		y := dst[i*QKK : (i+1)*QKK]
		for n := 0; n < QKK; n += 128 {
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int32(ql[l]&0xf|((qh[l]>>0)&3)<<4) - 32
				q2 := int32(ql[l+32]&0xf|((qh[l]>>2)&3)<<4) - 32
				q3 := int32(ql[l]>>4|((qh[l]>>4)&3)<<4) - 32
				q4 := int32(ql[l+32]>>4|((qh[l]>>6)&3)<<4) - 32
				y[l] = float32(d*float32(int8(sc[is]))) * float32(q1)
				y[l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
				y[l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
				y[l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
			}
			y = y[128:]
			ql = ql[64:]
			qh = qh[32:]
			sc = sc[8:]
		}
	}
	return nil
}

// DequantizeQ8_K expands q8_K super-blocks (f32 d, qs[256], bsums[16]): y = d*q.
func DequantizeQ8_K(dst []float32, src []byte) error {
	if err := checkLen("q8_K", len(dst), len(src), QKK, Q8KBytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/QKK; i++ {
		b := src[i*Q8KBytes:]
		d := math.Float32frombits(binary.LittleEndian.Uint32(b))
		y := dst[i*QKK : (i+1)*QKK]
		for j := range y {
			y[j] = d * float32(int8(b[4+j]))
		}
	}
	return nil
}
