package ref

import (
	"testing"

	"github.com/lora-dev/lora/pkg/backend"
)

// FuzzFromBytes feeds arbitrary dtypes, shapes and bytes to FromBytes and, when
// accepted, runs Embed and MatMul over the tensor: nothing may panic.
//
//	go test ./pkg/backend/ref -run '^$' -fuzz FuzzFromBytes -fuzztime 1m
func FuzzFromBytes(f *testing.F) {
	f.Add(uint8(backend.Q4_0), 2, 32, make([]byte, 36))
	f.Add(uint8(backend.NF4), 1, 64, make([]byte, 36))
	f.Add(uint8(backend.F16), 3, 5, make([]byte, 30))
	f.Add(uint8(backend.Q8_0), -1, 32, []byte{1, 2, 3})
	f.Add(uint8(9), 1, 1, []byte{0})
	f.Fuzz(func(t *testing.T, dt uint8, rows, cols int, raw []byte) {
		b := New()
		w, err := b.FromBytes(backend.DType(dt), []int{rows, cols}, raw)
		if err != nil {
			return
		}
		if rows*cols > 1<<16 {
			return // accepted, but too big to exercise quickly
		}
		ids, _ := b.Alloc(backend.I32, 1)
		out, _ := b.Alloc(backend.F32, 1, cols)
		_ = b.Embed(out, w, ids)
		x, _ := b.Alloc(backend.F32, 2, cols)
		y, _ := b.Alloc(backend.F32, 2, rows)
		_ = b.MatMul(y, x, w, false)
		_ = b.MatMulDX(x, y, w, true)
	})
}
