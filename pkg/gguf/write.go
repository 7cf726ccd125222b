package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/lora-dev/lora/pkg/atomicfile"
	"github.com/lora-dev/lora/pkg/quant"
)

// WriteTensor is a tensor to write: Data holds the raw bytes in Type's layout.
type WriteTensor struct {
	Name string
	Dims []uint64 // ggml order: Dims[0] is the contiguous dimension
	Type GGMLType
	Data []byte
}

// NewTensor converts float32 data of a row-major shape (last dimension
// contiguous) to typ (F32, F16, BF16, Q8_0 or Q4_0) for writing.
func NewTensor(name string, shape []int, data []float32, typ GGMLType) (WriteTensor, error) {
	t := WriteTensor{Name: name, Type: typ, Dims: make([]uint64, len(shape))}
	n := 1
	for i, d := range shape {
		if d < 0 {
			return t, fmt.Errorf("gguf: tensor %q: negative dimension in shape %v", name, shape)
		}
		t.Dims[len(shape)-1-i] = uint64(d)
		n *= d
	}
	if n != len(data) {
		return t, fmt.Errorf("gguf: tensor %q: shape %v has %d elements, data has %d", name, shape, n, len(data))
	}
	info := TensorInfo{Name: name, Dims: t.Dims, Type: typ}
	size, err := info.Size()
	if err != nil {
		return t, fmt.Errorf("gguf: %w", err)
	}
	t.Data = make([]byte, size)
	switch typ {
	case F32:
		err = quant.EncodeF32(t.Data, data)
	case F16:
		err = quant.EncodeF16(t.Data, data)
	case BF16:
		err = quant.EncodeBF16(t.Data, data)
	case Q8_0:
		err = quant.QuantizeQ8_0(t.Data, data)
	case Q4_0:
		err = quant.QuantizeQ4_0(t.Data, data)
	default:
		return t, fmt.Errorf("gguf: tensor %q: encoding float32 as %s is not supported (supported: f32, f16, bf16, q8_0, q4_0)", name, typ)
	}
	if err != nil {
		return t, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return t, nil
}

// Write writes a GGUF v3 file at path atomically (a temporary file in the same
// directory, renamed into place). The alignment is general.alignment when kv
// has it (a uint32 power of two), else 32.
func Write(path string, kv []KV, tensors []WriteTensor) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := Encode(bw, kv, tensors); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// Encode writes a GGUF v3 image to w (see Write).
func Encode(w io.Writer, kv []KV, tensors []WriteTensor) error {
	align := uint64(DefaultAlignment)
	seen := make(map[string]bool, len(kv))
	for _, e := range kv {
		if seen[e.Key] {
			return fmt.Errorf("duplicate metadata key %q", e.Key)
		}
		seen[e.Key] = true
		if e.Key == "general.alignment" {
			a, ok := e.Value.v.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("general.alignment must be a uint32 power of two, got %s %v", e.Value.Type, e.Value.v)
			}
			align = uint64(a)
		}
	}
	ew := &encoder{w: w}
	ew.u32(magic)
	ew.u32(3)
	ew.u64(uint64(len(tensors)))
	ew.u64(uint64(len(kv)))
	for _, e := range kv {
		ew.str(e.Key)
		ew.u32(uint32(e.Value.Type))
		if err := ew.value(e.Value); err != nil {
			return fmt.Errorf("metadata %q: %w", e.Key, err)
		}
	}
	names := make(map[string]bool, len(tensors))
	var off uint64
	for _, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		names[t.Name] = true
		if len(t.Dims) > MaxDims {
			return fmt.Errorf("tensor %q has %d dimensions (limit %d)", t.Name, len(t.Dims), MaxDims)
		}
		info := TensorInfo{Name: t.Name, Dims: t.Dims, Type: t.Type}
		size, err := info.Size()
		if err != nil {
			return err
		}
		if size != uint64(len(t.Data)) {
			return fmt.Errorf("tensor %q: %s %v needs %d bytes, data has %d", t.Name, t.Type, t.Dims, size, len(t.Data))
		}
		ew.str(t.Name)
		ew.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			ew.u64(d)
		}
		ew.u32(uint32(t.Type))
		ew.u64(off)
		off += pad(size, align)
	}
	ew.zeros(pad(ew.n, align) - ew.n)
	for _, t := range tensors {
		ew.bytes(t.Data)
		ew.zeros(pad(uint64(len(t.Data)), align) - uint64(len(t.Data)))
	}
	return ew.err
}

func pad(n, a uint64) uint64 { return (n + a - 1) / a * a }

type encoder struct {
	w   io.Writer
	n   uint64
	err error
	buf [8]byte
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	var k int
	k, e.err = e.w.Write(b)
	e.n += uint64(k)
}

func (e *encoder) zeros(n uint64) {
	var z [64]byte
	for n > 0 {
		k := min(n, uint64(len(z)))
		e.bytes(z[:k])
		n -= k
	}
}

func (e *encoder) u8(x uint8) { e.buf[0] = x; e.bytes(e.buf[:1]) }
func (e *encoder) u16(x uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], x)
	e.bytes(e.buf[:2])
}
func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], x)
	e.bytes(e.buf[:4])
}
func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.bytes(e.buf[:8])
}
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.bytes([]byte(s)) }

func (e *encoder) value(v Value) error {
	switch x := v.v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case bool:
		if x {
			e.u8(1)
		} else {
			e.u8(0)
		}
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case string:
		e.str(x)
	default:
		if v.Type != TypeArray {
			return fmt.Errorf("unsupported value %T", v.v)
		}
		return e.array(v)
	}
	if v.Type == TypeArray {
		return fmt.Errorf("array value holds a scalar %T", v.v)
	}
	return nil
}

func (e *encoder) array(v Value) error {
	e.u32(uint32(v.Elem))
	e.u64(uint64(v.Len()))
	switch a := v.v.(type) {
	case []uint8:
		e.bytes(a)
	case []int8:
		for _, x := range a {
			e.u8(uint8(x))
		}
	case []bool:
		for _, x := range a {
			if x {
				e.u8(1)
			} else {
				e.u8(0)
			}
		}
	case []uint16:
		for _, x := range a {
			e.u16(x)
		}
	case []int16:
		for _, x := range a {
			e.u16(uint16(x))
		}
	case []uint32:
		for _, x := range a {
			e.u32(x)
		}
	case []int32:
		for _, x := range a {
			e.u32(uint32(x))
		}
	case []float32:
		for _, x := range a {
			e.u32(math.Float32bits(x))
		}
	case []uint64:
		for _, x := range a {
			e.u64(x)
		}
	case []int64:
		for _, x := range a {
			e.u64(uint64(x))
		}
	case []float64:
		for _, x := range a {
			e.u64(math.Float64bits(x))
		}
	case []string:
		for _, x := range a {
			e.str(x)
		}
	case []Value:
		for i, x := range a {
			if x.Type != TypeArray {
				return fmt.Errorf("nested element %d is %s, want array", i, x.Type)
			}
			if err := e.array(x); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unsupported array %T", v.v)
	}
	return nil
}
