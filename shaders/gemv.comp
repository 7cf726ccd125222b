#version 450
// Matrix-vector path of MatMul for a few rows (token-by-token decoding):
// out[m, c_off + n] (+)= sum_k x[m, k] * W[n, k]. Specialization constant
// SERIAL = 0: one workgroup per (n, m), invocations striding over k, then a
// fixed-order tree reduction (GPUs); SERIAL = 1: one invocation per (n, m)
// summing k in order, without barriers (CPU devices).
#include "common.glsl"
#include "reduce.glsl"

layout(binding = 0) readonly buffer ABuf { float a[]; };
layout(binding = 1) readonly buffer WBuf { uint w[]; };
layout(binding = 2) buffer CBuf { float c[]; };

layout(push_constant) uniform Push {
	uint M, N, K;
	uint lda, ldc;
	uint a_off, c_off;
	uint wbase, wrow;
	uint accumulate;
} pc;

#include "dequant.glsl"

layout(constant_id = 1) const uint SERIAL = 0;

void main() {
	if (SERIAL != 0u) {
		uint e = gid();
		if (e >= pc.M * pc.N) return;
		uint n = e % pc.N, m = e / pc.N;
		float s = 0.0;
		for (uint k = 0; k < pc.K; k++) s += a[pc.a_off + m * pc.lda + k] * wload(n, k);
		uint idx = pc.c_off + m * pc.ldc + n;
		c[idx] = pc.accumulate != 0u ? c[idx] + s : s;
		return;
	}
	uint g = linear_group();
	uint n = g % pc.N, m = g / pc.N;
	if (m >= pc.M) return;
	float s = 0.0;
	for (uint k = gl_LocalInvocationID.x; k < pc.K; k += gl_WorkGroupSize.x) s += a[pc.a_off + m * pc.lda + k] * wload(n, k);
	s = wg_sum(s);
	if (gl_LocalInvocationID.x == 0u) {
		uint idx = pc.c_off + m * pc.ldc + n;
		c[idx] = pc.accumulate != 0u ? c[idx] + s : s;
	}
}
