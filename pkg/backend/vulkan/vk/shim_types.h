// Layouts of the Vulkan structs the shim fills in itself (instead of through
// the binding, whose slice conversions free their C memory from finalizers
// that may run during the call). Field for field as in vulkan_core.h; a test
// checks sizes and offsets against the system headers when they exist.
#ifndef LORA_VK_SHIM_TYPES_H
#define LORA_VK_SHIM_TYPES_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t queueFamilyIndex;
	uint32_t queueCount;
	const float *pQueuePriorities;
} lvk_device_queue_create_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t queueCreateInfoCount;
	const lvk_device_queue_create_info *pQueueCreateInfos;
	uint32_t enabledLayerCount;
	const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount;
	const char *const *ppEnabledExtensionNames;
	const void *pEnabledFeatures;
} lvk_device_create_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t waitSemaphoreCount;
	const uint64_t *pWaitSemaphores;
	const uint32_t *pWaitDstStageMask;
	uint32_t commandBufferCount;
	void *const *pCommandBuffers;
	uint32_t signalSemaphoreCount;
	const uint64_t *pSignalSemaphores;
} lvk_submit_info;

typedef struct {
	uint64_t srcOffset, dstOffset, size;
} lvk_buffer_copy;

typedef struct {
	uint64_t buffer, offset, range;
} lvk_descriptor_buffer_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint64_t dstSet;
	uint32_t dstBinding;
	uint32_t dstArrayElement;
	uint32_t descriptorCount;
	uint32_t descriptorType;
	const void *pImageInfo;
	const lvk_descriptor_buffer_info *pBufferInfo;
	const uint64_t *pTexelBufferView;
} lvk_write_descriptor_set;

typedef struct {
	uint32_t constantID;
	uint32_t offset;
	size_t size;
} lvk_specialization_map_entry;

typedef struct {
	uint32_t mapEntryCount;
	const lvk_specialization_map_entry *pMapEntries;
	size_t dataSize;
	const void *pData;
} lvk_specialization_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t stage;
	uint64_t module;
	const char *pName;
	const lvk_specialization_info *pSpecializationInfo;
} lvk_pipeline_shader_stage_create_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	lvk_pipeline_shader_stage_create_info stage;
	uint64_t layout;
	uint64_t basePipelineHandle;
	int32_t basePipelineIndex;
} lvk_compute_pipeline_create_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	size_t codeSize;
	const uint32_t *pCode;
} lvk_shader_module_create_info;

typedef struct {
	uint32_t binding;
	uint32_t descriptorType;
	uint32_t descriptorCount;
	uint32_t stageFlags;
	const uint64_t *pImmutableSamplers;
} lvk_descriptor_set_layout_binding;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t bindingCount;
	const lvk_descriptor_set_layout_binding *pBindings;
} lvk_descriptor_set_layout_create_info;

typedef struct {
	uint32_t stageFlags, offset, size;
} lvk_push_constant_range;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t setLayoutCount;
	const uint64_t *pSetLayouts;
	uint32_t pushConstantRangeCount;
	const lvk_push_constant_range *pPushConstantRanges;
} lvk_pipeline_layout_create_info;

typedef struct {
	uint32_t type, descriptorCount;
} lvk_descriptor_pool_size;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint32_t flags;
	uint32_t maxSets;
	uint32_t poolSizeCount;
	const lvk_descriptor_pool_size *pPoolSizes;
} lvk_descriptor_pool_create_info;

typedef struct {
	uint32_t sType;
	const void *pNext;
	uint64_t descriptorPool;
	uint32_t descriptorSetCount;
	const uint64_t *pSetLayouts;
} lvk_descriptor_set_allocate_info;

typedef struct {
	uint32_t queueFlags, queueCount, timestampValidBits;
	uint32_t minImageTransferGranularity[3];
} lvk_queue_family_properties;

typedef struct {
	char extensionName[256];
	uint32_t specVersion;
} lvk_extension_properties;

#endif
