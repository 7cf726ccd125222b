//go:build cgo

package vk

import (
	"fmt"
	"sort"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// ChunkBytes is the size of the device-memory blocks small buffers are carved
// from; a larger buffer gets a block of its own.
const ChunkBytes = 64 << 20

// allocAlign is the alignment of every sub-allocation: at least the device's
// minStorageBufferOffsetAlignment, and 256 bytes, which no known device exceeds.
const allocAlign = 256

// Block is a sub-allocation: a byte range of one buffer.
type Block struct {
	View
	chunk *chunk
	// Host is the mapped address of the block for host-visible blocks, else nil.
	Host unsafe.Pointer
}

type span struct{ off, size uint64 }

type chunk struct {
	buf       vk.Buffer
	mem       vk.DeviceMemory
	size      uint64
	free      []span // sorted by offset, coalesced
	host      bool
	dedicated bool
	ptr       unsafe.Pointer
}

// Memory sub-allocates buffers from device memory in bounded chunks.
type Memory struct {
	d      *Device
	chunks []*chunk
	// Used is the number of device-local bytes held in chunks.
	Used uint64
	// BeforeRelease, when set, is called before a chunk is destroyed so that
	// in-flight work that may use it can finish.
	BeforeRelease func()
}

func (m *Memory) init(d *Device) { m.d = d }

// Memory returns the device's allocator.
func (d *Device) Memory() *Memory { return &d.mem }

func (m *Memory) destroy() {
	for _, c := range m.chunks {
		m.release(c)
	}
	m.chunks = nil
}

func (m *Memory) release(c *chunk) {
	if c.ptr != nil {
		vk.UnmapMemory(m.d.dev, c.mem)
	}
	vk.DestroyBuffer(m.d.dev, c.buf, nil)
	vk.FreeMemory(m.d.dev, c.mem, nil)
	if !c.host {
		m.Used -= c.size
	}
	m.d.forgetBuffer(c.buf)
}

func roundUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

// Alloc returns a block of at least size bytes; host selects host-visible,
// mapped memory (for staging) instead of device-local memory. Device blocks
// are zero-filled by the caller when needed.
func (m *Memory) Alloc(size uint64, host bool) (Block, error) {
	if size == 0 {
		size = 4
	}
	size = roundUp(size, 16)
	need := roundUp(size, allocAlign)
	for _, c := range m.chunks {
		if c.host != host || c.dedicated {
			continue
		}
		if off, ok := c.take(need); ok {
			return m.block(c, off, size), nil
		}
	}
	csize, dedicated := uint64(ChunkBytes), false
	if need > ChunkBytes/2 {
		csize, dedicated = need, true
	}
	c, err := m.newChunk(csize, host)
	if err != nil {
		return Block{}, err
	}
	c.dedicated = dedicated
	m.chunks = append(m.chunks, c)
	off, _ := c.take(need)
	return m.block(c, off, size), nil
}

func (m *Memory) block(c *chunk, off, size uint64) Block {
	b := Block{View: View{Buffer: c.buf, Offset: off, Size: size}, chunk: c}
	if c.ptr != nil {
		b.Host = unsafe.Add(c.ptr, off)
	}
	return b
}

func (c *chunk) take(size uint64) (uint64, bool) {
	for i, s := range c.free {
		if s.size < size {
			continue
		}
		off := s.off
		if s.size == size {
			c.free = append(c.free[:i], c.free[i+1:]...)
		} else {
			c.free[i] = span{s.off + size, s.size - size}
		}
		return off, true
	}
	return 0, false
}

// Free returns b to its chunk; a chunk of its own (or an empty staging chunk) is released.
func (m *Memory) Free(b Block) {
	c := b.chunk
	if c == nil {
		return
	}
	size := roundUp(b.Size, allocAlign)
	c.free = append(c.free, span{b.Offset, size})
	sort.Slice(c.free, func(i, j int) bool { return c.free[i].off < c.free[j].off })
	merged := c.free[:1]
	for _, s := range c.free[1:] {
		last := &merged[len(merged)-1]
		if last.off+last.size == s.off {
			last.size += s.size
		} else {
			merged = append(merged, s)
		}
	}
	c.free = merged
	if c.dedicated && len(c.free) == 1 && c.free[0].size == c.size {
		if m.BeforeRelease != nil {
			m.BeforeRelease()
		}
		for i, x := range m.chunks {
			if x == c {
				m.chunks = append(m.chunks[:i], m.chunks[i+1:]...)
				break
			}
		}
		m.release(c)
	}
}

func (m *Memory) newChunk(size uint64, host bool) (*chunk, error) {
	d := m.d
	// Some drivers (lavapipe) grant more than the heap and fail later; refuse
	// up front what cannot fit the device-local heap.
	if heap := d.Info.MemoryBytes; !host && heap > 0 && m.Used+size > heap {
		return nil, m.oom(size, vk.ErrorOutOfDeviceMemory)
	}
	usage := vk.BufferUsageFlags(vk.BufferUsageStorageBufferBit | vk.BufferUsageTransferSrcBit | vk.BufferUsageTransferDstBit)
	binfo := &vk.BufferCreateInfo{
		SType:       vk.StructureTypeBufferCreateInfo,
		Size:        vk.DeviceSize(size),
		Usage:       usage,
		SharingMode: vk.SharingModeExclusive,
	}
	var buf vk.Buffer
	if r := vk.CreateBuffer(d.dev, binfo, nil, &buf); r != vk.Success {
		return nil, m.oom(size, r)
	}
	var req vk.MemoryRequirements
	vk.GetBufferMemoryRequirements(d.dev, buf, &req)
	req.Deref()
	typ := d.Info.memType
	if host {
		typ = d.Info.hostMem
	}
	if req.MemoryTypeBits&(1<<typ) == 0 {
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, fmt.Errorf("vulkan: storage buffers cannot live in memory type %d on %s", typ, d.Info.Name)
	}
	ainfo := &vk.MemoryAllocateInfo{
		SType:           vk.StructureTypeMemoryAllocateInfo,
		AllocationSize:  req.Size,
		MemoryTypeIndex: typ,
	}
	var mem vk.DeviceMemory
	if r := vk.AllocateMemory(d.dev, ainfo, nil, &mem); r != vk.Success {
		vk.DestroyBuffer(d.dev, buf, nil)
		return nil, m.oom(uint64(req.Size), r)
	}
	if r := vk.BindBufferMemory(d.dev, buf, mem, 0); r != vk.Success {
		vk.DestroyBuffer(d.dev, buf, nil)
		vk.FreeMemory(d.dev, mem, nil)
		return nil, check("vkBindBufferMemory", r)
	}
	c := &chunk{buf: buf, mem: mem, size: size, host: host, free: []span{{0, size}}}
	if host {
		var p unsafe.Pointer
		if r := vk.MapMemory(d.dev, mem, 0, vk.DeviceSize(size), 0, &p); r != vk.Success {
			vk.DestroyBuffer(d.dev, buf, nil)
			vk.FreeMemory(d.dev, mem, nil)
			return nil, check("vkMapMemory", r)
		}
		c.ptr = p
	} else {
		m.Used += size
	}
	return c, nil
}

func (m *Memory) oom(size uint64, r vk.Result) error {
	info := m.d.Info
	free := "unknown"
	if info.MemoryBytes > 0 {
		left := uint64(0)
		if info.MemoryBytes > m.Used {
			left = info.MemoryBytes - m.Used
		}
		free = fmt.Sprintf("about %s of %s", MiB(left), MiB(info.MemoryBytes))
	}
	return fmt.Errorf("%w on %s: needed %s more (lora holds %s; free: %s; driver said %v): lower micro_batch_size or cutoff_len, quantize the base (model.quantize: q4_0), or pick a device with more memory",
		ErrOutOfMemory, info.Name, MiB(size), MiB(m.Used), free, vk.Error(r))
}

// forgetBuffer drops cached descriptor sets that reference buf.
func (d *Device) forgetBuffer(buf vk.Buffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.sets {
		for _, v := range k {
			if v.Buffer == buf {
				delete(d.sets, k)
				break
			}
		}
	}
}
