package vk

import (
	"os"
	"os/exec"
	"testing"
)

// TestShimLayouts compiles testdata/layout_check.c, which asserts that the
// shim's hand-declared structs match the system's Vulkan headers field for
// field (skipped without gcc or the headers).
func TestShimLayouts(t *testing.T) {
	if _, err := os.Stat("/usr/include/vulkan/vulkan.h"); err != nil {
		t.Skip("Vulkan headers not installed (libvulkan-dev): cannot check the shim's struct layouts")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	out, err := exec.Command(cc, "-I.", "-fsyntax-only", "testdata/layout_check.c").CombinedOutput()
	if err != nil {
		t.Fatalf("shim struct layouts differ from vulkan_core.h: %v\n%s", err, out)
	}
}

// TestChoose checks the device preference order and explicit indices.
func TestChoose(t *testing.T) {
	devs := []DeviceInfo{
		{Index: 0, Name: "llvmpipe", Type: "cpu", MemoryBytes: 8 << 30},
		{Index: 1, Name: "igpu", Type: "integrated", MemoryBytes: 2 << 30},
		{Index: 2, Name: "small", Type: "discrete", MemoryBytes: 8 << 30},
		{Index: 3, Name: "big", Type: "discrete", MemoryBytes: 24 << 30},
		{Index: 4, Name: "virt", Type: "virtual", MemoryBytes: 64 << 30},
	}
	if d, err := Choose(devs, -1); err != nil || d.Name != "big" {
		t.Errorf("auto: got %q, %v; want the discrete GPU with the most memory", d.Name, err)
	}
	if d, err := Choose(devs[:2], -1); err != nil || d.Name != "igpu" {
		t.Errorf("auto without discrete: got %q, %v; want the integrated GPU", d.Name, err)
	}
	if d, err := Choose([]DeviceInfo{devs[0], devs[4]}, -1); err != nil || d.Name != "virt" {
		t.Errorf("auto: got %q, %v; want virtual before cpu", d.Name, err)
	}
	if d, err := Choose(devs, 0); err != nil || d.Name != "llvmpipe" {
		t.Errorf("index 0: got %q, %v", d.Name, err)
	}
	if _, err := Choose(devs, 5); err == nil {
		t.Error("index 5 of 5 devices: no error")
	}
}
