//go:build cgo

// Package vulkan runs lora's tensor operations as SPIR-V compute shaders through Vulkan.
package vulkan

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"unsafe"

	"github.com/lora-dev/lora/pkg/backend"
	"github.com/lora-dev/lora/pkg/backend/vulkan/vk"
	"github.com/lora-dev/lora/shaders"
)

// serialMode values.
const (
	serialAuto = iota
	serialOn
	serialOff
)

// stageLimit bounds the host staging memory one batch of uploads may hold.
const stageLimit = 64 << 20

// Backend implements backend.Backend and backend.Profiler on one Vulkan device.
type Backend struct {
	dev     *vk.Device
	info    vk.DeviceInfo
	maxBind uint64
	align   uint64
	maxWG   uint32
	gemmCfg gemmConfig
	// serialMode overrides the choice between one invocation per output row
	// (matrix-vector and attention kernels on CPU devices) and a workgroup
	// reduction per row (elsewhere); tests cover both.
	serialMode int

	mu      sync.Mutex
	eager   *stream   // ops recorded for immediate submission
	rec     *stream   // non-nil while Record's fn runs
	flight  []*stream // submitted, not yet waited for
	spare   []*vk.Cmd
	staged  []vk.Block // staging blocks of the eager stream
	stBytes uint64
	dummy   vk.Block
	keep    []vk.Block // scratch buffers, alive until Close
	scratch map[string]vk.Block
	ropeTab map[ropeKey]*ropeTable
	prof    map[string]*backend.KernelTime
	closed  bool
	splits  int // launches split into pieces (for tests)
}

// stream is a command buffer being recorded plus the buffer ranges its
// dispatches touched since the last barrier.
type stream struct {
	cmd    *vk.Cmd
	writes []vk.View
	reads  []vk.View
	prog   bool
}

var _ backend.Backend = (*Backend)(nil)
var _ backend.Profiler = (*Backend)(nil)

// New opens a Vulkan device.
func New(opts Options) (*Backend, error) {
	devs, err := vk.Devices()
	if err != nil {
		return nil, err
	}
	d, err := vk.Choose(devs, opts.Index)
	if err != nil {
		return nil, err
	}
	dev, err := vk.Open(d)
	if err != nil {
		return nil, err
	}
	b := &Backend{dev: dev, info: d, scratch: map[string]vk.Block{}, ropeTab: map[ropeKey]*ropeTable{}, prof: map[string]*backend.KernelTime{}}
	b.maxBind = d.MaxStorageBufferRange &^ 3
	if opts.MaxBindingBytes > 0 && opts.MaxBindingBytes < b.maxBind {
		b.maxBind = opts.MaxBindingBytes &^ 3
	}
	b.maxBind = min(b.maxBind, 1<<31)
	b.align = max(d.MinStorageAlign, 4)
	b.maxWG = d.MaxWorkgroupInvocation
	b.gemmCfg = defaultGemm(d)
	dev.Memory().BeforeRelease = func() { _ = b.syncLocked() }
	if b.dummy, err = dev.Memory().Alloc(256, false); err != nil {
		dev.Close()
		return nil, err
	}
	return b, nil
}

// Info describes the backend and its device.
func (b *Backend) Info() backend.Info {
	mem := b.info.MemoryBytes
	if b.info.MemoryFreeBytes > 0 {
		mem = b.info.MemoryFreeBytes
	}
	return backend.Info{Name: "vulkan", Device: b.info.Name, Kind: b.info.Type, MemoryBytes: mem}
}

// Device returns the description of the device in use.
func (b *Backend) Device() DeviceInfo { return b.info }

// Close waits for all work and releases the device.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	err := b.syncLocked()
	for _, c := range b.spare {
		c.Release()
	}
	b.spare = nil
	b.closed = true
	b.dev.Close()
	return err
}

// tensor is a device buffer holding one tensor.
type tensor struct {
	b      *Backend
	dt     backend.DType
	shape  []int
	n      int
	rows   int
	cols   int
	bytes  uint64
	blk    vk.Block
	freed  bool
	shadow []int32 // host copy of small I32 tensors written by Write, for argument checks
}

