package train

import (
	"fmt"
	"math"

	"github.com/lora-dev/lora/pkg/examples"
)

// Example is one training sequence as the format and chunk stages write
// it: token ids and, aligned with them, the labels (-100 where not trained),
// as Hugging Face datasets hold them. The model predicts labels[t+1] from
// position t; Pack does the shift.
type Example = examples.Example

// Ignore is the label of a position that is not trained.
const Ignore = -100

// Plan fixes which examples every optimizer step sees. Everything is a pure
// function of (seed, step), so a resumed run only needs the step number to
// continue with exactly the data it would have seen.
type Plan struct {
	Examples      int
	BatchSize     int // examples per optimizer step
	MicroBatch    int // examples per forward/backward pass
	StepsPerEpoch int
	TotalSteps    int
	Seed          uint64
	Shuffle       bool
}

// NewPlan validates the batch settings and computes the step counts: epochs
// may be fractional; maxSteps > 0 overrides epochs.
func NewPlan(examples, batchSize, microBatch int, epochs float64, maxSteps int, seed uint64, shuffle bool) (Plan, error) {
	switch {
	case examples <= 0:
		return Plan{}, fmt.Errorf("no training examples")
	case microBatch <= 0:
		return Plan{}, fmt.Errorf("micro_batch_size must be positive, got %d", microBatch)
	case batchSize < microBatch || batchSize%microBatch != 0:
		return Plan{}, fmt.Errorf("batch_size %d must be a positive multiple of micro_batch_size %d", batchSize, microBatch)
	case maxSteps <= 0 && !(epochs > 0):
		return Plan{}, fmt.Errorf("set epochs > 0 or max_steps > 0")
	}
	p := Plan{Examples: examples, BatchSize: batchSize, MicroBatch: microBatch, Seed: seed, Shuffle: shuffle}
	p.StepsPerEpoch = (examples + batchSize - 1) / batchSize
	if maxSteps > 0 {
		p.TotalSteps = maxSteps
	} else {
		p.TotalSteps = int(math.Ceil(epochs * float64(p.StepsPerEpoch)))
	}
	return p, nil
}

// Accumulation is the number of micro-batches per optimizer step.
func (p Plan) Accumulation() int { return p.BatchSize / p.MicroBatch }

// Epoch returns the (fractional) epoch reached after completing k steps.
func (p Plan) Epoch(k int) float64 { return float64(k) / float64(p.StepsPerEpoch) }

// Step returns the example indices of optimizer step k (0-based), split into
// micro-batches. The last step of an epoch may hold fewer examples (and fewer
// micro-batches); the loss is normalised by trained tokens, so that is sound.
func (p Plan) Step(k int) [][]int {
	epoch := k / p.StepsPerEpoch
	pos := (k % p.StepsPerEpoch) * p.BatchSize
	order := p.order(epoch)
	end := min(pos+p.BatchSize, p.Examples)
	var micro [][]int
	for i := pos; i < end; i += p.MicroBatch {
		micro = append(micro, order[i:min(i+p.MicroBatch, end)])
	}
	return micro
}

func (p Plan) order(epoch int) []int {
	idx := make([]int, p.Examples)
	for i := range idx {
		idx[i] = i
	}
	if !p.Shuffle {
		return idx
	}
	r := newPCG(p.Seed, 0x5348554646 /* "SHUFF" */ ^uint64(epoch)<<40)
	for i := len(idx) - 1; i > 0; i-- {
		j := int(r.bounded(uint64(i + 1)))
		idx[i], idx[j] = idx[j], idx[i]
	}
	return idx
}

// pcg is PCG-DXSM 128/64 (the generator of math/rand/v2's PCG), written
// out so that shuffles never change with the Go release.
type pcg struct{ hi, lo uint64 }

func newPCG(seed1, seed2 uint64) *pcg { return &pcg{hi: seed1, lo: seed2} }

func (p *pcg) next() uint64 {
	const (
		mulHi = 2549297995355413924
		mulLo = 4865540595714422341
		incHi = 6364136223846793005
		incLo = 1442695040888963407
	)
	// state = state*mul + inc (128-bit)
	hi, lo := mul64(p.lo, mulLo)
	hi += p.hi*mulLo + p.lo*mulHi
	lo, c := add64(lo, incLo)
	hi += incHi + c
	p.hi, p.lo = hi, lo
	// DXSM output permutation
	const cheapMul = 0xda942042e4dd58b5
	hi ^= hi >> 32
	hi *= cheapMul
	hi ^= hi >> 48
	hi *= lo | 1
	return hi
}

// bounded returns a value in [0, n) without modulo bias (rejection).
func (p *pcg) bounded(n uint64) uint64 {
	limit := ^uint64(0) - (^uint64(0) % n)
	for {
		if x := p.next(); x < limit {
			return x % n
		}
	}
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1 := t&mask32 + a0*b1
	hi = a1*b1 + t>>32 + w1>>32
	lo = a * b
	return
}

func add64(a, b uint64) (sum, carry uint64) {
	sum = a + b
	if sum < a {
		carry = 1
	}
	return
}

// Batch is one micro-batch packed to a fixed shape [Rows, Len] so the
// recorded training step can be replayed: ids padded with Pad, targets
// shifted left by one (targets[t] = labels[t+1]) and Ignore on padding.
type Batch struct {
	Rows, Len int
	IDs       []int32
	Targets   []int32
	Trained   int // number of targets != Ignore
}

// Pack builds the micro-batch of examples exs at rows × length. Examples
// longer than length are cut (the data stages already applied the cutoff;
// this is a guard). Missing rows are all padding.
func Pack(exs []Example, rows, length int, pad int32) Batch {
	b := Batch{Rows: rows, Len: length, IDs: make([]int32, rows*length), Targets: make([]int32, rows*length)}
	for i := range b.IDs {
		b.IDs[i] = pad
		b.Targets[i] = Ignore
	}
	for r, ex := range exs {
		if r >= rows {
			break
		}
		n := min(len(ex.InputIDs), length)
		copy(b.IDs[r*length:], ex.InputIDs[:n])
		for t := 0; t+1 < n; t++ {
			if l := ex.Labels[t+1]; l != Ignore {
				b.Targets[r*length+t] = l
				b.Trained++
			}
		}
	}
	return b
}
