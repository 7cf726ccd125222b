package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func FuzzRead(f *testing.F) {
	// Synthesized seeds: every value type, and tensors of the writable types.
	var buf bytes.Buffer
	if err := Encode(&buf, allValues(), nil); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	var ts []WriteTensor
	vals := make([]float32, 64)
	for i := range vals {
		vals[i] = float32(i) - 30
	}
	for _, typ := range []GGMLType{F32, F16, BF16, Q8_0, Q4_0} {
		wt, err := NewTensor("t."+typ.String(), []int{2, 32}, vals, typ)
		if err != nil {
			f.Fatal(err)
		}
		ts = append(ts, wt)
	}
	ts = append(ts, WriteTensor{Name: "q4_k", Dims: []uint64{256}, Type: Q4_K, Data: make([]byte, 144)})
	buf.Reset()
	if err := Encode(&buf, []KV{{"general.alignment", MustValue(uint32(16))}}, ts); err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(buf.Bytes()))
	// The real files' headers (metadata and tensor infos; their data is cut off).
	dir := dataDir(f)
	for _, p := range []string{"models/stories260K.gguf", "models/llama-2-tiny-random.gguf"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil {
			f.Add(b[:min(len(b), 16<<10)])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var wts []WriteTensor
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			raw, err := g.TensorData(ti)
			if err != nil {
				t.Fatalf("tensor %q passed the checks but cannot be read: %v", ti.Name, err)
			}
			if _, ok := dequantizers[ti.Type]; ok && ti.NumElements() < 1<<20 {
				if _, err := g.TensorFloat32(ti); err != nil {
					t.Fatalf("tensor %q: %v", ti.Name, err)
				}
			}
			wts = append(wts, WriteTensor{Name: ti.Name, Dims: ti.Dims, Type: ti.Type, Data: raw})
		}
		// Whatever was accepted re-encodes and reads back the same.
		var out bytes.Buffer
		if err := Encode(&out, g.KV, wts); err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		h, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("reading a re-encoded file: %v", err)
		}
		if !reflect.DeepEqual(h.KV, g.KV) && !hasNaN(g.KV) {
			t.Fatalf("metadata changed in a round trip")
		}
		for i := range h.Tensors {
			a, _ := h.TensorData(&h.Tensors[i])
			if h.Tensors[i].Name != wts[i].Name || !bytes.Equal(a, wts[i].Data) {
				t.Fatalf("tensor %d changed in a round trip", i)
			}
		}
	})
}

// hasNaN reports whether some float metadata is NaN (NaN != NaN defeats DeepEqual).
func hasNaN(kv []KV) bool {
	for _, x := range kv {
		if containsNaN(x.Value.v) {
			return true
		}
	}
	return false
}

func containsNaN(v any) bool {
	switch x := v.(type) {
	case float32:
		return x != x
	case float64:
		return x != x
	case []float32:
		for _, f := range x {
			if f != f {
				return true
			}
		}
	case []float64:
		for _, f := range x {
			if f != f {
				return true
			}
		}
	case []Value:
		for _, e := range x {
			if containsNaN(e.v) {
				return true
			}
		}
	}
	return false
}