func (t *tensor) DType() backend.DType { return t.dt }
func (t *tensor) Shape() []int         { return append([]int(nil), t.shape...) }
func (t *tensor) Len() int             { return t.n }

func (t *tensor) view() vk.View {
	return vk.View{Buffer: t.blk.Buffer, Offset: t.blk.Offset, Size: (t.bytes + 3) &^ 3}
}

const maxElements = 1 << 40

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

// newTensor allocates a tensor; rawLen >= 0 is the byte count FromBytes was
// given, checked before any device memory is taken.
func (b *Backend) newTensor(op string, dt backend.DType, shape []int, rawLen int) (*tensor, error) {
	if b.closed {
		return nil, fmt.Errorf("%s: backend is closed", op)
	}
	n, err := checkShape(op, shape)
	if err != nil {
		return nil, err
	}
	cols := shape[len(shape)-1]
	t := &tensor{b: b, dt: dt, shape: append([]int(nil), shape...), n: n, rows: n / cols, cols: cols}
	if bs := dt.BlockSize(); cols%bs != 0 {
		return nil, fmt.Errorf("%s: %v tensor %v: last dimension %d is not a multiple of the block size %d: keep such tensors in f32 or f16", op, dt, shape, cols, bs)
	}
	t.bytes = uint64(t.rows) * uint64(dt.RowBytes(cols))
	if rawLen >= 0 && uint64(rawLen) != t.bytes {
		return nil, fmt.Errorf("%s: %v tensor %v needs %d bytes, got %d", op, dt, shape, t.bytes, rawLen)
	}
	if t.blk, err = b.dev.Memory().Alloc(t.bytes, false); err != nil {
		return nil, fmt.Errorf("%s %v tensor %v: %w", op, dt, shape, err)
	}
	return t, nil
}

// Alloc returns a zero-filled F32 or I32 tensor.
func (b *Backend) Alloc(dt backend.DType, shape ...int) (backend.Tensor, error) {
	if dt != backend.F32 && dt != backend.I32 {
		return nil, fmt.Errorf("alloc: dtype %v: only f32 and i32 tensors can be allocated; upload weights with FromBytes", dt)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.newTensor("alloc", dt, shape, -1)
	if err != nil {
		return nil, err
	}
	if err := b.fillLocked(t, 0, true); err != nil {
		b.dev.Memory().Free(t.blk)
		return nil, err
	}
	return t, nil
}

// FromBytes uploads a tensor stored in dt's layout.
func (b *Backend) FromBytes(dt backend.DType, shape []int, raw []byte) (backend.Tensor, error) {
	if dt.BlockBytes() == 0 {
		return nil, fmt.Errorf("from bytes: unknown dtype %v", dt)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.newTensor("from bytes", dt, shape, len(raw))
	if err != nil {
		return nil, err
	}
	if err := b.upload(t.view(), raw); err != nil {
		b.dev.Memory().Free(t.blk)
		return nil, err
	}
	return t, nil
}

func (b *Backend) get(op, name string, x backend.Tensor) (*tensor, error) {
	if x == nil {
		return nil, fmt.Errorf("%s: %s is nil", op, name)
	}
	t, ok := x.(*tensor)
	if !ok || t.b != b {
		return nil, fmt.Errorf("%s: %s is not a tensor of this vulkan backend", op, name)
	}
	if t.freed {
		return nil, fmt.Errorf("%s: %s: %w", op, name, ErrFreed)
	}
	return t, nil
}

func (b *Backend) getDT(op, name string, x backend.Tensor, dt backend.DType) (*tensor, error) {
	t, err := b.get(op, name, x)
	if err != nil {
		return nil, err
	}
	if t.dt != dt {
		return nil, fmt.Errorf("%s: %s %v has dtype %v, want %v", op, name, t.shape, t.dt, dt)
	}
	return t, nil
}

func (b *Backend) getF32(op, name string, x backend.Tensor) (*tensor, error) {
	return b.getDT(op, name, x, backend.F32)
}

func (b *Backend) getI32(op, name string, x backend.Tensor) (*tensor, error) {
	return b.getDT(op, name, x, backend.I32)
}

func hostBytes(op string, t *tensor, data any) ([]byte, error) {
	switch d := data.(type) {
	case []float32:
		if t.dt != backend.F32 {
			return nil, fmt.Errorf("%s: []float32 with %v tensor %v", op, t.dt, t.shape)
		}
		if len(d) != t.n {
			return nil, fmt.Errorf("%s: %d values for tensor %v of %d elements", op, len(d), t.shape, t.n)
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d)), nil
	case []int32:
		if t.dt != backend.I32 {
			return nil, fmt.Errorf("%s: []int32 with %v tensor %v", op, t.dt, t.shape)
		}
		if len(d) != t.n {
			return nil, fmt.Errorf("%s: %d values for tensor %v of %d elements", op, len(d), t.shape, t.n)
		}
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d)), nil
	}
	return nil, fmt.Errorf("%s: unsupported host type %T: use []float32 or []int32", op, data)
}

