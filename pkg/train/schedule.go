package train

import (
	"fmt"
	"math"
)

// Schedule gives the learning-rate multiplier for an optimizer step, with the
// semantics of Hugging Face transformers' get_scheduler: the multiplier for
// step k (0-based, the k-th optimizer update) is lambda(k), so a warmup starts
// at 0.
type Schedule struct {
	Name        string  // linear, constant, constant_with_warmup, cosine, cosine_with_restarts, polynomial, inverse_sqrt
	Warmup      int     // warmup steps
	Total       int     // total optimizer steps
	NumCycles   float64 // cosine: 0.5 (half a cosine); cosine_with_restarts: 1 (hard restarts)
	Power       float64 // polynomial: 1
	LREnd       float64 // polynomial: final lr (absolute), HF default 1e-7
	LRInit      float64 // polynomial needs the base lr
	InvSqrtTime float64 // inverse_sqrt timescale; 0 means Warmup, or 10000 without warmup
}

// Schedulers lists the supported names.
var Schedulers = []string{"linear", "constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "polynomial", "inverse_sqrt"}

// Validate reports an unknown scheduler name.
func (s Schedule) Validate() error {
	for _, n := range Schedulers {
		if n == s.Name {
			return nil
		}
	}
	return fmt.Errorf("unknown scheduler %q (known: %v)", s.Name, Schedulers)
}

// Factor returns the multiplier of the base learning rate at step k.
func (s Schedule) Factor(k int) float64 {
	warm := func() (float64, bool) {
		if k < s.Warmup {
			return float64(k) / float64(max(1, s.Warmup)), true
		}
		return 0, false
	}
	switch s.Name {
	case "constant":
		return 1
	case "constant_with_warmup":
		if f, ok := warm(); ok {
			return f
		}
		return 1
	case "linear", "":
		if f, ok := warm(); ok {
			return f
		}
		return math.Max(0, float64(s.Total-k)/float64(max(1, s.Total-s.Warmup)))
	case "cosine":
		if f, ok := warm(); ok {
			return f
		}
		cycles := s.NumCycles
		if cycles == 0 {
			cycles = 0.5
		}
		p := float64(k-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*cycles*2*p)))
	case "cosine_with_restarts":
		if f, ok := warm(); ok {
			return f
		}
		cycles := s.NumCycles
		if cycles == 0 {
			cycles = 1
		}
		p := float64(k-s.Warmup) / float64(max(1, s.Total-s.Warmup))
		if p >= 1 {
			return 0
		}
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*math.Mod(cycles*p, 1))))
	case "polynomial":
		if f, ok := warm(); ok {
			return f
		}
		lrEnd, power := s.LREnd, s.Power
		if lrEnd == 0 {
			lrEnd = 1e-7
		}
		if power == 0 {
			power = 1
		}
		if s.LRInit <= 0 {
			return 1
		}
		if k > s.Total {
			return lrEnd / s.LRInit
		}
		lrRange := s.LRInit - lrEnd
		decaySteps := s.Total - s.Warmup
		pct := 1 - float64(k-s.Warmup)/float64(max(1, decaySteps))
		return (lrRange*math.Pow(pct, power) + lrEnd) / s.LRInit
	case "inverse_sqrt":
		if f, ok := warm(); ok {
			return f
		}
		ts := s.InvSqrtTime
		if ts == 0 {
			ts = float64(s.Warmup)
			if ts == 0 {
				ts = 10000
			}
		}
		shift := ts - float64(s.Warmup)
		return 1 / math.Sqrt((float64(k)+shift)/ts)
	}
	return 1
}
