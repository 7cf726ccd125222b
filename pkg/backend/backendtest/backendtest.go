// Package backendtest is the conformance kit: it checks any backend.Backend against the reference, op by op.
//
// A backend's tests call Run:
//
//	func TestConformance(t *testing.T) {
//		b, err := vulkan.New(vulkan.Options{})
//		if err != nil {
//			t.Skip(err)
//		}
//		defer b.Close()
//		backendtest.Run(t, b, backendtest.Options{})
//	}
//
// Run feeds every operation random non-zero inputs at several shapes (including
// sizes that are not multiples of 16, 32 or 64: n = 1, 7, 33, 130), uploads the
// same bytes to the backend under test and to the reference (pkg/backend/ref),
// and compares the outputs element by element. Each operation is a subtest
// (Run/MatMul, Run/Attention, ...), so `go test -run 'Conformance/MatMul'`
// narrows a failure down. A failure names the op, the case (shapes, dtype,
// flags), the output tensor, the first offending index in tensor coordinates,
// both values and the tolerance, and how many elements differ.
//
// Comparison: an element passes when
//
//	|got − want| <= Abs + Rel·max(|want|, rms(want))
//
// where rms(want) is the root mean square of the whole reference output (so
// values near zero in an output of size ~1 are judged on the output's scale).
// NaN or Inf where the reference is finite always fails. Defaults are in
// DefaultTol; Options.Tol overrides them per op and Options.Loosen scales them.
//
// Beyond single ops, Run checks: quantized weights (F16, Q8_0, Q4_0 and NF4
// bytes produced by pkg/quant from random data) in Embed, MatMul and MatMulDX;
// accumulate=true paths; Copy with offsets (f32 and i32); the Dropout mask
// against backend.DropoutKeep itself; and Record/Program replay, which must give
// bit-identical results to eager calls on the same backend after its inputs
// are rewritten between runs (and identical results when run twice); and that
// calls with mismatched shapes fail with an error naming the op.
package backendtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
)

// Tol is a tolerance: |got − want| <= Abs + Rel·max(|want|, rms(want)).
type Tol struct {
	Rel, Abs float64
}

// DefaultTol holds the default tolerance per op. Elementwise ops get 1e-5
// relative; ops that reduce over a dimension (matmuls, norms, softmax,
// attention, losses) or use transcendental functions get 1e-4. Quantized
// weights do not loosen anything: both backends see the same bytes and must
// decode them to the same values.
var DefaultTol = map[string]Tol{
	"Fill":              {Rel: 0},
	"Copy":              {Rel: 0},
	"AddScaled":         {Rel: 1e-5},
	"Mul":               {Rel: 1e-5},
	"AddBias":           {Rel: 1e-5},
	"SumRows":           {Rel: 1e-4},
	"Embed":             {Rel: 1e-6},
	"RMSNorm":           {Rel: 1e-4},
	"RMSNormBackward":   {Rel: 1e-4},
	"MatMul":            {Rel: 1e-4},
	"MatMulDX":          {Rel: 1e-4},
	"MatMulDW":          {Rel: 1e-4},
	"RoPE":              {Rel: 1e-4},
	"Attention":         {Rel: 1e-4},
	"AttentionBackward": {Rel: 1e-4},
	"SwiGLU":            {Rel: 1e-5},
	"SwiGLUBackward":    {Rel: 1e-5},
	"Dropout":           {Rel: 1e-5},
	"CrossEntropy":      {Rel: 1e-4},
	"SumSquares":        {Rel: 1e-4},
	"AdamW":             {Rel: 1e-4},
	"Record":            {Rel: 1e-4},
}

// Options tunes Run. The zero value runs everything with DefaultTol.
type Options struct {
	// Tol overrides tolerances. Keys are an op name ("MatMul") or an op and a
	// weight dtype ("MatMul/q4_0"); the more specific key wins.
	Tol map[string]Tol
	// Loosen multiplies every tolerance that Tol does not override (0 means 1).
	Loosen float64
	// Skip names ops (subtests) the backend does not implement yet; they are
	// reported as skipped, not passed.
	Skip []string
	// Seed changes the random inputs (0 uses a fixed default).
	Seed uint64
	// Reference is the oracle; nil means ref.New().
	Reference backend.Backend
	// Short runs only the smallest shapes (also implied by go test -short).
	Short bool
}

