package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"

	"github.com/lora-dev/lora/pkg/quant"
)

// Sentinel errors; every parse error wraps one of them or describes the damage.
var (
	// ErrFormat: the data is not a GGUF file (bad magic) or is malformed.
	ErrFormat = errors.New("not a valid GGUF file")
	// ErrVersion: a GGUF file of a version this package does not read.
	ErrVersion = errors.New("unsupported GGUF version")
)

// Hardening limits. A value also never claims more bytes than the file has left.
const (
	magic          = 0x46554747 // "GGUF" little endian
	MaxStringLen   = 16 << 20   // bytes in one string (key, value or array element)
	MaxArrayLen    = 1 << 28    // elements in one array
	MaxKVCount     = 1 << 20
	MaxTensorCount = 1 << 20
	MaxDims        = 4 // GGML_MAX_DIMS
	maxArrayDepth  = 8 // nesting of arrays of arrays
	// DefaultAlignment is used when general.alignment is absent.
	DefaultAlignment = 32
)

// File is a parsed GGUF file: header, metadata and tensor descriptors. Tensor
// data is read on demand.
type File struct {
	Version    uint32
	KV         []KV // in file order
	Tensors    []TensorInfo
	DataOffset int64 // absolute offset of the tensor data section
	Alignment  int
	Size       int64 // file size in bytes

	r       io.ReaderAt
	closer  io.Closer
	name    string
	kvIndex map[string]int
	tIndex  map[string]int
}

// TensorInfo describes one tensor. Dims are in ggml order: Dims[0] is the
// contiguous (fastest varying) one, so a matrix [rows, cols] has Dims {cols, rows}.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   GGMLType
	Offset uint64 // relative to File.DataOffset
}

// NumElements is the product of Dims (checked against overflow when the file was read).
func (t *TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Shape returns the dims in row-major order (last dimension contiguous), as ints.
func (t *TensorInfo) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(t.Dims)-1-i] = int(d)
	}
	return s
}

// Size is the number of bytes the tensor data occupies.
func (t *TensorInfo) Size() (uint64, error) {
	ti, ok := typeTable[t.Type]
	if !ok {
		return 0, fmt.Errorf("tensor %q has unknown type %d", t.Name, uint32(t.Type))
	}
	dims := t.Dims
	if len(dims) == 0 {
		dims = []uint64{1} // a scalar
	}
	if dims[0]%uint64(ti.block) != 0 {
		return 0, fmt.Errorf("tensor %q: first dimension %d is not a multiple of the %s block size %d", t.Name, dims[0], t.Type, ti.block)
	}
	n := dims[0] / uint64(ti.block)
	for _, d := range dims[1:] {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return 0, fmt.Errorf("tensor %q: size overflows", t.Name)
		}
		n = lo
	}
	hi, lo := bits.Mul64(n, uint64(ti.size))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, fmt.Errorf("tensor %q: size overflows", t.Name)
	}
	return lo, nil
}

// Open reads the header, metadata and tensor descriptors of the GGUF file at
// path. Close releases the file.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = fh
	f.name = path
	return f, nil
}

