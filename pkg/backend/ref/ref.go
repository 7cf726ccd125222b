// Package ref is the plain-Go float32 reference backend: the test oracle and the CPU fallback.
//
// Every operation runs eagerly on the calling goroutine's request, multithreaded
// over independent output rows (or row/column tiles) with a worker pool sized
// GOMAXPROCS at the time of the call. No reduction is ever split across
// goroutines: each output element is produced by exactly one goroutine, which
// walks its reduction in a fixed order. Results are therefore bit-identical
// whatever GOMAXPROCS is.
//
// Accumulation: dot products, norms, softmax sums and every other reduction
// accumulate in float64 in a fixed order and are rounded to float32 once, when
// stored. Because the product of two float32 values is exact in float64, the
// matmul sums (MatMul, MatMulDX, MatMulDW) do not depend on whether the compiler fuses
// multiply-adds either (other ops may differ in the last bit between
// architectures that fuse, such as arm64, and amd64; never between runs).
// Elementwise transcendentals (exp, sigmoid, cos/sin, sqrt) are evaluated in
// float64 and rounded once. This makes ref a slightly more accurate oracle than
// a float32 GPU kernel; tolerances in pkg/backend/backendtest account for that.
//
// Quantized weights (F16, Q8_0, Q4_0, NF4) stay in their storage layout and are
// dequantized per row (or per block-aligned row segment) with pkg/quant's
// decoders inside Embed, MatMul and MatMulDX, into small per-worker scratch
// buffers; no full f32 copy is kept. The tests check the decoded values
// against an independent value-by-value decoder of the byte layout.
package ref

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/lora-dev/lora/pkg/backend"
)

// maxElements caps the element count of one tensor (2^40) so that size
// arithmetic can never overflow.
const maxElements = 1 << 40

// ErrFreed is returned when a tensor is used after Free.
var ErrFreed = errors.New("tensor used after Free")

// Backend is the reference backend. The zero value is not usable; call New.
type Backend struct {
	closed bool
}

// New returns a reference backend.
func New() backend.Backend { return &Backend{} }

// tensor is ref's tensor: F32 data in f, I32 data in i, any other storage type in raw.
type tensor struct {
	owner *Backend
	dt    backend.DType
	shape []int
	n     int
	f     []float32
	i     []int32
	raw   []byte
	// rows and cols view the tensor as a matrix over its last dimension.
	rows, cols int
	freed      bool
}

func (t *tensor) DType() backend.DType { return t.dt }
func (t *tensor) Shape() []int         { return append([]int(nil), t.shape...) }
func (t *tensor) Len() int             { return t.n }

// Info describes the host: memory is the host RAM (MemTotal on Linux, 0 when unknown).
func (b *Backend) Info() backend.Info {
	return backend.Info{
		Name:        "cpu",
		Device:      fmt.Sprintf("plain Go reference (%s/%s, %d threads)", runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0)),
		Kind:        "cpu",
		MemoryBytes: hostMemory(),
	}
}

// hostMemory reads MemTotal from /proc/meminfo; 0 when unavailable.
func hostMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil || kb > math.MaxUint64/1024 {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// Close marks the backend closed; later allocations fail.
func (b *Backend) Close() error {
	b.closed = true
	return nil
}

func checkShape(op string, shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, fmt.Errorf("%s: empty shape: give at least one dimension", op)
	}
	n := 1
	for _, d := range shape {
		if d <= 0 {
			return 0, fmt.Errorf("%s: shape %v: every dimension must be positive", op, shape)
		}
		if n > maxElements/d {
			return 0, fmt.Errorf("%s: shape %v: more than 2^40 elements", op, shape)
		}
		n *= d
	}
	return n, nil
}

func (b *Backend) newTensor(dt backend.DType, shape []int, n int) *tensor {
	cols := shape[len(shape)-1]
	return &tensor{owner: b, dt: dt, shape: append([]int(nil), shape...), n: n, rows: n / cols, cols: cols}
}

// Alloc returns a zero-filled F32 or I32 tensor.
func (b *Backend) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	if b.closed {
		return nil, errors.New("alloc: backend is closed")
	}
	n, err := checkShape("alloc", shape)
	if err != nil {
		return nil, err
	}
	t := b.newTensor(dt, shape, n)
	switch dt {
	case backend.F32:
		t.f = make([]float32, n)
	case backend.I32:
		t.i = make([]int32, n)
	default:
		return nil, fmt.Errorf("alloc: dtype %v: only f32 and i32 tensors can be allocated; upload weights with FromBytes", dt)
	}
	return t, nil
}

