package interop

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lora-dev/lora/pkg/adapter"
	"github.com/lora-dev/lora/pkg/gguf"
	"github.com/lora-dev/lora/pkg/model"
	"github.com/lora-dev/lora/pkg/safetensors"
)

// llamaLoRAName is the tensor naming llama-adapter.cpp pairs: the base
// tensor's name plus ".lora_a" or ".lora_b".
var llamaLoRAName = regexp.MustCompile(`^(blk\.(\d+)\.([a-z_]+)\.weight)\.lora_([ab])$`)

// TestGGUFAdapterContract checks our GGUF LoRA against what llama.cpp's
// llama_adapter_lora_init_impl (src/llama-adapter.cpp) and
// convert_lora_to_gguf.py require and write:
//   - general.type = "adapter" and adapter.type = "lora", both strings
//     (read with gguf_get_val_str, which asserts the type);
//   - general.architecture equal to the base model's ("model arch and LoRA arch mismatch");
//   - adapter.lora.alpha a float32 (gguf_get_val_f32 asserts the type);
//     llama.cpp scales by alpha / r with r = lora_b ne[0];
//   - every tensor named <base tensor>.lora_a / .lora_b, in pairs, the base
//     tensor present in the base model;
//   - lora_a ne = [base ne[0], r] and lora_b ne = [r, base ne[1]]
//     ("has incorrect shape", "lora_a tensor is not transposed");
//   - F32 data, as convert_lora_to_gguf.py --outtype f32 writes.
func TestGGUFAdapterContract(t *testing.T) {
	for _, b := range bases {
		for _, rs := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/rslora=%v", filepath.Base(b), rs), func(t *testing.T) {
				checkContract(t, b, rs)
			})
		}
	}
}

