#version 450
// Attention backward, part 1: one workgroup per (batch, head, query i) computes
// dS[i, j] = P[i, j] * (dO_i.V_j - sum_j' P[i, j'] dO_i.V_j') * scale into ds,
// then dQ_i = sum_j dS[i, j] K_j. Requires QLen == KVLen == KVCap (T).
// SERIAL = 1 (CPU devices): one invocation per row instead, no barriers.
#include "common.glsl"
#include "reduce.glsl"

layout(binding = 0) writeonly buffer DqBuf { float dq[]; };
layout(binding = 1) coherent buffer DsBuf { float ds[]; };
layout(binding = 2) readonly buffer DoBuf { float dout[]; };
layout(binding = 3) readonly buffer PBuf { float p[]; };
layout(binding = 4) readonly buffer KBuf { float k[]; };
layout(binding = 5) readonly buffer VBuf { float v[]; };

layout(push_constant) uniform Push {
	uint batch, T, heads, kvheads, head_dim;
	float scale;
} pc;

layout(constant_id = 1) const uint SERIAL = 0;

void main() {
	uint row = SERIAL != 0u ? gid() : linear_group(); // (b*heads + h)*T + i
	if (row >= pc.batch * pc.heads * pc.T) return;
	uint t = SERIAL != 0u ? 0u : gl_LocalInvocationID.x, W = SERIAL != 0u ? 1u : gl_WorkGroupSize.x;
	uint i = row % pc.T, h = (row / pc.T) % pc.heads, b = row / (pc.T * pc.heads);
	uint kh = h / (pc.heads / pc.kvheads), D = pc.head_dim;
	uint qbase = (b * pc.T + i) * pc.heads * D + h * D;
	uint kvw = pc.kvheads * D;
	uint prow = row * pc.T;

	float rs = 0.0;
	for (uint j = t; j < pc.T; j += W) {
		float dp = 0.0;
		if (j <= i) {
			uint vbase = (b * pc.T + j) * kvw + kh * D;
			for (uint d = 0; d < D; d++) dp += dout[qbase + d] * v[vbase + d];
		}
		ds[prow + j] = dp;
		rs += p[prow + j] * dp;
	}
	if (SERIAL == 0u) rs = wg_sum(rs);
	for (uint j = t; j < pc.T; j += W) ds[prow + j] = j <= i ? p[prow + j] * (ds[prow + j] - rs) * pc.scale : 0.0;
	if (SERIAL == 0u) {
		memoryBarrierBuffer();
		barrier();
	}
	for (uint d = t; d < D; d += W) {
		float acc = 0.0;
		for (uint j = 0; j <= i; j++) acc += ds[prow + j] * k[(b * pc.T + j) * kvw + kh * D + d];
		dq[qbase + d] = acc;
	}
}
