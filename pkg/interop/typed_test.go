package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/quant"
	"github.com/lora-dev/lora/pkg/safetensors"
)

// writeTypedGGUF writes a (in llama.cpp's row order) as
// convert_lora_to_gguf.py --outtype writes it: every LoRA matrix in typ,
// except that a Q8_0 matrix whose rows are not a multiple of 32 falls back
// to F16, as gguf-py's quantizer does.
func writeTypedGGUF(t *testing.T, path string, a *adapter.Adapter, arch string, typ gguf.GGMLType) {
	t.Helper()
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.MustValue(arch)},
		{Key: "general.type", Value: gguf.MustValue("adapter")},
		{Key: "adapter.type", Value: gguf.MustValue("lora")},
		{Key: "adapter.lora.alpha", Value: gguf.MustValue(float32(a.Alpha))},
	}
	var ts []gguf.WriteTensor
	add := func(name string, rows, cols int, data []float32) {
		ty := typ
		if ty == gguf.Q8_0 && cols%32 != 0 {
			ty = gguf.F16
		}
		wt, err := gguf.NewTensor(name, []int{rows, cols}, data, ty)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, wt)
	}
	for _, k := range a.Keys() {
		w := a.Weights[k]
		name := fmt.Sprintf("blk.%d.%s.weight", k.Layer, k.Module.GGUFName())
		add(name+".lora_a", w.Rank, w.In, w.A)
		add(name+".lora_b", w.Out, w.Rank, w.B)
	}
	if err := gguf.Write(path, kv, ts); err != nil {
		t.Fatal(err)
	}
}

// TestTypedGGUFAdapters reads GGUF adapters in the types llama.cpp's
// converter can write (f16, bf16, q8_0 with its f16 fallback) with lora and
// with the reference: both must see the same adapter.
func TestTypedGGUFAdapters(t *testing.T) {
	needReference(t)
	const base = "models/stories260K.gguf"
	trainedA, cfg := trained(t, base)
	if trainedA.Layout != adapter.LayoutGGUF {
		t.Fatalf("the trained adapter should be in llama.cpp's row order, got %v", trainedA.Layout)
	}
	exs := heldout()
	examples := writeExamples(t, exs)
	dir := t.TempDir()
	types := []gguf.GGMLType{gguf.F16, gguf.BF16, gguf.Q8_0}
	var jobs []job
	for _, typ := range types {
		path := filepath.Join(dir, typ.String()+".gguf")
		writeTypedGGUF(t, path, trainedA, cfg.Arch, typ)
		jobs = append(jobs, job{Name: typ.String(), GGUFLoRA: path})
	}
	ref := referenceJobs(t, base, examples, jobs)
	modules := cfg.Layers * int(model.NumModules)
	for _, j := range jobs {
		t.Run(j.Name, func(t *testing.T) {
			r := ref[j.Name]
			if r.Error != "" {
				t.Fatalf("reference: %s", r.Error)
			}
			ours, n := ourLoss(t, base, j.GGUFLoRA, exs)
			t.Logf("%s adapter: ours %.9f, reference %.9f (relative %.2g)", j.Name, ours, r.Loss, rel(ours, r.Loss))
			if r.Adapted != modules || r.Tokens != n {
				t.Fatalf("reference adapted %d linears over %d tokens, want %d and %d", r.Adapted, r.Tokens, modules, n)
			}
			if d := rel(ours, r.Loss); d > relTol {
				t.Errorf("our loss %.9f, reference %.9f (relative %.2g > %g)", ours, r.Loss, d, relTol)
			}
		})
	}
}

// writeQuantizedBase writes the GGUF base src with its block linears in typ
// (the rest, and linears whose rows are not a multiple of 32, kept in F32),
// as llama-quantize would lay it out.
func writeQuantizedBase(t *testing.T, src, dst string, typ gguf.GGMLType) (quantized int) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []gguf.WriteTensor
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		shape := make([]int, len(ti.Dims))
		for j, d := range ti.Dims {
			shape[len(shape)-1-j] = int(d)
		}
		ty := gguf.F32
		if strings.HasPrefix(ti.Name, "blk.") && len(shape) == 2 && shape[1]%32 == 0 {
			ty = typ
			quantized++
		}
		wt, err := gguf.NewTensor(ti.Name, shape, data, ty)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, wt)
	}
	if err := gguf.Write(dst, f.KV, ts); err != nil {
		t.Fatal(err)
	}
	return quantized
}

