// Package device turns a --device value into a backend.Backend; it is the only importer of concrete backends.
package device

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/ref"
	"github.com/lora-dev/lora/pkg/backend/vulkan"
)

// Kinds of device a Spec can name.
const (
	Auto   = "auto"
	CPU    = "cpu"
	Vulkan = "vulkan"
)

// Spec is a parsed --device value.
type Spec struct {
	Kind  string // auto, cpu or vulkan
	Index int    // vulkan device index; -1 = the best one
}

func (s Spec) String() string {
	if s.Kind == Vulkan && s.Index >= 0 {
		return fmt.Sprintf("vulkan:%d", s.Index)
	}
	return s.Kind
}

// ErrSpec reports a --device value that is not auto, cpu, vulkan or vulkan:N.
var ErrSpec = errors.New("invalid device")

// Parse reads "auto" (or ""), "cpu", "vulkan" or "vulkan:N".
func Parse(s string) (Spec, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "", Auto:
		return Spec{Kind: Auto, Index: -1}, nil
	case CPU:
		return Spec{Kind: CPU, Index: -1}, nil
	case Vulkan:
		return Spec{Kind: Vulkan, Index: -1}, nil
	}
	if rest, ok := strings.CutPrefix(s, Vulkan+":"); ok {
		n, err := strconv.Atoi(rest)
		if err == nil && n >= 0 && n < 1<<16 {
			return Spec{Kind: Vulkan, Index: n}, nil
		}
	}
	return Spec{}, fmt.Errorf("%w %q: use auto, cpu, vulkan or vulkan:N (see lora devices)", ErrSpec, s)
}

// typeRank orders Vulkan device types, best first.
var typeRank = map[string]int{"discrete": 0, "integrated": 1, "virtual": 2, "cpu": 3, "other": 4}

// best returns the index of the best device, and whether it is a software (cpu) one.
func best(devs []vulkan.DeviceInfo) (index int, software bool) {
	bi := -1
	for i, d := range devs {
		r, ok := typeRank[d.Type]
		if !ok {
			r = 5
		}
		if bi < 0 || r < typeRank[devs[bi].Type] || (r == typeRank[devs[bi].Type] && d.MemoryBytes > devs[bi].MemoryBytes) {
			bi = i
		}
	}
	if bi < 0 {
		return -1, false
	}
	return devs[bi].Index, devs[bi].Type == "cpu"
}

// Open returns the backend for spec (see Parse). note, when not empty, is a
// line for the user about the choice (for example why auto fell back to the cpu).
//
// auto picks the best hardware Vulkan device (discrete, then integrated, then
// virtual). When the only Vulkan devices are software renderers (Mesa's
// llvmpipe), or no driver exists, auto uses the plain-Go cpu backend, which
// is faster than a CPU emulating a GPU; --device vulkan still selects llvmpipe.
func Open(s string) (be backend.Backend, note string, err error) {
	spec, err := Parse(s)
	if err != nil {
		return nil, "", err
	}
	switch spec.Kind {
	case CPU:
		return ref.New(), "", nil
	case Vulkan:
		idx := spec.Index
		if idx < 0 {
			idx = vulkan.AutoDevice
		}
		b, err := vulkan.New(vulkan.Options{Index: idx})
		if err != nil {
			return nil, "", fmt.Errorf("device %s: %w", spec, err)
		}
		return b, "", nil
	}
	devs, err := vulkan.Devices()
	if err != nil || len(devs) == 0 {
		why := "no Vulkan device"
		if err != nil {
			why = err.Error()
		}
		return ref.New(), fmt.Sprintf("device auto: %s; using the cpu backend", why), nil
	}
	idx, software := best(devs)
	if software {
		return ref.New(), "device auto: only a software Vulkan device was found; using the cpu backend (--device vulkan forces it)", nil
	}
	b, err := vulkan.New(vulkan.Options{Index: idx})
	if err != nil {
		return ref.New(), fmt.Sprintf("device auto: vulkan:%d failed (%v); using the cpu backend", idx, err), nil
	}
	return b, "", nil
}
