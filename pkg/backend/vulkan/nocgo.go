//go:build !cgo

package vulkan

import (
	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/vulkan/vk"
)

// Backend is unavailable in builds without cgo: New always fails.
type Backend struct {
	backend.Backend
	backend.Profiler
}

// New reports that this build has no Vulkan support (it needs cgo).
func New(Options) (*Backend, error) {
	_, err := vk.Devices() // the no-cgo build's error, with its fix
	return nil, err
}