// FromBytes uploads a tensor in dt's storage layout (little endian, GGUF blocks).
func (b *Backend) FromBytes(dt backend.DType, shape []int, raw []byte) (backend.Tensor, error) {
	if b.closed {
		return nil, errors.New("from bytes: backend is closed")
	}
	n, err := checkShape("from bytes", shape)
	if err != nil {
		return nil, err
	}
	if dt.BlockBytes() == 0 {
		return nil, fmt.Errorf("from bytes: unknown dtype %v", dt)
	}
	t := b.newTensor(dt, shape, n)
	if bs := dt.BlockSize(); t.cols%bs != 0 {
		return nil, fmt.Errorf("from bytes: %v tensor %v: last dimension %d is not a multiple of the block size %d: keep such tensors in f32 or f16", dt, shape, t.cols, bs)
	}
	want := uint64(t.rows) * uint64(dt.RowBytes(t.cols))
	if uint64(len(raw)) != want {
		return nil, fmt.Errorf("from bytes: %v tensor %v needs %d bytes, got %d", dt, shape, want, len(raw))
	}
	switch dt {
	case backend.F32:
		t.f = make([]float32, n)
		for i := range t.f {
			t.f[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case backend.I32:
		t.i = make([]int32, n)
		for i := range t.i {
			t.i[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	default:
		t.raw = append([]byte(nil), raw...)
	}
	return t, nil
}

// get checks that x is a live tensor of this backend.
func (b *Backend) get(op, name string, x backend.Tensor) (*tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("%s: %s is nil", op, name)
	}
	t, ok := x.(*tensor)
	if !ok || t.owner != b {
		return nil, fmt.Errorf("%s: %s is not a tensor of this cpu backend", op, name)
	}
	if t.freed {
		return nil, fmt.Errorf("%s: %s: %w", op, name, ErrFreed)
	}
	return t, nil
}

// getF32 is get plus a dtype check for F32 operands.
func (b *Backend) getF32(op, name string, x backend.Tensor) (*tensor, error) {
	t, err := b.get(op, name, x)
	if err != nil {
		return nil, err
	}
	if t.dt != backend.F32 {
		return nil, fmt.Errorf("%s: %s %v has dtype %v, want f32", op, name, t.shape, t.dt)
	}
	return t, nil
}

func (b *Backend) getI32(op, name string, x backend.Tensor) (*tensor, error) {
	t, err := b.get(op, name, x)
	if err != nil {
		return nil, err
	}
	if t.dt != backend.I32 {
		return nil, fmt.Errorf("%s: %s %v has dtype %v, want i32", op, name, t.shape, t.dt)
	}
	return t, nil
}

// Write copies host data ([]float32 or []int32) into t.
func (b *Backend) Write(x backend.Tensor, data any) error {
	t, err := b.get("write", "tensor", x)
	if err != nil {
		return err
	}
	switch d := data.(type) {
	case []float32:
		if t.dt != backend.F32 {
			return fmt.Errorf("write: []float32 into %v tensor %v", t.dt, t.shape)
		}
		if len(d) != t.n {
			return fmt.Errorf("write: %d values into tensor %v of %d elements", len(d), t.shape, t.n)
		}
		copy(t.f, d)
	case []int32:
		if t.dt != backend.I32 {
			return fmt.Errorf("write: []int32 into %v tensor %v", t.dt, t.shape)
		}
		if len(d) != t.n {
			return fmt.Errorf("write: %d values into tensor %v of %d elements", len(d), t.shape, t.n)
		}
		copy(t.i, d)
	default:
		return fmt.Errorf("write: unsupported host type %T: use []float32 or []int32", data)
	}
	return nil
}

// Read copies t into dst ([]float32 or []int32).
func (b *Backend) Read(x backend.Tensor, dst any) error {
	t, err := b.get("read", "tensor", x)
	if err != nil {
		return err
	}
	switch d := dst.(type) {
	case []float32:
		if t.dt != backend.F32 {
			return fmt.Errorf("read: %v tensor %v into []float32", t.dt, t.shape)
		}
		if len(d) != t.n {
			return fmt.Errorf("read: tensor %v of %d elements into %d values", t.shape, t.n, len(d))
		}
		copy(d, t.f)
	case []int32:
		if t.dt != backend.I32 {
			return fmt.Errorf("read: %v tensor %v into []int32", t.dt, t.shape)
		}
		if len(d) != t.n {
			return fmt.Errorf("read: tensor %v of %d elements into %d values", t.shape, t.n, len(d))
		}
		copy(d, t.i)
	default:
		return fmt.Errorf("read: unsupported host type %T: use []float32 or []int32", dst)
	}
	return nil
}

// Free releases t; using it afterwards returns an error wrapping ErrFreed.
func (b *Backend) Free(x backend.Tensor) {
	if t, ok := x.(*tensor); ok && t.owner == b {
		t.freed = true
		t.f, t.i, t.raw = nil, nil, nil
	}
}

// Sync returns nil: every operation has already run when it returns.
func (b *Backend) Sync() error { return nil }

// program replays fn.
type program struct {
	fn func() error
}

// Record returns a Program whose Run calls fn again. fn is not run by Record:
// ref has no command buffer, so recording is just remembering the function.
func (b *Backend) Record(fn func() error) (backend.Program, error) {
	if fn == nil {
		return nil, errors.New("record: fn is nil")
	}
	return &program{fn: fn}, nil
}

func (p *program) Run() error {
	if p.fn == nil {
		return errors.New("program: run after Release")
	}
	return p.fn()
}

func (p *program) Release() { p.fn = nil }
