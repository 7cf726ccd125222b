// Implementation of shim.h, compiled once through loader.go's cgo preamble
// (kept out of .c files so that the package also builds without cgo).
#include "shim.h"
#include "shim_types.h"
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
	void *device;
	int (*createShaderModule)(void *dev, const lvk_shader_module_create_info *info, const void *alloc, uint64_t *out);
	int (*createComputePipelines)(void *dev, uint64_t cache, uint32_t n, const lvk_compute_pipeline_create_info *info, const void *alloc, uint64_t *out);
	int (*createSetLayout)(void *dev, const lvk_descriptor_set_layout_create_info *info, const void *alloc, uint64_t *out);
	int (*createPipelineLayout)(void *dev, const lvk_pipeline_layout_create_info *info, const void *alloc, uint64_t *out);
	int (*createDescriptorPool)(void *dev, const lvk_descriptor_pool_create_info *info, const void *alloc, uint64_t *out);
	int (*allocateSets)(void *dev, const lvk_descriptor_set_allocate_info *info, uint64_t *out);
	void (*updateSets)(void *dev, uint32_t nwrites, const lvk_write_descriptor_set *writes, uint32_t ncopies, const void *copies);
	int (*queueSubmit)(void *queue, uint32_t n, const lvk_submit_info *info, uint64_t fence);
	void (*copyBuffer)(void *cmd, uint64_t src, uint64_t dst, uint32_t n, const lvk_buffer_copy *regions);
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
	c->device = device;
	c->createShaderModule = (void *)gdpa(device, "vkCreateShaderModule");
	c->createComputePipelines = (void *)gdpa(device, "vkCreateComputePipelines");
	c->createSetLayout = (void *)gdpa(device, "vkCreateDescriptorSetLayout");
	c->createPipelineLayout = (void *)gdpa(device, "vkCreatePipelineLayout");
	c->createDescriptorPool = (void *)gdpa(device, "vkCreateDescriptorPool");
	c->allocateSets = (void *)gdpa(device, "vkAllocateDescriptorSets");
	c->updateSets = (void *)gdpa(device, "vkUpdateDescriptorSets");
	c->queueSubmit = (void *)gdpa(device, "vkQueueSubmit");
	c->copyBuffer = (void *)gdpa(device, "vkCmdCopyBuffer");
	if (!c->bindPipeline || !c->bindSets || !c->pushConstants || !c->dispatch || !c->barrier || !c->timestamp ||
		!c->createShaderModule || !c->createComputePipelines || !c->createSetLayout || !c->createPipelineLayout ||
		!c->createDescriptorPool || !c->allocateSets || !c->updateSets || !c->queueSubmit || !c->copyBuffer) {
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

void *lora_vk_cmds_device(lora_vk_cmds *c) { return c->device; }

enum {
	ST_DEVICE_QUEUE_CREATE_INFO = 2,
	ST_DEVICE_CREATE_INFO = 3,
	ST_SUBMIT_INFO = 4,
	ST_SHADER_MODULE_CREATE_INFO = 16,
	ST_PIPELINE_SHADER_STAGE_CREATE_INFO = 18,
	ST_COMPUTE_PIPELINE_CREATE_INFO = 29,
	ST_PIPELINE_LAYOUT_CREATE_INFO = 30,
	ST_DESCRIPTOR_SET_LAYOUT_CREATE_INFO = 32,
	ST_DESCRIPTOR_POOL_CREATE_INFO = 33,
	ST_DESCRIPTOR_SET_ALLOCATE_INFO = 34,
	ST_WRITE_DESCRIPTOR_SET = 35,
	DESCRIPTOR_STORAGE_BUFFER = 7,
	ERROR_INITIALIZATION_FAILED = -3,
};

typedef int (*PFN_createDevice)(void *phys, const lvk_device_create_info *info, const void *alloc, void **out);

int lora_vk_create_device(void *gipa_, void *instance, void *phys, uint32_t family, void **device) {
	PFN_gipa gipa = (PFN_gipa)gipa_;
	PFN_createDevice create = (PFN_createDevice)gipa(instance, "vkCreateDevice");
	if (!create) return ERROR_INITIALIZATION_FAILED;
	float priority = 1.0f;
	lvk_device_queue_create_info q;
	memset(&q, 0, sizeof q);
	q.sType = ST_DEVICE_QUEUE_CREATE_INFO;
	q.queueFamilyIndex = family;
	q.queueCount = 1;
	q.pQueuePriorities = &priority;
	lvk_device_create_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_DEVICE_CREATE_INFO;
	info.queueCreateInfoCount = 1;
	info.pQueueCreateInfos = &q;
	return create(phys, &info, NULL, device);
}

int lora_vk_create_shader_module(lora_vk_cmds *c, const uint32_t *code, size_t size, uint64_t *module) {
	lvk_shader_module_create_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_SHADER_MODULE_CREATE_INFO;
	info.codeSize = size;
	info.pCode = code;
	return c->createShaderModule(c->device, &info, NULL, module);
}

int lora_vk_create_pipeline(lora_vk_cmds *c, uint64_t cache, uint64_t module, uint64_t layout,
	const uint32_t *spec, uint32_t nspec, uint64_t *pipeline) {
	lvk_specialization_map_entry entries[16];
	if (nspec > 16) return ERROR_INITIALIZATION_FAILED;
	for (uint32_t i = 0; i < nspec; i++) {
		entries[i].constantID = i;
		entries[i].offset = 4 * i;
		entries[i].size = 4;
	}
	lvk_specialization_info si;
	si.mapEntryCount = nspec;
	si.pMapEntries = entries;
	si.dataSize = 4 * (size_t)nspec;
	si.pData = spec;
	lvk_compute_pipeline_create_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_COMPUTE_PIPELINE_CREATE_INFO;
	info.stage.sType = ST_PIPELINE_SHADER_STAGE_CREATE_INFO;
	info.stage.stage = STAGE_COMPUTE_BIT;
	info.stage.module = module;
	info.stage.pName = "main";
	info.stage.pSpecializationInfo = nspec ? &si : NULL;
	info.layout = layout;
	info.basePipelineIndex = -1;
	return c->createComputePipelines(c->device, cache, 1, &info, NULL, pipeline);
}

int lora_vk_create_set_layout(lora_vk_cmds *c, uint32_t bindings, uint64_t *layout) {
	lvk_descriptor_set_layout_binding b[32];
	if (bindings > 32) return ERROR_INITIALIZATION_FAILED;
	for (uint32_t i = 0; i < bindings; i++) {
		b[i].binding = i;
		b[i].descriptorType = DESCRIPTOR_STORAGE_BUFFER;
		b[i].descriptorCount = 1;
		b[i].stageFlags = STAGE_COMPUTE_BIT;
		b[i].pImmutableSamplers = NULL;
	}
	lvk_descriptor_set_layout_create_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
	info.bindingCount = bindings;
	info.pBindings = b;
	return c->createSetLayout(c->device, &info, NULL, layout);
}

int lora_vk_create_pipeline_layout(lora_vk_cmds *c, uint64_t set_layout, uint32_t push_bytes, uint64_t *layout) {
	lvk_push_constant_range r;
	r.stageFlags = STAGE_COMPUTE_BIT;
	r.offset = 0;
	r.size = push_bytes;
	lvk_pipeline_layout_create_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_PIPELINE_LAYOUT_CREATE_INFO;
	info.setLayoutCount = 1;
	info.pSetLayouts = &set_layout;
	info.pushConstantRangeCount = push_bytes ? 1 : 0;
	info.pPushConstantRanges = &r;
	return c->createPipelineLayout(c->device, &info, NULL, layout);
}

int lora_vk_create_descriptor_pool(lora_vk_cmds *c, uint32_t max_sets, uint32_t descriptors, uint64_t *pool) {
	lvk_descriptor_pool_size size;
	size.type = DESCRIPTOR_STORAGE_BUFFER;
	size.descriptorCount = descriptors;
	lvk_descriptor_pool_create_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_DESCRIPTOR_POOL_CREATE_INFO;
	info.maxSets = max_sets;
	info.poolSizeCount = 1;
	info.pPoolSizes = &size;
	return c->createDescriptorPool(c->device, &info, NULL, pool);
}

int lora_vk_allocate_set(lora_vk_cmds *c, uint64_t pool, uint64_t layout, uint64_t *set) {
	lvk_descriptor_set_allocate_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_DESCRIPTOR_SET_ALLOCATE_INFO;
	info.descriptorPool = pool;
	info.descriptorSetCount = 1;
	info.pSetLayouts = &layout;
	return c->allocateSets(c->device, &info, set);
}

void lora_vk_write_set(lora_vk_cmds *c, uint64_t set, uint32_t n, const uint64_t *buffers, const uint64_t *offsets, const uint64_t *ranges) {
	lvk_descriptor_buffer_info bi[32];
	lvk_write_descriptor_set w[32];
	if (n > 32) n = 32;
	for (uint32_t i = 0; i < n; i++) {
		bi[i].buffer = buffers[i];
		bi[i].offset = offsets[i];
		bi[i].range = ranges[i];
		memset(&w[i], 0, sizeof w[i]);
		w[i].sType = ST_WRITE_DESCRIPTOR_SET;
		w[i].dstSet = set;
		w[i].dstBinding = i;
		w[i].descriptorCount = 1;
		w[i].descriptorType = DESCRIPTOR_STORAGE_BUFFER;
		w[i].pBufferInfo = &bi[i];
	}
	c->updateSets(c->device, n, w, 0, NULL);
}

int lora_vk_queue_submit(lora_vk_cmds *c, void *queue, void *cmd, uint64_t fence) {
	lvk_submit_info info;
	memset(&info, 0, sizeof info);
	info.sType = ST_SUBMIT_INFO;
	info.commandBufferCount = 1;
	info.pCommandBuffers = &cmd;
	return c->queueSubmit(queue, 1, &info, fence);
}

void lora_vk_cmd_copy(lora_vk_cmds *c, void *cmd, uint64_t src, uint64_t dst, uint64_t src_off, uint64_t dst_off, uint64_t size) {
	lvk_buffer_copy r;
	r.srcOffset = src_off;
	r.dstOffset = dst_off;
	r.size = size;
	c->copyBuffer(cmd, src, dst, 1, &r);
}

typedef void (*PFN_queueFamilies)(void *phys, uint32_t *count, lvk_queue_family_properties *props);
typedef int (*PFN_enumExtensions)(void *phys, const char *layer, uint32_t *count, lvk_extension_properties *props);

uint32_t lora_vk_queue_families(void *gipa_, void *instance, void *phys, uint32_t *flags, uint32_t *ts_bits, uint32_t max) {
	PFN_gipa gipa = (PFN_gipa)gipa_;
	PFN_queueFamilies get = (PFN_queueFamilies)gipa(instance, "vkGetPhysicalDeviceQueueFamilyProperties");
	if (!get) return 0;
	uint32_t n = 0;
	get(phys, &n, NULL);
	if (n == 0) return 0;
	lvk_queue_family_properties *props = calloc(n, sizeof *props);
	if (!props) return 0;
	get(phys, &n, props);
	for (uint32_t i = 0; i < n && i < max; i++) {
		flags[i] = props[i].queueFlags;
		ts_bits[i] = props[i].timestampValidBits;
	}
	free(props);
	return n;
}

int lora_vk_has_extension(void *gipa_, void *instance, void *phys, const char *name) {
	PFN_gipa gipa = (PFN_gipa)gipa_;
	PFN_enumExtensions get = (PFN_enumExtensions)gipa(instance, "vkEnumerateDeviceExtensionProperties");
	if (!get) return 0;
	uint32_t n = 0;
	if (get(phys, NULL, &n, NULL) != 0 || n == 0) return 0;
	lvk_extension_properties *props = calloc(n, sizeof *props);
	if (!props) return 0;
	int found = 0;
	if (get(phys, NULL, &n, props) >= 0) {
		for (uint32_t i = 0; i < n && !found; i++) {
			props[i].extensionName[255] = 0;
			found = strcmp(props[i].extensionName, name) == 0;
		}
	}
	free(props);
	return found;
}
