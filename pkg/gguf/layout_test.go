package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"testing"
)

// handBuilt assembles a GGUF v3 image field by field, straight from the spec,
// without the package's encoder.
func handBuilt(version uint32) []byte {
	le := binary.LittleEndian
	var b []byte
	str := func(s string) { b = le.AppendUint64(b, uint64(len(s))); b = append(b, s...) }
	b = append(b, "GGUF"...)
	b = le.AppendUint32(b, version)
	b = le.AppendUint64(b, 2) // tensors
	b = le.AppendUint64(b, 2) // kv
	str("general.name")
	b = le.AppendUint32(b, 8) // string
	str("tiny")
	str("tokenizer.ggml.scores")
	b = le.AppendUint32(b, 9) // array
	b = le.AppendUint32(b, 6) // of float32
	b = le.AppendUint64(b, 2)
	b = le.AppendUint32(b, math.Float32bits(-1))
	b = le.AppendUint32(b, math.Float32bits(0.5))
	// tensor "a": f32 [3] at 0; tensor "b": f16 [2, 2] at 32
	str("a")
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, 3)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint64(b, 0)
	str("b")
	b = le.AppendUint32(b, 2)
	b = le.AppendUint64(b, 2)
	b = le.AppendUint64(b, 2)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint64(b, 32)
	for len(b)%32 != 0 {
		b = append(b, 0)
	}
	for _, v := range []float32{1, 2, 3} {
		b = le.AppendUint32(b, math.Float32bits(v))
	}
	b = append(b, make([]byte, 32-12)...)
	for _, h := range []uint16{0x3c00, 0x4000, 0xc200, 0x0001} { // 1, 2, -3, 2^-24
		b = le.AppendUint16(b, h)
	}
	b = append(b, make([]byte, 32-8)...)
	return b
}

func TestEncoderMatchesHandBuiltLayout(t *testing.T) {
	want := handBuilt(3)
	a, err := NewTensor("a", []int{3}, []float32{1, 2, 3}, F32)
	if err != nil {
		t.Fatal(err)
	}
	bt, err := NewTensor("b", []int{2, 2}, []float32{1, 2, -3, float32(math.Ldexp(1, -24))}, F16)
	if err != nil {
		t.Fatal(err)
	}
	kv := []KV{{"general.name", MustValue("tiny")}, {"tokenizer.ggml.scores", MustValue([]float32{-1, 0.5})}}
	var got bytes.Buffer
	if err := Encode(&got, kv, []WriteTensor{a, bt}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("encoder output differs from the hand-built layout:\n got %x\nwant %x", got.Bytes(), want)
	}
}

