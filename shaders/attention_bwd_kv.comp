#version 450
// Attention backward, part 2: one invocation per (batch, kv head, key j, dim d):
// dK_j = sum over the group's heads, then queries i >= j, of dS[i, j] Q_i;
// dV_j likewise of P[i, j] dO_i. Fixed summation order.
#include "common.glsl"

layout(binding = 0) writeonly buffer DkBuf { float dk[]; };
layout(binding = 1) writeonly buffer DvBuf { float dv[]; };
layout(binding = 2) readonly buffer DsBuf { float ds[]; };
layout(binding = 3) readonly buffer PBuf { float p[]; };
layout(binding = 4) readonly buffer QBuf { float q[]; };
layout(binding = 5) readonly buffer DoBuf { float dout[]; };

layout(push_constant) uniform Push {
	uint batch, T, heads, kvheads, head_dim;
} pc;

void main() {
	uint e = gid();
	uint D = pc.head_dim, kvw = pc.kvheads * D;
	if (e >= pc.batch * pc.T * kvw) return;
	uint d = e % D, kh = (e / D) % pc.kvheads, j = (e / kvw) % pc.T, b = e / (kvw * pc.T);
	uint group = pc.heads / pc.kvheads;
	float gk = 0.0, gv = 0.0;
	for (uint h = kh * group; h < (kh + 1u) * group; h++) {
		for (uint i = j; i < pc.T; i++) {
			uint pidx = ((b * pc.heads + h) * pc.T + i) * pc.T + j;
			uint qidx = (b * pc.T + i) * pc.heads * D + h * D + d;
			gk += ds[pidx] * q[qidx];
			gv += p[pidx] * dout[qidx];
		}
	}
	dk[e] = gk;
	dv[e] = gv;
}
