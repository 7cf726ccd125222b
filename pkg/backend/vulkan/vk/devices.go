//go:build cgo

package vk

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

var typeNames = map[vk.PhysicalDeviceType]string{
	vk.PhysicalDeviceTypeDiscreteGpu:   "discrete",
	vk.PhysicalDeviceTypeIntegratedGpu: "integrated",
	vk.PhysicalDeviceTypeVirtualGpu:    "virtual",
	vk.PhysicalDeviceTypeCpu:           "cpu",
}

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
		return nil, noDriver("the Vulkan loader found no device")
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
		return nil, noDriver("no Vulkan 1.1 device with a compute queue")
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
		phys:                   handle(p),
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
