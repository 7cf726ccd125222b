package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// Per-element references: each value of a block computed directly from the
// format description (which bits, which scale), instead of ggml's loop order.

func bit(b []byte, i int) int { return int(b[i/8]>>(i%8)) & 1 }

// k3scale decodes scale k of a q3_K block (as quantize_row_q3_K_ref packs it).
func k3scale(s []byte, k int) int {
	var lo int
	if k < 8 {
		lo = int(s[k] & 0xf)
	} else {
		lo = int(s[k-8] >> 4)
	}
	hi := int(s[8+k%4]>>(2*(k/4))) & 3
	return lo | hi<<4
}

// k4scale decodes scale and min k of a q4_K/q5_K block (as the quantizers pack them).
func k4scale(s []byte, k int) (sc, m int) {
	if k < 4 {
		return int(s[k] & 63), int(s[k+4] & 63)
	}
	sc = int(s[k+4]&0xf) | int(s[k-4]>>6)<<4
	m = int(s[k+4]>>4) | int(s[k]>>6)<<4
	return sc, m
}

type refFormat struct {
	name      string
	block, sz int
	dq        func([]float32, []byte) error
	f16At     []int // offsets of f16 scales to randomize with finite values
	f32At     []int
	ref       func(b []byte, e int) float32
}

var refFormats = []refFormat{
	{"q8_0", 32, Q8_0Bytes, DequantizeQ8_0, []int{0}, nil, func(b []byte, e int) float32 {
		return float32(int8(b[2+e])) * f16le(b)
	}},
	{"q4_0", 32, Q4_0Bytes, DequantizeQ4_0, []int{0}, nil, func(b []byte, e int) float32 {
		q := int(b[2+e%16]>>(4*(e/16))) & 0xf
		return float32(q-8) * f16le(b)
	}},
	{"q4_1", 32, Q4_1Bytes, DequantizeQ4_1, []int{0, 2}, nil, func(b []byte, e int) float32 {
		q := int(b[4+e%16]>>(4*(e/16))) & 0xf
		return float32(float32(q)*f16le(b)) + f16le(b[2:])
	}},
	{"q5_0", 32, Q5_0Bytes, DequantizeQ5_0, []int{0}, nil, func(b []byte, e int) float32 {
		q := int(b[6+e%16]>>(4*(e/16)))&0xf | bit(b[2:6], e)<<4
		return float32(q-16) * f16le(b)
	}},
	{"q5_1", 32, Q5_1Bytes, DequantizeQ5_1, []int{0, 2}, nil, func(b []byte, e int) float32 {
		q := int(b[8+e%16]>>(4*(e/16)))&0xf | bit(b[4:8], e)<<4
		return float32(float32(q)*f16le(b)) + f16le(b[2:])
	}},
	{"q2_K", 256, Q2KBytes, DequantizeQ2_K, []int{80, 82}, nil, func(b []byte, e int) float32 {
		n, j, g := e/128, (e%128)/32, e%32
		q := int(b[16+32*n+g]>>(2*j)) & 3
		sc := b[e/16]
		return float32(f16le(b[80:])*float32(sc&0xf))*float32(q) - f16le(b[82:])*float32(sc>>4)
	}},
	{"q3_K", 256, Q3KBytes, DequantizeQ3_K, []int{108}, nil, func(b []byte, e int) float32 {
		n, j, g := e/128, (e%128)/32, e%32
		q := int(b[32+32*n+g]>>(2*j)) & 3
		if int(b[g]>>(4*n+j))&1 == 0 {
			q -= 4
		}
		return f16le(b[108:]) * float32(k3scale(b[96:108], e/16)-32) * float32(q)
	}},
	{"q4_K", 256, Q4KBytes, DequantizeQ4_K, []int{0, 2}, nil, func(b []byte, e int) float32 {
		c, r := e/64, e%64
		q := int(b[16+32*c+r%32]>>(4*(r/32))) & 0xf
		sc, m := k4scale(b[4:16], 2*c+r/32)
		return float32(f16le(b)*float32(sc))*float32(q) - f16le(b[2:])*float32(m)
	}},
	{"q5_K", 256, Q5KBytes, DequantizeQ5_K, []int{0, 2}, nil, func(b []byte, e int) float32 {
		c, r := e/64, e%64
		q := int(b[48+32*c+r%32]>>(4*(r/32)))&0xf | (int(b[16+r%32]>>(2*c+r/32))&1)<<4
		sc, m := k4scale(b[4:16], 2*c+r/32)
		return float32(f16le(b)*float32(sc))*float32(q) - f16le(b[2:])*float32(m)
	}},
	{"q6_K", 256, Q6KBytes, DequantizeQ6_K, []int{208}, nil, func(b []byte, e int) float32 {
		n, k, l := e/128, (e%128)/32, e%32
		lo := int(b[64*n+32*(k%2)+l]>>(4*(k/2))) & 0xf
		hi := int(b[128+32*n+l]>>(2*k)) & 3
		sc := int8(b[192+8*n+l/16+2*k])
		return f16le(b[208:]) * float32(sc) * float32(lo|hi<<4-32)
	}},
	{"q8_K", 256, Q8KBytes, DequantizeQ8_K, nil, []int{0}, func(b []byte, e int) float32 {
		return math.Float32frombits(binary.LittleEndian.Uint32(b)) * float32(int8(b[4+e]))
	}},
}

func TestDequantizeMatchesPerElementReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, f := range refFormats {
		t.Run(f.name, func(t *testing.T) {
			const nb = 40
			src := make([]byte, nb*f.sz)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			for i := 0; i < nb; i++ {
				b := src[i*f.sz:]
				for _, o := range f.f16At {
					binary.LittleEndian.PutUint16(b[o:], F32ToF16(float32(r.NormFloat64()*0.01)))
				}
				for _, o := range f.f32At {
					binary.LittleEndian.PutUint32(b[o:], math.Float32bits(float32(r.NormFloat64()*0.01)))
				}
			}
			dst := make([]float32, nb*f.block)
			if err := f.dq(dst, src); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				b := src[i/f.block*f.sz : (i/f.block+1)*f.sz]
				want := f.ref(b, i%f.block)
				if math.Float32bits(dst[i]) != math.Float32bits(want) {
					t.Fatalf("value %d (block %d, element %d) = %v, want %v", i, i/f.block, i%f.block, dst[i], want)
				}
			}
		})
	}
}