// Read parses a GGUF image of size bytes from r. Tensor data is read from r later,
// on demand, so r must stay usable while the File is.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size", ErrFormat)
	}
	p := &parser{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10), size: size}
	f := &File{r: r, Size: size}
	m, err := p.u32()
	if err != nil {
		return nil, fmt.Errorf("%w: too short for a header", ErrFormat)
	}
	if m != magic {
		return nil, fmt.Errorf("%w: bad magic %q (want \"GGUF\")", ErrFormat, le32(m))
	}
	if f.Version, err = p.u32(); err != nil {
		return nil, fmt.Errorf("%w: too short for a header", ErrFormat)
	}
	switch {
	case f.Version == 2 || f.Version == 3:
	case f.Version == 1:
		return nil, fmt.Errorf("%w 1 (GGUF v1, 2023): convert it with a current llama.cpp", ErrVersion)
	case f.Version&0xffff == 0 && bits.ReverseBytes32(f.Version) <= 3:
		return nil, fmt.Errorf("%w: big-endian GGUF (version %d) is not supported", ErrVersion, bits.ReverseBytes32(f.Version))
	default:
		return nil, fmt.Errorf("%w %d (this reader handles 2 and 3)", ErrVersion, f.Version)
	}
	nt, err := p.u64()
	if err != nil {
		return nil, p.wrap(err, "tensor count")
	}
	nkv, err := p.u64()
	if err != nil {
		return nil, p.wrap(err, "metadata count")
	}
	if nt > MaxTensorCount {
		return nil, fmt.Errorf("%w: %d tensors (limit %d)", ErrFormat, nt, MaxTensorCount)
	}
	if nkv > MaxKVCount {
		return nil, fmt.Errorf("%w: %d metadata entries (limit %d)", ErrFormat, nkv, MaxKVCount)
	}
	// Each KV needs at least 8+4 bytes and each tensor info 8+4+4+8.
	if nkv*12+nt*24 > uint64(p.remaining()) {
		return nil, fmt.Errorf("%w: header claims %d metadata entries and %d tensors but the file has only %d bytes", ErrFormat, nkv, nt, size)
	}

	f.KV = make([]KV, 0, nkv)
	f.kvIndex = make(map[string]int, nkv)
	f.Alignment = DefaultAlignment
	for i := uint64(0); i < nkv; i++ {
		key, err := p.str()
		if err != nil {
			return nil, p.wrap(err, fmt.Sprintf("metadata key %d", i))
		}
		t, err := p.u32()
		if err != nil {
			return nil, p.wrap(err, fmt.Sprintf("type of metadata %q", key))
		}
		v, err := p.value(ValueType(t), 0)
		if err != nil {
			return nil, p.wrap(err, fmt.Sprintf("metadata %q", key))
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, fmt.Errorf("%w: duplicate metadata key %q", ErrFormat, key)
		}
		f.kvIndex[key] = len(f.KV)
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}
	if v, ok := f.Lookup("general.alignment"); ok {
		a, ok := v.v.(uint32)
		if !ok {
			return nil, fmt.Errorf("%w: general.alignment is %s, want uint32", ErrFormat, v.Type)
		}
		if a == 0 || a&(a-1) != 0 || a > 1<<20 {
			return nil, fmt.Errorf("%w: general.alignment %d is not a power of two up to 1 MiB", ErrFormat, a)
		}
		f.Alignment = int(a)
	}

	f.Tensors = make([]TensorInfo, 0, nt)
	f.tIndex = make(map[string]int, nt)
	for i := uint64(0); i < nt; i++ {
		t, err := p.tensorInfo()
		if err != nil {
			return nil, p.wrap(err, fmt.Sprintf("tensor info %d", i))
		}
		if _, dup := f.tIndex[t.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate tensor name %q", ErrFormat, t.Name)
		}
		f.tIndex[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	f.DataOffset = alignUp(p.pos, int64(f.Alignment))
	if err := f.checkTensors(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkTensors validates every tensor's type, size, alignment and extent, and that
// no two tensors overlap.
func (f *File) checkTensors() error {
	type span struct {
		start, end uint64
		name       string
	}
	spans := make([]span, 0, len(f.Tensors))
	avail := uint64(0)
	if f.Size > f.DataOffset {
		avail = uint64(f.Size - f.DataOffset)
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		n, err := t.Size()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		if t.Offset%uint64(f.Alignment) != 0 {
			return fmt.Errorf("%w: tensor %q offset %d is not a multiple of the alignment %d", ErrFormat, t.Name, t.Offset, f.Alignment)
		}
		end := t.Offset + n
		if end < t.Offset || end > avail {
			return fmt.Errorf("%w: tensor %q runs past end of file (needs %d bytes at offset %d, file has %d)",
				ErrFormat, t.Name, n, uint64(f.DataOffset)+t.Offset, f.Size)
		}
		if n > 0 {
			spans = append(spans, span{t.Offset, end, t.Name})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start < spans[i-1].end {
			return fmt.Errorf("%w: tensors %q and %q overlap", ErrFormat, spans[i-1].name, spans[i].name)
		}
	}
	return nil
}

// Close closes the underlying file (if Open opened it).
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

// Lookup returns the metadata value for key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// String returns a string metadata value.
func (f *File) String(key string) (string, bool) {
	v, _ := f.Lookup(key)
	s, ok := v.v.(string)
	return s, ok
}

// Uint returns an integer metadata value of any integer type as uint64
// (false if absent, not an integer, or negative).
func (f *File) Uint(key string) (uint64, bool) {
	v, _ := f.Lookup(key)
	return v.asUint64()
}

// Int returns an integer metadata value of any integer type as int64
// (false if absent, not an integer, or above MaxInt64).
func (f *File) Int(key string) (int64, bool) {
	v, _ := f.Lookup(key)
	return v.asInt64()
}

// Float returns a float32, float64 or integer metadata value as float64.
func (f *File) Float(key string) (float64, bool) {
	v, _ := f.Lookup(key)
	return v.asFloat64()
}

// Bool returns a bool metadata value.
func (f *File) Bool(key string) (bool, bool) {
	v, _ := f.Lookup(key)
	b, ok := v.v.(bool)
	return b, ok
}

// Strings returns a string array.
func (f *File) Strings(key string) ([]string, bool) {
	v, _ := f.Lookup(key)
	s, ok := v.v.([]string)
	return s, ok
}

// Float32s returns a float32 array (a float64 array is converted).
func (f *File) Float32s(key string) ([]float32, bool) {
	v, _ := f.Lookup(key)
	switch a := v.v.(type) {
	case []float32:
		return a, true
	case []float64:
		out := make([]float32, len(a))
		for i, x := range a {
			out[i] = float32(x)
		}
		return out, true
	}
	return nil, false
}

// Int32s returns an array of any integer type converted to int32 (false if an
// element does not fit).
func (f *File) Int32s(key string) ([]int32, bool) {
	v, _ := f.Lookup(key)
	if a, ok := v.v.([]int32); ok {
		return a, true
	}
	var out []int32
	conv := func(n int, at func(int) (int64, bool)) bool {
		out = make([]int32, n)
		for i := range out {
			x, ok := at(i)
			if !ok || x < math.MinInt32 || x > math.MaxInt32 {
				return false
			}
			out[i] = int32(x)
		}
		return true
	}
	var ok bool
	switch a := v.v.(type) {
	case []uint8:
		ok = conv(len(a), func(i int) (int64, bool) { return int64(a[i]), true })
	case []int8:
		ok = conv(len(a), func(i int) (int64, bool) { return int64(a[i]), true })
	case []uint16:
		ok = conv(len(a), func(i int) (int64, bool) { return int64(a[i]), true })
	case []int16:
		ok = conv(len(a), func(i int) (int64, bool) { return int64(a[i]), true })
	case []uint32:
		ok = conv(len(a), func(i int) (int64, bool) { return int64(a[i]), true })
	case []uint64:
		ok = conv(len(a), func(i int) (int64, bool) { return int64(a[i]), a[i] <= math.MaxInt32 })
	case []int64:
		ok = conv(len(a), func(i int) (int64, bool) { return a[i], true })
	}
	if !ok {
		return nil, false
	}
	return out, true
}

// Tensor returns the descriptor of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData reads the raw bytes of t in the file's layout.
func (f *File) TensorData(t *TensorInfo) ([]byte, error) {
	n, err := t.Size()
	if err != nil {
		return nil, err
	}
	off := uint64(f.DataOffset) + t.Offset
	if t.Offset > math.MaxInt64 || off < t.Offset || off+n < off || off+n > uint64(f.Size) {
		return nil, fmt.Errorf("%stensor %q runs past end of file (needs %d bytes at offset %d, file has %d)", f.prefix(), t.Name, n, off, f.Size)
	}
	buf := make([]byte, n)
	if _, err := f.r.ReadAt(buf, int64(off)); err != nil {
		return nil, fmt.Errorf("%sreading tensor %q: %w", f.prefix(), t.Name, err)
	}
	return buf, nil
}

// prefix is "path: " for files opened by path, for error messages.
func (f *File) prefix() string {
	if f.name == "" {
		return ""
	}
	return f.name + ": "
}

// TensorFloat32 reads t and converts it to float32 (dequantizing block types).
func (f *File) TensorFloat32(t *TensorInfo) ([]float32, error) {
	dq, ok := dequantizers[t.Type]
	if !ok {
		return nil, fmt.Errorf("%stensor %q: converting %s to float32 is not supported", f.prefix(), t.Name, t.Type)
	}
	raw, err := f.TensorData(t)
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	if err := dq(out, raw); err != nil {
		return nil, fmt.Errorf("%stensor %q: %w", f.prefix(), t.Name, err)
	}
	return out, nil
}

// Dequantize converts raw data of type t into dst (len(dst) values).
func Dequantize(t GGMLType, dst []float32, raw []byte) error {
	dq, ok := dequantizers[t]
	if !ok {
		return fmt.Errorf("converting %s to float32 is not supported", t)
	}
	return dq(dst, raw)
}

var dequantizers = map[GGMLType]func([]float32, []byte) error{
	F32:  quant.DequantizeF32,
	F16:  quant.DequantizeF16,
	BF16: quant.DequantizeBF16,
	Q8_0: quant.DequantizeQ8_0,
	Q4_0: quant.DequantizeQ4_0,
	Q4_1: quant.DequantizeQ4_1,
	Q5_0: quant.DequantizeQ5_0,
	Q5_1: quant.DequantizeQ5_1,
	Q2_K: quant.DequantizeQ2_K,
	Q3_K: quant.DequantizeQ3_K,
	Q4_K: quant.DequantizeQ4_K,
	Q5_K: quant.DequantizeQ5_K,
	Q6_K: quant.DequantizeQ6_K,
	Q8_K: quant.DequantizeQ8_K,
	F64: func(dst []float32, src []byte) error {
		return convertInts(dst, src, 8, func(b []byte) float32 { return float32(math.Float64frombits(binary.LittleEndian.Uint64(b))) })
	},
	I8: func(dst []float32, src []byte) error {
		return convertInts(dst, src, 1, func(b []byte) float32 { return float32(int8(b[0])) })
	},
	I16: func(dst []float32, src []byte) error {
		return convertInts(dst, src, 2, func(b []byte) float32 { return float32(int16(binary.LittleEndian.Uint16(b))) })
	},
	I32: func(dst []float32, src []byte) error {
		return convertInts(dst, src, 4, func(b []byte) float32 { return float32(int32(binary.LittleEndian.Uint32(b))) })
	},
}

// convertInts converts fixed-size elements (I8, I16, I32, F64) to float32.
func convertInts(dst []float32, src []byte, size int, conv func([]byte) float32) error {
	if len(src) != len(dst)*size {
		return fmt.Errorf("%d values need %d bytes, got %d", len(dst), len(dst)*size, len(src))
	}
	for i := range dst {
		dst[i] = conv(src[i*size:])
	}
	return nil
}

func alignUp(x, a int64) int64 { return (x + a - 1) / a * a }

type le32 uint32

func (m le32) String() string {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(m))
	return string(b[:])
}

// parser reads the header sequentially, tracking its position.
type parser struct {
	r    *bufio.Reader
	pos  int64
	size int64
	buf  [8]byte
}

var errShort = errors.New("unexpected end of file")

func (p *parser) remaining() int64 { return p.size - p.pos }

func (p *parser) wrap(err error, what string) error {
	return fmt.Errorf("%w: reading %s at offset %d: %v", ErrFormat, what, p.pos, err)
}

func (p *parser) read(n int) ([]byte, error) {
	if _, err := io.ReadFull(p.r, p.buf[:n]); err != nil {
		return nil, errShort
	}
	p.pos += int64(n)
	return p.buf[:n], nil
}

func (p *parser) u8() (uint8, error) {
	b, err := p.read(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (p *parser) u16() (uint16, error) {
	b, err := p.read(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (p *parser) u32() (uint32, error) {
	b, err := p.read(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (p *parser) u64() (uint64, error) {
	b, err := p.read(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (p *parser) str() (string, error) {
	n, err := p.u64()
	if err != nil {
		return "", err
	}
	if n > MaxStringLen {
		return "", fmt.Errorf("string of %d bytes exceeds the limit of %d", n, MaxStringLen)
	}
	if int64(n) > p.remaining() {
		return "", fmt.Errorf("string of %d bytes runs past end of file", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		return "", errShort
	}
	p.pos += int64(n)
	return string(b), nil
}

func (p *parser) value(t ValueType, depth int) (Value, error) {
	switch t {
	case TypeUint8:
		x, err := p.u8()
		return Value{Type: t, v: x}, err
	case TypeInt8:
		x, err := p.u8()
		return Value{Type: t, v: int8(x)}, err
	case TypeBool:
		x, err := p.u8()
		if err == nil && x > 1 {
			err = fmt.Errorf("bool byte is %d, want 0 or 1", x)
		}
		return Value{Type: t, v: x == 1}, err
	case TypeUint16:
		x, err := p.u16()
		return Value{Type: t, v: x}, err
	case TypeInt16:
		x, err := p.u16()
		return Value{Type: t, v: int16(x)}, err
	case TypeUint32:
		x, err := p.u32()
		return Value{Type: t, v: x}, err
	case TypeInt32:
		x, err := p.u32()
		return Value{Type: t, v: int32(x)}, err
	case TypeFloat32:
		x, err := p.u32()
		return Value{Type: t, v: math.Float32frombits(x)}, err
	case TypeUint64:
		x, err := p.u64()
		return Value{Type: t, v: x}, err
	case TypeInt64:
		x, err := p.u64()
		return Value{Type: t, v: int64(x)}, err
	case TypeFloat64:
		x, err := p.u64()
		return Value{Type: t, v: math.Float64frombits(x)}, err
	case TypeString:
		s, err := p.str()
		return Value{Type: t, v: s}, err
	case TypeArray:
		return p.array(depth)
	}
	return Value{}, fmt.Errorf("unknown value type %d", uint32(t))
}

func (p *parser) array(depth int) (Value, error) {
	if depth >= maxArrayDepth {
		return Value{}, fmt.Errorf("arrays nested deeper than %d", maxArrayDepth)
	}
	et, err := p.u32()
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if elem >= numValueTypes {
		return Value{}, fmt.Errorf("unknown array element type %d", et)
	}
	n, err := p.u64()
	if err != nil {
		return Value{}, err
	}
	if n > MaxArrayLen {
		return Value{}, fmt.Errorf("array of %d elements exceeds the limit of %d", n, MaxArrayLen)
	}
	minSize := uint64(elem.scalarSize())
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if n*minSize > uint64(p.remaining()) {
		return Value{}, fmt.Errorf("array of %d %s elements runs past end of file", n, elem)
	}
	cnt := int(n)
	out := Value{Type: TypeArray, Elem: elem}
	var e error
	switch elem {
	case TypeUint8:
		a := make([]uint8, cnt)
		e = readScalars(p, a, func(b []byte) uint8 { return b[0] })
		out.v = a
	case TypeInt8:
		a := make([]int8, cnt)
		e = readScalars(p, a, func(b []byte) int8 { return int8(b[0]) })
		out.v = a
	case TypeBool:
		a := make([]bool, cnt)
		bad := false
		e = readScalars(p, a, func(b []byte) bool { bad = bad || b[0] > 1; return b[0] == 1 })
		if e == nil && bad {
			e = errors.New("bool array element is not 0 or 1")
		}
		out.v = a
	case TypeUint16:
		a := make([]uint16, cnt)
		e = readScalars(p, a, binary.LittleEndian.Uint16)
		out.v = a
	case TypeInt16:
		a := make([]int16, cnt)
		e = readScalars(p, a, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
		out.v = a
	case TypeUint32:
		a := make([]uint32, cnt)
		e = readScalars(p, a, binary.LittleEndian.Uint32)
		out.v = a
	case TypeInt32:
		a := make([]int32, cnt)
		e = readScalars(p, a, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
		out.v = a
	case TypeFloat32:
		a := make([]float32, cnt)
		e = readScalars(p, a, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
		out.v = a
	case TypeUint64:
		a := make([]uint64, cnt)
		e = readScalars(p, a, binary.LittleEndian.Uint64)
		out.v = a
	case TypeInt64:
		a := make([]int64, cnt)
		e = readScalars(p, a, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
		out.v = a
	case TypeFloat64:
		a := make([]float64, cnt)
		e = readScalars(p, a, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
		out.v = a
	case TypeString:
		a := make([]string, cnt)
		for i := range a {
			if a[i], e = p.str(); e != nil {
				e = fmt.Errorf("element %d: %w", i, e)
				break
			}
		}
		out.v = a
	case TypeArray:
		a := make([]Value, cnt)
		for i := range a {
			if a[i], e = p.array(depth + 1); e != nil {
				e = fmt.Errorf("element %d: %w", i, e)
				break
			}
		}
		out.v = a
	}
	return out, e
}

// readScalars fills a with fixed-size little-endian elements.
func readScalars[T any](p *parser, a []T, dec func([]byte) T) error {
	var zero T
	size := int(binary.Size(zero))
	if _, isBool := any(zero).(bool); isBool {
		size = 1
	}
	for i := range a {
		b, err := p.read(size)
		if err != nil {
			return err
		}
		a[i] = dec(b)
	}
	return nil
}

func (p *parser) tensorInfo() (TensorInfo, error) {
	var t TensorInfo
	var err error
	if t.Name, err = p.str(); err != nil {
		return t, err
	}
	nd, err := p.u32()
	if err != nil {
		return t, err
	}
	if nd > MaxDims {
		return t, fmt.Errorf("tensor %q has %d dimensions (limit %d)", t.Name, nd, MaxDims)
	}
	t.Dims = make([]uint64, nd)
	n := uint64(1)
	for i := range t.Dims {
		if t.Dims[i], err = p.u64(); err != nil {
			return t, err
		}
		hi, lo := bits.Mul64(n, t.Dims[i])
		if hi != 0 || lo > math.MaxInt64 || t.Dims[i] > math.MaxInt64 {
			return t, fmt.Errorf("tensor %q: element count overflows", t.Name)
		}
		n = lo
	}
	ty, err := p.u32()
	if err != nil {
		return t, err
	}
	t.Type = GGMLType(ty)
	if !t.Type.Known() {
		return t, fmt.Errorf("tensor %q has unknown type %d", t.Name, ty)
	}
	if t.Offset, err = p.u64(); err != nil {
		return t, err
	}
	return t, nil
}
