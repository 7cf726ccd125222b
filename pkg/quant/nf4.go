package quant

import (
	"encoding/binary"
	"math"
)

// NF4Code holds the 16 NormalFloat4 values of QLoRA, as bitsandbytes publishes
// them (create_normal_map with offset 0.9677, rounded to float32).
var NF4Code = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// nf4Mid are bitsandbytes' decision thresholds (dQuantizeNF4): nf4Mid[i] lies
// between NF4Code[i] and NF4Code[i+1]; a value strictly above it goes up.
var nf4Mid = [15]float32{
	-0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544,
	-0.23460740596055984, -0.13791173323988914, -0.045525018125772476, 0.03979014977812767,
	0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683,
	0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
}

// nf4Index is bitsandbytes' dQuantizeNF4 decision tree as a binary search over
// the same thresholds with the same strict comparisons (NaN maps to code 0).
func nf4Index(x float32) uint8 {
	lo := 0
	for step := 8; step > 0; step >>= 1 {
		if x > nf4Mid[lo+step-1] {
			lo += step
		}
	}
	return uint8(lo)
}

// QuantizeNF4 quantizes src (a multiple of 64 values) into dst: for each block
// the float32 absmax, then 32 bytes of 4-bit codes (low nibble = even index). As
// in bitsandbytes, values are scaled by 1/absmax and mapped to the nearest code
// by its midpoints. An all-zero block stores absmax 0 and code 7 (0.0).
func QuantizeNF4(dst []byte, src []float32) error {
	if err := checkLen("nf4", len(src), len(dst), NF4Block, NF4Bytes); err != nil {
		return err
	}
	for i := 0; i < len(src)/NF4Block; i++ {
		x := src[i*NF4Block : (i+1)*NF4Block]
		y := dst[i*NF4Bytes : (i+1)*NF4Bytes]
		var amax float32
		for _, v := range x {
			amax = max32(amax, abs32(v))
		}
		binary.LittleEndian.PutUint32(y, math.Float32bits(amax))
		if amax == 0 {
			for j := 4; j < NF4Bytes; j++ {
				y[j] = 7 | 7<<4
			}
			continue
		}
		inv := 1 / amax
		for j := 0; j < NF4Block/2; j++ {
			y[4+j] = nf4Index(x[2*j]*inv) | nf4Index(x[2*j+1]*inv)<<4
		}
	}
	return nil
}

// DequantizeNF4 expands NF4 blocks: y = NF4Code[q] * absmax.
func DequantizeNF4(dst []float32, src []byte) error {
	if err := checkLen("nf4", len(dst), len(src), NF4Block, NF4Bytes); err != nil {
		return err
	}
	for i := 0; i < len(dst)/NF4Block; i++ {
		b := src[i*NF4Bytes:]
		amax := math.Float32frombits(binary.LittleEndian.Uint32(b))
		y := dst[i*NF4Block : (i+1)*NF4Block]
		for j := 0; j < NF4Block/2; j++ {
			y[2*j] = NF4Code[b[4+j]&0xf] * amax
			y[2*j+1] = NF4Code[b[4+j]>>4] * amax
		}
	}
	return nil
}
