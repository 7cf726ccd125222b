//go:build cgo

// Package vk is lora's Vulkan device layer: loader, device choice, memory, pipelines and command recording.
package vk

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"
#include "shim_impl.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

var (
	loadOnce sync.Once
	loadErr  error
	gipa     unsafe.Pointer // vkGetInstanceProcAddr
	instance vk.Instance
	apiVer   uint32
)

// load dlopens the Vulkan loader, hands vkGetInstanceProcAddr to the binding and
// creates the process-wide instance (Vulkan 1.1 or newer is required).
func load() error {
	loadOnce.Do(func() { loadErr = doLoad() })
	return loadErr
}

func doLoad() error {
	var cerr *C.char
	p := C.lora_vk_load(&cerr)
	if p == nil {
		msg := "dlopen failed"
		if cerr != nil {
			msg = C.GoString(cerr)
		}
		return noDriver("%s", msg)
	}
	gipa = p
	vk.SetGetInstanceProcAddr(p)
	if err := vk.Init(); err != nil {
		return noDriver("%v", err)
	}
	apiVer = vk.MakeVersion(1, 1, 0)
	app := &vk.ApplicationInfo{
		SType:              vk.StructureTypeApplicationInfo,
		PApplicationName:   "lora\x00",
		ApplicationVersion: vk.MakeVersion(0, 1, 0),
		PEngineName:        "lora\x00",
		EngineVersion:      vk.MakeVersion(0, 1, 0),
		ApiVersion:         apiVer,
	}
	info := &vk.InstanceCreateInfo{
		SType:            vk.StructureTypeInstanceCreateInfo,
		PApplicationInfo: app,
	}
	var inst vk.Instance
	if r := vk.CreateInstance(info, nil, &inst); r != vk.Success {
		if r == vk.ErrorIncompatibleDriver {
			return noDriver("the Vulkan loader found no driver, or none that supports Vulkan 1.1")
		}
		return noDriver("vkCreateInstance: %v", vk.Error(r))
	}
	if err := vk.InitInstance(inst); err != nil {
		return noDriver("%v", err)
	}
	instance = inst
	return nil
}

func handle[T any](h T) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&h)) }

func handle64[T any](h T) C.uint64_t { return C.uint64_t(uintptr(handle(h))) }

// fromPtr and fromU64 turn C handles back into the binding's handle types
// (pointer-sized on the 64-bit platforms lora supports).
func fromPtr[T any](p unsafe.Pointer) T { return *(*T)(unsafe.Pointer(&p)) }

func fromU64[T any](u C.uint64_t) T {
	p := uintptr(u)
	return *(*T)(unsafe.Pointer(&p))
}

func check(what string, r vk.Result) error {
	if r == vk.Success {
		return nil
	}
	return fmt.Errorf("%s: %w", what, vk.Error(r))
}
