package gguf

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// dataDir returns ../shared/data relative to the repository root, or skips.
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

func openModel(t *testing.T, name string) *File {
	t.Helper()
	p := filepath.Join(dataDir(t), "models", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not present", p)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestStories260K(t *testing.T) {
	f := openModel(t, "stories260K.gguf")
	if f.Version != 3 {
		t.Errorf("version %d, want 3", f.Version)
	}
	if arch, _ := f.String("general.architecture"); arch != "llama" {
		t.Errorf("architecture %q", arch)
	}
	checks := map[string]uint64{
		"llama.embedding_length":        64,
		"llama.feed_forward_length":     172,
		"llama.block_count":             5,
		"llama.attention.head_count":    8,
		"llama.attention.head_count_kv": 4,
		"llama.rope.dimension_count":    8,
	}
	for k, want := range checks {
		if got, ok := f.Uint(k); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", k, got, ok, want)
		}
	}
	if eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || math.Abs(eps-1e-5) > 1e-9 {
		t.Errorf("rms eps %v %v", eps, ok)
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) != 512 || toks[0] != "<unk>" || toks[1] != "<s>" || toks[2] != "</s>" {
		t.Fatalf("tokens: ok=%v len=%d", ok, len(toks))
	}
	scores, ok := f.Float32s("tokenizer.ggml.scores")
	if !ok || len(scores) != 512 {
		t.Fatalf("scores: ok=%v len=%d", ok, len(scores))
	}
	if types, ok := f.Int32s("tokenizer.ggml.token_type"); !ok || len(types) != 512 {
		t.Errorf("token types: ok=%v len=%d", ok, len(types))
	}
	if len(f.Tensors) != 48 {
		t.Fatalf("%d tensors, want 48", len(f.Tensors))
	}
	var end uint64
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.Type != F32 {
			t.Errorf("%s is %s, want f32", ti.Name, ti.Type)
		}
		v, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s has a non-finite value", ti.Name)
			}
		}
		n, _ := ti.Size()
		end = max(end, ti.Offset+n)
	}
	if got := uint64(f.DataOffset) + end; got != uint64(f.Size) {
		t.Errorf("tensor data ends at %d, file size %d", got, f.Size)
	}
	emb, _ := f.Tensor("token_embd.weight")
	out, _ := f.Tensor("output.weight")
	if emb == nil || !reflect.DeepEqual(emb.Shape(), []int{512, 64}) {
		t.Fatalf("token_embd.weight: %+v", emb)
	}
	if out != nil { // stories260K ties output to the embedding
		a, _ := f.TensorData(emb)
		b, _ := f.TensorData(out)
		if !bytes.Equal(a, b) {
			t.Errorf("output.weight differs from token_embd.weight")
		}
	}
	ffn, _ := f.Tensor("blk.0.ffn_down.weight")
	if ffn == nil || !reflect.DeepEqual(ffn.Dims, []uint64{172, 64}) {
		t.Errorf("blk.0.ffn_down.weight dims %+v", ffn)
	}
}

func TestLlama2TinyRandomF16(t *testing.T) {
	f := openModel(t, "llama-2-tiny-random.gguf")
	if ft, ok := f.Uint("general.file_type"); !ok || ft != 1 {
		t.Errorf("file_type %d %v", ft, ok)
	}
	if len(f.Tensors) != 12 {
		t.Errorf("%d tensors, want 12", len(f.Tensors))
	}
	nf16 := 0
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.Type == F16 {
			nf16++
		}
		v, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(v)) != ti.NumElements() {
			t.Fatalf("%s: %d values", ti.Name, len(v))
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s has a non-finite value", ti.Name)
			}
		}
	}
	if nf16 == 0 {
		t.Error("no f16 tensors")
	}
	if toks, _ := f.Strings("tokenizer.ggml.tokens"); len(toks) != 32000 {
		t.Errorf("%d tokens", len(toks))
	}
}

// allValues is one metadata value of every type, including nested arrays.
func allValues() []KV {
	kv := func(k string, x any) KV { return KV{Key: k, Value: MustValue(x)} }
	return []KV{
		kv("general.architecture", "llama"),
		kv("u8", uint8(250)), kv("i8", int8(-5)), kv("u16", uint16(65000)), kv("i16", int16(-300)),
		kv("u32", uint32(4e9)), kv("i32", int32(-7)), kv("f32", float32(1.5)), kv("bool", true),
		kv("u64", uint64(1<<63)), kv("i64", int64(-1<<40)), kv("f64", 2.25),
		kv("au8", []uint8{1, 2}), kv("ai8", []int8{-1, 2}), kv("au16", []uint16{3}), kv("ai16", []int16{-4}),
		kv("au32", []uint32{5, 6}), kv("ai32", []int32{-7, 8}), kv("af32", []float32{0.5, -0.25}),
		kv("abool", []bool{true, false}), kv("astr", []string{"a", "", "ünï"}), kv("au64", []uint64{9}),
		kv("ai64", []int64{-10}), kv("af64", []float64{1e300}), kv("empty", []string{}),
		kv("nested", []Value{MustValue([]int32{1, 2}), MustValue([]string{"x"}), MustValue([]Value{MustValue([]uint8{7})})}),
	}
}

