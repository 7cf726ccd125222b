#include "shim.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef void (*PFN_void)(void);
typedef PFN_void (*PFN_gipa)(void *instance, const char *name);
typedef PFN_void (*PFN_gdpa)(void *device, const char *name);

void *lora_vk_load(const char **err) {
	void *h = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		*err = dlerror();
		return NULL;
	}
	void *f = dlsym(h, "vkGetInstanceProcAddr");
	if (!f) {
		*err = dlerror();
		return NULL;
	}
	return f;
}

// Vulkan structure types used here (values from vulkan_core.h).
enum {
	ST_FEATURES_2 = 1000059000,
	ST_PROPERTIES_2 = 1000059001,
	ST_SUBGROUP_PROPERTIES = 1000094000,
	ST_DRIVER_PROPERTIES = 1000196000,
	ST_FLOAT16_INT8_FEATURES = 1000082000,
	ST_16BIT_STORAGE_FEATURES = 1000083000,
	ST_8BIT_STORAGE_FEATURES = 1000177000,
	ST_MEMORY_PROPERTIES_2 = 1000059006,
	ST_MEMORY_BUDGET_PROPERTIES = 1000237000,
	ST_MEMORY_BARRIER = 46,
};

typedef struct {
	uint32_t sType;
	void *pNext;
} chain;

typedef struct {
	uint32_t sType;
	void *pNext;
	uint32_t subgroupSize, supportedStages, supportedOperations, quadOperationsInAllStages;
} subgroup_props;

typedef struct {
	uint32_t sType;
	void *pNext;
	uint32_t driverID;
	char driverName[256];
	char driverInfo[256];
	uint8_t conformance[4];
} driver_props;

typedef struct {
	uint32_t sType;
	void *pNext;
	uint32_t shaderFloat16, shaderInt8;
} f16i8_features;

typedef struct {
	uint32_t sType;
	void *pNext;
	uint32_t storageBuffer16BitAccess, uniformAndStorageBuffer16BitAccess, storagePushConstant16, storageInputOutput16;
} storage16_features;

typedef struct {
	uint32_t sType;
	void *pNext;
	uint32_t storageBuffer8BitAccess, uniformAndStorageBuffer8BitAccess, storagePushConstant8;
} storage8_features;

typedef struct {
	uint32_t sType;
	void *pNext;
	uint64_t heapBudget[16];
	uint64_t heapUsage[16];
} budget_props;

typedef void (*PFN_getProps2)(void *phys, void *props);

int lora_vk_query(void *gipa_, void *instance, void *phys, int want_budget, lora_vk_extra *out) {
	PFN_gipa gipa = (PFN_gipa)gipa_;
	memset(out, 0, sizeof *out);
	PFN_getProps2 props2 = (PFN_getProps2)gipa(instance, "vkGetPhysicalDeviceProperties2");
	if (!props2) props2 = (PFN_getProps2)gipa(instance, "vkGetPhysicalDeviceProperties2KHR");
	PFN_getProps2 feats2 = (PFN_getProps2)gipa(instance, "vkGetPhysicalDeviceFeatures2");
	if (!feats2) feats2 = (PFN_getProps2)gipa(instance, "vkGetPhysicalDeviceFeatures2KHR");
	PFN_getProps2 mem2 = (PFN_getProps2)gipa(instance, "vkGetPhysicalDeviceMemoryProperties2");
	if (!mem2) mem2 = (PFN_getProps2)gipa(instance, "vkGetPhysicalDeviceMemoryProperties2KHR");
	if (!props2 || !feats2) return -1;

	// VkPhysicalDeviceProperties2 and Features2 embed large structs that are only
	// read by the binding elsewhere: a zeroed, generously sized block holds them.
	uint64_t big[1024];
	memset(big, 0, sizeof big);
	subgroup_props sg;
	memset(&sg, 0, sizeof sg);
	sg.sType = ST_SUBGROUP_PROPERTIES;
	driver_props dp;
	memset(&dp, 0, sizeof dp);
	dp.sType = ST_DRIVER_PROPERTIES;
	sg.pNext = &dp;
	chain *p2 = (chain *)big;
	p2->sType = ST_PROPERTIES_2;
	p2->pNext = &sg;
	props2(phys, big);
	out->subgroup_size = sg.subgroupSize;
	out->subgroup_stages = sg.supportedStages;
	out->subgroup_ops = sg.supportedOperations;
	if (dp.driverName[0]) {
		out->has_driver_props = 1;
		memcpy(out->driver_name, dp.driverName, 256);
		memcpy(out->driver_info, dp.driverInfo, 256);
		out->driver_name[255] = 0;
		out->driver_info[255] = 0;
	}

	memset(big, 0, sizeof big);
	f16i8_features fi;
	memset(&fi, 0, sizeof fi);
	fi.sType = ST_FLOAT16_INT8_FEATURES;
	storage16_features s16;
	memset(&s16, 0, sizeof s16);
	s16.sType = ST_16BIT_STORAGE_FEATURES;
	storage8_features s8;
	memset(&s8, 0, sizeof s8);
	s8.sType = ST_8BIT_STORAGE_FEATURES;
	fi.pNext = &s16;
	s16.pNext = &s8;
	chain *f2 = (chain *)big;
	f2->sType = ST_FEATURES_2;
	f2->pNext = &fi;
	feats2(phys, big);
	out->shader_float16 = fi.shaderFloat16;
	out->shader_int8 = fi.shaderInt8;
	out->storage_buffer16 = s16.storageBuffer16BitAccess;
	out->storage_buffer8 = s8.storageBuffer8BitAccess;

	if (want_budget && mem2) {
		memset(big, 0, sizeof big);
		budget_props bp;
		memset(&bp, 0, sizeof bp);
		bp.sType = ST_MEMORY_BUDGET_PROPERTIES;
		chain *m2 = (chain *)big;
		m2->sType = ST_MEMORY_PROPERTIES_2;
		m2->pNext = &bp;
		mem2(phys, big);
		out->has_budget = 1;
		memcpy(out->heap_budget, bp.heapBudget, sizeof bp.heapBudget);
		memcpy(out->heap_usage, bp.heapUsage, sizeof bp.heapUsage);
	}
	return 0;
}

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t srcAccessMask, dstAccessMask;
} memory_barrier;

