package quant

import (
	"math"
	"sort"
	"testing"
)

// halfValue is the exact value of a finite binary16 from its definition.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	if e == 0 {
		return sign * math.Ldexp(m, -24)
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func TestF16ToF32Exhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToF32(h)
		switch e := h >> 10 & 0x1f; {
		case e == 0x1f && h&0x3ff == 0:
			if !math.IsInf(float64(got), int(1-2*int(h>>15))) {
				t.Fatalf("%#04x -> %v, want ±Inf", h, got)
			}
		case e == 0x1f:
			if got == got {
				t.Fatalf("%#04x -> %v, want NaN", h, got)
			}
		default:
			if float64(got) != halfValue(h) || math.Signbit(float64(got)) != (h&0x8000 != 0) {
				t.Fatalf("%#04x -> %v, want %v", h, got, halfValue(h))
			}
			if back := F32ToF16(got); back != h {
				t.Fatalf("round trip %#04x -> %v -> %#04x", h, got, back)
			}
		}
	}
}

// refF32ToF16 rounds by searching the sorted table of positive finite halves:
// nearest value, ties to the even bit pattern, >= 65520 overflows to Inf.
type halfTable []float64

func newHalfTable() halfTable {
	tab := make(halfTable, 0x7c00)
	for i := range tab {
		tab[i] = halfValue(uint16(i))
	}
	return tab
}

func (tab halfTable) round(x float32) uint16 {
	var sign uint16
	a := float64(x)
	if math.Signbit(a) {
		sign, a = 0x8000, -a
	}
	if a >= 65520 {
		return sign | 0x7c00
	}
	i := sort.SearchFloat64s(tab, a) // first tab[i] >= a
	if i < len(tab) && tab[i] == a {
		return sign | uint16(i)
	}
	lo, hi := i-1, i
	dl, dh := a-tab[lo], 65536-a
	if hi < len(tab) {
		dh = tab[hi] - a
	}
	switch {
	case dl < dh:
		return sign | uint16(lo)
	case dh < dl:
		return sign | uint16(hi)
	case lo%2 == 0:
		return sign | uint16(lo)
	}
	return sign | uint16(hi)
}

func TestF32ToF16AgainstTable(t *testing.T) {
	tab := newHalfTable()
	check := func(x float32) {
		if got, want := F32ToF16(x), tab.round(x); got != want {
			t.Fatalf("F32ToF16(%g [%#08x]) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
	}
	// A stride through every float32 bit pattern (finite ones checked).
	for u := uint64(0); u < 1<<32; u += 4099 {
		x := math.Float32frombits(uint32(u))
		if !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) {
			check(x)
		}
	}
	// Every halfway point between neighbouring halves, and its float32 neighbours.
	for i := 0; i < 0x7bff; i++ {
		mid := float32((tab[i] + tab[i+1]) / 2)
		for _, x := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9), -mid} {
			check(x)
		}
	}
	for _, x := range []float32{65504, 65519.99, 65520, 1e10, 5.960464477539063e-08, 2.98e-08, 2.9802322387695312e-08, 1e-30} {
		check(x)
	}
	if h := F32ToF16(float32(math.Inf(-1))); h != 0xfc00 {
		t.Errorf("-Inf -> %#04x", h)
	}
	if h := F32ToF16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN -> %#04x, want a NaN", h)
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1.0
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above tie
		{0x7f7fffff, 0x7f80}, // max float rounds to Inf
		{0xff800000, 0xff80}, // -Inf
		{0x7f800001, 0x7fc0}, // signalling NaN made quiet
		{0x00000001, 0x0000}, // tiny subnormal
	}
	for _, c := range cases {
		if got := F32ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := BF16ToF32(h)
		if math.Float32bits(f) != uint32(h)<<16 {
			t.Fatalf("BF16ToF32(%#04x) bits %#08x", h, math.Float32bits(f))
		}
		if f == f && F32ToBF16(f) != h {
			t.Fatalf("bf16 round trip %#04x", h)
		}
	}
}
