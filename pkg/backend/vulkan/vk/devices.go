package vk

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

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

	phys    vk.PhysicalDevice
	family  uint32
	memType uint32 // device-local type index
	hostMem uint32 // host-visible coherent type index
	heap    uint32
	budget  bool
}

var typeNames = map[vk.PhysicalDeviceType]string{
	vk.PhysicalDeviceTypeDiscreteGpu:   "discrete",
	vk.PhysicalDeviceTypeIntegratedGpu: "integrated",
	vk.PhysicalDeviceTypeVirtualGpu:    "virtual",
	vk.PhysicalDeviceTypeCpu:           "cpu",
}

// typeRank orders device types for the default choice (lower is preferred).
var typeRank = map[string]int{"discrete": 0, "integrated": 1, "virtual": 2, "cpu": 3, "other": 4}

// Devices lists the Vulkan devices that have a compute queue, in driver order.
func Devices() ([]DeviceInfo, error) {
	if err := load(); err != nil {
		return nil, err
	}
	var n uint32
	if err := check("vkEnumeratePhysicalDevices", vk.EnumeratePhysicalDevices(instance, &n, nil)); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the Vulkan loader found no device", ErrNoDriver)
	}
	phys := make([]vk.PhysicalDevice, n)
	if err := check("vkEnumeratePhysicalDevices", vk.EnumeratePhysicalDevices(instance, &n, phys)); err != nil {
		return nil, err
	}
	var out []DeviceInfo
	for _, p := range phys[:n] {
		d, ok := describe(p)
		if !ok {
			continue
		}
		d.Index = len(out)
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no Vulkan 1.1 device with a compute queue", ErrNoDriver)
	}
	return out, nil
}

func describe(p vk.PhysicalDevice) (DeviceInfo, bool) {
	var props vk.PhysicalDeviceProperties
	vk.GetPhysicalDeviceProperties(p, &props)
	props.Deref()
	props.Limits.Deref()
	if props.ApiVersion < vk.MakeVersion(1, 1, 0) {
		return DeviceInfo{}, false
	}
	l := props.Limits
	d := DeviceInfo{
		Name:                   vk.ToString(props.DeviceName[:]),
		Type:                   typeNames[props.DeviceType],
		APIVersion:             fmt.Sprintf("%d.%d.%d", props.ApiVersion>>22, (props.ApiVersion>>12)&0x3ff, props.ApiVersion&0xfff),
		VendorID:               props.VendorID,
		DeviceID:               props.DeviceID,
		SharedMemory:           l.MaxComputeSharedMemorySize,
		MaxStorageBufferRange:  uint64(l.MaxStorageBufferRange),
		MaxWorkgroupCount:      l.MaxComputeWorkGroupCount,
		MaxWorkgroupInvocation: l.MaxComputeWorkGroupInvocations,
		MaxPushConstants:       l.MaxPushConstantsSize,
		MinStorageAlign:        uint64(l.MinStorageBufferOffsetAlignment),
		TimestampPeriodNs:      l.TimestampPeriod,
		phys:                   p,
	}
	if d.Type == "" {
		d.Type = "other"
	}
	// compute queue family: prefer one without graphics (async compute), else any.
	const maxFamilies = 64
	var flags, tsb [maxFamilies]C.uint32_t
	nq := min(int(C.lora_vk_queue_families(gipa, handle(instance), handle(p), &flags[0], &tsb[0], maxFamilies)), maxFamilies)
	compute, graphics := C.uint32_t(vk.QueueComputeBit), C.uint32_t(vk.QueueGraphicsBit)
	fam, tsBits := -1, uint32(0)
	for i := range nq {
		if flags[i]&compute == 0 {
			continue
		}
		if fam < 0 || flags[i]&graphics == 0 && flags[fam]&graphics != 0 {
			fam, tsBits = i, uint32(tsb[i])
		}
	}
	if fam < 0 {
		return DeviceInfo{}, false
	}
	d.family = uint32(fam)
	d.Timestamps = tsBits > 0 && l.TimestampPeriod > 0

	var mp vk.PhysicalDeviceMemoryProperties
	vk.GetPhysicalDeviceMemoryProperties(p, &mp)
	mp.Deref()
	local, host := -1, -1
	for i := 0; i < int(mp.MemoryTypeCount); i++ {
		mp.MemoryTypes[i].Deref()
		fl := mp.MemoryTypes[i].PropertyFlags
		if local < 0 && fl&vk.MemoryPropertyFlags(vk.MemoryPropertyDeviceLocalBit) != 0 {
			local = i
		}
		want := vk.MemoryPropertyFlags(vk.MemoryPropertyHostVisibleBit | vk.MemoryPropertyHostCoherentBit)
		if host < 0 && fl&want == want {
			host = i
		}
	}
	if host < 0 {
		return DeviceInfo{}, false
	}
	if local < 0 {
		local = host
	}
	d.memType, d.hostMem = uint32(local), uint32(host)
	d.heap = mp.MemoryTypes[local].HeapIndex
	for i := 0; i < int(mp.MemoryHeapCount); i++ {
		mp.MemoryHeaps[i].Deref()
	}
	d.MemoryBytes = uint64(mp.MemoryHeaps[d.heap].Size)

	d.budget = hasExtension(p, "VK_EXT_memory_budget")
	var ex C.lora_vk_extra
	if C.lora_vk_query(gipa, handle(instance), handle(p), boolInt(d.budget), &ex) == 0 {
		d.SubgroupSize = uint32(ex.subgroup_size)
		d.FP16 = ex.shader_float16 != 0
		d.Int8 = ex.shader_int8 != 0
		d.Storage16 = ex.storage_buffer16 != 0
		d.Storage8 = ex.storage_buffer8 != 0
		if ex.has_driver_props != 0 {
			d.Driver = C.GoString(&ex.driver_name[0])
			d.DriverInfo = C.GoString(&ex.driver_info[0])
		}
		if ex.has_budget != 0 && d.heap < 16 {
			b, u := uint64(ex.heap_budget[d.heap]), uint64(ex.heap_usage[d.heap])
			if b > u {
				d.MemoryFreeBytes = b - u
			}
		}
	}
	if d.Driver == "" {
		d.Driver = fmt.Sprintf("version 0x%x", props.DriverVersion)
	}
	return d, true
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func hasExtension(p vk.PhysicalDevice, name string) bool {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return C.lora_vk_has_extension(gipa, handle(instance), handle(p), cname) != 0
}

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