// Write copies host data into t (ordered after every enqueued operation).
func (b *Backend) Write(x backend.Tensor, data any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.get("write", "tensor", x)
	if err != nil {
		return err
	}
	if b.rec != nil {
		return errors.New("write: called while recording a Program: write inputs before Program.Run, outside Record")
	}
	raw, err := hostBytes("write", t, data)
	if err != nil {
		return err
	}
	if d, ok := data.([]int32); ok && len(d) <= 1<<16 {
		t.shadow = append(t.shadow[:0], d...)
	} else {
		t.shadow = nil
	}
	return b.upload(t.view(), raw)
}

// upload stages raw and records copies into dst on the eager stream, in
// pieces so that staging memory stays bounded.
func (b *Backend) upload(dst vk.View, raw []byte) error {
	const piece = stageLimit / 2
	for off := 0; off < len(raw); off += piece {
		part := raw[off:min(len(raw), off+piece)]
		if b.stBytes+uint64(len(part)) > stageLimit {
			if err := b.syncLocked(); err != nil {
				return err
			}
		}
		blk, err := b.dev.Memory().Alloc(uint64(len(part)), true)
		if err != nil {
			return fmt.Errorf("upload: staging %s: %w", vk.MiB(uint64(len(part))), err)
		}
		b.staged = append(b.staged, blk)
		b.stBytes += uint64(len(part))
		copy(unsafe.Slice((*byte)(blk.Host), len(part)), part)
		s, err := b.eagerStream()
		if err != nil {
			b.dev.Memory().Free(blk)
			return err
		}
		d := vk.View{Buffer: dst.Buffer, Offset: dst.Offset + uint64(off), Size: uint64(len(part))}
		s.order([]vk.View{blk.View}, []vk.View{d})
		s.cmd.Copy(d, blk.View, uint64(len(part)))
	}
	return nil
}

// Read copies t to host memory after all enqueued work.
func (b *Backend) Read(x backend.Tensor, dst any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, err := b.get("read", "tensor", x)
	if err != nil {
		return err
	}
	if b.rec != nil {
		return errors.New("read: called while recording a Program: read results after Program.Run")
	}
	out, err := hostBytes("read", t, dst)
	if err != nil {
		return err
	}
	const piece = stageLimit / 2
	for off := 0; off < len(out); off += piece {
		n := min(len(out)-off, piece)
		blk, err := b.dev.Memory().Alloc(uint64(n), true)
		if err != nil {
			return fmt.Errorf("read: staging %s: %w", vk.MiB(uint64(n)), err)
		}
		s, err := b.eagerStream()
		if err != nil {
			b.dev.Memory().Free(blk)
			return err
		}
		src := vk.View{Buffer: t.blk.Buffer, Offset: t.blk.Offset + uint64(off), Size: uint64(n)}
		s.order([]vk.View{src}, []vk.View{blk.View})
		s.cmd.Copy(blk.View, src, uint64(n))
		err = b.syncLocked()
		if err == nil {
			copy(out[off:off+n], unsafe.Slice((*byte)(blk.Host), n))
		}
		b.dev.Memory().Free(blk)
		if err != nil {
			return err
		}
	}
	return nil
}

