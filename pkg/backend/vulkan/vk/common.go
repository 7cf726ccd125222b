package vk

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// ErrNoDriver is returned when libvulkan.so.1 or a Vulkan driver cannot be found.
var ErrNoDriver = errors.New("no usable Vulkan driver")

// noDriver wraps ErrNoDriver with the cause, then the fix.
func noDriver(format string, a ...any) error {
	return fmt.Errorf("%w (%s); install a Vulkan driver (Debian: mesa-vulkan-drivers libvulkan1), or use --device cpu", ErrNoDriver, fmt.Sprintf(format, a...))
}

// ErrOutOfMemory is wrapped by allocation failures.
var ErrOutOfMemory = errors.New("out of device memory")

// DeviceInfo describes one Vulkan physical device.
type DeviceInfo struct {
	Index      int    `json:"index"`
	Name       string `json:"name"`
	Type       string `json:"type"` // discrete, integrated, virtual, cpu, other
	Driver     string `json:"driver"`
	DriverInfo string `json:"driver_info,omitempty"`
	APIVersion string `json:"api_version"`
	VendorID   uint32 `json:"vendor_id"`
	DeviceID   uint32 `json:"device_id"`
	// MemoryBytes is the size of the largest device-local heap; MemoryFreeBytes
	// its budget minus usage when VK_EXT_memory_budget is present (else 0).
	MemoryBytes     uint64 `json:"memory_bytes"`
	MemoryFreeBytes uint64 `json:"memory_free_bytes,omitempty"`
	SubgroupSize    uint32 `json:"subgroup_size"`
	SharedMemory    uint32 `json:"shared_memory_bytes"`
	// MaxStorageBufferRange is the largest storage-buffer binding in bytes.
	MaxStorageBufferRange  uint64    `json:"max_storage_buffer_range"`
	MaxWorkgroupCount      [3]uint32 `json:"max_workgroup_count"`
	MaxWorkgroupInvocation uint32    `json:"max_workgroup_invocations"`
	MaxPushConstants       uint32    `json:"max_push_constants"`
	MinStorageAlign        uint64    `json:"min_storage_buffer_offset_alignment"`
	FP16                   bool      `json:"fp16"`
	Int8                   bool      `json:"int8"`
	Storage16              bool      `json:"storage_buffer_16bit"`
	Storage8               bool      `json:"storage_buffer_8bit"`
	TimestampPeriodNs      float32   `json:"timestamp_period_ns"`
	Timestamps             bool      `json:"timestamps"`

	phys    unsafe.Pointer // VkPhysicalDevice
	family  uint32
	memType uint32 // device-local type index
	hostMem uint32 // host-visible coherent type index
	heap    uint32
	budget  bool
}

// typeRank orders device types for the default choice (lower is preferred).
var typeRank = map[string]int{"discrete": 0, "integrated": 1, "virtual": 2, "cpu": 3, "other": 4}

// Choose picks a device: index >= 0 selects that entry of Devices, index < 0 the
// best one (discrete > integrated > virtual > cpu, then the largest memory).
func Choose(devs []DeviceInfo, index int) (DeviceInfo, error) {
	if len(devs) == 0 {
		return DeviceInfo{}, ErrNoDriver
	}
	if index >= 0 {
		if index >= len(devs) {
			return DeviceInfo{}, fmt.Errorf("vulkan device %d does not exist: %d device(s) found (see lora devices)", index, len(devs))
		}
		return devs[index], nil
	}
	order := append([]DeviceInfo(nil), devs...)
	sort.SliceStable(order, func(i, j int) bool {
		ri, rj := typeRank[order[i].Type], typeRank[order[j].Type]
		if ri != rj {
			return ri < rj
		}
		return order[i].MemoryBytes > order[j].MemoryBytes
	})
	return order[0], nil
}

// IsNoDriver reports whether err means that Vulkan is unavailable on this machine.
func IsNoDriver(err error) bool { return errors.Is(err, ErrNoDriver) }

// MiB formats a byte count for messages.
func MiB(n uint64) string {
	if n >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