// Run checks every operation of b against the reference. It reports failures
// through t and never stops at the first failing op.
func Run(t *testing.T, b backend.Backend, opts Options) {
	t.Helper()
	refb := opts.Reference
	if refb == nil {
		refb = ref.New()
		defer refb.Close()
	}
	if opts.Seed == 0 {
		opts.Seed = 0x10ba
	}
	opts.Short = opts.Short || testing.Short()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if slices.Contains(opts.Skip, c.name) {
				t.Skipf("%s skipped by Options.Skip", c.name)
			}
			k := &kit{t: t, be: [2]backend.Backend{b, refb}, opts: opts, r: rand.New(rand.NewPCG(opts.Seed, uint64(len(c.name))))}
			defer k.freeAll()
			c.fn(k)
		})
	}
}

// checks lists the subtests in the order they run.
var checks = []struct {
	name string
	fn   func(*kit)
}{
	{"Fill", checkFill},
	{"Copy", checkCopy},
	{"AddScaled", checkAddScaled},
	{"Mul", checkMul},
	{"AddBias", checkAddBias},
	{"SumRows", checkSumRows},
	{"Embed", checkEmbed},
	{"RMSNorm", checkRMSNorm},
	{"RMSNormBackward", checkRMSNormBackward},
	{"MatMul", checkMatMul},
	{"MatMulDX", checkMatMulDX},
	{"MatMulDW", checkMatMulDW},
	{"RoPE", checkRoPE},
	{"Attention", checkAttention},
	{"AttentionBackward", checkAttentionBackward},
	{"SwiGLU", checkSwiGLU},
	{"SwiGLUBackward", checkSwiGLUBackward},
	{"Dropout", checkDropout},
	{"CrossEntropy", checkCrossEntropy},
	{"SumSquares", checkSumSquares},
	{"AdamW", checkAdamW},
	{"Record", checkRecord},
	{"Errors", checkErrors},
}

// Side indexes the two backends: the one under test and the reference.
const (
	test = 0
	refr = 1
)

// dual is one tensor uploaded with the same contents to both backends.
type dual struct {
	name  string
	dt    backend.DType
	shape []int
	t     [2]backend.Tensor
}

// kit holds the state of one subtest.
type kit struct {
	t    *testing.T
	be   [2]backend.Backend
	opts Options
	r    *rand.Rand
	live []*dual
}

func (k *kit) freeAll() {
	for _, d := range k.live {
		for s := range 2 {
			if d.t[s] != nil {
				k.be[s].Free(d.t[s])
			}
		}
	}
	k.live = nil
}

func sideName(s int) string {
	if s == test {
		return "backend under test"
	}
	return "reference"
}

// alloc allocates a zero tensor on both sides.
func (k *kit) alloc(name string, dt backend.DType, shape ...int) *dual {
	k.t.Helper()
	d := &dual{name: name, dt: dt, shape: shape}
	for s := range 2 {
		x, err := k.be[s].Alloc(dt, shape...)
		if err != nil {
			k.t.Fatalf("%s: Alloc(%v, %v) for %s: %v", sideName(s), dt, shape, name, err)
		}
		d.t[s] = x
	}
	k.live = append(k.live, d)
	return d
}

// f32 uploads data to both sides.
func (k *kit) f32(name string, data []float32, shape ...int) *dual {
	k.t.Helper()
	d := k.alloc(name, backend.F32, shape...)
	k.write(d, data)
	return d
}

// i32 uploads data to both sides.
func (k *kit) i32(name string, data []int32, shape ...int) *dual {
	k.t.Helper()
	d := k.alloc(name, backend.I32, shape...)
	k.write(d, data)
	return d
}

// write writes host data to both sides.
func (k *kit) write(d *dual, data any) {
	k.t.Helper()
	for s := range 2 {
		if err := k.be[s].Write(d.t[s], data); err != nil {
			k.t.Fatalf("%s: Write %s %v: %v", sideName(s), d.name, d.shape, err)
		}
	}
}

// raw uploads storage bytes to both sides.
func (k *kit) raw(name string, dt backend.DType, raw []byte, shape ...int) *dual {
	k.t.Helper()
	d := &dual{name: name, dt: dt, shape: shape}
	for s := range 2 {
		x, err := k.be[s].FromBytes(dt, shape, raw)
		if err != nil {
			k.t.Fatalf("%s: FromBytes(%v, %v) for %s: %v", sideName(s), dt, shape, name, err)
		}
		d.t[s] = x
	}
	k.live = append(k.live, d)
	return d
}

