//go:build cgo

package vulkan

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
)

// benchShapes are GEMM shapes tokens x in x out of LLaMA-family layers:
// stories15M's FFN, a 1B-class attention projection and FFN up-projection.
// LORA_BENCH_SHAPES="MxKxN,..." overrides them (scripts/bench-device.sh uses
// larger ones on a GPU).
func benchShapes(tb testing.TB) [][3]int {
	spec := os.Getenv("LORA_BENCH_SHAPES")
	if spec == "" {
		return [][3]int{{512, 288, 768}, {128, 2048, 2048}, {128, 2048, 5632}}
	}
	var out [][3]int
	for _, f := range strings.Split(spec, ",") {
		var s [3]int
		if _, err := fmt.Sscanf(f, "%dx%dx%d", &s[0], &s[1], &s[2]); err != nil {
			tb.Fatalf("LORA_BENCH_SHAPES: %q is not MxKxN: %v", f, err)
		}
		out = append(out, s)
	}
	return out
}

// BenchmarkGEMM measures MatMul (x·Wᵀ) and MatMulDX (dy·W) per weight type
// and shape. GFLOP/s uses the GPU timestamps of the GEMM kernels; ns/op is
// wall time including submission and wait.
func BenchmarkGEMM(bm *testing.B) {
	b := open(bm, Options{})
	r := rand.New(rand.NewPCG(5, 5))
	for _, sh := range benchShapes(bm) {
		m, k, n := sh[0], sh[1], sh[2]
		for _, dt := range []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4} {
			if k%dt.BlockSize() != 0 {
				continue // rows must be whole blocks (288 is not a multiple of nf4's 64)
			}
			w, err := b.FromBytes(dt, []int{n, k}, quantize(bm, dt, randVec(r, n*k, 1), k))
			must(bm, err)
			x := upload(bm, b, randVec(r, m*k, 1), m, k)
			y := upload(bm, b, randVec(r, m*n, 1), m, n)
			for _, op := range []string{"fwd", "dx"} {
				bm.Run(fmt.Sprintf("%s/%s/%dx%dx%d", op, dt, m, k, n), func(bm *testing.B) {
					run := func() error {
						if op == "fwd" {
							return b.MatMul(y, x, w, false)
						}
						return b.MatMulDX(x, y, w, false)
					}
					must(bm, run()) // warm: pipeline creation
					must(bm, b.Sync())
					b.Profile(true)
					bm.ResetTimer()
					for range bm.N {
						must(bm, run())
						must(bm, b.Sync())
					}
					bm.StopTimer()
					var sec float64
					for _, kt := range b.Profile(true) {
						if strings.HasPrefix(kt.Name, "gemm_") {
							sec += kt.Seconds
						}
					}
					if sec > 0 {
						bm.ReportMetric(2*float64(m)*float64(k)*float64(n)*float64(bm.N)/sec/1e9, "GFLOP/s")
					}
				})
			}
			b.Free(w)
			b.Free(x)
			b.Free(y)
		}
	}
}

// BenchmarkTrainingStep replays the recorded tiny training step of
// TestTrainingStepParity and logs each kernel's share of the step.
func BenchmarkTrainingStep(bm *testing.B) {
	b := open(bm, Options{})
	t := &testing.T{}
	s := newTinyStep(t, b, 1)
	prog, err := b.Record(s.run)
	must(bm, err)
	defer prog.Release()
	must(bm, prog.Run())
	must(bm, b.Sync())
	b.Profile(true)
	bm.ResetTimer()
	for range bm.N {
		must(bm, prog.Run())
		must(bm, b.Sync())
	}
	bm.StopTimer()
	prof := b.Profile(true)
	sort.Slice(prof, func(i, j int) bool { return prof[i].Seconds > prof[j].Seconds })
	var total float64
	for _, k := range prof {
		total += k.Seconds
	}
	for _, k := range prof {
		bm.Logf("%-20s %6d calls %10.1f µs/step %5.1f%%", k.Name, k.Calls, k.Seconds/float64(bm.N)*1e6, 100*k.Seconds/total)
	}
}

// BenchmarkLoRALayer times one training step of a LoRA linear layer (rank 16)
// over a frozen weight of each type: y = x·Wᵀ + (x·Aᵀ)·Bᵀ, then dX through
// the base and the adapter and dA, dB, recorded once and replayed. The
// PyTorch + PEFT baseline in scripts/bench-device.sh times the same step.
func BenchmarkLoRALayer(bm *testing.B) {
	b := open(bm, Options{})
	r := rand.New(rand.NewPCG(9, 9))
	const rank = 16
	for _, sh := range benchShapes(bm) {
		m, k, n := sh[0], sh[1], sh[2]
		for _, dt := range []backend.DType{backend.F32, backend.F16, backend.Q8_0, backend.Q4_0, backend.NF4} {
			if k%dt.BlockSize() != 0 {
				continue
			}
			// Inputs are made once per shape and type, outside bm.Run: the
			// testing package calls the closure more than once (N=1 first),
			// and quantizing and uploading big weights costs far more than
			// the measured step.
			w, err := b.FromBytes(dt, []int{n, k}, quantize(bm, dt, randVec(r, n*k, 1), k))
			must(bm, err)
			t := map[string]backend.Tensor{}
			for _, name := range []string{"x", "a", "b", "y", "xa", "dy", "dx", "dxa", "da", "db"} {
				shape := map[string][2]int{"x": {m, k}, "a": {rank, k}, "b": {n, rank}, "y": {m, n}, "xa": {m, rank},
					"dy": {m, n}, "dx": {m, k}, "dxa": {m, rank}, "da": {rank, k}, "db": {n, rank}}[name]
				t[name] = upload(bm, b, randVec(r, shape[0]*shape[1], 0.1), shape[0], shape[1])
			}
			bm.Run(fmt.Sprintf("%s/%dx%dx%d", dt, m, k, n), func(bm *testing.B) {
				step := func() error {
					for _, f := range []func() error{
						func() error { return b.MatMul(t["y"], t["x"], w, false) },
						func() error { return b.MatMul(t["xa"], t["x"], t["a"], false) },
						func() error { return b.MatMul(t["y"], t["xa"], t["b"], true) },
						func() error { return b.MatMulDW(t["db"], t["dy"], t["xa"], false) },
						func() error { return b.MatMulDX(t["dxa"], t["dy"], t["b"], false) },
						func() error { return b.MatMulDW(t["da"], t["dxa"], t["x"], false) },
						func() error { return b.MatMulDX(t["dx"], t["dy"], w, false) },
						func() error { return b.MatMulDX(t["dx"], t["dxa"], t["a"], true) },
					} {
						if err := f(); err != nil {
							return err
						}
					}
					return nil
				}
				prog, err := b.Record(step)
				must(bm, err)
				defer prog.Release()
				must(bm, prog.Run())
				must(bm, b.Sync())
				bm.ResetTimer()
				for range bm.N {
					must(bm, prog.Run())
					must(bm, b.Sync())
				}
			})
			b.Free(w)
			for _, x := range t {
				b.Free(x)
			}
		}
	}
}