// Free releases t.
func (b *Backend) Free(x backend.Tensor) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := x.(*tensor); ok && t.b == b && !t.freed && !b.closed {
		t.freed = true
		b.dev.Memory().Free(t.blk)
		t.shadow = nil
	}
}

// Sync submits the enqueued work and waits for it.
func (b *Backend) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.syncLocked()
}

func (b *Backend) syncLocked() error {
	var first error
	if b.eager != nil {
		s := b.eager
		b.eager = nil
		if err := s.cmd.End(); err != nil {
			first = err
		} else if err := s.cmd.Submit(); err != nil {
			first = err
		} else {
			b.flight = append(b.flight, s)
		}
	}
	for _, s := range b.flight {
		if err := s.cmd.Wait(); err != nil && first == nil {
			first = err
		}
		b.collect(s.cmd)
		if !s.prog {
			b.spare = append(b.spare, s.cmd)
		}
	}
	b.flight = b.flight[:0]
	for _, blk := range b.staged {
		b.dev.Memory().Free(blk)
	}
	b.staged, b.stBytes = b.staged[:0], 0
	return first
}

func (b *Backend) collect(c *vk.Cmd) {
	times := c.Times()
	for i, sec := range times {
		if i >= len(c.Labels) {
			break
		}
		k := b.prof[c.Labels[i]]
		if k == nil {
			k = &backend.KernelTime{Name: c.Labels[i]}
			b.prof[c.Labels[i]] = k
		}
		k.Calls++
		k.Seconds += sec
	}
}

// Profile returns per-kernel GPU times accumulated since the last reset,
// slowest first (from timestamp queries around every dispatch).
func (b *Backend) Profile(reset bool) []backend.KernelTime {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]backend.KernelTime, 0, len(b.prof))
	for _, k := range b.prof {
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seconds != out[j].Seconds {
			return out[i].Seconds > out[j].Seconds
		}
		return out[i].Name < out[j].Name
	})
	if reset {
		b.prof = map[string]*backend.KernelTime{}
	}
	return out
}

// eagerStream returns the stream for immediate work, starting one if needed.
func (b *Backend) eagerStream() (*stream, error) {
	if b.eager != nil {
		return b.eager, nil
	}
	var c *vk.Cmd
	if n := len(b.spare); n > 0 {
		c, b.spare = b.spare[n-1], b.spare[:n-1]
	} else {
		var err error
		if c, err = b.dev.NewCmd(4096); err != nil {
			return nil, fmt.Errorf("vulkan: command buffer: %w", err)
		}
	}
	if err := c.Begin(false); err != nil {
		c.Release()
		return nil, fmt.Errorf("vulkan: command buffer: %w", err)
	}
	b.eager = &stream{cmd: c}
	return b.eager, nil
}

// target is the stream operations are recorded into: the Program being
// recorded, else the eager stream.
func (b *Backend) target() (*stream, error) {
	if b.rec != nil {
		return b.rec, nil
	}
	return b.eagerStream()
}

func overlaps(a, b vk.View) bool {
	return a.Buffer == b.Buffer && a.Offset < b.Offset+b.Size && b.Offset < a.Offset+a.Size
}

// order inserts a barrier when this work depends on earlier work in the
// stream (read after write, write after read or write), then notes its ranges.
func (s *stream) order(reads, writes []vk.View) {
	need := false
	for _, w := range writes {
		for _, x := range s.writes {
			need = need || overlaps(w, x)
		}
		for _, x := range s.reads {
			need = need || overlaps(w, x)
		}
	}
	for _, r := range reads {
		for _, x := range s.writes {
			need = need || overlaps(r, x)
		}
	}
	if need {
		s.cmd.Barrier()
		s.writes, s.reads = s.writes[:0], s.reads[:0]
	}
	s.writes = append(s.writes, writes...)
	s.reads = append(s.reads, reads...)
}

