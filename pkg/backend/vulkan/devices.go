package vulkan

import (
	"errors"

	"github.com/lora-dev/lora/pkg/backend/vulkan/vk"
)

// DeviceInfo describes one Vulkan device (see vk.DeviceInfo).
type DeviceInfo = vk.DeviceInfo

// ErrNoDriver is returned when no Vulkan driver or device is available.
var ErrNoDriver = vk.ErrNoDriver

// Devices lists the Vulkan devices with a compute queue.
func Devices() ([]DeviceInfo, error) { return vk.Devices() }

// Options configure New.
type Options struct {
	// Index selects a device from Devices; a negative Index picks the best one
	// (discrete > integrated > virtual > cpu). Use AutoDevice for clarity.
	Index int
	// MaxBindingBytes caps the size of one storage-buffer binding (0 = the
	// device's maxStorageBufferRange). Larger weights are split into row ranges.
	MaxBindingBytes uint64
}

// AutoDevice as Options.Index lets New choose the device.
const AutoDevice = -1

// ErrFreed is wrapped by errors about tensors used after Free.
var ErrFreed = errors.New("tensor used after Free")
