//go:build !cgo

package vulkan

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/backend"
)

// Backend is unavailable in builds without cgo: New always fails.
type Backend struct {
	backend.Backend
	backend.Profiler
}

// New reports that this build has no Vulkan support (it needs cgo).
func New(Options) (*Backend, error) {
	return nil, fmt.Errorf("%w: this lora was built without cgo (CGO_ENABLED=0)", ErrNoDriver)
}
