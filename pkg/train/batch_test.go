package train

import (
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPCGMatchesMathRandV2(t *testing.T) {
	// Our PCG is written out so shuffles never change with Go releases;
	// math/rand/v2's PCG is the independent reference for the algorithm.
	ours := newPCG(42, 1234)
	ref := rand.NewPCG(42, 1234)
	for i := 0; i < 1000; i++ {
		if a, b := ours.next(), ref.Uint64(); a != b {
			t.Fatalf("draw %d: %x != %x", i, a, b)
		}
	}
	hi, lo := mul64(0xdeadbeefcafebabe, 0x123456789abcdef1)
	h2, l2 := bits.Mul64(0xdeadbeefcafebabe, 0x123456789abcdef1)
	if hi != h2 || lo != l2 {
		t.Fatal("mul64 wrong")
	}
}

func TestPlanCoversEveryExampleOncePerEpoch(t *testing.T) {
	p, err := NewPlan(103, 16, 4, 2, 0, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.StepsPerEpoch != 7 || p.TotalSteps != 14 || p.Accumulation() != 4 {
		t.Fatalf("plan %+v", p)
	}
	for epoch := 0; epoch < 2; epoch++ {
		var seen []int
		for k := epoch * 7; k < (epoch+1)*7; k++ {
			for _, mb := range p.Step(k) {
				if len(mb) > 4 {
					t.Fatalf("micro-batch of %d", len(mb))
				}
				seen = append(seen, mb...)
			}
		}
		slices.Sort(seen)
		for i, v := range seen {
			if v != i {
				t.Fatalf("epoch %d: example %d missing or repeated (got %v...)", epoch, i, seen[:10])
			}
		}
	}
	// Different epochs see different orders; the same (seed, step) is stable.
	if slices.Equal(p.Step(0)[0], p.Step(7)[0]) {
		t.Error("epochs 0 and 1 start identically")
	}
	q, _ := NewPlan(103, 16, 4, 2, 0, 7, true)
	if !slices.Equal(p.Step(5)[1], q.Step(5)[1]) {
		t.Error("same seed gives a different order")
	}
}

func TestPlanErrors(t *testing.T) {
	for _, c := range []struct {
		n, b, m  int
		epochs   float64
		maxSteps int
	}{{0, 4, 4, 1, 0}, {10, 6, 4, 1, 0}, {10, 4, 0, 1, 0}, {10, 4, 4, 0, 0}} {
		if _, err := NewPlan(c.n, c.b, c.m, c.epochs, c.maxSteps, 1, true); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	p, err := NewPlan(10, 4, 2, 0.5, 0, 1, false)
	if err != nil || p.TotalSteps != 2 {
		t.Fatalf("fractional epochs: %+v %v", p, err)
	}
}

func TestPackShiftsAndMasks(t *testing.T) {
	exs := []Example{
		{InputIDs: []int32{1, 10, 11, 12}, Labels: []int32{Ignore, Ignore, 11, 12}},
		{InputIDs: []int32{1, 0, 5}, Labels: []int32{Ignore, 0, 5}}, // id 0 is a real token
	}
	b := Pack(exs, 3, 5, 2)
	wantIDs := []int32{1, 10, 11, 12, 2, 1, 0, 5, 2, 2, 2, 2, 2, 2, 2}
	wantT := []int32{Ignore, 11, 12, Ignore, Ignore, 0, 5, Ignore, Ignore, Ignore, Ignore, Ignore, Ignore, Ignore, Ignore}
	if !slices.Equal(b.IDs, wantIDs) || !slices.Equal(b.Targets, wantT) || b.Trained != 4 {
		t.Fatalf("ids %v\ntargets %v trained %d", b.IDs, b.Targets, b.Trained)
	}
}
