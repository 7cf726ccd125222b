//go:build !cgo

package vk

import "fmt"

// Devices reports that this build has no Vulkan support (it needs cgo).
func Devices() ([]DeviceInfo, error) {
	return nil, fmt.Errorf("%w (this lora was built without cgo); rebuild with CGO_ENABLED=1 and a C compiler, or use --device cpu", ErrNoDriver)
}