// read reads an F32 tensor of one side.
func (k *kit) read(d *dual, s int) []float32 {
	k.t.Helper()
	out := make([]float32, size(d.shape))
	if err := k.be[s].Read(d.t[s], out); err != nil {
		k.t.Fatalf("%s: Read %s %v: %v", sideName(s), d.name, d.shape, err)
	}
	return out
}

func size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// tol returns the tolerance for op and weight dtype key ("" when none).
func (k *kit) tol(op, dtKey string) Tol {
	if dtKey != "" {
		if t, ok := k.opts.Tol[op+"/"+dtKey]; ok {
			return t
		}
	}
	if t, ok := k.opts.Tol[op]; ok {
		return t
	}
	t := DefaultTol[op]
	if l := k.opts.Loosen; l > 0 {
		t.Rel *= l
		t.Abs *= l
	}
	return t
}

// run calls fn on the backend under test and on the reference, then compares
// outs. It returns false when the backend under test returned an error.
func (k *kit) run(op, dtKey, desc string, outs []*dual, fn func(be backend.Backend, s int) error) bool {
	k.t.Helper()
	if err := fn(k.be[test], test); err != nil {
		k.t.Errorf("%s %s: backend returned error: %v", op, desc, err)
		return false
	}
	if err := fn(k.be[refr], refr); err != nil {
		k.t.Fatalf("%s %s: reference returned error (a bug in backendtest or ref): %v", op, desc, err)
	}
	for _, o := range outs {
		k.compare(op, dtKey, desc, o, k.read(o, test), k.read(o, refr))
	}
	return true
}

// compare reports elements of got that differ from want beyond the tolerance.
func (k *kit) compare(op, dtKey, desc string, d *dual, got, want []float32) bool {
	k.t.Helper()
	tol := k.tol(op, dtKey)
	var ss float64
	for _, w := range want {
		ss += float64(w) * float64(w)
	}
	rms := math.Sqrt(ss / float64(max(1, len(want))))
	bad, first, worst, worstDiff := 0, -1, -1, 0.0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		diff := math.Abs(g - w)
		limit := tol.Abs + tol.Rel*max(math.Abs(w), rms)
		if diff <= limit || (g == w) { // g == w also covers equal infinities
			continue
		}
		if math.IsNaN(diff) && math.IsNaN(g) && math.IsNaN(w) {
			continue
		}
		if first < 0 {
			first = i
		}
		if math.IsNaN(diff) || diff > worstDiff {
			worst, worstDiff = i, diff
		}
		bad++
	}
	if bad == 0 {
		return true
	}
	at := func(i int) string {
		limit := tol.Abs + tol.Rel*max(math.Abs(float64(want[i])), rms)
		return fmt.Sprintf("%s%s = %.9g, want %.9g (|diff| %.3g > tol %.3g)", d.name, index(d.shape, i), got[i], want[i], math.Abs(float64(got[i])-float64(want[i])), limit)
	}
	msg := fmt.Sprintf("%s %s: %s; %d of %d elements out of tolerance (rel %g, abs %g)", op, desc, at(first), bad, len(want), tol.Rel, tol.Abs)
	if worst != first && worst >= 0 {
		msg += "; worst " + at(worst)
	}
	k.t.Error(msg)
	return false
}

// index formats flat index i as coordinates in shape, e.g. [5 3].
func index(shape []int, i int) string {
	idx := make([]string, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = fmt.Sprint(i % shape[d])
		i /= shape[d]
	}
	return "[" + strings.Join(idx, " ") + "]"
}

// vec returns n random values in [-s, s), never zero.
func (k *kit) vec(n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		x := 2*k.r.Float64() - 1
		for x == 0 {
			x = 2*k.r.Float64() - 1
		}
		v[i] = float32(x * s)
	}
	return v
}

// ints returns n random int32 in [lo, hi).
func (k *kit) ints(n int, lo, hi int) []int32 {
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(lo + k.r.IntN(hi-lo))
	}
	return v
}

// pick returns the short list under Options.Short, else the full one.
func pick[T any](k *kit, short, full []T) []T {
	if k.opts.Short {
		return short
	}
	return full
}
