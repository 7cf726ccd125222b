//go:build cgo

package vk

/*
#include "shim.h"
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	vk "github.com/vulkan-go/vulkan"
)

// MaxBindings is the number of storage-buffer bindings every kernel's set has.
const MaxBindings = 8

// PushBytes is the size of the push-constant block every kernel may use.
const PushBytes = 128

// Device is an open logical device with one compute queue.
type Device struct {
	Info DeviceInfo

	dev    vk.Device
	queue  vk.Queue
	pool   vk.CommandPool
	cmds   *C.lora_vk_cmds
	cache  vk.PipelineCache
	setLay vk.DescriptorSetLayout
	layout vk.PipelineLayout

	mu        sync.Mutex
	modules   map[string]vk.ShaderModule
	pipelines map[string]*Pipeline
	sets      map[setKey]vk.DescriptorSet
	descPools []vk.DescriptorPool
	poolLeft  uint32

	mem Memory
}

// Open creates a logical device on d.
func Open(d DeviceInfo) (*Device, error) {
	if err := load(); err != nil {
		return nil, err
	}
	var devPtr unsafe.Pointer
	if r := vk.Result(C.lora_vk_create_device(gipa, handle(instance), d.phys, C.uint32_t(d.family), &devPtr)); r != vk.Success {
		return nil, check("vkCreateDevice on "+d.Name, r)
	}
	dv := &Device{Info: d, modules: map[string]vk.ShaderModule{}, pipelines: map[string]*Pipeline{}, sets: map[setKey]vk.DescriptorSet{}}
	dv.dev = fromPtr[vk.Device](devPtr)
	var queue vk.Queue
	vk.GetDeviceQueue(dv.dev, d.family, 0, &queue)
	dv.queue = queue
	dv.cmds = C.lora_vk_cmds_new(gipa, handle(instance), handle(dv.dev))
	if dv.cmds == nil {
		vk.DestroyDevice(dv.dev, nil)
		return nil, fmt.Errorf("vulkan: cannot resolve device entry points on %s", d.Name)
	}
	pinfo := &vk.CommandPoolCreateInfo{
		SType:            vk.StructureTypeCommandPoolCreateInfo,
		Flags:            vk.CommandPoolCreateFlags(vk.CommandPoolCreateResetCommandBufferBit),
		QueueFamilyIndex: d.family,
	}
	var pool vk.CommandPool
	if err := check("vkCreateCommandPool", vk.CreateCommandPool(dv.dev, pinfo, nil, &pool)); err != nil {
		dv.Close()
		return nil, err
	}
	dv.pool = pool
	cinfo := &vk.PipelineCacheCreateInfo{SType: vk.StructureTypePipelineCacheCreateInfo}
	var cache vk.PipelineCache
	if err := check("vkCreatePipelineCache", vk.CreatePipelineCache(dv.dev, cinfo, nil, &cache)); err != nil {
		dv.Close()
		return nil, err
	}
	dv.cache = cache
	var setLay, layout C.uint64_t
	if err := check("vkCreateDescriptorSetLayout", vk.Result(C.lora_vk_create_set_layout(dv.cmds, MaxBindings, &setLay))); err != nil {
		dv.Close()
		return nil, err
	}
	dv.setLay = fromU64[vk.DescriptorSetLayout](setLay)
	if err := check("vkCreatePipelineLayout", vk.Result(C.lora_vk_create_pipeline_layout(dv.cmds, setLay, PushBytes, &layout))); err != nil {
		dv.Close()
		return nil, err
	}
	dv.layout = fromU64[vk.PipelineLayout](layout)
	dv.mem.init(dv)
	return dv, nil
}

// Close waits for the device to go idle and destroys everything created on it.
func (d *Device) Close() {
	if d.dev == nil {
		return
	}
	vk.DeviceWaitIdle(d.dev)
	for _, p := range d.pipelines {
		vk.DestroyPipeline(d.dev, p.p, nil)
	}
	for _, m := range d.modules {
		vk.DestroyShaderModule(d.dev, m, nil)
	}
	for _, p := range d.descPools {
		vk.DestroyDescriptorPool(d.dev, p, nil)
	}
	d.mem.destroy()
	if d.layout != vk.NullPipelineLayout {
		vk.DestroyPipelineLayout(d.dev, d.layout, nil)
	}
	if d.setLay != vk.NullDescriptorSetLayout {
		vk.DestroyDescriptorSetLayout(d.dev, d.setLay, nil)
	}
	if d.cache != vk.NullPipelineCache {
		vk.DestroyPipelineCache(d.dev, d.cache, nil)
	}
	if d.pool != vk.NullCommandPool {
		vk.DestroyCommandPool(d.dev, d.pool, nil)
	}
	if d.cmds != nil {
		C.lora_vk_cmds_free(d.cmds)
	}
	vk.DestroyDevice(d.dev, nil)
	d.dev = nil
}

// Pipeline is a compute pipeline: one shader with one set of specialization constants.
type Pipeline struct {
	Name string
	p    vk.Pipeline
}

// Pipeline returns the pipeline for the SPIR-V module name with the given
// specialization constants (constant_id i = spec[i]), creating and caching it.
func (d *Device) Pipeline(name string, spirv []byte, spec []uint32) (*Pipeline, error) {
	key := fmt.Sprint(name, spec)
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pipelines[key]; ok {
		return p, nil
	}
	mod, ok := d.modules[name]
	if !ok {
		if len(spirv) == 0 || len(spirv)%4 != 0 {
			return nil, fmt.Errorf("vulkan: shader %s: SPIR-V of %d bytes is not a whole number of words", name, len(spirv))
		}
		words := make([]uint32, len(spirv)/4)
		for i := range words {
			words[i] = binary.LittleEndian.Uint32(spirv[4*i:])
		}
		var m C.uint64_t
		r := vk.Result(C.lora_vk_create_shader_module(d.cmds, (*C.uint32_t)(unsafe.Pointer(&words[0])), C.size_t(len(spirv)), &m))
		if err := check("vkCreateShaderModule "+name, r); err != nil {
			return nil, err
		}
		mod = fromU64[vk.ShaderModule](m)
		d.modules[name] = mod
	}
	var cspec *C.uint32_t
	if len(spec) > 0 {
		cspec = (*C.uint32_t)(unsafe.Pointer(&spec[0]))
	}
	var pipe C.uint64_t
	r := vk.Result(C.lora_vk_create_pipeline(d.cmds, handle64(d.cache), handle64(mod), handle64(d.layout), cspec, C.uint32_t(len(spec)), &pipe))
	if err := check("vkCreateComputePipelines "+key, r); err != nil {
		return nil, err
	}
	p := &Pipeline{Name: name, p: fromU64[vk.Pipeline](pipe)}
	d.pipelines[key] = p
	return p, nil
}

// View is a byte range of a buffer bound to one binding.
type View struct {
	Buffer vk.Buffer
	Offset uint64
	Size   uint64
}

type setKey [MaxBindings]View

const setsPerPool = 1024

// Set returns a descriptor set binding views (unused entries must be valid
// views too; callers pass a dummy). Sets are cached by their views: the same
// buffers bound again reuse the same set.
func (d *Device) Set(views [MaxBindings]View) (vk.DescriptorSet, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := setKey(views)
	if s, ok := d.sets[key]; ok {
		return s, nil
	}
	if d.poolLeft == 0 {
		var pool C.uint64_t
		if err := check("vkCreateDescriptorPool", vk.Result(C.lora_vk_create_descriptor_pool(d.cmds, setsPerPool, setsPerPool*MaxBindings, &pool))); err != nil {
			return nil, err
		}
		d.descPools = append(d.descPools, fromU64[vk.DescriptorPool](pool))
		d.poolLeft = setsPerPool
	}
	var cset C.uint64_t
	r := vk.Result(C.lora_vk_allocate_set(d.cmds, handle64(d.descPools[len(d.descPools)-1]), handle64(d.setLay), &cset))
	if err := check("vkAllocateDescriptorSets", r); err != nil {
		return nil, err
	}
	d.poolLeft--
	var bufs, offs, ranges [MaxBindings]C.uint64_t
	for i, v := range views {
		bufs[i], offs[i], ranges[i] = handle64(v.Buffer), C.uint64_t(v.Offset), C.uint64_t(v.Size)
	}
	C.lora_vk_write_set(d.cmds, cset, MaxBindings, &bufs[0], &offs[0], &ranges[0])
	set := fromU64[vk.DescriptorSet](cset)
	d.sets[key] = set
	return set, nil
}

// Cmd is a command buffer with a timestamp query pool.
type Cmd struct {
	d       *Device
	cb      vk.CommandBuffer
	fence   vk.Fence
	qpool   vk.QueryPool
	qcap    uint32
	queries uint32
	// Labels names the kernel of each timestamp pair, in order.
	Labels  []string
	pending bool
}

// NewCmd allocates a command buffer able to time up to maxTimed dispatches.
func (d *Device) NewCmd(maxTimed uint32) (*Cmd, error) {
	c := &Cmd{d: d}
	ainfo := &vk.CommandBufferAllocateInfo{
		SType:              vk.StructureTypeCommandBufferAllocateInfo,
		CommandPool:        d.pool,
		Level:              vk.CommandBufferLevelPrimary,
		CommandBufferCount: 1,
	}
	cbs := make([]vk.CommandBuffer, 1)
	if err := check("vkAllocateCommandBuffers", vk.AllocateCommandBuffers(d.dev, ainfo, cbs)); err != nil {
		return nil, err
	}
	c.cb = cbs[0]
	finfo := &vk.FenceCreateInfo{SType: vk.StructureTypeFenceCreateInfo}
	var fence vk.Fence
	if err := check("vkCreateFence", vk.CreateFence(d.dev, finfo, nil, &fence)); err != nil {
		c.Release()
		return nil, err
	}
	c.fence = fence
	if d.Info.Timestamps && maxTimed > 0 {
		qinfo := &vk.QueryPoolCreateInfo{
			SType:      vk.StructureTypeQueryPoolCreateInfo,
			QueryType:  vk.QueryTypeTimestamp,
			QueryCount: 2 * maxTimed,
		}
		var qpool vk.QueryPool
		if vk.CreateQueryPool(d.dev, qinfo, nil, &qpool) == vk.Success {
			c.qpool = qpool
			c.qcap = 2 * maxTimed
		}
	}
	return c, nil
}

// Release frees the command buffer (after waiting for it).
func (c *Cmd) Release() {
	if c.cb == nil {
		return
	}
	c.Wait()
	vk.FreeCommandBuffers(c.d.dev, c.d.pool, 1, []vk.CommandBuffer{c.cb})
	if c.fence != vk.NullFence {
		vk.DestroyFence(c.d.dev, c.fence, nil)
	}
	if c.qpool != vk.NullQueryPool {
		vk.DestroyQueryPool(c.d.dev, c.qpool, nil)
	}
	c.cb = nil
}

// Begin starts recording (resetting previous contents). A reusable buffer may be
// submitted many times.
func (c *Cmd) Begin(reusable bool) error {
	if err := c.Wait(); err != nil {
		return err
	}
	var flags vk.CommandBufferUsageFlags
	if !reusable {
		flags = vk.CommandBufferUsageFlags(vk.CommandBufferUsageOneTimeSubmitBit)
	}
	binfo := &vk.CommandBufferBeginInfo{SType: vk.StructureTypeCommandBufferBeginInfo, Flags: flags}
	if err := check("vkBeginCommandBuffer", vk.BeginCommandBuffer(c.cb, binfo)); err != nil {
		return err
	}
	c.queries = 0
	c.Labels = c.Labels[:0]
	if c.qcap > 0 {
		vk.CmdResetQueryPool(c.cb, c.qpool, 0, c.qcap)
	}
	// Work submitted earlier on the queue may still be writing: order it first.
	C.lora_vk_barrier(c.d.cmds, handle(c.cb), 0)
	return nil
}

// Dispatch records a kernel launch; push is at most PushBytes bytes of words.
func (c *Cmd) Dispatch(p *Pipeline, set vk.DescriptorSet, push []uint32, gx, gy, gz uint32) {
	timed := c.queries+2 <= c.qcap
	if timed {
		C.lora_vk_timestamp(c.d.cmds, handle(c.cb), handle64(c.qpool), C.uint32_t(c.queries), 0)
	}
	var pp unsafe.Pointer
	if len(push) > 0 {
		pp = unsafe.Pointer(&push[0])
	}
	C.lora_vk_dispatch(c.d.cmds, handle(c.cb), handle64(p.p), handle64(c.d.layout), handle64(set), pp, C.uint32_t(4*len(push)), C.uint32_t(gx), C.uint32_t(gy), C.uint32_t(gz))
	if timed {
		C.lora_vk_timestamp(c.d.cmds, handle(c.cb), handle64(c.qpool), C.uint32_t(c.queries+1), 1)
		c.queries += 2
		c.Labels = append(c.Labels, p.Name)
	}
}

// Barrier records a global memory barrier between compute and transfer work.
func (c *Cmd) Barrier() { C.lora_vk_barrier(c.d.cmds, handle(c.cb), 0) }

// Copy records a buffer-to-buffer copy.
func (c *Cmd) Copy(dst, src View, size uint64) {
	C.lora_vk_cmd_copy(c.d.cmds, handle(c.cb), handle64(src.Buffer), handle64(dst.Buffer), C.uint64_t(src.Offset), C.uint64_t(dst.Offset), C.uint64_t(size))
}

// End finishes recording; a host barrier makes all writes visible to the host.
func (c *Cmd) End() error {
	C.lora_vk_barrier(c.d.cmds, handle(c.cb), 1)
	return check("vkEndCommandBuffer", vk.EndCommandBuffer(c.cb))
}

// Submit queues the command buffer; Wait blocks until it is done.
func (c *Cmd) Submit() error {
	if err := c.Wait(); err != nil {
		return err
	}
	if err := check("vkQueueSubmit", vk.Result(C.lora_vk_queue_submit(c.d.cmds, handle(c.d.queue), handle(c.cb), handle64(c.fence)))); err != nil {
		return err
	}
	c.pending = true
	return nil
}

// Wait waits for the last submission of c to finish.
func (c *Cmd) Wait() error {
	if !c.pending {
		return nil
	}
	r := vk.WaitForFences(c.d.dev, 1, []vk.Fence{c.fence}, vk.True, math.MaxUint64)
	c.pending = false
	vk.ResetFences(c.d.dev, 1, []vk.Fence{c.fence})
	if r == vk.ErrorDeviceLost {
		return fmt.Errorf("vulkan: device lost on %s (a kernel crashed or timed out)", c.d.Info.Name)
	}
	return check("vkWaitForFences", r)
}

// Times returns the duration in seconds of each timed dispatch of the last
// completed submission (parallel to Labels), or nil without timestamps.
func (c *Cmd) Times() []float64 {
	if c.queries == 0 {
		return nil
	}
	raw := make([]uint64, c.queries)
	r := vk.GetQueryPoolResults(c.d.dev, c.qpool, 0, c.queries, uint(8*len(raw)), unsafe.Pointer(&raw[0]), 8,
		vk.QueryResultFlags(vk.QueryResult64Bit|vk.QueryResultWaitBit))
	if r != vk.Success {
		return nil
	}
	out := make([]float64, c.queries/2)
	for i := range out {
		dt := raw[2*i+1] - raw[2*i]
		if raw[2*i+1] < raw[2*i] {
			dt = 0
		}
		out[i] = float64(dt) * float64(c.d.Info.TimestampPeriodNs) * 1e-9
	}
	return out
}
