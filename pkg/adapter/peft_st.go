package adapter

import (
	"fmt"

	"github.com/lora-dev/lora/pkg/safetensors"
)

// maxTensorValues bounds one LoRA matrix read from a file (1<<28 values = 1 GiB of f32).
const maxTensorValues = 1 << 28

// readTensors reads every tensor of a safetensors file as float32 (F32, F16
// and BF16 are accepted).
func readTensors(path string) ([]tensor, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make([]tensor, 0, len(f.Tensors))
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.NumElements() > maxTensorValues {
			return nil, fmt.Errorf("tensor %q has %d values, more than a LoRA matrix plausibly holds", ti.Name, ti.NumElements())
		}
		data, err := f.TensorFloat32(ti)
		if err != nil {
			return nil, err
		}
		out = append(out, tensor{name: ti.Name, shape: append([]int(nil), ti.Shape...), data: data})
	}
	return out, nil
}

// writeTensors writes F32 tensors with PEFT's metadata, atomically.
func writeTensors(path string, ts []tensor) error {
	st := make([]safetensors.Tensor, len(ts))
	for i, t := range ts {
		st[i] = safetensors.NewF32(t.name, t.shape, t.data)
	}
	return safetensors.Write(path, st, map[string]string{"format": "pt"})
}
