package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// ---- reference implementations, transliterated from ggml-quants.c block structs ----

type blockQ8_0 struct {
	d  uint16
	qs [32]int8
}

type blockQ4_0 struct {
	d  uint16
	qs [16]uint8
}

func cFabsf(x float32) float32 {
	if x < 0 {
		return -x
	}
	if x == 0 {
		return 0
	}
	return x
}

// cInt8 models (int8_t)f on x86-64 (cvttss2si, then the low byte).
func cInt8(f float32) int8 {
	if math.IsNaN(float64(f)) || f >= 2147483648 || f < -2147483648 {
		return int8(uint8(0x80000000 & 0xff))
	}
	return int8(int32(f))
}

func cRoundf(f float32) float32 {
	if f < 0 {
		return -float32(math.Floor(float64(-f) + 0.5))
	}
	return float32(math.Floor(float64(f) + 0.5))
}

func refQuantizeQ8_0(x []float32) []blockQ8_0 {
	const qk = 32
	nb := len(x) / qk
	y := make([]blockQ8_0, nb)
	for i := 0; i < nb; i++ {
		var amax float32 = 0.0
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			if !(amax > cFabsf(v)) { // MAX(amax, fabsf(v))
				amax = cFabsf(v)
			}
		}
		d := amax / ((1 << 7) - 1)
		var id float32
		if d != 0 {
			id = 1.0 / d
		}
		y[i].d = F32ToF16(d)
		for j := 0; j < qk; j++ {
			x0 := x[i*qk+j] * id
			y[i].qs[j] = cInt8(cRoundf(x0))
		}
	}
	return y
}

func refQuantizeQ4_0(x []float32) []blockQ4_0 {
	const qk = 32
	nb := len(x) / qk
	y := make([]blockQ4_0, nb)
	for i := 0; i < nb; i++ {
		var amax, max float32
		for j := 0; j < qk; j++ {
			v := x[i*qk+j]
			if amax < cFabsf(v) {
				amax = cFabsf(v)
				max = v
			}
		}
		d := max / -8
		var id float32
		if d != 0 {
			id = 1.0 / d
		}
		y[i].d = F32ToF16(d)
		for j := 0; j < qk/2; j++ {
			x0 := x[i*qk+0+j] * id
			x1 := x[i*qk+qk/2+j] * id
			t0, t1 := int(cInt8(x0+8.5)), int(cInt8(x1+8.5))
			if t0 > 15 {
				t0 = 15
			}
			if t1 > 15 {
				t1 = 15
			}
			xi0, xi1 := uint8(t0), uint8(t1)
			y[i].qs[j] = xi0
			y[i].qs[j] |= xi1 << 4
		}
	}
	return y
}

func (b blockQ8_0) bytes() []byte {
	out := binary.LittleEndian.AppendUint16(nil, b.d)
	for _, q := range b.qs {
		out = append(out, byte(q))
	}
	return out
}

func (b blockQ4_0) bytes() []byte {
	return append(binary.LittleEndian.AppendUint16(nil, b.d), b.qs[:]...)
}

// inputs returns test rows: random normals at several scales, plus edge cases.
func inputs() [][]float32 {
	r := rand.New(rand.NewPCG(1, 2))
	var rows [][]float32
	for _, scale := range []float64{1e-6, 0.02, 1, 300, 7e4} {
		row := make([]float32, 32*64)
		for i := range row {
			row[i] = float32(r.NormFloat64() * scale)
		}
		rows = append(rows, row)
	}
	special := make([]float32, 32*8)
	// block 0 zeros; block 1 ties in |max|; block 2 halves for roundf; block 3 one subnormal;
	// block 4 Inf; block 5 NaN; block 6 huge; block 7 equal values.
	for j := 0; j < 32; j++ {
		special[32+j] = float32(j%5) - 2
		special[64+j] = float32(j) - 15.5
		special[160+j] = float32(j)
		special[192+j] = 3e38 * float32(j%3-1)
		special[224+j] = -0.7
	}
	special[32+3], special[32+4] = -4, 4
	special[96+7] = 1e-40
	special[128+2] = float32(math.Inf(1))
	special[160+9] = float32(math.NaN())
	rows = append(rows, special)
	return rows
}

