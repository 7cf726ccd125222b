package train

import (
	"math"
	"testing"
)

// Expected values were computed by hand from the definitions in Hugging Face
// transformers/optimization.py (the _get_*_lr_lambda functions), with
// warmup 2 and 10 total steps unless the case says otherwise.
func TestScheduleMatchesHuggingFace(t *testing.T) {
	cases := []struct {
		s    Schedule
		want []float64 // factors for k = 0..len-1
	}{
		{Schedule{Name: "constant", Warmup: 2, Total: 10}, []float64{1, 1, 1}},
		{Schedule{Name: "constant_with_warmup", Warmup: 2, Total: 10}, []float64{0, 0.5, 1, 1}},
		{Schedule{Name: "linear", Warmup: 2, Total: 10}, []float64{0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0, 0}},
		{Schedule{Name: "cosine", Warmup: 2, Total: 10}, []float64{0, 0.5, 1, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.30865828381745514, 0.14644660940672627, 0.03806023374435663, 0}},
		// two hard restarts over 8 decay steps: period 4
		{Schedule{Name: "cosine_with_restarts", Warmup: 2, Total: 10, NumCycles: 2}, []float64{0, 0.5, 1, 0.8535533905932737, 0.5, 0.14644660940672627, 1, 0.8535533905932737, 0.5, 0.14644660940672627, 0}},
		{Schedule{Name: "polynomial", Warmup: 2, Total: 10, LRInit: 1e-3, LREnd: 1e-4, Power: 2}, []float64{0, 0.5, 1, (0.9e-3*0.765625 + 1e-4) / 1e-3}},
		{Schedule{Name: "inverse_sqrt", Warmup: 4, Total: 100}, []float64{0, 0.25, 0.5, 0.75, 1, 1 / math.Sqrt(5.0/4), 1 / math.Sqrt(6.0/4)}},
		{Schedule{Name: "inverse_sqrt", Total: 100}, []float64{1, 1 / math.Sqrt(10001.0/10000)}},
	}
	for _, c := range cases {
		for k, w := range c.want {
			if got := c.s.Factor(k); math.Abs(got-w) > 1e-12 {
				t.Errorf("%s k=%d: got %.15g, want %.15g", c.s.Name, k, got, w)
			}
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	for _, n := range Schedulers {
		if err := (Schedule{Name: n}).Validate(); err != nil {
			t.Error(err)
		}
	}
	if err := (Schedule{Name: "cosin"}).Validate(); err == nil {
		t.Error("unknown scheduler accepted")
	}
}