// Record captures the operations fn enqueues into a reusable command buffer.
func (b *Backend) Record(fn func() error) (backend.Program, error) {
	b.mu.Lock()
	if b.rec != nil {
		b.mu.Unlock()
		return nil, errors.New("record: already recording (Record calls do not nest)")
	}
	if err := b.syncLocked(); err != nil {
		b.mu.Unlock()
		return nil, err
	}
	c, err := b.dev.NewCmd(4096)
	if err != nil {
		b.mu.Unlock()
		return nil, err
	}
	if err := c.Begin(true); err != nil {
		c.Release()
		b.mu.Unlock()
		return nil, err
	}
	s := &stream{cmd: c, prog: true}
	b.rec = s
	b.mu.Unlock()

	ferr := fn()

	b.mu.Lock()
	defer b.mu.Unlock()
	b.rec = nil
	if ferr == nil {
		ferr = c.End()
	}
	if ferr != nil {
		c.Release()
		return nil, fmt.Errorf("record: %w", ferr)
	}
	return &program{b: b, s: s}, nil
}

type program struct {
	b *Backend
	s *stream
}

// Run submits the recorded command buffer after any pending eager work.
func (p *program) Run() error {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.s == nil {
		return errors.New("program: run after Release")
	}
	if b.closed {
		return errors.New("program: backend is closed")
	}
	if err := b.syncLocked(); err != nil {
		return err
	}
	if err := p.s.cmd.Submit(); err != nil {
		return err
	}
	b.flight = append(b.flight, p.s)
	return nil
}

// Release frees the command buffer.
func (p *program) Release() {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.s == nil || b.closed {
		p.s = nil
		return
	}
	for i, s := range b.flight {
		if s == p.s {
			_ = s.cmd.Wait()
			b.collect(s.cmd)
			b.flight = append(b.flight[:i], b.flight[i+1:]...)
			break
		}
	}
	p.s.cmd.Release()
	p.s = nil
}

// scratchBuf returns an internal buffer of at least n bytes for purpose key.
// Scratch buffers are never freed before Close (recorded Programs keep using them).
func (b *Backend) scratchBuf(key string, n uint64) (vk.View, error) {
	if blk, ok := b.scratch[key]; ok && blk.Size >= n {
		return vk.View{Buffer: blk.Buffer, Offset: blk.Offset, Size: (n + 3) &^ 3}, nil
	}
	blk, err := b.dev.Memory().Alloc(n, false)
	if err != nil {
		return vk.View{}, fmt.Errorf("scratch for %s: %w", key, err)
	}
	if old, ok := b.scratch[key]; ok {
		b.keep = append(b.keep, old)
	}
	b.scratch[key] = blk
	return vk.View{Buffer: blk.Buffer, Offset: blk.Offset, Size: (n + 3) &^ 3}, nil
}

// pipeline returns the compute pipeline of an embedded shader variant.
func (b *Backend) pipeline(name string, spec []uint32) (*vk.Pipeline, error) {
	code, err := shaders.Get(name)
	if err != nil {
		return nil, err
	}
	return b.dev.Pipeline(name, code, spec)
}

// binding is one buffer bound to a kernel.
type binding struct {
	v     vk.View
	write bool
	name  string // for error messages
	// unit is the bytes per split unit (element or row) for bindings that
	// split follows; 0 binds the view whole in every piece.
	unit uint64
}

func in(name string, v vk.View) binding  { return binding{v: v, name: name} }
func out(name string, v vk.View) binding { return binding{v: v, write: true, name: name} }

