// Package safetensors reads and writes safetensors files (Hugging Face's tensor container).
//
// Layout: an 8-byte little-endian header length N, N bytes of a JSON object, then
// the tensor data. The JSON maps each tensor name to {"dtype", "shape",
// "data_offsets": [begin, end]} (offsets relative to the start of the data), and
// may hold "__metadata__", a string-to-string map.
//
// The reader treats its input as hostile and never panics:
//   - N is at most MaxHeaderSize and must fit in the file; the header must be a
//     JSON object (first byte '{'); duplicate keys are errors;
//   - dtypes must be known; shapes have at most MaxRank non-negative dimensions
//     whose product and byte size do not overflow;
//   - end - begin must equal the tensor's byte size, and the tensors, sorted by
//     offset, must tile the data section exactly: the first starts at 0, each
//     starts where the previous one ends (so none overlap), and the last ends at
//     the end of the file.
//
// Tensor data is read on demand. Write is atomic (temporary file + rename), sorts
// tensors by name for a deterministic file, and pads the header with spaces to a
// multiple of 8 bytes so that the data is aligned.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"

	"github.com/lora-dev/lora/pkg/quant"
)

// ErrFormat is wrapped by every error about a malformed file.
var ErrFormat = errors.New("not a valid safetensors file")

// Limits.
const (
	MaxHeaderSize = 100 << 20
	MaxRank       = 8
)

// DType is a safetensors element type name, such as "F32".
type DType string

// Element types.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	F8E5M2 DType = "F8_E5M2"
	F8E4M3 DType = "F8_E4M3"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
)

var dtypeSize = map[DType]int{
	BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size is the number of bytes per element (0 for an unknown dtype).
func (d DType) Size() int { return dtypeSize[d] }

// TensorInfo describes one tensor. Begin and End are relative to File.DataOffset.
type TensorInfo struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// NumElements is the product of Shape (1 for a scalar).
func (t *TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file.
type File struct {
	Metadata   map[string]string // __metadata__ (nil when absent)
	Tensors    []TensorInfo      // sorted by offset (the file's data order)
	DataOffset int64             // 8 + header length
	Size       int64

	r      io.ReaderAt
	closer io.Closer
	index  map[string]int
}

// Open parses the header of the safetensors file at path; Close releases it.
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
	return f, nil
}

// Close closes the file if Open opened it.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	c := f.closer
	f.closer = nil
	return c.Close()
}

type rawInfo struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// Read parses a safetensors image of size bytes; tensor data is read from r on demand.
func Read(r io.ReaderAt, size int64) (*File, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%w: %d bytes is too short for the 8-byte header length", ErrFormat, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("%w: reading header length: %v", ErrFormat, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d exceeds the limit of %d", ErrFormat, n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("%w: header length %d runs past end of file (size %d)", ErrFormat, n, size)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("%w: reading header: %v", ErrFormat, err)
	}
	f := &File{r: r, Size: size, DataOffset: 8 + int64(n)}
	if err := f.parseHeader(hdr); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) parseHeader(hdr []byte) error {
	if len(hdr) == 0 || hdr[0] != '{' {
		return fmt.Errorf("%w: header does not start with '{'", ErrFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	seen := map[string]bool{}
	f.index = map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: header JSON: key is not a string", ErrFormat)
		}
		if seen[key] {
			return fmt.Errorf("%w: duplicate header key %q", ErrFormat, key)
		}
		seen[key] = true
		if key == "__metadata__" {
			if err := dec.Decode(&f.Metadata); err != nil {
				return fmt.Errorf("%w: __metadata__ must map strings to strings: %v", ErrFormat, err)
			}
			continue
		}
		var ri rawInfo
		if err := dec.Decode(&ri); err != nil {
			return fmt.Errorf("%w: header JSON for tensor %q: %v", ErrFormat, key, err)
		}
		t, err := checkInfo(key, ri)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrFormat, err)
		}
		f.Tensors = append(f.Tensors, t)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: header JSON: %v", ErrFormat, err)
	}
	// Only trailing whitespace (the writer's padding) may follow the object.
	if off := dec.InputOffset(); len(bytes.TrimRight(hdr[off:], " \t\r\n")) != 0 {
		return fmt.Errorf("%w: data after the header JSON object", ErrFormat)
	}
	sort.SliceStable(f.Tensors, func(i, j int) bool {
		a, b := f.Tensors[i], f.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		return a.End < b.End
	})
	dataLen := f.Size - f.DataOffset
	var pos int64
	for i, t := range f.Tensors {
		if t.Begin != pos {
			if t.Begin < pos {
				return fmt.Errorf("%w: tensor %q (bytes %d..%d) overlaps the previous tensor (ends at %d)", ErrFormat, t.Name, t.Begin, t.End, pos)
			}
			return fmt.Errorf("%w: tensor %q starts at %d, leaving a gap after byte %d", ErrFormat, t.Name, t.Begin, pos)
		}
		if t.End > dataLen {
			return fmt.Errorf("%w: tensor %q runs past end of file (needs bytes %d..%d of a %d-byte data section)", ErrFormat, t.Name, t.Begin, t.End, dataLen)
		}
		pos = t.End
		f.index[t.Name] = i
	}
	if pos != dataLen {
		return fmt.Errorf("%w: tensors cover %d bytes but the data section has %d", ErrFormat, pos, dataLen)
	}
	return nil
}