struct lora_vk_cmds {
	void (*bindPipeline)(void *cmd, uint32_t bindPoint, uint64_t pipeline);
	void (*bindSets)(void *cmd, uint32_t bindPoint, uint64_t layout, uint32_t first, uint32_t count,
		const uint64_t *sets, uint32_t dynCount, const uint32_t *dyn);
	void (*pushConstants)(void *cmd, uint64_t layout, uint32_t stages, uint32_t offset, uint32_t size, const void *values);
	void (*dispatch)(void *cmd, uint32_t x, uint32_t y, uint32_t z);
	void (*barrier)(void *cmd, uint32_t srcStage, uint32_t dstStage, uint32_t deps, uint32_t memCount,
		const memory_barrier *mem, uint32_t bufCount, const void *buf, uint32_t imgCount, const void *img);
	void (*timestamp)(void *cmd, uint32_t stage, uint64_t pool, uint32_t query);
};

lora_vk_cmds *lora_vk_cmds_new(void *gipa_, void *instance, void *device) {
	PFN_gipa gipa = (PFN_gipa)gipa_;
	PFN_gdpa gdpa = (PFN_gdpa)gipa(instance, "vkGetDeviceProcAddr");
	if (!gdpa) return NULL;
	lora_vk_cmds *c = calloc(1, sizeof *c);
	if (!c) return NULL;
	c->bindPipeline = (void *)gdpa(device, "vkCmdBindPipeline");
	c->bindSets = (void *)gdpa(device, "vkCmdBindDescriptorSets");
	c->pushConstants = (void *)gdpa(device, "vkCmdPushConstants");
	c->dispatch = (void *)gdpa(device, "vkCmdDispatch");
	c->barrier = (void *)gdpa(device, "vkCmdPipelineBarrier");
	c->timestamp = (void *)gdpa(device, "vkCmdWriteTimestamp");
	if (!c->bindPipeline || !c->bindSets || !c->pushConstants || !c->dispatch || !c->barrier || !c->timestamp) {
		free(c);
		return NULL;
	}
	return c;
}

void lora_vk_cmds_free(lora_vk_cmds *c) { free(c); }

enum {
	BIND_COMPUTE = 1,
	STAGE_COMPUTE_BIT = 0x20,
	PIPE_TOP = 0x1,
	PIPE_COMPUTE = 0x800,
	PIPE_TRANSFER = 0x1000,
	PIPE_BOTTOM = 0x2000,
	PIPE_HOST = 0x4000,
	ACC_SHADER_READ = 0x20,
	ACC_SHADER_WRITE = 0x40,
	ACC_TRANSFER_READ = 0x800,
	ACC_TRANSFER_WRITE = 0x1000,
	ACC_HOST_READ = 0x2000,
};

void lora_vk_dispatch(lora_vk_cmds *c, void *cmd, uint64_t pipeline, uint64_t layout,
	uint64_t set, const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz) {
	c->bindPipeline(cmd, BIND_COMPUTE, pipeline);
	c->bindSets(cmd, BIND_COMPUTE, layout, 0, 1, &set, 0, NULL);
	if (push_size) c->pushConstants(cmd, layout, STAGE_COMPUTE_BIT, 0, push_size, push);
	c->dispatch(cmd, gx, gy, gz);
}

void lora_vk_barrier(lora_vk_cmds *c, void *cmd, int to_host) {
	memory_barrier mb;
	mb.sType = ST_MEMORY_BARRIER;
	mb.pNext = NULL;
	mb.srcAccessMask = ACC_SHADER_WRITE | ACC_TRANSFER_WRITE;
	mb.dstAccessMask = ACC_SHADER_READ | ACC_SHADER_WRITE | ACC_TRANSFER_READ | ACC_TRANSFER_WRITE;
	uint32_t dst = PIPE_COMPUTE | PIPE_TRANSFER;
	if (to_host) {
		mb.dstAccessMask |= ACC_HOST_READ;
		dst |= PIPE_HOST;
	}
	c->barrier(cmd, PIPE_COMPUTE | PIPE_TRANSFER, dst, 0, 1, &mb, 0, NULL, 0, NULL);
}

void lora_vk_timestamp(lora_vk_cmds *c, void *cmd, uint64_t pool, uint32_t query, int bottom) {
	c->timestamp(cmd, bottom ? PIPE_BOTTOM : PIPE_TOP, pool, query);
}
