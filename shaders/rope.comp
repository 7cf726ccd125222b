#version 450
// Rotary position embedding in place. One invocation per (row, head, pair).
// cos/sin come from a table computed on the host in float64 for positions
// below tab_len; later positions compute the angle here in float32.
#include "common.glsl"

layout(binding = 0) buffer XBuf { float x[]; };
layout(binding = 1) readonly buffer PosBuf { int pos[]; };
layout(binding = 2) readonly buffer TabBuf { float tab[]; }; // [tab_len, half, 2] (cos, sin)

layout(push_constant) uniform Push {
	uint n;     // rows * heads * half
	uint heads, head_dim, half_dims;
	uint npos;
	float theta;
	uint neox, inverse;
	uint tab_len;
} pc;

void main() {
	uint e = gid();
	if (e >= pc.n) return;
	uint i = e % pc.half_dims;
	uint h = (e / pc.half_dims) % pc.heads;
	uint r = e / (pc.half_dims * pc.heads);
	int p = pos[r % pc.npos];
	float cs, sn;
	if (p >= 0 && uint(p) < pc.tab_len) {
		uint t = (uint(p) * pc.half_dims + i) * 2u;
		cs = tab[t];
		sn = tab[t + 1u];
	} else {
		float ang = float(p) * pow(pc.theta, -2.0 * float(i) / float(2u * pc.half_dims));
		cs = cos(ang);
		sn = sin(ang);
	}
	if (pc.inverse != 0u) sn = -sn;
	uint base = (r * pc.heads + h) * pc.head_dim;
	uint a = pc.neox != 0u ? base + i : base + 2u * i;
	uint b = pc.neox != 0u ? base + i + pc.half_dims : base + 2u * i + 1u;
	float x0 = x[a], x1 = x[b];
	x[a] = x0 * cs - x1 * sn;
	x[b] = x0 * sn + x1 * cs;
}
