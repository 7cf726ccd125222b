// Small C shim: loads libvulkan.so.1, answers the queries the pinned binding lacks,
// and records the hot-path commands (dispatch, barrier, timestamp) without per-call
// allocations. Self-contained: it declares the few Vulkan structs it uses, so no
// Vulkan headers are needed to build.
#ifndef LORA_VK_SHIM_H
#define LORA_VK_SHIM_H
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
void lora_vk_cmds_free(lora_vk_cmds *c);

// lora_vk_dispatch binds pipeline and set, pushes constants and dispatches.
void lora_vk_dispatch(lora_vk_cmds *c, void *cmd, uint64_t pipeline, uint64_t layout,
	uint64_t set, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz);
// lora_vk_barrier records a global memory barrier between compute/transfer work
// (to_host adds the host stage as destination).
void lora_vk_barrier(lora_vk_cmds *c, void *cmd, int to_host);
// lora_vk_timestamp writes a timestamp (bottom = 1: bottom of pipe, else top).
void lora_vk_timestamp(lora_vk_cmds *c, void *cmd, uint64_t pool, uint32_t query, int bottom);
#endif