func checkInfo(name string, ri rawInfo) (TensorInfo, error) {
	t := TensorInfo{Name: name, DType: ri.DType}
	es := ri.DType.Size()
	if es == 0 {
		return t, fmt.Errorf("tensor %q has unknown dtype %q", name, ri.DType)
	}
	if ri.Shape == nil {
		return t, fmt.Errorf("tensor %q has no shape", name)
	}
	if len(ri.Shape) > MaxRank {
		return t, fmt.Errorf("tensor %q has rank %d (limit %d)", name, len(ri.Shape), MaxRank)
	}
	n := uint64(es)
	t.Shape = make([]int, len(ri.Shape))
	for i, d := range ri.Shape {
		if d < 0 {
			return t, fmt.Errorf("tensor %q has a negative dimension %d", name, d)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return t, fmt.Errorf("tensor %q: size overflows", name)
		}
		n = lo
		t.Shape[i] = int(d)
	}
	if len(ri.DataOffsets) != 2 {
		return t, fmt.Errorf("tensor %q: data_offsets must be [begin, end]", name)
	}
	t.Begin, t.End = ri.DataOffsets[0], ri.DataOffsets[1]
	if t.Begin < 0 || t.End < t.Begin {
		return t, fmt.Errorf("tensor %q: bad data_offsets [%d, %d]", name, t.Begin, t.End)
	}
	if uint64(t.End-t.Begin) != n {
		return t, fmt.Errorf("tensor %q: %s %v needs %d bytes but data_offsets [%d, %d] hold %d", name, t.DType, t.Shape, n, t.Begin, t.End, t.End-t.Begin)
	}
	return t, nil
}

// Tensor returns the named tensor's descriptor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData reads the raw little-endian bytes of t.
func (f *File) TensorData(t *TensorInfo) ([]byte, error) {
	if t.Begin < 0 || t.End < t.Begin || t.End > f.Size-f.DataOffset {
		return nil, fmt.Errorf("tensor %q runs past end of file", t.Name)
	}
	buf := make([]byte, t.End-t.Begin)
	if _, err := f.r.ReadAt(buf, f.DataOffset+t.Begin); err != nil {
		return nil, fmt.Errorf("reading tensor %q: %w", t.Name, err)
	}
	return buf, nil
}

// TensorFloat32 reads t as float32: F32, F16, BF16 and F64 are converted, and so
// are integer and BOOL tensors (by value).
func (f *File) TensorFloat32(t *TensorInfo) ([]float32, error) {
	raw, err := f.TensorData(t)
	if err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	if err := ToFloat32(t.DType, out, raw); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	return out, nil
}

// ToFloat32 converts raw little-endian elements of dtype dt into dst.
func ToFloat32(dt DType, dst []float32, raw []byte) error {
	es := dt.Size()
	if es == 0 || len(raw) != len(dst)*es {
		return fmt.Errorf("cannot convert %d bytes of %s to %d float32 values", len(raw), dt, len(dst))
	}
	le := binary.LittleEndian
	switch dt {
	case F32:
		return quant.DequantizeF32(dst, raw)
	case F16:
		return quant.DequantizeF16(dst, raw)
	case BF16:
		return quant.DequantizeBF16(dst, raw)
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	case U8, BOOL:
		for i := range dst {
			dst[i] = float32(raw[i])
		}
	case I8:
		for i := range dst {
			dst[i] = float32(int8(raw[i]))
		}
	case I16:
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(raw[2*i:])))
		}
	case U16:
		for i := range dst {
			dst[i] = float32(le.Uint16(raw[2*i:]))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(raw[4*i:])))
		}
	case U32:
		for i := range dst {
			dst[i] = float32(le.Uint32(raw[4*i:]))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(raw[8*i:])))
		}
	case U64:
		for i := range dst {
			dst[i] = float32(le.Uint64(raw[8*i:]))
		}
	default:
		return fmt.Errorf("converting %s to float32 is not supported", dt)
	}
	return nil
}
