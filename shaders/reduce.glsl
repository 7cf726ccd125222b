// Workgroup reductions in a fixed tree order (deterministic, no atomics).
// Needs common.glsl; uses a shared array sized by the workgroup size, which
// must be a power of two.
shared float red[gl_WorkGroupSize.x];

float wg_sum(float v) {
	uint t = gl_LocalInvocationID.x;
	barrier();
	red[t] = v;
	barrier();
	for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
		if (t < s) red[t] += red[t + s];
		barrier();
	}
	return red[0];
}

float wg_max(float v) {
	uint t = gl_LocalInvocationID.x;
	barrier();
	red[t] = v;
	barrier();
	for (uint s = gl_WorkGroupSize.x / 2; s > 0; s >>= 1) {
		if (t < s) red[t] = max(red[t], red[t + s]);
		barrier();
	}
	return red[0];
}
