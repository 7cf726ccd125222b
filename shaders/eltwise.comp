#version 450
// Elementwise kernels, one invocation per element; the operation is chosen by
// a define: FILL, COPY, ADD_SCALED, MUL, ADD_BIAS, SUM_ROWS, SWIGLU,
// SWIGLU_BWD, DROPOUT, ADAMW.
#include "common.glsl"

layout(push_constant) uniform Push {
	uint n;      // elements (SUM_ROWS: columns)
	uint u0, u1; // FILL: bits; COPY: dst, src offsets; ADD_BIAS/SUM_ROWS: cols, rows; DROPOUT: stream, base index
	float f0;    // ADD_SCALED: s; DROPOUT: p; 
	float f1;    // DROPOUT: 1/(1-p)
	uint accumulate;
} pc;

#if defined(FILL)
layout(binding = 0) writeonly buffer OBuf { uint o[]; };
void main() {
	uint i = gid();
	if (i < pc.n) o[i] = pc.u0;
}
#elif defined(COPY)
layout(binding = 0) writeonly buffer OBuf { uint o[]; };
layout(binding = 1) readonly buffer XBuf { uint x[]; };
void main() {
	uint i = gid();
	if (i < pc.n) o[pc.u0 + i] = x[pc.u1 + i];
}
#elif defined(ADD_SCALED)
layout(binding = 0) buffer OBuf { float o[]; };
layout(binding = 1) readonly buffer XBuf { float x[]; };
void main() {
	uint i = gid();
	if (i < pc.n) o[i] += pc.f0 * x[i];
}
#elif defined(MUL)
layout(binding = 0) writeonly buffer OBuf { float o[]; };
layout(binding = 1) readonly buffer ABuf { float a[]; };
layout(binding = 2) readonly buffer BBuf { float b[]; };
void main() {
	uint i = gid();
	if (i < pc.n) o[i] = a[i] * b[i];
}
#elif defined(ADD_BIAS)
layout(binding = 0) buffer OBuf { float o[]; };
layout(binding = 1) readonly buffer BBuf { float b[]; };
void main() {
	uint i = gid();
	if (i < pc.n) o[i] += b[i % pc.u0];
}
#elif defined(SUM_ROWS)
layout(binding = 0) buffer OBuf { float o[]; };
layout(binding = 1) readonly buffer XBuf { float x[]; };
void main() {
	uint c = gid();
	if (c >= pc.n) return;
	float s = 0.0;
	for (uint r = 0; r < pc.u1; r++) s += x[r * pc.u0 + c];
	o[c] = pc.accumulate != 0u ? o[c] + s : s;
}
#elif defined(SWIGLU)
layout(binding = 0) writeonly buffer OBuf { float o[]; };
layout(binding = 1) readonly buffer GBuf { float g[]; };
layout(binding = 2) readonly buffer UBuf { float u[]; };
void main() {
	uint i = gid();
	if (i >= pc.n) return;
	float x = g[i];
	o[i] = x / (1.0 + exp(-x)) * u[i];
}
#elif defined(SWIGLU_BWD)
layout(binding = 0) writeonly buffer DgBuf { float dg[]; };
layout(binding = 1) writeonly buffer DuBuf { float du[]; };
layout(binding = 2) readonly buffer DoBuf { float dout[]; };
layout(binding = 3) readonly buffer GBuf { float g[]; };
layout(binding = 4) readonly buffer UBuf { float u[]; };
void main() {
	uint i = gid();
	if (i >= pc.n) return;
	float x = g[i], d = dout[i];
	float s = 1.0 / (1.0 + exp(-x));
	dg[i] = d * u[i] * s * (1.0 + x * (1.0 - s));
	du[i] = d * x * s;
}
#elif defined(DROPOUT)
#include "rng.glsl"
layout(binding = 0) writeonly buffer OBuf { float o[]; };
layout(binding = 1) readonly buffer XBuf { float x[]; };
layout(binding = 2) readonly buffer SBuf { int seed[]; };
void main() {
	uint i = gid();
	if (i >= pc.n) return;
	bool keep = uniform01(uint(seed[0]), pc.u0, pc.u1 + i) >= pc.f0;
	o[i] = keep ? x[i] * pc.f1 : 0.0;
}
#elif defined(ADAMW)
layout(binding = 0) buffer PBuf { float param[]; };
layout(binding = 1) readonly buffer GBuf { float grad[]; };
layout(binding = 2) buffer MBuf { float m[]; };
layout(binding = 3) buffer VBuf { float v[]; };
layout(binding = 4) readonly buffer SBuf { float sc[]; };
layout(binding = 5) readonly buffer QBuf { float sumsq[]; };
void main() {
	uint i = gid();
	if (i >= pc.n) return;
	float lr = sc[0], b1 = sc[1], b2 = sc[2], eps = sc[3], wd = sc[4], bc1 = sc[5], bc2 = sc[6], maxn = sc[7];
	float clip = 1.0;
	if (maxn > 0.0) clip = min(1.0, maxn / (sqrt(sumsq[0]) + 1e-6));
	float g = grad[i] * clip;
	float p = param[i];
	p -= lr * wd * p;
	float mi = b1 * m[i] + (1.0 - b1) * g;
	float vi = b2 * v[i] + (1.0 - b2) * g * g;
	p -= lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
	param[i] = p;
	m[i] = mi;
	v[i] = vi;
}
#else
#error "define the operation"
#endif
