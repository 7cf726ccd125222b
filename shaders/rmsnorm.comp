#version 450
// RMSNorm over rows, one workgroup per row, fixed-order tree reductions.
//   forward:  out = x * s * w, s = 1/sqrt(mean(x^2) + eps)
//   BACKWARD: dx (+)= s*w*dy - s^3/D * x * sum(dy*w*x)
#include "common.glsl"
#include "reduce.glsl"

#ifdef BACKWARD
layout(binding = 0) buffer DxBuf { float dx[]; };
layout(binding = 1) readonly buffer DyBuf { float dy[]; };
layout(binding = 2) readonly buffer XBuf { float x[]; };
layout(binding = 3) readonly buffer WBuf { float w[]; };
#else
layout(binding = 0) writeonly buffer OutBuf { float outv[]; };
layout(binding = 1) readonly buffer XBuf { float x[]; };
layout(binding = 2) readonly buffer WBuf { float w[]; };
#endif

layout(push_constant) uniform Push {
	uint rows, dim;
	float eps;
	uint accumulate;
} pc;

void main() {
	uint r = linear_group();
	if (r >= pc.rows) return;
	uint t = gl_LocalInvocationID.x, base = r * pc.dim;
	float ss = 0.0;
	for (uint i = t; i < pc.dim; i += gl_WorkGroupSize.x) ss += x[base + i] * x[base + i];
	ss = wg_sum(ss);
	float s = 1.0 / sqrt(ss / float(pc.dim) + pc.eps);
#ifdef BACKWARD
	float g = 0.0;
	for (uint i = t; i < pc.dim; i += gl_WorkGroupSize.x) g += dy[base + i] * w[i] * x[base + i];
	g = wg_sum(g);
	float c = s * s * s / float(pc.dim) * g;
	for (uint i = t; i < pc.dim; i += gl_WorkGroupSize.x) {
		float v = s * w[i] * dy[base + i] - c * x[base + i];
		dx[base + i] = pc.accumulate != 0u ? dx[base + i] + v : v;
	}
#else
	for (uint i = t; i < pc.dim; i += gl_WorkGroupSize.x) outv[base + i] = x[base + i] * s * w[i];
#endif
}