// per marks a binding as split into units of unit bytes.
func (bd binding) per(unit uint64) binding { bd.unit = unit; return bd }

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// split runs launch over [0, units) in pieces small enough that every binding
// with a unit fits the device's storage-binding limit: each piece binds the
// units [u0, u0+m) of those bindings (at aligned offsets; pieces are a
// multiple of period units). Without need it launches once over everything.
func (b *Backend) split(op string, units, period int, binds []binding, launch func(bs []binding, u0, m int) error) error {
	need := false
	step, maxUnit, most := uint64(max(period, 1)), uint64(0), uint64(1)<<62
	for _, bd := range binds {
		if bd.unit == 0 {
			continue
		}
		need = need || bd.v.Size > b.maxBind
		maxUnit = max(maxUnit, bd.unit)
		most = min(most, b.maxBind/bd.unit)
		s := b.align / gcd(bd.unit, b.align)
		step = step / gcd(step, s) * s
	}
	if !need {
		return launch(binds, 0, units)
	}
	chunk := most / step * step
	if chunk == 0 {
		return fmt.Errorf("%s: %d units of %d bytes do not fit the device's largest storage binding (%s on %s): lower micro_batch_size or cutoff_len",
			op, step, maxUnit, vk.MiB(b.maxBind), b.info.Name)
	}
	b.splits++
	bs := make([]binding, len(binds))
	for u0 := 0; u0 < units; u0 += int(chunk) {
		m := min(int(chunk), units-u0)
		for i, bd := range binds {
			bs[i] = bd
			if bd.unit != 0 {
				bs[i].v.Offset += uint64(u0) * bd.unit
				bs[i].v.Size = (uint64(m)*bd.unit + 3) &^ 3
			}
		}
		if err := launch(bs, u0, m); err != nil {
			return err
		}
	}
	return nil
}

// dispatch records kernel name (specialization constants spec, spec[0] being
// the workgroup size) over groups workgroups laid out in a 2-D grid.
func (b *Backend) dispatch(op, name string, spec []uint32, binds []binding, push []uint32, groups uint64) error {
	gx, gy, err := b.grid(op, groups)
	if err != nil {
		return err
	}
	return b.dispatch2(op, name, spec, binds, push, gx, gy)
}

func (b *Backend) grid(op string, groups uint64) (uint32, uint32, error) {
	if groups == 0 {
		return 0, 0, nil
	}
	maxX, maxY := uint64(b.info.MaxWorkgroupCount[0]), uint64(b.info.MaxWorkgroupCount[1])
	gx := min(groups, maxX)
	gy := (groups + gx - 1) / gx
	if gy > maxY {
		return 0, 0, fmt.Errorf("%s: %d workgroups exceed the device's grid (%d x %d)", op, groups, maxX, maxY)
	}
	return uint32(gx), uint32(gy), nil
}

func (b *Backend) dispatch2(op, name string, spec []uint32, binds []binding, push []uint32, gx, gy uint32) error {
	if gx == 0 || gy == 0 {
		return nil
	}
	if len(binds) > vk.MaxBindings || 4*len(push) > vk.PushBytes {
		return fmt.Errorf("%s: internal: %d bindings, %d push bytes", op, len(binds), 4*len(push))
	}
	p, err := b.pipeline(name, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var views [vk.MaxBindings]vk.View
	var reads, writes []vk.View
	for i := range views {
		views[i] = b.dummy.View
	}
	for i, bd := range binds {
		if bd.v.Size > b.maxBind {
			return fmt.Errorf("%s: %s is %s, above the device's largest storage binding (%s on %s): lower micro_batch_size or cutoff_len, or use a smaller model",
				op, bd.name, vk.MiB(bd.v.Size), vk.MiB(b.maxBind), b.info.Name)
		}
		views[i] = bd.v
		if bd.write {
			writes = append(writes, bd.v)
		} else {
			reads = append(reads, bd.v)
		}
	}
	set, err := b.dev.Set(views)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s, err := b.target()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	s.order(reads, writes)
	s.cmd.Dispatch(p, set, push, gx, gy, 1)
	return nil
}

func ceilDiv(a, b uint64) uint64 { return (a + b - 1) / b }
