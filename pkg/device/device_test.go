package device

import (
	"errors"
	"testing"

	"github.com/lora-dev/lora/pkg/backend/vulkan"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		err  bool
	}{
		{"", Spec{Auto, -1}, false},
		{"auto", Spec{Auto, -1}, false},
		{"CPU", Spec{CPU, -1}, false},
		{"vulkan", Spec{Vulkan, -1}, false},
		{"vulkan:2", Spec{Vulkan, 2}, false},
		{"vulkan:-1", Spec{}, true},
		{"vulkan:x", Spec{}, true},
		{"cuda", Spec{}, true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrSpec) {
			t.Errorf("Parse(%q) error %v does not wrap ErrSpec", tc.in, err)
		}
	}
}

func TestBest(t *testing.T) {
	devs := []vulkan.DeviceInfo{
		{Index: 0, Type: "cpu", MemoryBytes: 1 << 40},
		{Index: 1, Type: "integrated", MemoryBytes: 8 << 30},
		{Index: 2, Type: "discrete", MemoryBytes: 8 << 30},
		{Index: 3, Type: "discrete", MemoryBytes: 24 << 30},
	}
	if i, sw := best(devs); i != 3 || sw {
		t.Errorf("best = %d (software %v), want 3: the discrete device with most memory", i, sw)
	}
	if i, sw := best(devs[:2]); i != 1 || sw {
		t.Errorf("best = %d (software %v), want the integrated device 1", i, sw)
	}
	if i, sw := best(devs[:1]); i != 0 || !sw {
		t.Errorf("best = %d (software %v), want llvmpipe-like device 0, software", i, sw)
	}
}

func TestOpenCPUAndAuto(t *testing.T) {
	be, note, err := Open("cpu")
	if err != nil || be.Info().Name != "cpu" || note != "" {
		t.Fatalf("Open(cpu) = %v, %q, %v", be, note, err)
	}
	be.Close()
	be, note, err = Open("auto")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	if be.Info().Name == "cpu" && note == "" {
		t.Errorf("auto fell back to the cpu without a note")
	}
	t.Logf("auto: %s (%s) %s", be.Info().Name, be.Info().Device, note)
	if _, _, err := Open("tpu"); !errors.Is(err, ErrSpec) {
		t.Errorf("Open(tpu) error %v, want ErrSpec", err)
	}
}