func TestQuantizeQ8_0MatchesReference(t *testing.T) {
	for ri, x := range inputs() {
		got := make([]byte, len(x)/32*Q8_0Bytes)
		if err := QuantizeQ8_0(got, x); err != nil {
			t.Fatal(err)
		}
		for i, b := range refQuantizeQ8_0(x) {
			want := b.bytes()
			if g := got[i*Q8_0Bytes : (i+1)*Q8_0Bytes]; string(g) != string(want) {
				t.Fatalf("row %d block %d:\n got %x\nwant %x", ri, i, g, want)
			}
		}
	}
}

func TestQuantizeQ4_0MatchesReference(t *testing.T) {
	for ri, x := range inputs() {
		got := make([]byte, len(x)/32*Q4_0Bytes)
		if err := QuantizeQ4_0(got, x); err != nil {
			t.Fatal(err)
		}
		for i, b := range refQuantizeQ4_0(x) {
			want := b.bytes()
			if g := got[i*Q4_0Bytes : (i+1)*Q4_0Bytes]; string(g) != string(want) {
				t.Fatalf("row %d block %d:\n got %x\nwant %x", ri, i, g, want)
			}
		}
	}
}

// Hand-computed blocks.
func TestQuantizeKnownBlocks(t *testing.T) {
	// q8_0: amax 127 -> d = 1 (f16 0x3c00), id = 1, q = roundf(x) (halves away from zero).
	x := make([]float32, 32)
	x[0], x[1], x[2], x[3], x[4] = 127, 2.5, -2.5, 0.49, -126.6
	b := make([]byte, Q8_0Bytes)
	if err := QuantizeQ8_0(b, x); err != nil {
		t.Fatal(err)
	}
	if d := binary.LittleEndian.Uint16(b); d != 0x3c00 {
		t.Errorf("q8_0 d = %#04x, want 0x3c00", d)
	}
	if q := []int8{int8(b[2]), int8(b[3]), int8(b[4]), int8(b[5]), int8(b[6])}; q[0] != 127 || q[1] != 3 || q[2] != -3 || q[3] != 0 || q[4] != -127 {
		t.Errorf("q8_0 qs = %v, want [127 3 -3 0 -127]", q)
	}

	// q4_0: the largest magnitude is -8 -> d = 1, id = 1, q = min(15, trunc(x + 8.5)).
	x = make([]float32, 32)
	x[0], x[1], x[2], x[3], x[16], x[17] = -8, 7, 7.6, -0.6, -0.5, 3.2
	b = make([]byte, Q4_0Bytes)
	if err := QuantizeQ4_0(b, x); err != nil {
		t.Fatal(err)
	}
	if d := binary.LittleEndian.Uint16(b); d != 0x3c00 {
		t.Errorf("q4_0 d = %#04x, want 0x3c00", d)
	}
	// byte j: low nibble x[j], high nibble x[j+16]; x[j]=0 -> 8.
	want := []byte{0 | 8<<4, 15 | 11<<4, 15 | 8<<4, 7 | 8<<4, 8 | 8<<4}
	for j, w := range want {
		if b[2+j] != w {
			t.Errorf("q4_0 qs[%d] = %#02x, want %#02x", j, b[2+j], w)
		}
	}
	// With a positive max, d is negative: 8 -> q 0 -> (0-8)*-1 = 8.
	x = make([]float32, 32)
	x[0] = 8
	QuantizeQ4_0(b, x)
	if d := binary.LittleEndian.Uint16(b); d != 0xbc00 || b[2]&0xf != 0 {
		t.Errorf("q4_0 positive max: d=%#04x q0=%d", d, b[2]&0xf)
	}
	y := make([]float32, 32)
	DequantizeQ4_0(y, b)
	if y[0] != 8 || y[1] != 0 {
		t.Errorf("q4_0 dequant %v %v", y[0], y[1])
	}
}

func TestRoundTripErrorBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 64*100)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	type codec struct {
		name       string
		block, sz  int
		q          func([]byte, []float32) error
		dq         func([]float32, []byte) error
		stepPerMax float64 // max error as a fraction of the block absmax
	}
	for _, c := range []codec{
		{"q8_0", 32, Q8_0Bytes, QuantizeQ8_0, DequantizeQ8_0, 0.5/127 + 2e-3},
		{"q4_0", 32, Q4_0Bytes, QuantizeQ4_0, DequantizeQ4_0, 1.0/8 + 2e-3},
		{"nf4", 64, NF4Bytes, QuantizeNF4, DequantizeNF4, nf4MaxHalfGap() + 1e-6},
	} {
		buf := make([]byte, len(x)/c.block*c.sz)
		y := make([]float32, len(x))
		if err := c.q(buf, x); err != nil {
			t.Fatal(err)
		}
		if err := c.dq(y, buf); err != nil {
			t.Fatal(err)
		}
		var sq, sx float64
		for b := 0; b < len(x)/c.block; b++ {
			var amax float64
			for _, v := range x[b*c.block : (b+1)*c.block] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			for i := b * c.block; i < (b+1)*c.block; i++ {
				e := math.Abs(float64(x[i] - y[i]))
				if e > c.stepPerMax*amax+1e-7 {
					t.Fatalf("%s: |x-y| = %g at %d exceeds %g", c.name, e, i, c.stepPerMax*amax)
				}
				sq += e * e
				sx += float64(x[i]) * float64(x[i])
			}
		}
		t.Logf("%s: relative rms error %.4f", c.name, math.Sqrt(sq/sx))
	}
}

// nf4MaxHalfGap is half the widest gap between neighbouring NF4 codes: the worst
// rounding error for values inside [-1, 1].
func nf4MaxHalfGap() float64 {
	g := 0.0
	for i := 0; i+1 < len(NF4Code); i++ {
		g = math.Max(g, float64(NF4Code[i+1]-NF4Code[i])/2)
	}
	return g
}

func TestNF4(t *testing.T) {
	// Every code value (times a block absmax of 1) quantizes to its own index.
	x := make([]float32, 64)
	for i := range x {
		x[i] = NF4Code[i%16]
	}
	b := make([]byte, NF4Bytes)
	if err := QuantizeNF4(b, x); err != nil {
		t.Fatal(err)
	}
	if a := math.Float32frombits(binary.LittleEndian.Uint32(b)); a != 1 {
		t.Fatalf("absmax %v", a)
	}
	for j := 0; j < 32; j++ {
		if lo, hi := b[4+j]&0xf, b[4+j]>>4; int(lo) != (2*j)%16 || int(hi) != (2*j+1)%16 {
			t.Fatalf("byte %d = %#02x: low nibble must hold the even index", j, b[4+j])
		}
	}
	// Nearest code by the midpoints, independent of the decision tree: for many
	// values, the chosen code is the nearest one in the table (ties aside).
	r := rand.New(rand.NewPCG(5, 6))
	for n := 0; n < 100000; n++ {
		v := float32(r.Float64()*2 - 1)
		q := nf4Index(v)
		best := 0
		for k := range NF4Code {
			if math.Abs(float64(v-NF4Code[k])) < math.Abs(float64(v-NF4Code[best])) {
				best = k
			}
		}
		if int(q) != best {
			// Only allowed within float rounding of a midpoint.
			mid := (float64(NF4Code[q]) + float64(NF4Code[best])) / 2
			if math.Abs(float64(v)-mid) > 1e-6 {
				t.Fatalf("nf4Index(%v) = %d, nearest is %d", v, q, best)
			}
		}
	}
	// The published thresholds are exactly the midpoints of the code table.
	for i, m := range nf4Mid {
		if want := (float64(NF4Code[i]) + float64(NF4Code[i+1])) / 2; math.Abs(float64(m)-want) > 1e-7 {
			t.Errorf("threshold %d = %v, midpoint %v", i, m, want)
		}
	}
	// All-zero block: absmax 0, code 7 (0.0) everywhere.
	if err := QuantizeNF4(b, make([]float32, 64)); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, 64)
	DequantizeNF4(y, b)
	for _, v := range y {
		if v != 0 {
			t.Fatal("zero block does not dequantize to zeros")
		}
	}
}

func TestLengthErrors(t *testing.T) {
	if err := QuantizeQ8_0(make([]byte, 34), make([]float32, 31)); err == nil {
		t.Error("q8_0: 31 values accepted")
	}
	if err := QuantizeQ4_0(make([]byte, 17), make([]float32, 32)); err == nil {
		t.Error("q4_0: short dst accepted")
	}
	if err := DequantizeQ6_K(make([]float32, 256), make([]byte, 209)); err == nil {
		t.Error("q6_K: short src accepted")
	}
	if err := QuantizeNF4(make([]byte, NF4Bytes), make([]float32, 32)); err == nil {
		t.Error("nf4: 32 values accepted")
	}
}