func TestRoundTripAllValueTypes(t *testing.T) {
	kv := allValues()
	var buf bytes.Buffer
	if err := Encode(&buf, kv, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.KV, kv) {
		t.Fatalf("round trip differs:\n got %v\nwant %v", f.KV, kv)
	}
	if u, ok := f.Uint("u16"); !ok || u != 65000 {
		t.Errorf("Uint(u16) = %d %v", u, ok)
	}
	if _, ok := f.Uint("i8"); ok {
		t.Error("Uint of a negative int8 should fail")
	}
	if i, ok := f.Int("i8"); !ok || i != -5 {
		t.Errorf("Int(i8) = %d %v", i, ok)
	}
	if _, ok := f.Int("u64"); ok {
		t.Error("Int of 1<<63 should fail")
	}
	if x, ok := f.Float("u32"); !ok || x != 4e9 {
		t.Errorf("Float(u32) = %v %v", x, ok)
	}
	if a, ok := f.Int32s("au16"); !ok || !reflect.DeepEqual(a, []int32{3}) {
		t.Errorf("Int32s(au16) = %v %v", a, ok)
	}
	if _, ok := f.Int32s("au32"); !ok {
		t.Error("Int32s(au32) should convert")
	}
	if _, ok := f.Strings("au8"); ok {
		t.Error("Strings of a uint8 array should fail")
	}
	if b, ok := f.Bool("bool"); !ok || !b {
		t.Error("Bool")
	}
}

func TestWriteReadTensors(t *testing.T) {
	vals := make([]float32, 64*3)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i))) * 2
	}
	var ts []WriteTensor
	for _, typ := range []GGMLType{F32, F16, BF16, Q8_0, Q4_0} {
		wt, err := NewTensor("t."+typ.String(), []int{3, 64}, vals, typ)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, wt)
	}
	ts = append(ts, WriteTensor{Name: "raw", Dims: []uint64{5}, Type: I8, Data: []byte{1, 2, 3, 4, 5}})
	kv := []KV{{"general.alignment", MustValue(uint32(64))}}
	path := filepath.Join(t.TempDir(), "x.gguf")
	if err := Write(path, kv, ts); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Errorf("alignment %d data offset %d", f.Alignment, f.DataOffset)
	}
	tol := map[GGMLType]float64{F32: 0, F16: 1e-3, BF16: 1e-2, Q8_0: 2.0 / 127, Q4_0: 2.0 / 8}
	for _, wt := range ts {
		ti, ok := f.Tensor(wt.Name)
		if !ok {
			t.Fatalf("missing %s", wt.Name)
		}
		if ti.Offset%64 != 0 {
			t.Errorf("%s offset %d not aligned", ti.Name, ti.Offset)
		}
		raw, err := f.TensorData(ti)
		if err != nil || !bytes.Equal(raw, wt.Data) {
			t.Fatalf("%s: raw data differs (%v)", wt.Name, err)
		}
		if wt.Type == I8 {
			continue
		}
		if !reflect.DeepEqual(ti.Shape(), []int{3, 64}) {
			t.Errorf("%s shape %v", ti.Name, ti.Shape())
		}
		got, err := f.TensorFloat32(ti)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if d := math.Abs(float64(v - vals[i])); d > tol[wt.Type] {
				t.Fatalf("%s[%d] = %v, want %v (±%v)", wt.Name, i, v, vals[i], tol[wt.Type])
			}
		}
	}
}

func TestReadErrors(t *testing.T) {
	good := func() []byte {
		var buf bytes.Buffer
		wt, _ := NewTensor("w", []int{2, 32}, make([]float32, 64), F32)
		if err := Encode(&buf, []KV{{"a", MustValue("b")}}, []WriteTensor{wt}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	put := func(b []byte, off int, v ...byte) []byte { copy(b[off:], v); return b }
	cases := []struct {
		name string
		data []byte
		is   error
		msg  string
	}{
		{"empty", nil, ErrFormat, "too short"},
		{"magic", []byte("GGML\x03\x00\x00\x00"), ErrFormat, "bad magic"},
		{"v1", []byte("GGUF\x01\x00\x00\x00"), ErrVersion, "v1"},
		{"v4", []byte("GGUF\x04\x00\x00\x00"), ErrVersion, "4"},
		{"big-endian", []byte("GGUF\x00\x00\x00\x03"), ErrVersion, "big-endian"},
		{"truncated", good()[:60], ErrFormat, ""},
		{"past end", good()[:len(good())-4], ErrFormat, "runs past end of file"},
		{"huge string", put(good(), 24, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), ErrFormat, "string"},
		{"tensor count", put(good(), 8, 0xff, 0xff, 0xff, 0xff), ErrFormat, "tensors"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}
