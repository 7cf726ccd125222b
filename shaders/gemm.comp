#version 450
// Tiled GEMM: C[m, n] (+)= sum_k A(m, k) * B(k, n), with A f32 activations and
// B a weight of any storage type, dequantized while the tile is loaded.
//   A_T undefined: A(m, k) = a[a_off + m*lda + k]   (x or dy, row-major)
//   A_T defined:   A(m, k) = a[a_off + k*lda + m]   (dy transposed, for dW)
//   B_T defined:   B(k, n) = W[n, k]                (x · Wᵀ)
//   B_T undefined: B(k, n) = W[k, n]                (dy · W, and dyᵀ · x)
// Tile sizes are specialization constants; the k loop runs in a fixed order,
// so results are bit-identical run to run. SERIAL = 1 (CPU devices): each
// invocation computes its TM x TN outputs straight from memory, without
// shared tiles or barriers (the CPU's caches do the reuse).
#include "common.glsl"

layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint SERIAL = 0;

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

shared float As[BK * BM];
shared float Bs[BK * BN];

float aload(uint m, uint k) {
#ifdef A_T
	return a[pc.a_off + k * pc.lda + m];
#else
	return a[pc.a_off + m * pc.lda + k];
#endif
}

float bload(uint k, uint n) {
#ifdef B_T
	return wload(n, k);
#else
	return wload(k, n);
#endif
}

void serial_main() {
	uint e = gid();
	uint nb = (pc.N + TN - 1) / TN;
	uint m0 = (e / nb) * TM, n0 = (e % nb) * TN;
	if (m0 >= pc.M) return;
	float acc[TM * TN];
	for (uint i = 0; i < TM * TN; i++) acc[i] = 0.0;
	for (uint k = 0; k < pc.K; k++) {
		float av[TM], bv[TN];
		for (uint i = 0; i < TM; i++) av[i] = m0 + i < pc.M ? aload(m0 + i, k) : 0.0;
		for (uint j = 0; j < TN; j++) bv[j] = n0 + j < pc.N ? bload(k, n0 + j) : 0.0;
		for (uint i = 0; i < TM; i++)
			for (uint j = 0; j < TN; j++) acc[i * TN + j] += av[i] * bv[j];
	}
	for (uint i = 0; i < TM; i++) {
		uint m = m0 + i;
		if (m >= pc.M) continue;
		for (uint j = 0; j < TN; j++) {
			uint n = n0 + j;
			if (n >= pc.N) continue;
			uint idx = pc.c_off + m * pc.ldc + n;
			float v = acc[i * TN + j];
			c[idx] = pc.accumulate != 0u ? c[idx] + v : v;
		}
	}
}

void main() {
	if (SERIAL != 0u) {
		serial_main();
		return;
	}
	const uint tid = gl_LocalInvocationID.x;
	const uint TX = BN / TN; // threads along n
	const uint TY = BM / TM; // threads along m
	const uint tx = tid % TX;
	const uint ty = tid / TX;
	const uint m0 = gl_WorkGroupID.y * BM;
	const uint n0 = gl_WorkGroupID.x * BN;
	const uint nthreads = TX * TY;

	float acc[TM * TN];
	for (uint i = 0; i < TM * TN; i++) acc[i] = 0.0;

	for (uint k0 = 0; k0 < pc.K; k0 += BK) {
		for (uint i = tid; i < BM * BK; i += nthreads) {
#ifdef A_T
			uint kk = i / BM, mm = i % BM;
#else
			uint mm = i / BK, kk = i % BK;
#endif
			uint m = m0 + mm, k = k0 + kk;
			float v = 0.0;
			if (m < pc.M && k < pc.K) {
#ifdef A_T
				v = a[pc.a_off + k * pc.lda + m];
#else
				v = a[pc.a_off + m * pc.lda + k];
#endif
			}
			As[kk * BM + mm] = v;
		}
		for (uint i = tid; i < BN * BK; i += nthreads) {
#ifdef B_T
			uint nn = i / BK, kk = i % BK;
#else
			uint kk = i / BN, nn = i % BN;
#endif
			uint n = n0 + nn, k = k0 + kk;
			float v = 0.0;
			if (n < pc.N && k < pc.K) {
#ifdef B_T
				v = wload(n, k);
#else
				v = wload(k, n);
#endif
			}
			Bs[kk * BN + nn] = v;
		}
		barrier();
		for (uint kk = 0; kk < BK; kk++) {
			float bv[TN];
			for (uint j = 0; j < TN; j++) bv[j] = Bs[kk * BN + tx + j * TX];
			for (uint i = 0; i < TM; i++) {
				float av = As[kk * BM + ty + i * TY];
				for (uint j = 0; j < TN; j++) acc[i * TN + j] += av * bv[j];
			}
		}
		barrier();
	}

	for (uint i = 0; i < TM; i++) {
		uint m = m0 + ty + i * TY;
		if (m >= pc.M) continue;
		for (uint j = 0; j < TN; j++) {
			uint n = n0 + tx + j * TX;
			if (n >= pc.N) continue;
			uint idx = pc.c_off + m * pc.ldc + n;
			float v = acc[i * TN + j];
			c[idx] = pc.accumulate != 0u ? c[idx] + v : v;
		}
	}
}
