// Shared by every lora kernel: 1-D workgroups whose size is specialization
// constant 0, and 2-D grids (x * y groups) so that large launches stay within
// maxComputeWorkGroupCount.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

// linear_group numbers the workgroups of a 2-D grid row by row.
uint linear_group() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

// gid is the global index of this invocation in a 1-D launch.
uint gid() { return linear_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; }
