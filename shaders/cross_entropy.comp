#version 450
// Cross-entropy with a fused log-softmax, one workgroup per row:
// loss = logsumexp(logits) - logits[label]; dlogits = (softmax - onehot)*scale.
// Labels outside [0, vocab) (such as -100) give zero loss and gradient.
#include "common.glsl"
#include "reduce.glsl"

layout(binding = 0) writeonly buffer LossBuf { float loss[]; };
layout(binding = 1) writeonly buffer DlBuf { float dl[]; };
layout(binding = 2) readonly buffer LBuf { float logits[]; };
layout(binding = 3) readonly buffer YBuf { int labels[]; };
layout(binding = 4) readonly buffer SBuf { float scale[]; };

layout(push_constant) uniform Push {
	uint rows, vocab, has_dl;
} pc;

void main() {
	uint r = linear_group();
	if (r >= pc.rows) return;
	uint t = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, base = r * pc.vocab;
	int label = labels[r];
	if (label < 0 || uint(label) >= pc.vocab) {
		if (t == 0u) loss[r] = 0.0;
		if (pc.has_dl != 0u)
			for (uint c = t; c < pc.vocab; c += W) dl[base + c] = 0.0;
		return;
	}
	float mx = -1.0 / 0.0;
	for (uint c = t; c < pc.vocab; c += W) mx = max(mx, logits[base + c]);
	mx = wg_max(mx);
	float s = 0.0;
	for (uint c = t; c < pc.vocab; c += W) s += exp(logits[base + c] - mx);
	s = wg_sum(s);
	float lse = mx + log(s);
	if (t == 0u) loss[r] = lse - logits[base + uint(label)];
	if (pc.has_dl != 0u) {
		float sc = scale[0];
		for (uint c = t; c < pc.vocab; c += W) {
			float pr = exp(logits[base + c] - lse);
			if (c == uint(label)) pr -= 1.0;
			dl[base + c] = pr * sc;
		}
	}
}
