#version 450
// Deterministic sum of squares in two passes.
//   PARTIAL: workgroup g writes sum(x[g*chunk .. (g+1)*chunk)^2) to part[off + g]
//   FINAL:   one workgroup sums part[0 .. n) in a fixed order into out[0]
#include "common.glsl"
#include "reduce.glsl"

layout(push_constant) uniform Push {
	uint n, chunk, off, accumulate;
} pc;

#ifdef PARTIAL
layout(binding = 0) writeonly buffer PBuf { float part[]; };
layout(binding = 1) readonly buffer XBuf { float x[]; };
void main() {
	uint g = linear_group(), t = gl_LocalInvocationID.x;
	uint lo = g * pc.chunk, hi = min(lo + pc.chunk, pc.n);
	float s = 0.0;
	for (uint i = lo + t; i < hi; i += gl_WorkGroupSize.x) s += x[i] * x[i];
	s = wg_sum(s);
	if (t == 0u) part[pc.off + g] = s;
}
#else
layout(binding = 0) buffer OBuf { float outv[]; };
layout(binding = 1) readonly buffer PBuf { float part[]; };
void main() {
	uint t = gl_LocalInvocationID.x;
	float s = 0.0;
	for (uint i = t; i < pc.n; i += gl_WorkGroupSize.x) s += part[i];
	s = wg_sum(s);
	if (t == 0u) outv[0] = pc.accumulate != 0u ? outv[0] + s : s;
}
#endif