func TestReadHandBuiltV2AndV3(t *testing.T) {
	for _, v := range []uint32{2, 3} {
		data := handBuilt(v)
		f, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if f.Version != v || f.DataOffset%32 != 0 {
			t.Errorf("v%d: version %d data offset %d", v, f.Version, f.DataOffset)
		}
		if s, _ := f.String("general.name"); s != "tiny" {
			t.Errorf("name %q", s)
		}
		b, _ := f.Tensor("b")
		got, err := f.TensorFloat32(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := []float32{1, 2, -3, float32(math.Ldexp(1, -24))}; !equal(got, want) {
			t.Errorf("b = %v, want %v", got, want)
		}
		if sh := b.Shape(); sh[0] != 2 || sh[1] != 2 {
			t.Errorf("shape %v", sh)
		}
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPastEndMessage(t *testing.T) {
	full := handBuilt(3)
	data := full[:len(full)-24-1] // drop b's padding and its last data byte
	_, err := Read(bytes.NewReader(data), int64(len(data)))
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("err = %v", err)
	}
	// Tensor b needs 8 bytes at offset DataOffset+32; the file lost its last byte.
	dataOff := len(full) - 64
	want := `tensor "b" runs past end of file (needs 8 bytes at offset ` + itoa(dataOff+32) + `, file has ` + itoa(len(data)) + `)`
	if !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q\nwant it to contain %q", err, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestMoreReadErrors(t *testing.T) {
	le := binary.LittleEndian
	hdr := func(nt, nkv uint64) []byte {
		b := append([]byte("GGUF"), 3, 0, 0, 0)
		b = le.AppendUint64(b, nt)
		return le.AppendUint64(b, nkv)
	}
	str := func(b []byte, s string) []byte { b = le.AppendUint64(b, uint64(len(s))); return append(b, s...) }
	kv := func(key string, typ uint32, payload ...byte) []byte {
		b := str(hdr(0, 1), key)
		b = le.AppendUint32(b, typ)
		return append(b, payload...)
	}
	tensor := func(name string, dims []uint64, typ uint32, off uint64) []byte {
		b := str(hdr(1, 0), name)
		b = le.AppendUint32(b, uint32(len(dims)))
		for _, d := range dims {
			b = le.AppendUint64(b, d)
		}
		b = le.AppendUint32(b, typ)
		b = le.AppendUint64(b, off)
		return append(b, make([]byte, 64)...)
	}
	arr := func(elem uint32, n uint64) []byte { return le.AppendUint64(le.AppendUint32(nil, elem), n) }
	cases := []struct {
		name, msg string
		data      []byte
	}{
		{"bad bool", "bool", kv("b", 7, 2)},
		{"unknown value type", "unknown value type", kv("x", 13, 0)},
		{"huge array", "exceeds the limit", kv("a", 9, arr(4, 1<<40)...)},
		{"array past end", "runs past end", kv("a", 9, arr(4, 1000)...)},
		{"unknown elem", "unknown array element type", kv("a", 9, arr(77, 1)...)},
		{"deep nesting", "nested deeper", kv("a", 9, bytes.Repeat(arr(9, 1), 20)...)},
		{"alignment type", "general.alignment is", kv("general.alignment", 10, make([]byte, 8)...)},
		{"alignment value", "power of two", kv("general.alignment", 4, 3, 0, 0, 0)},
		{"rank", "dimensions", tensor("t", []uint64{1, 1, 1, 1, 1}, 0, 0)},
		{"unknown type", "unknown type", tensor("t", []uint64{1}, 99, 0)},
		{"dims overflow", "overflows", tensor("t", []uint64{1 << 32, 1 << 32}, 0, 0)},
		{"block multiple", "not a multiple of the q4_0 block size", tensor("t", []uint64{31}, 2, 0)},
		{"unaligned", "not a multiple of the alignment", tensor("t", []uint64{1}, 0, 4)},
		{"offset overflow", "runs past end of file", tensor("t", []uint64{8}, 0, 1<<63)},
		{"kv count", "metadata entries", hdr(0, 1<<21)},
		{"counts vs size", "has only", hdr(1000, 1000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(c.data), int64(len(c.data)))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrFormat) || !bytes.Contains([]byte(err.Error()), []byte(c.msg)) {
				t.Errorf("error %q: want ErrFormat mentioning %q", err, c.msg)
			}
		})
	}
}

func TestOverlapAndDuplicates(t *testing.T) {
	a, _ := NewTensor("a", []int{8}, make([]float32, 8), F32)
	var buf bytes.Buffer
	if err := Encode(&buf, nil, []WriteTensor{a, {Name: "b", Dims: []uint64{8}, Type: F32, Data: make([]byte, 32)}}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	// Point b's offset (the last 8 bytes of its info) at a's data.
	i := bytes.Index(data, []byte("\x01\x00\x00\x00\x00\x00\x00\x00b"))
	if i < 0 {
		t.Fatal("tensor info for b not found")
	}
	off := i + 9 + 4 + 8 + 4
	binary.LittleEndian.PutUint64(data[off:], 0)
	if _, err := Read(bytes.NewReader(data), int64(len(data))); err == nil || !bytes.Contains([]byte(err.Error()), []byte("overlap")) {
		t.Errorf("overlap: %v", err)
	}
	if err := Encode(&buf, []KV{{"k", MustValue(1)}, {"k", MustValue(2)}}, nil); err == nil {
		t.Error("encoder accepted a duplicate key")
	}
	if err := Encode(&buf, nil, []WriteTensor{a, a}); err == nil {
		t.Error("encoder accepted a duplicate tensor")
	}
	if err := Encode(&buf, nil, []WriteTensor{{Name: "x", Dims: []uint64{32}, Type: Q8_0, Data: make([]byte, 33)}}); err == nil {
		t.Error("encoder accepted a wrong data size")
	}
}

func TestVocabOnlyFile(t *testing.T) {
	p := filepath.Join(dataDir(t), "tokenizers", "llama.cpp", "ggml-vocab-llama-spm.gguf")
	f, err := Open(p)
	if err != nil {
		t.Skipf("%v", err)
	}
	defer f.Close()
	if len(f.Tensors) != 0 {
		t.Errorf("%d tensors", len(f.Tensors))
	}
	if m, _ := f.String("tokenizer.ggml.model"); m != "llama" {
		t.Errorf("model %q", m)
	}
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	if len(toks) != 32000 {
		t.Errorf("%d tokens", len(toks))
	}
	if b, ok := f.Uint("tokenizer.ggml.bos_token_id"); !ok || b != 1 {
		t.Errorf("bos %d %v", b, ok)
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || !b {
		t.Errorf("add_bos %v %v", b, ok)
	}
}
