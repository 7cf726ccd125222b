//go:build cgo

package vulkan

import (
	"errors"
	"testing"

	"github.com/lora-dev/lora/pkg/backend/backendtest"
)

// open returns a backend on the default device, skipping the test when this
// machine has no Vulkan driver.
func open(t testing.TB, opts Options) *Backend {
	t.Helper()
	opts.Index = AutoDevice
	b, err := New(opts)
	if errors.Is(err, ErrNoDriver) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// TestConformance holds every kernel to the plain-Go reference (float64
// accumulation) with backendtest's default tolerances: 0 for copies and fills,
// 1e-6 relative for embedding lookups (exact dequantization), 1e-5 for
// elementwise ops, 1e-4 for reductions, matmuls on every weight type,
// norms, RoPE, attention, losses and AdamW.
func TestConformance(t *testing.T) {
	b := open(t, Options{})
	backendtest.Run(t, b, backendtest.Options{})
}
