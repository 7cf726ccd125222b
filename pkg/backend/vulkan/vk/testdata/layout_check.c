// Compiled by TestShimLayouts against the system's Vulkan headers.
#include <vulkan/vulkan.h>
#include "shim_types.h"
#define SAME(a, b) _Static_assert(sizeof(a) == sizeof(b), #a " size")
#define AT(a, b, fa, fb) _Static_assert(offsetof(a, fa) == offsetof(b, fb), #a "." #fa)
SAME(lvk_device_queue_create_info, VkDeviceQueueCreateInfo);
AT(lvk_device_queue_create_info, VkDeviceQueueCreateInfo, pQueuePriorities, pQueuePriorities);
SAME(lvk_device_create_info, VkDeviceCreateInfo);
AT(lvk_device_create_info, VkDeviceCreateInfo, pQueueCreateInfos, pQueueCreateInfos);
AT(lvk_device_create_info, VkDeviceCreateInfo, pEnabledFeatures, pEnabledFeatures);
SAME(lvk_submit_info, VkSubmitInfo);
AT(lvk_submit_info, VkSubmitInfo, pCommandBuffers, pCommandBuffers);
AT(lvk_submit_info, VkSubmitInfo, pSignalSemaphores, pSignalSemaphores);
SAME(lvk_buffer_copy, VkBufferCopy);
SAME(lvk_descriptor_buffer_info, VkDescriptorBufferInfo);
SAME(lvk_write_descriptor_set, VkWriteDescriptorSet);
AT(lvk_write_descriptor_set, VkWriteDescriptorSet, dstSet, dstSet);
AT(lvk_write_descriptor_set, VkWriteDescriptorSet, descriptorType, descriptorType);
AT(lvk_write_descriptor_set, VkWriteDescriptorSet, pBufferInfo, pBufferInfo);
SAME(lvk_specialization_map_entry, VkSpecializationMapEntry);
SAME(lvk_specialization_info, VkSpecializationInfo);
AT(lvk_specialization_info, VkSpecializationInfo, pData, pData);
SAME(lvk_pipeline_shader_stage_create_info, VkPipelineShaderStageCreateInfo);
AT(lvk_pipeline_shader_stage_create_info, VkPipelineShaderStageCreateInfo, module, module);
AT(lvk_pipeline_shader_stage_create_info, VkPipelineShaderStageCreateInfo, pSpecializationInfo, pSpecializationInfo);
SAME(lvk_compute_pipeline_create_info, VkComputePipelineCreateInfo);
AT(lvk_compute_pipeline_create_info, VkComputePipelineCreateInfo, layout, layout);
AT(lvk_compute_pipeline_create_info, VkComputePipelineCreateInfo, basePipelineIndex, basePipelineIndex);
SAME(lvk_shader_module_create_info, VkShaderModuleCreateInfo);
AT(lvk_shader_module_create_info, VkShaderModuleCreateInfo, pCode, pCode);
SAME(lvk_descriptor_set_layout_binding, VkDescriptorSetLayoutBinding);
SAME(lvk_descriptor_set_layout_create_info, VkDescriptorSetLayoutCreateInfo);
AT(lvk_descriptor_set_layout_create_info, VkDescriptorSetLayoutCreateInfo, pBindings, pBindings);
SAME(lvk_push_constant_range, VkPushConstantRange);
SAME(lvk_pipeline_layout_create_info, VkPipelineLayoutCreateInfo);
AT(lvk_pipeline_layout_create_info, VkPipelineLayoutCreateInfo, pPushConstantRanges, pPushConstantRanges);
SAME(lvk_descriptor_pool_size, VkDescriptorPoolSize);
SAME(lvk_descriptor_pool_create_info, VkDescriptorPoolCreateInfo);
AT(lvk_descriptor_pool_create_info, VkDescriptorPoolCreateInfo, pPoolSizes, pPoolSizes);
SAME(lvk_descriptor_set_allocate_info, VkDescriptorSetAllocateInfo);
AT(lvk_descriptor_set_allocate_info, VkDescriptorSetAllocateInfo, pSetLayouts, pSetLayouts);
SAME(lvk_queue_family_properties, VkQueueFamilyProperties);
AT(lvk_queue_family_properties, VkQueueFamilyProperties, timestampValidBits, timestampValidBits);
SAME(lvk_extension_properties, VkExtensionProperties);
_Static_assert(VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO == 2 && VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO == 3 &&
	VK_STRUCTURE_TYPE_SUBMIT_INFO == 4 && VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO == 16 &&
	VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO == 18 && VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO == 29 &&
	VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO == 30 && VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO == 32 &&
	VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO == 33 && VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO == 34 &&
	VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET == 35 && VK_STRUCTURE_TYPE_MEMORY_BARRIER == 46 &&
	VK_DESCRIPTOR_TYPE_STORAGE_BUFFER == 7, "enum values");
int main(void) { return 0; }
