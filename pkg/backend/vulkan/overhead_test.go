package vulkan

import (
	"testing"
	"time"

	"github.com/lora-dev/lora/pkg/backend"
)

func TestOverheadProbe(t *testing.T) {
	b := open(t, Options{})
	x, _ := b.Alloc(backend.F32, 64)
	y, _ := b.Alloc(backend.F32, 64)
	must(t, b.Sync())
	for _, n := range []int{1, 10, 100} {
		t0 := time.Now()
		for range 10 {
			for range n {
				must(t, b.AddScaled(y, x, 1))
			}
			must(t, b.Sync())
		}
		wall := time.Since(t0) / 10
		var gpu float64
		for _, k := range b.Profile(true) {
			gpu += k.Seconds
		}
		t.Logf("%d dispatches + sync: %v wall, %.3f ms kernel", n, wall, gpu/10*1e3)
	}
}
