package safetensors

import (
	"bytes"
	"os"
	"reflect"
	"testing"
)

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, []Tensor{
		NewF32("a", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		{Name: "b", DType: BF16, Shape: []int{1}, Data: []byte{0x80, 0x3f}},
		{Name: "c", DType: I64, Shape: []int{}, Data: make([]byte, 8)},
	}, map[string]string{"format": "pt"})
	f.Add(buf.Bytes())
	f.Add(file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	if b, err := os.ReadFile(adapterPath(f)); err == nil {
		f.Add(b[:min(len(b), 8+9064+64)]) // the real header, data cut short
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var ts []Tensor
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			raw, err := g.TensorData(ti)
			if err != nil {
				t.Fatalf("accepted tensor %q cannot be read: %v", ti.Name, err)
			}
			if _, err := g.TensorFloat32(ti); err != nil && ti.DType != F8E4M3 && ti.DType != F8E5M2 {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
			ts = append(ts, Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: raw})
		}
		var out bytes.Buffer
		if err := Encode(&out, ts, g.Metadata); err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		h, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("reading a re-encoded file: %v\n%q", err, out.Bytes())
		}
		if len(h.Tensors) != len(ts) || (len(g.Metadata) > 0 && !reflect.DeepEqual(h.Metadata, g.Metadata)) {
			t.Fatal("round trip changed the file")
		}
		for _, want := range ts {
			ti, ok := h.Tensor(want.Name)
			if !ok {
				t.Fatalf("tensor %q lost in a round trip", want.Name)
			}
			raw, _ := h.TensorData(ti)
			if !bytes.Equal(raw, want.Data) {
				t.Fatalf("tensor %q changed in a round trip", want.Name)
			}
		}
	})
}
