package vulkan

import "github.com/lora-dev/lora/pkg/backend/vulkan/vk"

// DeviceInfo describes one Vulkan device (see vk.DeviceInfo).
type DeviceInfo = vk.DeviceInfo

// ErrNoDriver is returned when no Vulkan driver or device is available.
var ErrNoDriver = vk.ErrNoDriver

// Devices lists the Vulkan devices with a compute queue.
func Devices() ([]DeviceInfo, error) { return vk.Devices() }
