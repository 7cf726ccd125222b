// Small C shim: loads libvulkan.so.1, answers the queries the pinned binding lacks,
// and records the hot-path commands (dispatch, barrier, timestamp) without per-call
// allocations. Self-contained: it declares the few Vulkan structs it uses, so no
// Vulkan headers are needed to build.
#ifndef LORA_VK_SHIM_H
#define LORA_VK_SHIM_H
#include <stddef.h>
#include <stdint.h>

// lora_vk_load dlopens libvulkan.so.1 and returns vkGetInstanceProcAddr, or NULL
// (then *err holds dlerror's text, owned by the shim).
void *lora_vk_load(const char **err);

typedef struct {
	uint32_t subgroup_size;
	uint32_t subgroup_stages;
	uint32_t subgroup_ops;
	uint32_t has_driver_props;
	char driver_name[256];
	char driver_info[256];
	uint32_t shader_float16;
	uint32_t shader_int8;
	uint32_t storage_buffer16;
	uint32_t storage_buffer8;
	uint32_t has_budget;
	uint64_t heap_budget[16];
	uint64_t heap_usage[16];
} lora_vk_extra;

// lora_vk_query fills out through vkGetPhysicalDeviceProperties2/Features2 (core 1.1,
// falling back to the KHR entry points). want_budget asks for VK_EXT_memory_budget
// (only when the device lists that extension). Returns 0 when the queries exist.
int lora_vk_query(void *gipa, void *instance, void *phys, int want_budget, lora_vk_extra *out);

// Device-level entry points for the recording hot path.
typedef struct lora_vk_cmds lora_vk_cmds;
lora_vk_cmds *lora_vk_cmds_new(void *gipa, void *instance, void *device);
// lora_vk_cmds_device is the device c was made for.
void *lora_vk_cmds_device(lora_vk_cmds *c);
void lora_vk_cmds_free(lora_vk_cmds *c);

// lora_vk_dispatch binds pipeline and set, pushes constants and dispatches.
void lora_vk_dispatch(lora_vk_cmds *c, void *cmd, uint64_t pipeline, uint64_t layout,
	uint64_t set, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
// lora_vk_barrier records a global memory barrier between compute/transfer work
// (to_host adds the host stage as destination).
void lora_vk_barrier(lora_vk_cmds *c, void *cmd, int to_host);
// lora_vk_timestamp writes a timestamp (bottom = 1: bottom of pipe, else top).
void lora_vk_timestamp(lora_vk_cmds *c, void *cmd, uint64_t pool, uint32_t query, int bottom);

// lora_vk_queue_families writes the flags and timestamp bits of up to max
// queue families and returns how many the device has.
uint32_t lora_vk_queue_families(void *gipa, void *instance, void *phys, uint32_t *flags, uint32_t *ts_bits, uint32_t max);
// lora_vk_has_extension reports whether the device lists the extension.
int lora_vk_has_extension(void *gipa, void *instance, void *phys, const char *name);

// Object creation and the remaining commands that take arrays of structs.
// They return VkResult values (0 = success).
int lora_vk_create_device(void *gipa, void *instance, void *phys, uint32_t family, void **device);
int lora_vk_create_shader_module(lora_vk_cmds *c, const uint32_t *code, size_t size, uint64_t *module);
int lora_vk_create_pipeline(lora_vk_cmds *c, uint64_t cache, uint64_t module, uint64_t layout,
	const uint32_t *spec, uint32_t nspec, uint64_t *pipeline);
int lora_vk_create_set_layout(lora_vk_cmds *c, uint32_t bindings, uint64_t *layout);
int lora_vk_create_pipeline_layout(lora_vk_cmds *c, uint64_t set_layout, uint32_t push_bytes, uint64_t *layout);
int lora_vk_create_descriptor_pool(lora_vk_cmds *c, uint32_t max_sets, uint32_t descriptors, uint64_t *pool);
int lora_vk_allocate_set(lora_vk_cmds *c, uint64_t pool, uint64_t layout, uint64_t *set);
// lora_vk_write_set points bindings 0..n-1 of set at the given buffer ranges.
void lora_vk_write_set(lora_vk_cmds *c, uint64_t set, uint32_t n, const uint64_t *buffers, const uint64_t *offsets, const uint64_t *ranges);
int lora_vk_queue_submit(lora_vk_cmds *c, void *queue, void *cmd, uint64_t fence);
void lora_vk_cmd_copy(lora_vk_cmds *c, void *cmd, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off, uint64_t size);
#endif