func checkContract(t *testing.T, baseFile string, rs bool) {
	trainedA, cfg := trained(t, baseFile)
	base, err := gguf.Open(sharedData(t, baseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	baseArch, _ := base.String("general.architecture")

	a := *trainedA
	a.RSLoRA = rs
	path := filepath.Join(t.TempDir(), "adapter.gguf")
	if err := adapter.SaveGGUF(path, &a, cfg); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version != 3 {
		t.Errorf("GGUF version %d, want 3 (what gguf-py writes)", f.Version)
	}
	for key, want := range map[string]string{"general.type": "adapter", "adapter.type": "lora", "general.architecture": baseArch} {
		v, ok := f.Lookup(key)
		if !ok || v.Type != gguf.TypeString || v.Any() != want {
			t.Errorf("%s = %v (type %v), want the string %q", key, v.Any(), v.Type, want)
		}
	}
	// llama.cpp multiplies by alpha / r; an rsLoRA adapter must carry
	// alpha·sqrt(r) to keep its scale alpha / sqrt(r).
	wantAlpha := a.Alpha
	if rs {
		wantAlpha *= math.Sqrt(float64(a.Rank))
	}
	if v, ok := f.Lookup("adapter.lora.alpha"); !ok || v.Type != gguf.TypeFloat32 {
		t.Errorf("adapter.lora.alpha = %v (type %v), want a float32 (llama.cpp's gguf_get_val_f32 asserts it)", v.Any(), v.Type)
	} else if got := float64(v.Any().(float32)); math.Abs(got-wantAlpha) > 1e-5*wantAlpha {
		t.Errorf("adapter.lora.alpha = %g, want %g (scale %g at r %d)", got, wantAlpha, float64(model.Scale(a.Alpha, a.Rank, rs)), a.Rank)
	}

	type pair struct{ a, b *gguf.TensorInfo }
	pairs := map[string]*pair{}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		m := llamaLoRAName.FindStringSubmatch(ti.Name)
		if m == nil {
			t.Errorf("tensor %q is not <base tensor>.lora_a/.lora_b (llama.cpp: unexpected suffix)", ti.Name)
			continue
		}
		if ti.Type != gguf.F32 {
			t.Errorf("%s has type %v, want F32", ti.Name, ti.Type)
		}
		p := pairs[m[1]]
		if p == nil {
			p = &pair{}
			pairs[m[1]] = p
		}
		if m[4] == "a" {
			p.a = ti
		} else {
			p.b = ti
		}
	}
	if want := cfg.Layers * int(model.NumModules); len(pairs) != want {
		t.Errorf("%d adapted tensors, want %d (7 linears × %d layers)", len(pairs), want, cfg.Layers)
	}
	for name, p := range pairs {
		if p.a == nil || p.b == nil {
			t.Errorf("%s: pair is missing one component", name)
			continue
		}
		bt, ok := base.Tensor(name)
		if !ok {
			t.Errorf("%s does not exist in the base model", name)
			continue
		}
		r := uint64(a.Rank)
		if fmt.Sprint(p.a.Dims) != fmt.Sprint([]uint64{bt.Dims[0], r}) || fmt.Sprint(p.b.Dims) != fmt.Sprint([]uint64{r, bt.Dims[1]}) {
			t.Errorf("%s: lora_a ne %v, lora_b ne %v; base ne %v: want [%d %d] and [%d %d]", name, p.a.Dims, p.b.Dims, bt.Dims, bt.Dims[0], r, r, bt.Dims[1])
		}
	}
	// The data is the trained A and B (the base is a GGUF llama file,
	// so the trainer's layout is already llama.cpp's).
	for _, k := range a.Keys() {
		name := fmt.Sprintf("blk.%d.%s.weight", k.Layer, k.Module.GGUFName())
		for _, ab := range []struct {
			suffix string
			want   []float32
		}{{".lora_a", a.Weights[k].A}, {".lora_b", a.Weights[k].B}} {
			ti, ok := f.Tensor(name + ab.suffix)
			if !ok {
				continue
			}
			got, err := f.TensorFloat32(ti)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != ab.want[i] {
					t.Fatalf("%s%s[%d] = %g, trained %g", name, ab.suffix, i, got[i], ab.want[i])
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	// A second, independent reader sees the same header.
	if _, err := os.Stat(python); err == nil {
		crossCheckGGUF(t, path, f)
	}
}

// crossCheckGGUF compares the Python reader's view of a GGUF file with ours.
func crossCheckGGUF(t *testing.T, path string, f *gguf.File) {
	t.Helper()
	var got struct {
		Version   uint32 `json:"version"`
		Alignment int    `json:"alignment"`
		KV        map[string]struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"kv"`
		Tensors []struct {
			Name   string   `json:"name"`
			Dims   []uint64 `json:"dims"`
			Type   string   `json:"type"`
			Offset uint64   `json:"offset"`
		} `json:"tensors"`
	}
	reference(t, &got, "--inspect", path)
	if got.Version != f.Version || len(got.KV) != len(f.KV) || len(got.Tensors) != len(f.Tensors) {
		t.Fatalf("python reader: version %d, %d keys, %d tensors; ours %d, %d, %d", got.Version, len(got.KV), len(got.Tensors), f.Version, len(f.KV), len(f.Tensors))
	}
	for _, kv := range f.KV {
		if pk, ok := got.KV[kv.Key]; !ok || pk.Type != kv.Value.Type.String() {
			t.Errorf("key %s: python reader sees %+v, ours type %v", kv.Key, pk, kv.Value.Type)
		}
	}
	for i, ti := range f.Tensors {
		pt := got.Tensors[i]
		if pt.Name != ti.Name || fmt.Sprint(pt.Dims) != fmt.Sprint(ti.Dims) || !strings.EqualFold(pt.Type, ti.Type.String()) || pt.Offset != ti.Offset {
			t.Errorf("tensor %d: python reader %+v, ours %s %v %v %d", i, pt, ti.Name, ti.Dims, ti.Type, ti.Offset)
		}
	}
}

// TestRealPEFTAdapter reads the real PEFT 0.17.1 adapter in ../shared/data
// (GPT-2, trained) with both readers, and checks that lora refuses it for a
// LLaMA base with a message that names the file, the reason and what it is.
func TestRealPEFTAdapter(t *testing.T) {
	dir := sharedData(t, "adapters/gpt2-tigrinya-lora")
	_, err := adapter.Load(dir)
	if err == nil {
		t.Fatal("adapter.Load accepted a GPT-2 (fan_in_fan_out) adapter as a LLaMA one")
	}
	msg := err.Error()
	t.Logf("adapter.Load: %v", err)
	for _, want := range []string{filepath.Join(dir, adapter.ConfigFile), "fan_in_fan_out", "GPT-2", "another architecture"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}

	if _, err := os.Stat(python); err != nil {
		return
	}
	needReference(t)
	// The same safetensors file through both readers: names, shapes and values.
	var got struct {
		Metadata map[string]string `json:"metadata"`
		Tensors  []struct {
			Name  string  `json:"name"`
			Shape []int   `json:"shape"`
			Sum   float64 `json:"sum"`
			SumSq float64 `json:"sumsq"`
		} `json:"tensors"`
	}
	wpath := filepath.Join(dir, adapter.WeightsFile)
	reference(t, &got, "--inspect", wpath)
	st, err := safetensors.Open(wpath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(got.Tensors) != 72 || len(st.Tensors) != 72 || got.Metadata["format"] != "pt" {
		t.Fatalf("python reader: %d tensors, metadata %v; ours %d tensors (want 72, format pt)", len(got.Tensors), got.Metadata, len(st.Tensors))
	}
	for _, pt := range got.Tensors {
		ti, ok := st.Tensor(pt.Name)
		if !ok {
			t.Errorf("python reader sees %s, ours does not", pt.Name)
			continue
		}
		if fmt.Sprint(ti.Shape) != fmt.Sprint(pt.Shape) {
			t.Errorf("%s: shape %v, python %v", pt.Name, ti.Shape, pt.Shape)
		}
		v, err := st.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		var sum, sq float64
		for _, x := range v {
			sum += float64(x)
			sq += float64(x) * float64(x)
		}
		if math.Abs(sum-pt.Sum) > 1e-9*math.Max(1, sq) || math.Abs(sq-pt.SumSq) > 1e-9*sq {
			t.Errorf("%s: sum %g / sumsq %g, python %g / %g", pt.Name, sum, sq, pt.Sum, pt.SumSq)
		}
	}
	// The reference refuses it for the same reason.
	script := needReference(t)
	out, err := execOutput(python, script, "--model", sharedData(t, "models/stories260K.gguf"), "--examples", writeExamples(t, heldout()), "--peft", dir)
	if err == nil || !strings.Contains(out, "fan_in_fan_out") {
		t.Errorf("reference on the GPT-2 adapter: %v, %s; want a fan_in_fan_out refusal", err, out)
	}
}
