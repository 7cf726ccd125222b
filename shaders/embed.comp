#version 450
// Embedding lookup: out[i, c] = dequant(table[ids[i], c]) for ids in the table
// row range [r0, r1) bound to this launch (large tables are split into
// several launches). Ids outside the table give zeros (in the first launch).
#include "common.glsl"

layout(binding = 0) buffer OutBuf { float outv[]; };
layout(binding = 1) readonly buffer WBuf { uint w[]; };
layout(binding = 2) readonly buffer IdBuf { int ids[]; };

layout(push_constant) uniform Push {
	uint n;    // elements of out
	uint dim;  // table columns
	uint r0, r1, vocab;
	uint wbase, wrow;
	uint first;
} pc;

#include "dequant.glsl"

void main() {
	uint e = gid();
	if (e >= pc.n) return;
	uint i = e / pc.dim, c = e % pc.dim;
	int id = ids[i];
	if (id < 0 || uint(id) >= pc.vocab) {
		if (pc.first != 0u) outv[e] = 0.0;
		return;
	}
	if (uint(id) < pc.r0 || uint(id) >= pc.r1) return;
	outv[e] = wload(uint(id) - pc.r0, c);
}