// TestQuantizedBase applies the trained adapter to quantized GGUF files of
// the base (llama.cpp's usual way to run it): lora's forward over Q8_0 and
// Q4_0 blocks plus the LoRA product must equal the reference's, which
// dequantizes the same blocks in float64 and adds the adapter the llama.cpp
// way.
func TestQuantizedBase(t *testing.T) {
	needReference(t)
	trainedA, cfg := trained(t, "models/stories260K.gguf")
	exs := heldout()
	examples := writeExamples(t, exs)
	dir := t.TempDir()
	adapterPath := filepath.Join(dir, "adapter.gguf")
	if err := adapter.SaveGGUF(adapterPath, trainedA, cfg); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []gguf.GGMLType{gguf.Q8_0, gguf.Q4_0} {
		t.Run(typ.String(), func(t *testing.T) {
			base := filepath.Join(dir, "stories260K-"+typ.String()+".gguf")
			// every linear but ffn_down (rows of 172) in each of 5 layers
			if n := writeQuantizedBase(t, sharedData(t, "models/stories260K.gguf"), base, typ); n != 30 {
				t.Fatalf("%d tensors quantized, want 30", n)
			}
			ref := referenceJobs(t, base, examples, []job{{Name: "base"}, {Name: "adapter", GGUFLoRA: adapterPath}})
			for _, tc := range []struct{ name, adapter string }{{"base", ""}, {"adapter", adapterPath}} {
				r := ref[tc.name]
				if r.Error != "" {
					t.Fatalf("reference: %s", r.Error)
				}
				ours, _ := ourLoss(t, base, tc.adapter, exs)
				t.Logf("%s %s: ours %.9f, reference %.9f (relative %.2g)", typ, tc.name, ours, r.Loss, rel(ours, r.Loss))
				if d := rel(ours, r.Loss); d > relTol {
					t.Errorf("%s %s: our loss %.9f, reference %.9f (relative %.2g > %g)", typ, tc.name, ours, r.Loss, d, relTol)
				}
			}
		})
	}
}

// TestHalfPrecisionPEFT reads PEFT directories whose tensors are F16 or
// BF16, as PEFT saves an adapter trained in half precision: lora and the
// reference must read the same values.
func TestHalfPrecisionPEFT(t *testing.T) {
	needReference(t)
	const base = "models/stories260K.gguf"
	trainedA, cfg := trained(t, base)
	exs := heldout()
	examples := writeExamples(t, exs)
	dir := t.TempDir()
	src := filepath.Join(dir, "f32")
	if err := adapter.SavePEFT(src, trainedA, cfg); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(src, adapter.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	config, err := os.ReadFile(filepath.Join(src, adapter.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []job
	for _, dt := range []safetensors.DType{safetensors.F16, safetensors.BF16} {
		var ts []safetensors.Tensor
		for i := range f.Tensors {
			ti := &f.Tensors[i]
			v, err := f.TensorFloat32(ti)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 2*len(v))
			if dt == safetensors.F16 {
				err = quant.EncodeF16(b, v)
			} else {
				err = quant.EncodeBF16(b, v)
			}
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, safetensors.Tensor{Name: ti.Name, DType: dt, Shape: ti.Shape, Data: b})
		}
		d := filepath.Join(dir, string(dt))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := safetensors.Write(filepath.Join(d, adapter.WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, adapter.ConfigFile), config, 0o644); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{Name: string(dt), PEFT: d})
	}
	ref := referenceJobs(t, base, examples, jobs)
	for _, j := range jobs {
		r := ref[j.Name]
		if r.Error != "" {
			t.Fatalf("%s: reference: %s", j.Name, r.Error)
		}
		ours, _ := ourLoss(t, base, j.PEFT, exs)
		t.Logf("%s PEFT: ours %.9f, reference %.9f (relative %.2g)", j.Name, ours, r.Loss, rel(ours, r.Loss))
		if d := rel(ours, r.Loss); d > relTol {
			t.Errorf("%s PEFT: our loss %.9f, reference %.9f (relative %.2g > %g)", j.Name, ours, r.Loss, d, relTol)
		}
	}
}
