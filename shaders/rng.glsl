// Counter-based dropout hash: bit-identical to backend.Hash3 and
// backend.Uniform in pkg/backend/rng.go (a test holds them equal).
uint hash3(uint a, uint b, uint c) {
	uint x = a * 0x9E3779B1u ^ b * 0x85EBCA77u ^ c * 0xC2B2AE3Du;
	x ^= x >> 16;
	x *= 0x7FEB352Du;
	x ^= x >> 15;
	x *= 0x846CA68Bu;
	x ^= x >> 16;
	x += c;
	x ^= x >> 16;
	x *= 0x7FEB352Du;
	x ^= x >> 15;
	return x;
}

float uniform01(uint seed, uint stream, uint i) { return float(hash3(seed, stream, i) >> 8) * (1.0 / 16777216.0); }
