#version 450
// Grouped-query causal attention with a materialised softmax. Probabilities
// are written to p (the caller's probs or a scratch buffer) in
// [Batch, Heads, QLen, KVLen] layout. Specialization constant SERIAL = 0: one
// workgroup per (batch, head, query) with tree reductions (GPUs); SERIAL = 1:
// one invocation per (batch, head, query), no barriers (CPU devices).
#include "common.glsl"
#include "reduce.glsl"

layout(binding = 0) writeonly buffer OutBuf { float outv[]; };
layout(binding = 1) coherent buffer PBuf { float p[]; };
layout(binding = 2) readonly buffer QBuf { float q[]; };
layout(binding = 3) readonly buffer KBuf { float k[]; };
layout(binding = 4) readonly buffer VBuf { float v[]; };

layout(push_constant) uniform Push {
	uint batch, qlen, kvlen, kvcap;
	uint heads, kvheads, head_dim;
	uint qoffset;
	float scale;
} pc;

layout(constant_id = 1) const uint SERIAL = 0;

void main() {
	uint row = SERIAL != 0u ? gid() : linear_group(); // (b*heads + h)*qlen + i
	if (row >= pc.batch * pc.heads * pc.qlen) return;
	uint t = SERIAL != 0u ? 0u : gl_LocalInvocationID.x, W = SERIAL != 0u ? 1u : gl_WorkGroupSize.x;
	uint i = row % pc.qlen, h = (row / pc.qlen) % pc.heads, b = row / (pc.qlen * pc.heads);
	uint kh = h / (pc.heads / pc.kvheads), D = pc.head_dim;
	uint qbase = (b * pc.qlen + i) * pc.heads * D + h * D;
	uint last = min(i + pc.qoffset, pc.kvlen - 1u);
	uint prow = row * pc.kvlen;

	float mx = -1.0 / 0.0;
	for (uint j = t; j <= last; j += W) {
		uint kbase = (b * pc.kvcap + j) * pc.kvheads * D + kh * D;
		float s = 0.0;
		for (uint d = 0; d < D; d++) s += q[qbase + d] * k[kbase + d];
		s *= pc.scale;
		p[prow + j] = s;
		mx = max(mx, s);
	}
	if (SERIAL == 0u) mx = wg_max(mx);
	float sum = 0.0;
	for (uint j = t; j < pc.kvlen; j += W) {
		float e = j <= last ? exp(p[prow + j] - mx) : 0.0;
		p[prow + j] = e;
		sum += e;
	}
	if (SERIAL == 0u) sum = wg_sum(sum);
	for (uint j = t; j < pc.kvlen; j += W) p[prow + j] = p[prow + j] / sum;
	if (SERIAL == 0u) {
		memoryBarrierBuffer();
		barrier();
	}
	for (uint d = t; d < D; d += W) {
		float acc = 0.0;
		for (uint j = 0; j <= last; j++) acc += p[prow + j] * v[(b * pc.kvcap + j) * pc.kvheads * D + kh * D + d];
		outv[qbase + d] = acc;
	}
}
