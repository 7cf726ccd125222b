package ref

import (
	"fmt"
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
)

// BenchmarkMatMul reports GFLOP/s (2·n·in·out per call) for each weight type.
//
//	go test ./pkg/backend/ref -run '^$' -bench MatMul
func BenchmarkMatMul(b *testing.B) {
	shapes := []struct{ n, in, out int }{
		{1, 4096, 4096},  // one token through a 7B projection
		{128, 512, 512},  // a micro-batch through a small model
		{512, 256, 768},  // small-model FFN up
		{256, 2048, 256}, // tall reduction
	}
	for _, dt := range dtypes {
		for _, s := range shapes {
			b.Run(fmt.Sprintf("%v/n%d_in%d_out%d", dt, s.n, s.in, s.out), func(b *testing.B) {
				r := newRand(1)
				be := New()
				w, err := be.FromBytes(dt, []int{s.out, s.in}, randWeight(r, dt, s.out, s.in))
				if err != nil {
					b.Fatal(err)
				}
				x, _ := be.Alloc(backend.F32, s.n, s.in)
				if err := be.Write(x, randVec(r, s.n*s.in, 1)); err != nil {
					b.Fatal(err)
				}
				out, _ := be.Alloc(backend.F32, s.n, s.out)
				b.ResetTimer()
				for b.Loop() {
					if err := be.MatMul(out, x, w, false); err != nil {
						b.Fatal(err)
					}
				}
				flops := 2 * float64(s.n) * float64(s.in) * float64(s.out)
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMatMulDX reports GFLOP/s of the input-gradient product for each weight type.
func BenchmarkMatMulDX(b *testing.B) {
	const n, in, out = 128, 512, 512
	for _, dt := range dtypes {
		b.Run(dt.String(), func(b *testing.B) {
			r := newRand(1)
			be := New()
			w, err := be.FromBytes(dt, []int{out, in}, randWeight(r, dt, out, in))
			if err != nil {
				b.Fatal(err)
			}
			dy, _ := be.Alloc(backend.F32, n, out)
			if err := be.Write(dy, randVec(r, n*out, 1)); err != nil {
				b.Fatal(err)
			}
			dx, _ := be.Alloc(backend.F32, n, in)
			for b.Loop() {
				if err := be.MatMulDX(dx, dy, w, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(2*float64(n*in*out)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
