package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func dataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(d); err != nil {
		t.Skipf("test assets not found at %s (see shared/data/SOURCES.md)", d)
	}
	return d
}

func adapterPath(t testing.TB) string {
	p := filepath.Join(dataDir(t), "adapters", "gpt2-tigrinya-lora", "adapter_model.safetensors")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not present", p)
	}
	return p
}

func TestRealPEFTAdapter(t *testing.T) {
	f, err := Open(adapterPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.Metadata, map[string]string{"format": "pt"}) {
		t.Errorf("metadata %v", f.Metadata)
	}
	if len(f.Tensors) != 72 {
		t.Fatalf("%d tensors, want 72", len(f.Tensors))
	}
	if f.DataOffset != 8+9064 {
		t.Errorf("data offset %d, want %d", f.DataOffset, 8+9064)
	}
	name := regexp.MustCompile(`^base_model\.model\.transformer\.h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_proj)\.lora_([AB])\.weight$`)
	var sumSqB float64
	var nB int
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		m := name.FindStringSubmatch(ti.Name)
		if m == nil {
			t.Fatalf("unexpected tensor name %q", ti.Name)
		}
		if ti.DType != F32 || len(ti.Shape) != 2 {
			t.Fatalf("%s: %s %v", ti.Name, ti.DType, ti.Shape)
		}
		if m[3] == "A" && ti.Shape[0] != 8 || m[3] == "B" && ti.Shape[1] != 8 {
			t.Errorf("%s: shape %v, want A [8, in] and B [out, 8]", ti.Name, ti.Shape)
		}
		v, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s: non-finite value", ti.Name)
			}
			if m[3] == "B" {
				sumSqB += float64(x) * float64(x)
				nB++
			}
		}
	}
	if rms := math.Sqrt(sumSqB / float64(nB)); rms < 0.004 || rms > 0.016 {
		t.Errorf("lora_B rms %.4f, SOURCES.md says about 0.008", rms)
	}
	if ti, ok := f.Tensor("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"); !ok || !reflect.DeepEqual(ti.Shape, []int{8, 768}) {
		t.Errorf("h.0 c_attn lora_A: %+v", ti)
	}
}

func TestRoundTripRealAdapter(t *testing.T) {
	f, err := Open(adapterPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ts []Tensor
	for i := range f.Tensors {
		raw, err := f.TensorData(&f.Tensors[i])
		if err != nil {
			t.Fatal(err)
		}
		ti := f.Tensors[i]
		ts = append(ts, Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: raw})
	}
	out := filepath.Join(t.TempDir(), "a.safetensors")
	if err := Write(out, ts, f.Metadata); err != nil {
		t.Fatal(err)
	}
	g, err := Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.DataOffset%8 != 0 {
		t.Errorf("data offset %d not 8-aligned", g.DataOffset)
	}
	if !reflect.DeepEqual(g.Metadata, f.Metadata) || len(g.Tensors) != len(f.Tensors) {
		t.Fatal("metadata or tensor count changed")
	}
	for i := 1; i < len(g.Tensors); i++ {
		if g.Tensors[i-1].Name >= g.Tensors[i].Name {
			t.Fatal("written tensors are not in name order")
		}
	}
	for _, want := range ts {
		ti, ok := g.Tensor(want.Name)
		if !ok {
			t.Fatalf("missing %s", want.Name)
		}
		raw, _ := g.TensorData(ti)
		if !bytes.Equal(raw, want.Data) || !reflect.DeepEqual(ti.Shape, want.Shape) {
			t.Fatalf("%s changed", want.Name)
		}
	}
	// Deterministic: writing again (in another order) gives identical bytes.
	rev := append([]Tensor(nil), ts...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	var b1, b2 bytes.Buffer
	Encode(&b1, ts, f.Metadata)
	Encode(&b2, rev, f.Metadata)
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("output depends on input order")
	}
}

func TestConversions(t *testing.T) {
	v := int64(-1 << 40)
	negI64 := uint64(v)
	ts := []Tensor{
		NewF32("f32", []int{2, 2}, []float32{1, -2, 3.5, 0}),
		{Name: "f16", DType: F16, Shape: []int{2}, Data: []byte{0x00, 0x3c, 0x00, 0xc0}}, // 1, -2
		{Name: "bf16", DType: BF16, Shape: []int{1}, Data: []byte{0x80, 0x3f}},           // 1
		{Name: "i64", DType: I64, Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, negI64)},
		{Name: "i32", DType: I32, Shape: []int{1}, Data: []byte{0xfe, 0xff, 0xff, 0xff}}, // -2
		{Name: "u8", DType: U8, Shape: []int{3}, Data: []byte{0, 7, 255}},
		{Name: "scalar", DType: F32, Shape: []int{}, Data: []byte{0, 0, 0x80, 0x3f}},
		{Name: "empty", DType: F32, Shape: []int{0, 4}, Data: nil},
	}
	var buf bytes.Buffer
	if err := Encode(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata %v, want nil", f.Metadata)
	}
	want := map[string][]float32{
		"f32": {1, -2, 3.5, 0}, "f16": {1, -2}, "bf16": {1}, "i64": {-(1 << 40)},
		"i32": {-2}, "u8": {0, 7, 255}, "scalar": {1}, "empty": {},
	}
	for name, w := range want {
		ti, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("missing %s", name)
		}
		got, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}

// file builds a safetensors image from a raw header and data.
func file(hdr string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, make([]byte, data)...)
}

func TestReadErrors(t *testing.T) {
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	cases := []struct {
		name, msg string
		data      []byte
	}{
		{"short", "too short", []byte{1, 2}},
		{"huge header", "exceeds the limit", append(huge, '{', '}')},
		{"header past end", "runs past end", append(binary.LittleEndian.AppendUint64(nil, 100), '{', '}')},
		{"not an object", "does not start", file(`[1]`, 0)},
		{"bad json", "header JSON", file(`{"a":`, 0)},
		{"trailing", "after the header", file(`{} x`, 0)},
		{"duplicate", "duplicate", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)},
		{"dtype", "unknown dtype", file(`{"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}}`, 4)},
		{"size mismatch", "needs 8 bytes", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4)},
		{"gap", "gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8)},
		{"overlap", "overlaps", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8)},
		{"past end", "runs past end of file", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4)},
		{"extra data", "cover 4 bytes", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8)},
		{"negative", "negative", file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4)},
		{"overflow", "overflows", file(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}`, 4)},
		{"rank", "rank", file(`{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}`, 1)},
		{"metadata type", "__metadata__", file(`{"__metadata__":{"a":1}}`, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q: want ErrFormat mentioning %q", err, c.msg)
			}
		})
	}
}

func TestWriteIsWorldReadable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.safetensors")
	if err := Write(p, []Tensor{NewF32("x", []int{2}, []float32{1, 2})}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode().Perm())
	}
}
